"""The Optuna params of a study's trials: the values drawn for each network, with their
distributions, so Optuna's (and optuna-dashboard's) importance, slice and parallel-coordinate
views work on a dse study.

Each trial records `space` and `epochs` (categorical over the study's spaces and levels: a
network trained longer has a lower error, and the views should see why), every value of
`anynet.spaces.sampling.Sample.params` (as built, docs/method.md §4) and the network's
flops, params and acts. A param's distribution is the one the space drew it from: a `choice`
is categorical, uniform_int an int range with its step, log_uniform and the power-of-two
kinds log-scaled ranges. Derived values (a RegNet's stage depths and widths, an AnyNet's
total depth) and the complexity get the range the study's networks span (widened to the
complexity bounds). Optuna requires one distribution kind per param name within a study,
so where spaces disagree the param becomes a numeric range covering them all. The
distributions are computed once per study, stored as an Optuna study system attribute, and
reused for the trials added later (promotions, retries).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
    json_to_distribution,
)

SPACE = "space"
EPOCHS = "epochs"  # the trial's fidelity: errors at different fidelities are not alike
COMPLEXITY = ("flops", "params", "acts")
STUDY_ATTR = "dse_distributions"  # Optuna study system attribute: {name: distribution JSON}
LOG_KINDS = ("log_uniform", "power_of_two", "power2_or_log_uniform")
# sampled name (without its stage number) → the DesignSpace field it was drawn from
ANYNET_FIELDS = {
    "d": "depth",
    "w": "width",
    "bot_mul": "bottleneck_multiplier",
    "g": "group_width",
    "groups": "groups",
}
REGNET_FIELDS = {
    "depth": "depth",
    "w0": "w0",
    "wa": "wa",
    "wm": "wm",
    "g": "group_width",
    "bot_mul": "bottleneck_multiplier",
}
_STAGED = re.compile(r"([a-z_]+?)(\d*)")


def drawn_from(space: Any, name: str) -> Any | None:
    """The distribution of DesignSpace `space` that param `name` was drawn from, or None."""
    if getattr(space, "kind", "anynet") == "regnet":
        field = REGNET_FIELDS.get(name)
        return getattr(space, field, None) if field else None
    base, stage = _STAGED.fullmatch(name).groups()
    field = ANYNET_FIELDS.get(base)
    if field is None or getattr(space, field, None) is None:
        return None
    per_stage = space.per_stage(field)
    index = int(stage) - 1 if stage else 0  # a shared value is drawn from stage 1's
    return per_stage[index] if 0 <= index < len(per_stage) else None


def trial_params(
    space: str, sampled: Mapping[str, Any], complexity: Mapping[str, Any], epochs: int
) -> dict:
    """The Optuna params of one trial: its space, its drawn values, its complexity, its epochs.

    A value shared by all stages (DDS §3.2: AnyNetX_B's b, _C's g) was drawn once and is
    recorded once, under its plain name; its per-stage copies are left out.
    """
    params: dict[str, Any] = {SPACE: space, EPOCHS: int(epochs)}
    for name, value in sampled.items():
        base, stage = _STAGED.fullmatch(name).groups()
        if not (stage and base in sampled):
            params[name] = _plain(value)
    params.update({k: int(complexity[k]) for k in COMPLEXITY})
    return params


def study_distributions(
    spaces: Mapping[str, tuple[Any, list[dict]]],
    fidelities: Iterable[int],
    bounds: Mapping[str, tuple[float, float]] | None = None,
) -> dict[str, BaseDistribution]:
    """One distribution per param name of a study.

    `spaces` maps each space's label to (its DesignSpace, the params of its networks as
    `trial_params` gives them); `fidelities` are the study's epochs per level, `bounds`
    its complexity bounds.
    """
    sources: dict[str, list[Any]] = {}
    values: dict[str, list[Any]] = {}
    for space, rows in spaces.values():
        names = {name for row in rows for name in row} - {SPACE, EPOCHS}
        for name in names:
            sources.setdefault(name, []).append(
                None if name in COMPLEXITY else drawn_from(space, name)
            )
        for row in rows:
            for name in names & set(row):
                values.setdefault(name, []).append(row[name])
    out: dict[str, BaseDistribution] = {
        SPACE: CategoricalDistribution(tuple(spaces)),
        EPOCHS: CategoricalDistribution(tuple(int(e) for e in fidelities)),
    }
    for name in sorted(sources):
        extra = (bounds or {}).get(name)
        out[name] = _merged(sources[name], values.get(name, []), extra, log=name in COMPLEXITY)
    return out


def _merged(sources: list, values: list, extra, log: bool) -> BaseDistribution:
    """The distribution covering every source distribution and every value drawn."""
    if sources and all(_kind(s) == "choice" for s in sources):
        choices = {v for s in sources for v in s.values} | set(values)
        return CategoricalDistribution(tuple(sorted(choices)))
    lows = [v for v in values if _number(v)] + [_support(s)[0] for s in sources if s is not None]
    highs = [v for v in values if _number(v)] + [_support(s)[1] for s in sources if s is not None]
    if extra is not None:
        lows.append(extra[0])
        highs.append(extra[1])
    low, high = min(lows), max(highs)
    log = log or (bool(sources) and all(_kind(s) in LOG_KINDS for s in sources))
    integral = all(isinstance(v, int) for v in values) and all(
        _kind(s) != "log_uniform" or float(s.quantum).is_integer() for s in sources if s
    )
    if integral:
        low, high = math.floor(low), math.ceil(high)
        step = _common_step(sources, values, low) if not log else 1
        high = low + (high - low) // step * step
        return IntDistribution(low, high, log=log and low >= 1, step=step)
    return FloatDistribution(float(low), float(high), log=log and low > 0)


def _common_step(sources: list, values: list, low: int) -> int:
    """The step every source shares (uniform_int), if every value lies on that grid; else 1."""
    steps = {getattr(s, "step", None) if _kind(s) == "uniform_int" else None for s in sources}
    if len(steps) != 1 or None in steps:
        return 1
    step = steps.pop()
    if any((v - low) % step for v in values):
        return 1
    return step


def _kind(dist: Any) -> str | None:
    return getattr(dist, "kind", None)


def _support(dist: Any) -> tuple[float, float]:
    if _kind(dist) == "choice":
        return min(dist.values), max(dist.values)
    if _kind(dist) == "log_uniform":  # drawn values are rounded up to the quantum
        return dist.lo, math.ceil(round(dist.hi / dist.quantum, 9)) * dist.quantum
    return dist.lo, dist.hi


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _plain(v: Any) -> Any:
    """numpy scalars as Python numbers (Optuna stores params through json)."""
    return v.item() if hasattr(v, "item") else v


def to_json(distributions: Mapping[str, BaseDistribution]) -> dict[str, str]:
    """As stored in the Optuna study system attribute STUDY_ATTR."""
    return {name: distribution_to_json(d) for name, d in distributions.items()}


def from_json(data: Mapping[str, str] | None) -> dict[str, BaseDistribution]:
    """From the Optuna study system attribute (empty for studies created before it)."""
    return {name: json_to_distribution(text) for name, text in (data or {}).items()}


def restricted(params: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """The params among `names` (a trial records only params its study has distributions of)."""
    keep = set(names)
    return {k: v for k, v in params.items() if k in keep}
