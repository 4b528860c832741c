"""RegNet: from (d, w0, wa, wm, g, b, se) to stages, both rounding rules, and the DDS fit.

docs/method.md §3. Widths are generated in float64 with numpy's round-half-to-even; stages are the
runs of equal quantised widths; then a group-compatibility rule (pycls or torchvision) makes
every inner width divisible by its group width.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from anynet.rounding import REGNET_ROUNDINGS, Rounding, group_rule
from anynet.spec import NetSpec, StageSpec, StemSpec

ROUNDINGS = REGNET_ROUNDINGS  # the RegNet rules; clamp is for design spaces only
QUANTUM = 8  # DDS: per-block widths are quantised to multiples of 8


def check_regnet_params(
    depth: int, w0: float, wa: float, wm: float, group_width: int = 1, rounding: str = "pycls"
) -> None:
    """Raise ValueError naming the RegNet parameter that is invalid and why (docs/method.md §3)."""
    if int(depth) != depth or depth < 1:
        raise ValueError(f"depth: must be an integer >= 1, got {depth}")
    if not w0 > 0:
        raise ValueError(f"w0: initial width must be > 0, got {w0}")
    if float(w0) % QUANTUM:
        raise ValueError(f"w0: initial width must be a multiple of {QUANTUM}, got {w0}")
    if not wa >= 0:
        raise ValueError(f"wa: width slope must be >= 0, got {wa}")
    if not wm > 1:
        raise ValueError(f"wm: width multiplier must be > 1, got {wm}")
    if int(group_width) != group_width or group_width < 1:
        raise ValueError(f"group_width: must be an integer >= 1, got {group_width}")
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding: must be one of {', '.join(ROUNDINGS)}, got {rounding!r}")


def quantized_widths(depth, w0, wa, wm) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-block widths of RegNets given as arrays: (widths, exponents, present), each (n, d).

    docs/method.md §3: u_j = w0 + wa·j, s_j = round(log(u_j / w0) / log wm),
    w_j = round(w0·wm^s_j / 8)·8 in float64, half to even; d = max(depth), and `present`
    marks j < depth. Invalid parameters give NaN or garbage rows (the caller rejects them).
    """
    depth = np.atleast_1d(np.asarray(depth, np.int64))
    w0 = np.atleast_1d(np.asarray(w0, np.float64))[:, None]
    wa = np.atleast_1d(np.asarray(wa, np.float64))[:, None]
    wm = np.atleast_1d(np.asarray(wm, np.float64))[:, None]
    j = np.arange(int(depth.max()), dtype=np.float64)[None, :]
    with np.errstate(all="ignore"):
        u = w0 + wa * j
        s = np.round(np.log(u / w0) / np.log(wm))
        w = np.round(w0 * np.power(wm, s) / QUANTUM) * QUANTUM
    return w, s, j < depth[:, None]


def quantized_block_widths(depth: int, w0: float, wa: float, wm: float) -> list[int]:
    """Per-block widths before the group rule: w_j = round(w0·wm^s_j / 8)·8 (docs/method.md §3)."""
    check_regnet_params(depth, w0, wa, wm)
    w, _, _ = quantized_widths(depth, w0, wa, wm)
    return [int(x) for x in w[0]]


def stages_of(block_widths: list[int]) -> tuple[list[int], list[int]]:
    """Runs of equal per-block widths → (stage_depths, stage_widths) (docs/method.md §3)."""
    depths: list[int] = []
    widths: list[int] = []
    for w in block_widths:
        if widths and widths[-1] == w:
            depths[-1] += 1
        else:
            widths.append(w)
            depths.append(1)
    return depths, widths


def adjust_widths_groups(
    widths: list[int], bottleneck_multipliers: list[float], group_widths: list[int], rounding: str
) -> tuple[list[int], list[int]]:
    """Group compatibility: make each inner width w·b divisible by its group width (§3)."""
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding: must be one of {', '.join(ROUNDINGS)}, got {rounding!r}")
    if not len(widths) == len(bottleneck_multipliers) == len(group_widths):
        raise ValueError("widths, bottleneck_multipliers and group_widths differ in length")
    for i, (w, b, g) in enumerate(zip(widths, bottleneck_multipliers, group_widths, strict=True)):
        if w < 1:
            raise ValueError(f"widths[{i}]: must be >= 1, got {w}")
        if not b > 0:
            raise ValueError(f"bottleneck_multipliers[{i}]: must be > 0, got {b}")
        if g < 1:
            raise ValueError(f"group_widths[{i}]: must be >= 1, got {g}")
    out_w, out_g, ok = group_rule(widths, bottleneck_multipliers, group_widths, rounding)
    for w, b, fine in zip(widths, bottleneck_multipliers, ok.tolist(), strict=True):
        if not fine:  # the torchvision rule refuses an inner width of 0
            raise ValueError(f"bottleneck_multiplier: inner width int({w} x {b}) is 0")
    return out_w.tolist(), out_g.tolist()


def regnet_widths(
    depth: int,
    w0: float,
    wa: float,
    wm: float,
    group_width: int,
    bottleneck_multiplier: float = 1.0,
    rounding: str = "pycls",
) -> tuple[list[int], list[int], list[int]]:
    """RegNet parameters → (stage_depths, stage_widths, stage_group_widths) (docs/method.md §3)."""
    check_regnet_params(depth, w0, wa, wm, group_width, rounding)
    if not bottleneck_multiplier > 0:
        raise ValueError(f"bottleneck_multiplier: must be > 0, got {bottleneck_multiplier}")
    depths, widths = stages_of(quantized_block_widths(depth, w0, wa, wm))
    n = len(widths)
    widths, groups = adjust_widths_groups(
        widths, [bottleneck_multiplier] * n, [int(group_width)] * n, rounding
    )
    return depths, widths, groups


def regnet_spec(
    depth: int,
    w0: float,
    wa: float,
    wm: float,
    group_width: int,
    bottleneck_multiplier: float = 1.0,
    se_ratio: float = 0.0,
    rounding: str = "pycls",
    stem_width: int = 32,
    resolution: int = 224,
    num_classes: int = 1000,
    stem_type: str = "simple",
    in_channels: int = 3,
) -> NetSpec:
    """The NetSpec of a RegNet: res_bottleneck blocks, every stage stride 2 (DDS §3)."""
    depths, widths, groups = regnet_widths(
        depth, w0, wa, wm, group_width, bottleneck_multiplier, rounding
    )
    stages = tuple(
        StageSpec(
            depth=d, width=w, stride=2, bottleneck_multiplier=bottleneck_multiplier, group_width=g
        )
        for d, w, g in zip(depths, widths, groups, strict=True)
    )
    return NetSpec(
        stem=StemSpec(type=stem_type, width=stem_width),
        block="res_bottleneck",
        stages=stages,
        se_ratio=se_ratio,
        num_classes=num_classes,
        in_channels=in_channels,
        resolution=resolution,
    )


class RegNetParams(BaseModel):
    """One RegNet as its generating parameters plus the rounding rule that makes it exact."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    depth: int = Field(ge=1)
    w0: int
    wa: float
    wm: float
    group_width: int = Field(ge=1)
    bottleneck_multiplier: float = Field(1.0, gt=0)
    se_ratio: float = Field(0.0, ge=0.0, lt=1.0)
    rounding: Rounding = Rounding.PYCLS

    @model_validator(mode="after")
    def _valid(self) -> RegNetParams:
        check_regnet_params(self.depth, self.w0, self.wa, self.wm, self.group_width, self.rounding)
        return self

    def widths(self) -> tuple[list[int], list[int], list[int]]:
        """(stage_depths, stage_widths, stage_group_widths) under this RegNet's rule."""
        return regnet_widths(
            self.depth,
            self.w0,
            self.wa,
            self.wm,
            self.group_width,
            self.bottleneck_multiplier,
            self.rounding,
        )

    def spec(self, **kw) -> NetSpec:
        """The NetSpec (kw: stem_width, resolution, num_classes, stem_type, in_channels)."""
        return regnet_spec(
            self.depth,
            self.w0,
            self.wa,
            self.wm,
            self.group_width,
            self.bottleneck_multiplier,
            self.se_ratio,
            self.rounding,
            **kw,
        )


# --- fitting (DDS §3.3) ---------------------------------------------------------------
# e_fit = mean_j |log(w_pred_j / w_obs_j)| of the *quantised* prediction. For fixed (w0, wm)
# the prediction is a step function of wa: block j moves from exponent k to k+1 at
# wa = w0·(wm^(k+1/2) − 1)/j. So the exact best wa is found by sorting those breakpoints and
# summing the error changes; w0 is searched over multiples of 8 near the first width and wm
# over a grid plus the intervals where a level round(w0·wm^k/8)·8 hits an observed width.
FIT_WM_RANGE = (1.1, 4.0)
_FIT_GRID = 240  # coarse log-spaced wm grid
_FIT_PER_INTERVAL = 12  # wm samples inside each level interval
_FIT_INTERVAL_BUDGET = 1200  # at most this many interval samples in all
_EPS = 1e-9


def _errors(levels: np.ndarray, obs: np.ndarray, runs: list) -> np.ndarray:
    """|log(level / observed)| per (wm, block, level); 0 where a run allows that level."""
    err = np.abs(np.log(levels[:, None, :] / obs[None, :, None]))  # (M, d, K+1)
    for first, last, allowed in runs:
        if allowed.size > 1:
            err[:, first:last, :] *= ~np.isin(levels, allowed)[:, None, :]
    return err


def _best_wa(w0: int, wms: np.ndarray, obs: np.ndarray, runs: list) -> tuple[np.ndarray, ...]:
    """For each wm: the least e_fit over wa and its wa interval [lo, hi)."""
    d = obs.size
    lw = np.log(wms)
    k_max = int(np.ceil(np.log(2.0 * obs.max() / w0 + 1.0) / lw.min())) + 1
    ks = np.arange(k_max + 1, dtype=np.float64)
    levels = np.round(w0 * np.power(wms[:, None], ks[None, :]) / QUANTUM) * QUANTUM
    levels = np.maximum(levels, 1.0)  # a level of 0 can only be far from any width
    err = _errors(levels, obs, runs)
    e0 = err[:, :, 0].sum(axis=1)
    if d == 1:
        inf = np.full(wms.shape, np.inf)
        return e0 / d, np.zeros_like(wms), inf
    delta = (err[:, 1:, 1:] - err[:, 1:, :-1]).reshape(wms.size, -1)  # (M, (d-1)·K)
    j = np.arange(1, d, dtype=np.float64)[:, None]
    cuts = w0 * (np.power(wms[:, None, None], ks[None, None, :-1] + 0.5) - 1.0) / j[None]
    cuts = cuts.reshape(wms.size, -1)
    order = np.argsort(cuts, axis=1, kind="stable")
    cuts = np.take_along_axis(cuts, order, axis=1)
    totals = e0[:, None] + np.cumsum(np.take_along_axis(delta, order, axis=1), axis=1)
    lo = np.concatenate([np.zeros((wms.size, 1)), cuts], axis=1)
    hi = np.concatenate([cuts, np.full((wms.size, 1), np.inf)], axis=1)
    totals = np.concatenate([e0[:, None], totals], axis=1)
    # Intervals too thin to hold a float that rounds the same way are not realisable.
    totals = np.where(hi - lo > _EPS * np.maximum(1.0, hi), totals, np.inf)
    best = np.argmin(totals, axis=1)
    rows = np.arange(wms.size)
    return totals[rows, best] / d, lo[rows, best], hi[rows, best]


def _roundest(lo: float, hi: float) -> float:
    """The value in (lo, hi) with the fewest decimals (wa = 36.44 rather than 36.4417...)."""
    if lo <= 0 < hi:
        return 0.0
    for p in range(7):
        scale = 10.0**p
        v = math.floor(lo * scale + 1.0) / scale
        if lo + _EPS * max(1.0, lo) < v < hi - _EPS * max(1.0, hi):
            return v
    return (lo + hi) / 2 if math.isfinite(hi) else lo + 1.0


def _level_intervals(w0: int, width: float, k_min: int) -> list[tuple[float, float]]:
    """wm intervals (within FIT_WM_RANGE) where round(w0·wm^k/8)·8 == width, for k >= k_min."""
    lo_wm, hi_wm = FIT_WM_RANGE
    out = []
    k_hi = int(np.log((width + QUANTUM / 2) / w0) / np.log(lo_wm)) + 1
    for k in range(max(1, k_min), k_hi + 1):
        a = max(((width - QUANTUM / 2) / w0) ** (1.0 / k), lo_wm)
        b = min(((width + QUANTUM / 2) / w0) ** (1.0 / k), hi_wm)
        if a < b:
            out.append((a, b))
    return out


def _wm_candidates(w0: int, runs: list) -> np.ndarray:
    """wm grid ∪ samples of the wm intervals where every stage's width is a level w0·wm^k."""
    lo_wm, hi_wm = FIT_WM_RANGE
    parts = [np.geomspace(lo_wm, hi_wm, _FIT_GRID)]
    stages = [[float(c) for c in allowed if c > w0] for _, _, allowed in runs]
    while stages and not stages[0]:
        stages.pop(0)
    # Stage i of a RegNet has exponent k >= i, so stage i's width needs k >= i (DDS §3.3).
    feasible = [iv for c in stages[0] for iv in _level_intervals(w0, c, 1)] if stages else []
    for i, cands in enumerate(stages[1:], start=2):
        nxt = [
            (max(a, c), min(b, e))
            for a, b in feasible
            for w in cands
            for c, e in _level_intervals(w0, w, i)
            if max(a, c) < min(b, e)
        ]
        if not nxt:  # not exactly a RegNet from here on: keep what the first widths allow
            break
        feasible = nxt
    # Many feasible intervals (small w0, wm near 1) share a fixed budget of samples.
    per = int(np.clip(_FIT_INTERVAL_BUDGET // max(1, len(feasible)), 3, _FIT_PER_INTERVAL))
    t = np.linspace(0.02, 0.98, per)
    parts += [a + (b - a) * t for a, b in feasible]
    wms = np.unique(np.concatenate(parts))
    return wms[(wms > 1.0 + 1e-6) & (wms <= hi_wm)]


def _fit_w0(w0: int, obs: np.ndarray, runs: list) -> tuple[float, float, float]:
    """Best (e_fit, wa, wm) for one w0: candidate wm, then two rounds of local refinement."""
    wms = _wm_candidates(w0, runs)
    e, lo, hi = _best_wa(w0, wms, obs, runs)
    for width in (0.01, 0.001):
        top = wms[np.argsort(e, kind="stable")[:4]]
        fine = np.unique(np.concatenate([m * (1 + np.linspace(-width, width, 41)) for m in top]))
        fine = fine[fine > 1.0 + 1e-6]
        fe, flo, fhi = _best_wa(w0, fine, obs, runs)
        wms, e = np.concatenate([wms, fine]), np.concatenate([e, fe])
        lo, hi = np.concatenate([lo, flo]), np.concatenate([hi, fhi])
    # Among equally good wm prefer the one nearest the paper's typical 2.5 (DDS §4).
    ties = np.flatnonzero(e <= e.min() + 1e-12)
    i = ties[np.argmin(np.abs(wms[ties] - 2.5))]
    wm = float(wms[i])
    # A rounder wm (3 then 4 decimals) is kept if it fits as well.
    for p in (2, 3, 4):
        r = np.array([round(wm, p)])
        if r[0] > 1.0:
            re, rlo, rhi = _best_wa(w0, r, obs, runs)
            if re[0] <= e[i] + 1e-12:
                return float(re[0]), _roundest(float(rlo[0]), float(rhi[0])), float(r[0])
    return float(e[i]), _roundest(float(lo[i]), float(hi[i])), wm


def fit_regnet(
    block_widths: list[int], allowed: list[list[int]] | None = None
) -> tuple[int, float, float, float]:
    """Nearest RegNet to per-block widths: (w0, wa, wm, e_fit) minimising e_fit (DDS §3.3).

    `allowed` (optional, per block): widths that count as exact for that block, e.g. every
    width the group rule maps onto the observed one (used to recognise a RegNet after it).
    """
    obs = np.asarray(list(block_widths), dtype=np.float64)
    if obs.size == 0:
        raise ValueError("block_widths: need at least one block")
    if not np.all(np.isfinite(obs)) or np.any(obs <= 0):
        raise ValueError("block_widths: every width must be a positive number")
    if allowed is not None and len(allowed) != obs.size:
        raise ValueError(f"allowed: need one set per block ({obs.size}), got {len(allowed)}")
    sets = [
        np.unique(np.asarray([w, *(allowed[j] if allowed else ())], dtype=np.float64))
        for j, w in enumerate(obs)
    ]
    runs: list = []  # (first block, end block, allowed widths) per run of equal widths
    for j, a in enumerate(sets):
        if runs and obs[j] == obs[runs[-1][0]] and np.array_equal(a, runs[-1][2]):
            runs[-1][1] = j + 1
        else:
            runs.append([j, j + 1, a])
    first = max(QUANTUM, int(round(obs[0] / QUANTUM)) * QUANTUM)
    # w0 over the allowed first widths, then multiples of 8 near the first width, nearest
    # first; stop at an exact fit.
    steps = [0, -1, 1, -2, 2, -3, 3]
    near = [first + s * QUANTUM for s in steps if first + s * QUANTUM >= QUANTUM]
    exact = sorted((int(c) for c in sets[0] if c % QUANTUM == 0), key=lambda c: abs(c - obs[0]))
    w0s = list(dict.fromkeys(exact + near))
    best: tuple[float, int, float, float] | None = None
    for w0 in w0s:
        e, wa, wm = _fit_w0(w0, obs, runs)
        pred = np.asarray(quantized_block_widths(obs.size, w0, wa, wm), dtype=np.float64)
        err = np.abs(np.log(pred / obs))  # report the real prediction's error
        err[[p in a for p, a in zip(pred, sets, strict=True)]] = 0.0
        e = float(np.mean(err))
        if best is None or e < best[0] - 1e-12:
            best = (e, w0, wa, wm)
        if best[0] == 0.0:
            break
    e, w0, wa, wm = best
    return w0, wa, wm, e
