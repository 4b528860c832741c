"""The refine loop (DDS §3 as a product): a refinement suggestion becomes a child study.

A suggestion (search.analysis.suggestions) has a stable id, readable and the same on every read:
`constraint:<space>:<constraint>` or `range:<space>:<param>`. `child_spec` turns a parent
study's spec and one suggestion into the child's spec: the same dataset, recipe, samples,
fidelities, promotion, complexity bounds, limits and seed, and one space, the refined one
(the parent's space plus that constraint, or with that parameter's range narrowed to the
suggestion's bootstrap interval). The parent's EDF of the original space is the baseline
the child is compared against, so the child does not sample the original space again.
Pure functions: no database (search.store.studies stores the lineage).
"""

from __future__ import annotations

import math
import re

from pydantic import ValidationError

from anynet.spaces import FLAG_CONSTRAINTS, get_space
from anynet.spaces.candidates import PARAM
from anynet.traits import FAMILY_FIELDS, REGNET_BLOCKS, traits
from search.spec.space import SpaceSpec
from search.spec.study import StudySpec, space_label
from search.store.trial_params import ANYNET_FIELDS, REGNET_FIELDS

KINDS = ("constraint", "range")
_STAGED = re.compile(r"([a-z_]+?)(\d*)")
_NAME_MAX = 200
SAMPLED_AS = {sampled: field for field, sampled in PARAM.items()}  # exp -> expansion


class UnknownSuggestion(LookupError):
    """The id names no suggestion of this study (a 404)."""


class NotApplicable(ValueError):
    """The suggestion exists but cannot (or no longer) become a child study (a 409)."""


def suggestion_id(row: dict) -> str:
    """The stable id of a suggestion row: kind, space and the constraint or parameter."""
    tail = row.get("constraint") if row["kind"] == "constraint" else row.get("param")
    return f"{row['kind']}:{row['space']}:{tail}"


def parse_id(sid: str) -> tuple[str, str, str]:
    """(kind, space, constraint-or-param) of an id; UnknownSuggestion when malformed."""
    kind, _, rest = str(sid).partition(":")
    space, _, tail = rest.rpartition(":")
    if kind not in KINDS or not space or not tail:
        raise UnknownSuggestion(
            f"suggestion: {sid!r} is not an id of the form constraint:SPACE:NAME or "
            "range:SPACE:PARAM"
        )
    return kind, space, tail


def _space_of(spec: StudySpec, name: str) -> SpaceSpec:
    for i, s in enumerate(spec.spaces):
        if space_label(s, i) == name:
            return s
    raise UnknownSuggestion(f"suggestion: study {spec.name!r} has no space {name!r}")


def _fit(name: str) -> str:
    """A space or study name within the 200-character bound (the end kept: it says what)."""
    return name if len(name) <= _NAME_MAX else "…" + name[-(_NAME_MAX - 1) :]


def _g(v: float) -> str:
    return f"{v:.4g}"


def _constraint_space(space: SpaceSpec, name: str, constraint: str) -> SpaceSpec:
    """The parent's space plus one flag constraint, or its RegNet form (`regnet`)."""
    ds = space.resolve()
    new_name = _fit(f"{name}+{constraint}")
    if constraint == "regnet":
        return _regnet_space(space, ds, new_name)
    if constraint not in FLAG_CONSTRAINTS:
        raise UnknownSuggestion(f"suggestion: unknown constraint {constraint!r}")
    if ds.kind == "regnet":
        raise NotApplicable(f"suggestion: {name} is a RegNet space; it has {constraint} already")
    if constraint in ds.constraints:
        raise NotApplicable(f"suggestion: {name} has {constraint} already")
    data = space.model_dump(mode="json", exclude_none=True)
    data["constraints"] = [*[_json(c) for c in ds.constraints], constraint]
    data["name"] = new_name
    return _validated(data, constraint)


def _regnet_space(space: SpaceSpec, ds, new_name: str) -> SpaceSpec:
    """An AnyNet space as its RegNet form (DDS §3.3): same stem, block, SE, stages, input."""
    if ds.kind == "regnet":
        raise NotApplicable(f"suggestion: {space_label(space)} is a RegNet space already")
    if not traits(ds.block).regnet_form:  # anynet.traits: the blocks a RegNet is made of
        raise NotApplicable(
            f"suggestion: the RegNet form is for the blocks {', '.join(REGNET_BLOCKS)}; "
            f"this space has {ds.block} blocks"
        )
    preset = get_space("RegNetX").model_dump(mode="json", exclude_none=True)
    full = {
        **{k: preset[k] for k in ("depth", "w0", "wa", "wm")},
        "name": new_name,
        "kind": "regnet",
        "stem": ds.stem.model_dump(mode="json"),
        "block": ds.block,
        "se_ratio": ds.se_ratio,
        "head_width": ds.head_width,
        # one b and one g per network: the parent's first-stage distributions
        "bottleneck_multiplier": _json(ds.per_stage("bottleneck_multiplier")[0]),
        "group_width": _json((ds.per_stage("group_width") if ds.group_width else [None])[0])
        or preset["group_width"],
        "constraints": [{"num_stages": int(ds.stages)}],
        "rounding": ds.rounding.value if ds.rounding.value != "clamp" else "pycls",
        "resolution": ds.resolution,
        "num_classes": ds.num_classes,
        "in_channels": ds.in_channels,
    }
    if ds.strides is not None:
        full["strides"] = list(ds.strides)
    return _validated({"space": full, "name": new_name}, "regnet")


def _json(v):
    return v.model_dump(mode="json", exclude_none=True) if hasattr(v, "model_dump") else v


def _validated(data: dict, what: str) -> SpaceSpec:
    try:
        return SpaceSpec.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        reason = str(first.get("msg", e)).removeprefix("Value error, ")
        raise NotApplicable(f"suggestion: {what} cannot be applied: {reason}") from None


def _range_space(
    space: SpaceSpec, name: str, param: str, lo: float, hi: float, narrows: bool = True
) -> SpaceSpec:
    """The parent's space with the distribution `param` was drawn from narrowed to [lo, hi]."""
    ds = space.resolve()
    if param in ("flops", "params", "acts") or (param == "depth" and ds.kind != "regnet"):
        raise NotApplicable(
            f"suggestion: {param} is a measure of the networks, not a value the space draws;"
            " narrow the study's complexity bounds instead"
        )
    if ds.kind == "regnet" and param not in REGNET_FIELDS:
        raise NotApplicable(
            f"suggestion: {param} of a RegNet space is derived from (depth, w0, wa, wm), not drawn"
        )
    if not narrows:
        raise NotApplicable(
            f"suggestion: the best range of {param} in {name} is too wide to narrow the space"
        )
    data = space.model_dump(mode="json", exclude_none=True)
    data["name"] = _fit(f"{name} {param}∈[{_g(lo)}, {_g(hi)}]")
    if ds.kind == "regnet":
        field = REGNET_FIELDS[param]
        data[field] = _narrow(getattr(ds, field), param, lo, hi)
        return _validated(data, param)
    staged = _STAGED.fullmatch(param)
    if staged is None:  # inception's branch weights (br1_1x1 ...): a stage draws them together
        raise NotApplicable(
            f"suggestion: {param} is one of a stage's branch weights, drawn together; not "
            "narrowed alone"
        )
    base, stage = staged.groups()
    base = SAMPLED_AS.get(base, base)  # the sampler's name of a family field (exp: expansion)
    field = ANYNET_FIELDS.get(base) or (base if base in FAMILY_FIELDS else None)
    if field is None or getattr(ds, field, None) is None:
        raise UnknownSuggestion(f"suggestion: {name} draws no parameter {param!r}")
    per = ds.per_stage(field)
    if stage:
        k = int(stage) - 1
        if not 0 <= k < len(per):
            raise UnknownSuggestion(f"suggestion: {name} has no stage {k + 1} ({param})")
        per[k] = _narrow(per[k], param, lo, hi)
    else:  # a shared value (one b or g per network) is drawn from stage 1's distribution
        one = _narrow(per[0], param, lo, hi)
        per = [one] * len(per)
    data[field] = [_json(d) for d in per]
    return _validated(data, param)


def _narrow(dist, param: str, lo: float, hi: float) -> dict:
    try:
        return _json(dist.with_range(lo, hi))
    except ValueError as e:
        raise NotApplicable(
            f"suggestion: {param} cannot be narrowed to [{lo}, {hi}]: {e}"
        ) from None


def refined_space(spec: StudySpec, row: dict) -> SpaceSpec:
    """The space a suggestion row describes: the parent's space with it applied."""
    kind, name, tail = parse_id(suggestion_id(row))
    space = _space_of(spec, name)
    if kind == "constraint":
        return _constraint_space(space, name, tail)
    lo, hi = row.get("lo"), row.get("hi")
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        raise NotApplicable(f"suggestion: {row_id(row)} has no bootstrap interval")
    return _range_space(space, name, tail, float(lo), float(hi), row.get("narrows", True))


def row_id(row: dict) -> str:
    """A row's id (the one it carries, else computed)."""
    return row.get("id") or suggestion_id(row)


def child_spec(spec: StudySpec, row: dict) -> StudySpec:
    """The child study of `spec` that tries suggestion `row`: its one refined space."""
    space = refined_space(spec, row)
    label = space.name or space_label(space)
    data = spec.model_dump(mode="json")
    data["spaces"] = [space.model_dump(mode="json", exclude_none=True)]
    data["name"] = _fit(f"{spec.name} › {label}")
    return StudySpec.model_validate(data)


def annotate(rows: list[dict], spec: StudySpec) -> list[dict]:
    """Give each suggestion row its id and whether "try it" can make a child study of it."""
    for row in rows:
        row["id"] = suggestion_id(row)
        try:
            refined_space(spec, row)
            row["applies"], row["why_not"] = True, None
        except (NotApplicable, UnknownSuggestion) as e:
            row["applies"], row["why_not"] = False, str(e).removeprefix("suggestion: ")
    return rows


def find(rows: list[dict], sid: str, spec: StudySpec) -> dict:
    """The row with id `sid`: UnknownSuggestion when the id names nothing of the study,
    NotApplicable when it does but the current results do not suggest it (or it cannot
    be applied)."""
    kind, space, tail = parse_id(sid)
    _space_of(spec, space)
    if kind == "constraint" and tail not in (*FLAG_CONSTRAINTS, "regnet"):
        raise UnknownSuggestion(f"suggestion: unknown constraint {tail!r} in {sid!r}")
    for row in rows:
        if row_id(row) == sid:
            if row.get("applies") is False:
                raise NotApplicable(f"suggestion: {sid} does not apply: {row.get('why_not')}")
            return row
    if kind == "range":  # the results have no best range of that parameter in that space
        raise UnknownSuggestion(f"suggestion: no suggestion {sid!r} in this study's results")
    raise NotApplicable(
        f"suggestion: {sid} is not among the study's current suggestions (no longer applies)"
    )
