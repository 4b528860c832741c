"""Candidate networks of a design space, a batch at a time (DDS §3, docs/method.md §4).

`anynet_batch` and `regnet_batch` draw every free value of BATCH candidates with numpy from
the sampler's seeded Generator (in a fixed order, so a seed reproduces its draws), apply
the space's group-compatibility rule, reject the candidates whose *built* values break a
constraint (docs/method.md §4), with a reason, and give the stage values of the rest;
`count_batches` counts those exactly by describing them with numpy arrays through
anynet.families (complexity.anynet_counts): the group rule comes from anynet.rounding, the
RegNet widths from anynet.regnet, so no network rule is copied here.
`spec(i)` makes candidate i's NetSpec and its values as built: d1.., w1.., bot_mul1..,
g1.. or groups1.. (the stage values of the NetSpec); for RegNets the drawn depth, w0, wa,
wm, g, bot_mul and the resulting d1.., w1...
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field, fields

import numpy as np

from anynet.complexity import anynet_counts
from anynet.families import Stage
from anynet.regnet import QUANTUM, quantized_widths
from anynet.rounding import group_rule, groups_of, inner_width
from anynet.spaces import FAMILY_PER_STAGE, DesignSpace, support
from anynet.spec import NetSpec
from anynet.traits import traits

BOUND_KEYS = ("flops", "params", "acts")
REASONS = (
    "",
    "increasing_width",
    "increasing_depth",
    "shared_group_width",
    "group_compatibility",
    "out_of_range",
    "num_stages",
    "regnet_valid",
    "invalid_network",
)
CODE = {r: i for i, r in enumerate(REASONS)}
STAGE_KEYS = ("depth", "width", "stride", "bottleneck_multiplier", "group_width")
FAMILY = FAMILY_PER_STAGE  # per-stage values of some families only
PARAM = {"kernel": "kernel", "expansion": "exp"}  # their names in Sample.params (+ stage)
BRANCHES = ("1x1", "3x3", "5x5", "pool")  # inception's branches, in order


def _family_value(name: str, column: np.ndarray):
    """A family field of families.Stage over a batch: branches as a tuple of four arrays."""
    if name == "branches":
        return tuple(column[:, b] for b in range(len(BRANCHES)))
    return column.astype(np.float64) if name == "expansion" else column


def _py(x):
    """numpy scalar → int or float."""
    return int(x) if isinstance(x, (np.integer, int)) else float(x)


@dataclass
class Batch:
    """One batch of candidates: why each was rejected, and the exact counts of the rest.

    codes[i] = 0 if candidate i met every constraint and is a network, else its REASONS
    index; `rows` are the candidates that met the constraints (ascending), `parts` their
    stage values (a row mask and families.Stage arrays per stage count); `count_batches` then
    keeps in `rows` only the networks and puts their exact flops, params and acts in
    `counts`. spec(i) → (NetSpec, its values as built). `drawn` keeps the AnyNet widths and
    group widths of every candidate as drawn, before the group rule (width, group_width:
    (size, stages) arrays), so the rule's effect can be measured (docs/method.md §4).
    """

    codes: np.ndarray
    rows: np.ndarray
    parts: list[tuple[np.ndarray, list[Stage]]]
    spec: Callable[[int], tuple[NetSpec, dict]]
    counts: dict[str, np.ndarray] = field(default_factory=dict)
    drawn: dict[str, np.ndarray] = field(default_factory=dict)


def _joined(values: list):
    """One Stage field over several batches: arrays concatenated, a shared scalar kept."""
    if isinstance(values[0], np.ndarray):
        return np.concatenate(values)
    if isinstance(values[0], tuple) and isinstance(values[0][0], np.ndarray):
        return tuple(_joined([v[i] for v in values]) for i in range(len(values[0])))
    return values[0]


def count_batches(net: dict, batches: list[Batch]) -> None:
    """Count the rows of several batches at once (complexity.anynet_counts over arrays).

    One call per stage layout amortises describing the network over many batches (AnyNetX_E
    keeps ~20 of 8192 candidates per batch); a vanishing size makes a row invalid_network.
    """
    layouts: dict[tuple, list] = {}
    oks = [np.ones(batch.rows.size, bool) for batch in batches]
    for batch, ok in zip(batches, oks, strict=True):
        batch.counts = {key: np.zeros(batch.rows.size, np.int64) for key in BOUND_KEYS}
        for mask, stages in batch.parts:
            key = (len(stages), tuple(st.stride for st in stages))
            layouts.setdefault(key, []).append((batch, ok, mask, stages))
    names = [f.name for f in fields(Stage)]
    for items in layouts.values():
        stages = [
            Stage(**{name: _joined([getattr(it[3][j], name) for it in items]) for name in names})
            for j in range(len(items[0][3]))
        ]
        f, p, a, _, ok = anynet_counts(
            net["stem"].type, net["stem"].width, net["in_channels"], net["resolution"],
            net["block"], net["se_ratio"], stages, net["head_width"], net["num_classes"],
        )  # fmt: skip
        size = sum(int(np.count_nonzero(it[2])) for it in items)
        f, p, a, ok = (np.broadcast_to(v, (size,)) for v in (f, p, a, ok))
        start = 0
        for batch, fine, mask, _ in items:
            end = start + int(np.count_nonzero(mask))
            for key, v in zip(BOUND_KEYS, (f, p, a), strict=True):
                batch.counts[key][mask] = v[start:end]
            fine[mask] = ok[start:end]
            start = end
    for batch, ok in zip(batches, oks, strict=True):
        batch.codes[batch.rows[~ok]] = CODE["invalid_network"]
        batch.rows = batch.rows[ok]
        batch.counts = {key: v[ok] for key, v in batch.counts.items()}


def anynet_batch(space: DesignSpace, rng: np.random.Generator, size: int, net: dict) -> Batch:
    """`size` AnyNet candidates: per-stage values drawn, group rule applied, then constraints."""
    k = int(space.stages)
    shared = {
        "bottleneck_multiplier": space.has("shared_bottleneck"),
        "group_width": space.has("shared_group_width"),
        "groups": space.has("shared_group_width"),
    }
    dr = _draw_stages(space, rng, size, k, shared)
    d, w, m = dr["depth"], dr["width"], dr["bottleneck_multiplier"].astype(np.float64)
    if "groups" in dr:  # NDS ResNeXt: number of groups → group width of the inner conv
        g = groups_of(inner_width(w, m), dr["groups"])
    else:
        g = dr.get("group_width", np.ones_like(w))
    group_key = "groups" if "groups" in dr else "group_width" if "group_width" in dr else None
    codes = np.zeros(size, dtype=np.int64)
    strides = space.stage_strides(k)
    if space.has("increasing_depth"):  # the group rule keeps depths: checked first, cheaply
        codes[np.any(np.diff(d, axis=1) < 0, axis=1)] = CODE["increasing_depth"]
    wa, ga = _apply_group_rule(space, codes, w, m, g)
    # the value recorded per stage: group width g_i, or number of groups (NDS ResNeXt)
    gb = groups_of(inner_width(wa, m), ga) if "groups" in dr else ga
    _reject_built(space, codes, wa, gb, group_key)
    rows = np.flatnonzero(codes == 0)
    stages = []
    for j in range(k):
        inner = inner_width(wa[rows, j], m[rows, j])
        family = {name: _family_value(name, dr[name][rows, j]) for name in FAMILY if name in dr}
        stages.append(
            Stage(d[rows, j], wa[rows, j], strides[j], inner, groups_of(inner, ga[rows, j]),
                  **family)
        )  # fmt: skip
    built = _AnyNetBuilt(net, dr, d, wa, m, ga, gb, strides, group_key, shared)
    drawn = {"width": w, "group_width": g}
    return Batch(codes, rows, [(np.ones(rows.size, bool), stages)], built.spec, drawn=drawn)


def _draw_stages(space: DesignSpace, rng, size: int, k: int, shared: dict) -> dict:
    """Every free per-stage value of `size` candidates, by name: (size, k) arrays, drawn in a
    fixed order (a seed reproduces them); a shared value is drawn once per network."""
    dr: dict[str, np.ndarray] = {}
    for name in ("depth", "width", "bottleneck_multiplier", "group_width", "groups", *FAMILY):
        if getattr(space, name) is None:
            continue
        dists = space.per_stage(name)
        if shared.get(name):  # DDS §3.2: one value for all stages
            dr[name] = np.repeat(dists[0].draw(rng, (size, 1)), k, axis=1)
        elif name == "branches":  # one weight per inception branch: (size, k, 4)
            dr[name] = np.stack([d.draw(rng, (size, len(BRANCHES))) for d in dists], axis=1)
        else:
            dr[name] = np.stack([d.draw(rng, size) for d in dists], axis=1)
    return dr


def _apply_group_rule(space: DesignSpace, codes, w, m, g) -> tuple[np.ndarray, np.ndarray]:
    """(widths, group widths) as built: the space's group rule on the candidates still
    alive (docs/method.md §4); those it cannot build get code group_compatibility."""
    alive = np.flatnonzero(codes == 0)
    wa, ga = w, g
    if traits(space.block).bottleneck:  # on the candidates still alive only
        wa, ga = w.copy(), np.array(g, copy=True)
        wa[alive], ga[alive], ok = group_rule(w[alive], m[alive], g[alive], space.rounding)
        codes[alive[~ok.all(axis=1)]] = CODE["group_compatibility"]
    return wa, ga


def _reject_built(space: DesignSpace, codes, wa, gb, group_key: str | None) -> None:
    """Set the code of every alive candidate whose built values break a range or constraint.

    Every range and constraint is checked on the built values, so it holds on the network
    trained: a width the rule moves out of its stage's range is rejected, not kept.
    """
    checks = [("out_of_range", "width", wa), ("out_of_range", group_key, gb)]
    checks += [("increasing_width", "", wa), ("shared_group_width", "", gb)]
    for reason, name, arr in checks:
        if name is None or (not name and not space.has(reason)):
            continue
        at = np.flatnonzero(codes == 0)
        x = arr[at]
        if name:
            lo, hi = np.array([support(dist) for dist in space.per_stage(name)]).T
            bad = np.any((x < lo - 1e-9) | (x > hi + 1e-9), axis=1)
        elif reason == "shared_group_width":
            bad = np.any(x != x[:, :1], axis=1)
        else:
            bad = np.any(np.diff(x, axis=1) < 0, axis=1)
        codes[at[bad]] = CODE[reason]


@functools.cache
def _param_keys(k: int) -> dict:
    """The names in Sample.params of each per-stage value of a k-stage AnyNet."""
    keys = {n: [f"{n}{j + 1}" for j in range(k)] for n in ("d", "w", "bot_mul", "groups", "g")}
    keys.update({n: [f"{PARAM[n]}{j + 1}" for j in range(k)] for n in PARAM})
    keys["branches"] = [[f"br{j + 1}_{b}" for b in BRANCHES] for j in range(k)]
    return keys


@dataclass(frozen=True)
class _AnyNetBuilt:
    """A batch of AnyNet candidates as built (after the group rule), by candidate row."""

    net: dict  # the fields every network of the space shares (stem, block, input, head)
    drawn: dict[str, np.ndarray]  # every drawn per-stage value, by name
    depth: np.ndarray
    width: np.ndarray  # as built
    bottleneck_multiplier: np.ndarray
    group_width: np.ndarray  # as built
    recorded: np.ndarray  # the value recorded per stage: group width, or number of groups
    strides: list[int]
    group_key: str | None  # "groups", "group_width" or None: which of them the space draws
    shared: dict[str, bool]  # per name: drawn once for all stages

    def spec(self, i: int):
        """Candidate i's NetSpec and its values as built (after the group rule)."""
        d, wa, m = (a[i].tolist() for a in (self.depth, self.width, self.bottleneck_multiplier))
        keys = _param_keys(len(d))
        gkey = {"groups": "groups", "group_width": "g"}.get(self.group_key)  # its params name
        params: dict = {"depth": sum(d)}
        params.update(zip(keys["d"], d, strict=True))
        params.update(zip(keys["w"], wa, strict=True))
        params.update(zip(keys["bot_mul"], m, strict=True))
        if gkey is not None:
            params.update(zip(keys[gkey], self.recorded[i].tolist(), strict=True))
        if self.shared["bottleneck_multiplier"]:  # one value: also under its plain name
            params["bot_mul"] = m[0]
        if self.shared["group_width"]:
            params[gkey or "g"] = params.get(f"{gkey or 'g'}1", 1)
        rows = zip(d, wa, self.strides, m, self.group_width[i].tolist(), strict=True)
        stages = [dict(zip(STAGE_KEYS, row, strict=True)) for row in rows]
        for name in [name for name in FAMILY if name in self.drawn]:
            values = self.drawn[name][i].tolist()
            for st, value in zip(stages, values, strict=True):
                st[name] = value
            if name == "branches":
                for names, value in zip(keys["branches"], values, strict=True):
                    params.update(zip(names, value, strict=True))
            else:
                params.update(zip(keys[name], values, strict=True))
        return NetSpec.model_validate({**self.net, "stages": stages}), params


def regnet_batch(space: DesignSpace, rng: np.random.Generator, size: int, net: dict) -> Batch:
    """`size` RegNet candidates: (d, w0, wa, wm, g, b) drawn, quantised into stages (§3)."""
    dep = space.depth.draw(rng, size)
    w0 = space.w0.draw(rng, size)
    wa = space.wa.draw(rng, size)
    wm = space.wm.draw(rng, size)
    gw = space.group_width.draw(rng, size)
    bm = space.bottleneck_multiplier.draw(rng, size).astype(np.float64)
    codes = np.zeros(size, dtype=np.int64)
    w0f = np.asarray(w0, np.float64)
    bad = (wm <= 1) | (wa < 0) | (w0f <= 0) | (w0f % QUANTUM != 0)
    codes[bad] = CODE["regnet_valid"]
    q, s, present = quantized_widths(dep, w0, wa, wm)
    starts = np.concatenate([np.ones((size, 1), bool), np.diff(q, axis=1) != 0], axis=1) & present
    num_stages = starts.sum(axis=1)
    want = space.num_stages
    if want is not None:
        # pycls check_regnet_constraints: stage count = max exponent + 1 (none skipped) = k.
        max_s = np.where(present, s, -1).max(axis=1)
        broke = (num_stages != max_s + 1) | (num_stages != want)
        codes[broke & (codes == 0)] = CODE["num_stages"]
    # stage j of a candidate = its j-th run of equal widths (docs/method.md §3)
    rows = np.flatnonzero(codes == 0)
    n, ns = rows.size, num_stages[rows]
    top = int(ns.max()) if n else 1
    stage = np.cumsum(starts[rows], axis=1) - 1
    at = (np.arange(n)[:, None] * top + stage)[present[rows]]
    depths = np.bincount(at, minlength=n * top).reshape(n, top)
    widths = np.full((n, top), QUANTUM, np.int64)  # absent stages: any valid width
    r, c = np.nonzero(starts[rows])
    widths[r, stage[r, c]] = q[rows[r], c]
    b = bm[rows][:, None]
    widths, groups, ok = group_rule(
        widths, b, np.broadcast_to(gw[rows][:, None], b.shape), space.rounding
    )
    ok = (ok | (depths == 0)).all(axis=1)  # torchvision refuses an inner width of 0
    codes[rows[~ok]] = CODE["invalid_network"]
    strides = list(space.strides) if space.strides is not None else [2] * top
    parts = []
    for k in np.unique(ns[ok]):
        sel = ok & (ns == k)
        stages = []
        for j in range(k):
            inner = inner_width(widths[sel, j], bm[rows[sel]])
            stages.append(
                Stage(
                    depths[sel, j],
                    widths[sel, j],
                    strides[j],
                    inner,
                    groups_of(inner, groups[sel, j]),
                )
            )
        parts.append((sel[ok], stages))

    def spec(i: int):
        """Candidate i's NetSpec and its RegNet parameters with the stages they give."""
        params = {
            "depth": int(dep[i]),
            "w0": _py(w0[i]),
            "wa": _py(wa[i]),
            "wm": _py(wm[i]),
            "g": int(gw[i]),
            "bot_mul": float(bm[i]),
        }
        r = int(np.searchsorted(rows, i))  # candidate i's row of depths, widths, groups
        stages = [
            {"depth": int(depths[r, j]), "width": int(widths[r, j]), "stride": strides[j],
             "bottleneck_multiplier": float(bm[i]), "group_width": int(groups[r, j])}
            for j in range(int(ns[r]))
        ]  # fmt: skip
        for j, st in enumerate(stages):
            params[f"d{j + 1}"] = st["depth"]
            params[f"w{j + 1}"] = st["width"]
        return NetSpec.model_validate({**net, "stages": stages}), params

    return Batch(codes, rows[ok], parts, spec)
