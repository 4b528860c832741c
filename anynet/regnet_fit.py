"""Fitting RegNets to per-block widths (DDS §3.3); docs/method.md §3 says how each fit works,
what it guarantees and what was measured.

e_fit = mean over blocks of |log(w_pred / w_observed)|, w_pred the quantised linear
prediction at (w0, wa, wm), inside `REGNET_RANGES` (DDS §3.3's RegNet space) where asked:
- `fit_regnet`: the global minimum (to 1e-9), by branch and bound over (w0, wm) boxes; the
  fitted RegNet of a study's winners.
- `recognise_regnet`: (w0, wa, wm) that regenerate the widths exactly, or None (exports).
- `fit_many`: every network of a study (DDS Fig. 8), each by the same branch and bound
  inside REGNET_RANGES: the global minimum (to 1e-9), exactly 0 on every RegNet sample;
  with tol, within tol of it.
"""

from __future__ import annotations

import math

import numpy as np

from anynet.regnet import QUANTUM, quantized_block_widths, quantized_widths

# --- a network's own parameters (DDS §3.3) ---------------------------------------------
# e_fit = mean_j |log(w_pred_j / w_obs_j)| of the *quantised* prediction. For fixed (w0, wm)
# the prediction is a step function of wa: block j moves from exponent k to k+1 at
# wa = w0·(wm^(k+1/2) − 1)/j. So the best wa is found by sorting those breakpoints and
# summing the error changes; for w0 = the first width, wm is searched over a grid plus the
# intervals where a level round(w0·wm^k/8)·8 hits an observed width (`_own_parameters`).
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


def _best_wa(
    w0: int, wms: np.ndarray, obs: np.ndarray, runs: list, wa_range=(0.0, np.inf)
) -> tuple[np.ndarray, ...]:
    """For each wm: the least e_fit over wa in wa_range and its wa interval [lo, hi)."""
    d = obs.size
    lw = np.log(wms)
    k_max = int(np.ceil(np.log(2.0 * obs.max() / w0 + 1.0) / lw.min())) + 1
    ks = np.arange(k_max + 1, dtype=np.float64)
    levels = np.round(w0 * np.power(wms[:, None], ks[None, :]) / QUANTUM) * QUANTUM
    levels = np.maximum(levels, 1.0)  # a level of 0 can only be far from any width
    err = _errors(levels, obs, runs)
    e0 = err[:, :, 0].sum(axis=1)
    if d == 1:
        return e0 / d, np.full(wms.shape, float(wa_range[0])), np.full(wms.shape, np.inf)
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
    lo, hi = np.maximum(lo, wa_range[0]), np.minimum(hi, np.nextafter(wa_range[1], np.inf))
    # Intervals too thin to hold a float that rounds the same way are not realisable.
    totals = np.where(hi - lo > _EPS * np.maximum(1.0, hi), totals, np.inf)
    best = np.argmin(totals, axis=1)
    rows = np.arange(wms.size)
    return totals[rows, best] / d, lo[rows, best], hi[rows, best]


def _roundest(lo: float, hi: float) -> float:
    """The value in [lo, hi) with the fewest decimals (wa = 36.44 rather than 36.4417...)."""
    if lo <= 0 < hi:
        return 0.0
    for p in range(7):
        scale = 10.0**p
        v = math.floor(lo * scale + 1.0) / scale
        if lo + _EPS * max(1.0, lo) < v < hi - _EPS * max(1.0, hi):
            return v
    return (lo + hi) / 2 if math.isfinite(hi) else lo + 1.0


def _level_intervals(
    w0: int, width: float, k_min: int, wm_range=FIT_WM_RANGE
) -> list[tuple[float, float]]:
    """wm intervals (within wm_range) where round(w0·wm^k/8)·8 == width, for k >= k_min."""
    lo_wm, hi_wm = wm_range
    out = []
    k_hi = int(np.log((width + QUANTUM / 2) / w0) / np.log(lo_wm)) + 1
    for k in range(max(1, k_min), k_hi + 1):
        a = max(((width - QUANTUM / 2) / w0) ** (1.0 / k), lo_wm)
        b = min(((width + QUANTUM / 2) / w0) ** (1.0 / k), hi_wm)
        if a < b:
            out.append((a, b))
    return out


def _wm_candidates(w0: int, runs: list, wm_range=FIT_WM_RANGE) -> np.ndarray:
    """wm grid ∪ samples of the wm intervals where every stage's width is a level w0·wm^k."""
    lo_wm, hi_wm = wm_range
    parts = [np.geomspace(lo_wm, hi_wm, _FIT_GRID)]
    stages = [[float(c) for c in allowed if c > w0] for _, _, allowed in runs]
    while stages and not stages[0]:
        stages.pop(0)
    # Stage i of a RegNet has exponent k >= i, so stage i's width needs k >= i (DDS §3.3).
    feasible = (
        [iv for c in stages[0] for iv in _level_intervals(w0, c, 1, wm_range)] if stages else []
    )
    for i, cands in enumerate(stages[1:], start=2):
        nxt = [
            (max(a, c), min(b, e))
            for a, b in feasible
            for w in cands
            for c, e in _level_intervals(w0, w, i, wm_range)
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
    return wms[(wms > 1.0 + 1e-6) & (wms >= lo_wm) & (wms <= hi_wm)]


def _fit_w0(
    w0: int, obs: np.ndarray, runs: list, wm_range=FIT_WM_RANGE, wa_range=(0.0, np.inf)
) -> tuple[float, float, float]:
    """Best (e_fit, wa, wm) for one w0: candidate wm, then two rounds of local refinement."""
    wms = _wm_candidates(w0, runs, wm_range)
    e, lo, hi = _best_wa(w0, wms, obs, runs, wa_range)
    for width in (0.01, 0.001):
        top = wms[np.argsort(e, kind="stable")[:4]]
        fine = np.unique(np.concatenate([m * (1 + np.linspace(-width, width, 41)) for m in top]))
        fine = fine[(fine > 1.0 + 1e-6) & (fine >= wm_range[0]) & (fine <= wm_range[1])]
        fe, flo, fhi = _best_wa(w0, fine, obs, runs, wa_range)
        wms, e = np.concatenate([wms, fine]), np.concatenate([e, fe])
        lo, hi = np.concatenate([lo, flo]), np.concatenate([hi, fhi])
    # Among equally good wm prefer the one nearest the paper's typical 2.5 (DDS §4).
    ties = np.flatnonzero(e <= e.min() + 1e-12)
    i = ties[np.argmin(np.abs(wms[ties] - 2.5))]
    wm = float(wms[i])
    # A rounder wm (3 then 4 decimals) is kept if it fits as well.
    for p in (2, 3, 4):
        r = np.array([round(wm, p)])
        if r[0] > 1.0 and wm_range[0] <= r[0] <= wm_range[1]:
            re, rlo, rhi = _best_wa(w0, r, obs, runs, wa_range)
            if re[0] <= e[i] + 1e-12:
                return float(re[0]), _roundest(float(rlo[0]), float(rhi[0])), float(r[0])
    return float(e[i]), _roundest(float(lo[i]), float(hi[i])), wm


# --- the global fit: branch and bound over (w0, wm) (issue 21) ------------------------------
# For a box of wm in [a, b] and one w0, block j's exponent at slope r = wa / w0 lies in
# [round(log(1 + r·j) / log b), round(log(1 + r·j) / log a)], and the level of exponent k
# among the multiples of 8 from round(w0·a^k / 8)·8 to round(w0·b^k / 8)·8. The least error
# each block can then have, summed over blocks and minimised over r by a breakpoint sweep,
# is a lower bound of e_fit over the box; when a = b it is the exact best e_fit over wa.
# A cheaper bound from the widths alone (the exponents never fall) screens each box first.
# The box of least bound is taken first: its middle is swept exactly and it is halved,
# until every box left is bounded within the slack of the best fit found, so the search
# ends at the global optimum over every w0 and every (wa, wm) of the ranges, whatever the
# network (anynet/regnet_sweep.py compiles the loops; docs/method.md §3).
_TOL = 1e-9  # the search ends when no box can beat the best e_fit found by more than this
# the first wm boxes of each w0: log b / log a at most this, 8 boxes over DDS' wm range
# (1, 2, 4 and 16 there took 1.42x, 1.27x, 1.13x and 1.03x the time of fit_many; 2 boxes
# took fit_regnet 1.4-1.6x the time)
_BOX_SPAN = (math.log(3.0) / math.log(1.5)) ** (1 / 8)
_MIN_WIDTH = 1e-7  # boxes are not halved below this relative width (wm to 7 decimals)
_EDGE_WIDTH = 1e-2  # boxes narrower than this are cut at a level edge they hold (if any)


def _edges(wm_range) -> np.ndarray:
    """Ends of the first wm boxes of each w0: intervals of equal log-width over wm_range,
    as few as keep log b / log a within _BOX_SPAN."""
    lo, hi = wm_range
    boxes = max(1, math.ceil(math.log(math.log(hi) / math.log(lo)) / math.log(_BOX_SPAN) - 1e-9))
    edges = np.exp(np.geomspace(math.log(lo), math.log(hi), boxes + 1))
    edges[0], edges[-1] = lo, hi  # exactly: an end may be a point that fits best
    return edges


def _global_fit(obs, allowed, w0s, wa_range, incumbent, tol, edges):
    """Branch and bound (`regnet_sweep.branch_and_bound`): (e_fit·d, w0, wm, r_lo, r_hi) of
    the best point within tol of the global optimum (w0 = 0: none beats the incumbent, a
    summed error), and the largest amount by which a box left unresolved (narrower than
    _MIN_WIDTH) could still beat it. allowed: (d, m) NaN-padded widths that count as exact
    per block, or None; wa_range: (lo, hi); edges: the first wm boxes of each w0 (`_edges`)."""
    from anynet import regnet_sweep  # numba: compiled on the first fit, cached on disk

    d = obs.size
    allowed = np.empty((d, 0)) if allowed is None else np.ascontiguousarray(allowed, np.float64)
    best, unresolved = regnet_sweep.branch_and_bound(
        np.ascontiguousarray(obs, np.float64), allowed, np.asarray(w0s, np.float64), edges,
        float(wa_range[0]), float(wa_range[1]), float(incumbent), tol * d, _MIN_WIDTH,
        _EDGE_WIDTH,
    )  # fmt: skip
    return best, unresolved / d


def _real_e(obs: np.ndarray, sets: list, w0: int, wa: float, wm: float) -> float:
    """e_fit of the real prediction at (w0, wa, wm), 0 for a block where it is allowed."""
    pred = np.asarray(quantized_block_widths(obs.size, w0, wa, wm), dtype=np.float64)
    err = np.abs(np.log(pred / obs))
    err[[p in a for p, a in zip(pred, sets, strict=True)]] = 0.0
    return float(np.mean(err))


def _prepare(block_widths, allowed, ranges) -> tuple:
    """Checked widths, per-block allowed sets, runs of equal blocks, bounds, w0 grid ends."""
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
    bounds = {"w0": (QUANTUM, np.inf), "wa": (0.0, np.inf), "wm": FIT_WM_RANGE} | (ranges or {})
    unknown = sorted(set(bounds) - {"w0", "wa", "wm"})
    if unknown:
        raise ValueError(f"ranges: unknown parameter {unknown[0]!r} (w0, wa and wm have ranges)")
    for name in ("w0", "wa", "wm"):
        lo, hi = (float(v) for v in bounds[name])
        if name == "wm":  # levels w0·wm^k grow with k, up to a finite wm
            ok, need = 1.0 < lo <= hi < math.inf, "1 < lo <= hi < inf"
        else:
            ok, need = 0.0 <= lo <= hi, "0 <= lo <= hi"
        if not ok:
            raise ValueError(f"ranges: {name} range {bounds[name]} is not an interval {need}")
    lo8 = max(QUANTUM, math.ceil(bounds["w0"][0] / QUANTUM) * QUANTUM)
    hi8 = math.floor(min(bounds["w0"][1], 1e9) / QUANTUM) * QUANTUM
    if lo8 > hi8:
        raise ValueError(f"ranges: no multiple of {QUANTUM} in w0 range {bounds['w0']}")
    return obs, sets, runs, bounds, lo8, hi8


def _own_parameters(obs, sets, runs, bounds, lo8, hi8) -> tuple[float, int, float, float]:
    """Best (e_fit, w0, wa, wm) with w0 an allowed first width: an exact RegNet starts at w0
    (s_0 = 0), so this is exact in wa and samples the wm intervals where every stage width is
    a level; it stops at an exact fit."""
    best: tuple[float, int, float, float] = (np.inf, 0, 0.0, 0.0)
    for w0 in sorted(int(c) for c in sets[0] if c % QUANTUM == 0 and lo8 <= c <= hi8):
        _, wa, wm = _fit_w0(w0, obs, runs, bounds["wm"], bounds["wa"])
        e = _real_e(obs, sets, w0, wa, wm)
        if e < best[0]:
            best = (e, w0, wa, wm)
        if e == 0.0:
            break
    return best


def recognise_regnet(
    block_widths: list[int], allowed: list[list[int]] | None = None, ranges: dict | None = None
) -> tuple[int, float, float] | None:
    """(w0, wa, wm) of a RegNet that regenerates the widths exactly, or None if none is found.

    Only the network's own parameters are tried (w0 its first width; `_own_parameters`), so
    it is fast; arguments as in fit_regnet. Used by exports, which need an exact RegNet.
    """
    prepared = _prepare(block_widths, allowed, ranges)
    e, w0, wa, wm = _own_parameters(*prepared)
    return (w0, wa, wm) if e == 0.0 else None


def fit_regnet(
    block_widths: list[int], allowed: list[list[int]] | None = None, ranges: dict | None = None
) -> tuple[int, float, float, float]:
    """Nearest RegNet to per-block widths: (w0, wa, wm, e_fit), the global minimum of e_fit.

    The minimum is over every multiple of 8 for w0 and every (wa, wm) inside the ranges
    (DDS §3.3, docs/method.md §3), found by branch and bound to within 1e-9; an exact RegNet
    is recognised first from its own widths. `allowed` (optional, per block): widths that
    count as exact for that block, e.g. every width the group rule maps onto the observed
    one (used to recognise a RegNet after it). `ranges` (optional): {"w0": (lo, hi),
    "wa": (lo, hi), "wm": (lo, hi)} the fit stays in, e.g. DDS §3.3's RegNet space
    (REGNET_RANGES); default: any valid RegNet with FIT_WM_RANGE.
    """
    obs, sets, runs, bounds, lo8, hi8 = prepared = _prepare(block_widths, allowed, ranges)
    best = _own_parameters(*prepared)
    if best[0] == 0.0:
        return best[1], best[2], best[3], 0.0
    # A w0 above every width (allowed ones too) loses to the first multiple of 8 at or above
    # them with the same r = wa / w0 (the same exponents, lower levels, all still above the
    # widths), whose wa is then lower: in range when wa's range starts at 0.
    top = max(float(max(s.max() for s in sets)), float(obs.max()))
    cap = hi8 if bounds["wa"][0] > 0 else min(hi8, math.ceil(top / QUANTUM) * QUANTUM)
    if cap - lo8 > 1e5 * QUANTUM:
        raise ValueError("ranges: give w0 an upper end when wa's range does not start at 0")
    w0s = list(range(lo8, max(lo8, cap) + 1, QUANTUM))
    padded = np.empty((obs.size, 0))  # no allowed widths
    if allowed is not None:
        m = max(s.size for s in sets)
        padded = np.full((obs.size, m), np.nan)
        for j, s in enumerate(sets):
            padded[j, : s.size] = s
    found, _ = _global_fit(
        obs, padded, w0s, bounds["wa"], best[0] * obs.size, _TOL, _edges(bounds["wm"])
    )
    if found[1] == 0:  # nothing beat the exact-RegNet candidates
        return best[1], best[2], best[3], best[0]
    from anynet import regnet_sweep

    w0, wm, r_lo, r_hi = int(found[1]), found[2], found[3], found[4]
    # A rounder wm (2 to 6 decimals) that fits as well is kept, then the roundest wa.
    for p in range(2, 7):
        wr = round(wm, p)
        if wr > 1.0 and bounds["wm"][0] <= wr <= bounds["wm"][1]:
            x = np.array([wr])
            v, lo, hi = regnet_sweep.sweep(
                np.array([float(w0)]), x, x, np.array([bounds["wa"][0] / w0]),
                np.array([bounds["wa"][1] / w0]), np.zeros(1, np.int64), obs[None],
                padded, np.array([top]), True,
            )  # fmt: skip
            if v[0] <= found[0] + 1e-12:
                wm, r_lo, r_hi = wr, float(lo[0]), float(hi[0])
                break
    wa = min(max(_roundest(r_lo * w0, r_hi * w0), bounds["wa"][0]), bounds["wa"][1])
    e = _real_e(obs, sets, w0, wa, wm)
    if e > found[0] / obs.size + 1e-9:  # a rounded wa on a piece's edge: take its middle
        wa = min(r_lo + (r_hi - r_lo) / 2, bounds["wa"][1] / w0) * w0
        e = _real_e(obs, sets, w0, wa, wm)
    return (w0, wa, wm, e) if e < best[0] else (best[1], best[2], best[3], best[0])


# --- every network of a study at once (DDS Fig. 8) -----------------------------------------
# DDS §3.3's RegNet space: w0 and wa below 256 (w0 a positive multiple of 8, wa >= 0) and
# 1.5 <= wm <= 3 (docs/method.md §3-4); read on the RegNetX preset's quanta.
REGNET_RANGES = {"w0": (8, 248), "wa": (0.0, 255.9), "wm": (1.5, 3.0)}


def _e_fit(obs: np.ndarray, params: np.ndarray) -> np.ndarray:
    """e_fit (n,) of (w0, wa, wm) rows (n, 3), from the widths the generator gives."""
    n, d = obs.shape
    pred, _, _ = quantized_widths(np.full(n, d), params[:, 0], params[:, 1], params[:, 2])
    with np.errstate(all="ignore"):
        e = np.abs(np.log(pred / obs)).mean(axis=1)
    return np.where(np.isfinite(e), e, np.inf)


_SCAN = 32  # wm points per scan of the exact-RegNet candidate (two scans)


def _wa_window(obs, w0, wm, starts, valid):
    """(lowest, highest) wa that puts every stage of each network at its own exponent.

    Stage i (i = 1, 2, ...) starts at block b_i: s_{b_i} >= i needs wa >= w0·c_i / b_i and
    s_{b_i - 1} <= i − 1 needs wa < w0·c_i / (b_i − 1), with c_i = wm^(i − 1/2) − 1
    (docs/method.md §3); the last block must stay below the next exponent.
    """
    n, s = starts.shape
    d = obs.shape[1]
    i = np.arange(1, s + 1, dtype=np.float64)
    c = np.power(wm[..., None], i - 0.5) - 1.0  # (n, G, s)
    b = starts[:, None, :].astype(np.float64)
    low = np.where(valid[:, None, :], w0[:, None, None] * c / b, 0.0).max(axis=2)
    with np.errstate(divide="ignore"):
        high = np.where(valid[:, None, :], w0[:, None, None] * c / (b - 1.0), np.inf).min(axis=2)
    top = valid.sum(axis=1).astype(np.float64)[:, None]  # exponent of the last stage
    if d > 1:
        high = np.minimum(high, w0[:, None] * (np.power(wm, top + 0.5) - 1.0) / (d - 1))
    return low, np.minimum(high, REGNET_RANGES["wa"][1])


def _exact_candidates(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(w0, wa, wm) rows (m, 3) and the networks they are for (m,): for each network that may
    be a RegNet of REGNET_RANGES whose stages have exponents 0, 1, 2, ... (every RegNetX/
    RegNetY sample; docs/method.md §3), parameters that regenerate it if it is one.

    w0 is the first width; each later stage width W_i bounds wm to where w0·wm^i rounds to
    it (networks where no wm is left are skipped), and the stage starts bound wa
    (`_wa_window`): wm is scanned twice for the widest wa window and wa is its middle.
    """
    (w0_lo, w0_hi), (wm_lo, wm_hi) = REGNET_RANGES["w0"], REGNET_RANGES["wm"]
    w0 = obs[:, 0]
    ok = (w0 % QUANTUM == 0) & (w0 >= w0_lo) & (w0 <= w0_hi) & np.all(np.diff(obs) >= 0, axis=1)
    obs, w0, rows = obs[ok], w0[ok], np.flatnonzero(ok)
    n, d = obs.shape
    if d == 1 or n == 0:
        return np.stack([w0, np.zeros(n), np.full(n, wm_lo)], axis=1), rows
    change = obs[:, 1:] != obs[:, :-1]
    s = max(1, int(change.sum(axis=1).max()))
    starts = np.sort(np.where(change, np.arange(1, d), d), axis=1)[:, :s]
    valid = starts < d
    width = np.take_along_axis(obs, np.minimum(starts, d - 1), axis=1)
    i = np.arange(1, s + 1, dtype=np.float64)
    lo = np.power((width - QUANTUM / 2) / w0[:, None], 1.0 / i)
    hi = np.power((width + QUANTUM / 2) / w0[:, None], 1.0 / i)
    lo = np.maximum(np.where(valid, lo, wm_lo).max(axis=1), wm_lo)
    hi = np.minimum(np.where(valid, hi, wm_hi).min(axis=1), wm_hi)
    # a single point counts: at wm = 1.5, 224·1.5^3 / 8 = 94.5 rounds to even, to 752, and
    # any wm above gives 760 (the interval's ends meet there, to rounding)
    keep = lo <= hi * (1.0 + 1e-12)
    obs, w0, rows, lo = obs[keep], w0[keep], rows[keep], lo[keep]
    hi = np.maximum(hi[keep], lo)
    starts, valid = starts[keep], valid[keep]
    t = (np.arange(_SCAN) + 0.5) / _SCAN
    mid = lo
    low = high = np.zeros((obs.shape[0], _SCAN))
    k = np.zeros(obs.shape[0], dtype=np.int64)
    for _ in range(2):
        wm = lo[:, None] + (hi - lo)[:, None] * t
        low, high = _wa_window(obs, w0, wm, starts, valid)
        k = np.argmax((high - low) / np.maximum(high, 1e-12), axis=1)
        step = (hi - lo) / _SCAN
        mid = np.take_along_axis(wm, k[:, None], axis=1)[:, 0]
        lo, hi = np.maximum(mid - step, lo), np.minimum(mid + step, hi)
    at = np.arange(obs.shape[0])
    wa = np.clip((low[at, k] + high[at, k]) / 2, *REGNET_RANGES["wa"])
    return np.stack([w0, np.where(np.isfinite(wa), wa, 0.0), mid], axis=1), rows


def fit_many(block_widths_list, tol: float | None = None) -> list[tuple[int, float, float, float]]:
    """(w0, wa, wm, e_fit) per network: the global minimum of e_fit inside REGNET_RANGES
    (DDS §3.3, Fig. 8), to within 1e-9; exactly 0 on a RegNet of the ranges.

    Each distinct network once: its own RegNet parameters where they may regenerate it
    (`_exact_candidates`), then the branch and bound of fit_regnet (`_global_fit`) over
    every w0 of the ranges (docs/method.md §3). With tol (e.g. 0.005), the search stops
    once no box can beat the best fit by more than tol: within tol of the optimum, a
    little faster.
    """
    if tol is not None and not tol >= 0:
        raise ValueError(f"tol: need a number >= 0, got {tol}")
    tol = _TOL if tol is None else max(float(tol), _TOL)
    out: list = [None] * len(block_widths_list)
    groups: dict[int, list[int]] = {}
    seen: dict[tuple, int] = {}  # a study repeats networks: each distinct one is fitted once
    copies: list[tuple[int, int]] = []
    for i, widths in enumerate(block_widths_list):
        w = np.asarray(widths, dtype=np.float64)
        if w.size == 0 or not np.all(np.isfinite(w)) or np.any(w <= 0):
            raise ValueError(f"block_widths_list[{i}]: need positive widths, got {list(widths)}")
        key = tuple(w.tolist())
        if key in seen:
            copies.append((i, seen[key]))
            continue
        seen[key] = i
        groups.setdefault(w.size, []).append(i)
    (w0_lo, w0_hi), (wa_lo, wa_hi) = REGNET_RANGES["w0"], REGNET_RANGES["wa"]
    w0s = np.arange(w0_lo, w0_hi + 1, QUANTUM, dtype=np.float64)
    edges = _edges(REGNET_RANGES["wm"])
    for idx in groups.values():
        obs = np.asarray([block_widths_list[i] for i in idx], dtype=np.float64)
        n, d = obs.shape
        best, e = np.zeros((n, 3)), np.full(n, np.inf)
        # the network's own RegNet parameters where they may regenerate it: the incumbent,
        # and where they do (e_fit 0) the answer; ties go to them (the middle of their
        # window, where no level is a tie of the rounding to 8)
        own, rows = _exact_candidates(obs)
        if rows.size:
            best[rows], e[rows] = own, _e_fit(obs[rows], own)
        alone = np.zeros(n, dtype=bool)  # e[k] computed for network k alone
        for k in range(n):
            if e[k] == 0.0:
                continue
            # a w0 above every width loses to the first multiple of 8 at or above them
            # (fit_regnet): the same exponents, lower levels, a lower wa
            cap = math.ceil(obs[k].max() / QUANTUM) * QUANTUM
            found, _ = _global_fit(
                obs[k], None, w0s[w0s <= cap], REGNET_RANGES["wa"], e[k] * d, tol, edges
            )
            if found[1] > 0:
                w0, wm, r_lo, r_hi = found[1:]
                cand = np.array([[w0, min(max(w0 * (r_lo + r_hi) / 2, wa_lo), wa_hi), wm]])
                real = float(_e_fit(obs[k : k + 1], cand)[0])
                if real < e[k]:
                    best[k], e[k], alone[k] = cand[0], real, True
        for k, i in enumerate(idx):
            # e_fit once more as quantized_block_widths computes it, one network at a time:
            # np.power in a batch can be an ulp off at such a tie (16·2.5^2 = 100 + 1e-14);
            # where that loses, wm a hair above or below gives the batch's level alone
            w0, wa, wm = best[k]
            ek = float(e[k] if alone[k] else _e_fit(obs[k : k + 1], best[k : k + 1])[0])
            if ek > e[k] + 1e-12:
                for nudged in (wm * (1 + 1e-9), wm * (1 - 1e-9)):
                    if not REGNET_RANGES["wm"][0] <= nudged <= REGNET_RANGES["wm"][1]:
                        continue
                    en = float(_e_fit(obs[k : k + 1], np.array([[w0, wa, nudged]]))[0])
                    if en < ek:
                        wm, ek = nudged, en
            out[i] = (int(w0), float(wa), float(wm), ek)
    for i, j in copies:
        out[i] = out[j]
    return out
