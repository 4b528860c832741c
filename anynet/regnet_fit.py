"""Fitting RegNets to per-block widths (DDS §3.3); docs/method.md §3 says how each fit works,
what it guarantees and what was measured.

e_fit = mean over blocks of |log(w_pred / w_observed)|, w_pred the quantised linear
prediction at (w0, wa, wm), inside `REGNET_RANGES` (DDS §3.3's RegNet space) where asked:
- `fit_regnet`: the global minimum (to 1e-9), by branch and bound over (w0, wm) boxes; the
  fitted RegNet of a study's winners.
- `recognise_regnet`: (w0, wa, wm) that regenerate the widths exactly, or None (exports).
- `fit_many`: every network of a study at once (DDS Fig. 8): a grid, then a descent; a real
  RegNet's e_fit, exactly 0 on every RegNet sample, otherwise an upper bound that can miss
  the optimum on a few networks in a thousand; with tol, within tol of the optimum.
"""

from __future__ import annotations

import math
from functools import lru_cache

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
# Boxes whose bound is not below the best fit found so far are dropped and the others
# halved, so the search ends at the global optimum over every w0 and every (wa, wm) of
# the ranges (to _TOL), whatever the network.
_TOL = 1e-9  # a box is dropped when its bound is within this of the best e_fit found
_BOX_SPAN = 2.0  # initial wm boxes per w0: log b / log a at most this (more boxes cost more
# sweeps up front than they prune; wider ones have long exponent ranges)
_MIN_WIDTH = 1e-7  # boxes are not halved below this relative width (wm to 7 decimals)
_SWEEP_EVENTS = 1 << 15  # events swept at once (cache: 1 << 20 took 1.7x the time)


def _range_min(e: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """min of e[r, j, lo..hi] for index arrays lo <= hi of shape (R, D, E) or (R, 1, E) (gaps
    are short)."""
    n, m, k = e.shape
    flat = e.ravel()
    base = (np.arange(n)[:, None, None] * m + np.arange(m)[None, :, None]) * k
    v = np.take(flat, base + lo)
    for g in range(1, int((hi - lo).max(initial=0)) + 1):
        v = np.minimum(v, np.take(flat, base + np.minimum(lo + g, hi)))
    return v


def _block_errors(A, B, obs, allowed) -> np.ndarray:
    """Least |log(level / w_j)| over the multiples of 8 in [A_k, B_k]: (R, d, K+1); 0 where an
    allowed width of block j lies there. obs: (d,) or one row per row of A (R, d)."""
    lo, hi = A[:, None, :], B[:, None, :]
    obs = np.atleast_2d(obs)
    c = np.clip(obs[:, :, None], lo, hi)
    down = np.maximum(np.floor(c / QUANTUM) * QUANTUM, lo)
    up = np.minimum(np.ceil(c / QUANTUM) * QUANTUM, hi)
    lw = np.log(obs)[:, :, None]
    err = np.minimum(np.abs(np.log(down) - lw), np.abs(np.log(up) - lw))
    if allowed is not None:
        al = allowed[None, :, None, :]
        hit = ((al >= lo[..., None]) & (al <= hi[..., None])).any(axis=3)
        err = np.where(hit, 0.0, err)
    return err


def _sweep(w0, a, b, r_lo, r_hi, obs, allowed, w_max, point: bool):
    """Per row (w0, wm in [a, b]): least summed block error over r = wa/w0 in [r_lo, r_hi]
    and that piece of r, (value, lo, hi). A lower bound of e_fit·d over the box; exact
    (realisable pieces only) when `point` (a = b). obs and w_max: one network's, or per row."""
    d, n = obs.shape[-1], w0.size
    la, lb = np.log(a), np.log(b)
    # Past r_cap every block j >= 1 has a level above every width, and more r only raises
    # them: the sweep stops there (docs/method.md §3).
    k_cap = np.maximum(np.ceil(np.log((w_max + QUANTUM) / w0) / la), 0.0)
    r_eff = np.maximum(r_lo, np.minimum(r_hi, np.expm1(lb * (k_cap + 0.5))))
    K = int(np.max(np.round(np.log1p(r_eff * max(d - 1, 0)) / la))) + 1
    ks = np.arange(K + 1, dtype=np.float64)
    # levels as the generator computes them (np.power: w0·wm^k / 8 exactly m + 1/2 rounds
    # to even only at that wm, e.g. w0 216, wm 1.5: 40.5 -> 320)
    A = np.round(w0[:, None] * np.power(a[:, None], ks) / QUANTUM) * QUANTUM
    B = np.round(w0[:, None] * np.power(b[:, None], ks) / QUANTUM) * QUANTUM
    err = _block_errors(A, B, obs, allowed)  # (n, d, K+1)
    init = err[:, :, 0].sum(axis=1)
    if d == 1:
        return init, r_lo, np.maximum(r_lo, r_eff)
    # Block j's events are c_i / j, c_i = expm1((k + 1/2)·log a or b) (an end of the box): the
    # same order for every block, sorted once per row; each block's events are then a sorted
    # run, which the stable sort (timsort) of all events merges.
    half = ks[:-1] + 0.5
    c = np.concatenate([np.expm1(la[:, None] * half), np.expm1(lb[:, None] * half)], axis=1)
    order = np.argsort(c, axis=1, kind="stable")  # ties: khi first
    c = np.take_along_axis(c, order, axis=1)  # (n, 2K)
    is_lo = order >= K
    khi = np.cumsum(~is_lo, axis=1)  # exponents after each event: [klo, khi]
    klo = np.cumsum(is_lo, axis=1)
    t = c[:, None, :] / np.arange(1, d, dtype=np.float64)[None, :, None]  # (n, d-1, 2K)
    e = err[:, 1:, :]
    v = _range_min(e, klo[:, None, :], khi[:, None, :])  # least error over [klo, khi]
    delta = np.diff(np.concatenate([e[:, :, :1], v], axis=2), axis=2).reshape(n, -1)
    t = t.reshape(n, -1)
    order = np.argsort(t, axis=1, kind="stable")
    order += (np.arange(n) * t.shape[1])[:, None]
    t = np.take(t, order)
    total = init[:, None] + np.cumsum(np.take(delta, order), axis=1)
    starts = np.concatenate([np.zeros((n, 1)), t], axis=1)
    ends = np.concatenate([t, np.full((n, 1), np.inf)], axis=1)
    values = np.concatenate([init[:, None], total], axis=1)
    lo = np.maximum(starts, r_lo[:, None])
    hi = np.minimum(ends, r_eff[:, None])
    if point:  # a piece too thin to hold a float that rounds the same way is not realisable
        ok = (hi - lo > _EPS * np.maximum(1.0, hi)) | (
            (r_lo == r_eff)[:, None] & (starts <= r_lo[:, None]) & (r_lo[:, None] < ends)
        )
    else:
        ok = hi >= lo
    values = np.where(ok, values, np.inf)
    best = np.argmin(values, axis=1)
    rows = np.arange(n)
    return values[rows, best], lo[rows, best], hi[rows, best]


def _sweep_chunked(w0, a, b, r_lo, r_hi, obs, allowed, w_max, point):
    """_sweep over rows in chunks that keep its arrays small."""
    d = obs.shape[-1]
    per_row = obs.ndim == 2
    k = np.log1p(np.minimum(r_hi, 1e6) * max(d - 1, 1)) / np.log(a)
    order = np.argsort(k, kind="stable")  # rows of similar exponent ranges swept together
    size = np.cumsum(2.0 * d * (k[order] + 2.0))
    cuts = np.searchsorted(size, np.arange(_SWEEP_EVENTS, size[-1], _SWEEP_EVENTS))
    out = [np.empty(w0.size) for _ in range(3)]
    for idx in np.split(order, np.unique(np.maximum(cuts, 1))):
        if not idx.size:
            continue
        o, w = (obs[idx], w_max[idx]) if per_row else (obs, w_max)
        res = _sweep(w0[idx], a[idx], b[idx], r_lo[idx], r_hi[idx], o, allowed, w, point)
        for o, r in zip(out, res, strict=True):
            o[idx] = r
    return out


def _global_fit(obs, allowed, w0s, bounds, incumbent):
    """Branch and bound: (e_fit·d, w0, wm, r_lo, r_hi) of the global optimum, and the largest
    amount by which a box left unresolved (narrower than _MIN_WIDTH) could still beat it."""
    d = obs.size
    (wa_lo, wa_hi), (wm_lo, wm_hi) = bounds["wa"], bounds["wm"]
    w_max = float(np.nanmax(allowed)) if allowed is not None else float(obs.max())
    w_max = max(w_max, float(obs.max()))
    boxes = max(1, math.ceil(math.log(math.log(wm_hi) / math.log(wm_lo)) / math.log(_BOX_SPAN)))
    edges = np.exp(np.geomspace(math.log(wm_lo), math.log(wm_hi), boxes + 1))
    edges[0], edges[-1] = wm_lo, wm_hi  # exactly: an end may be a point that fits best
    W0 = np.repeat(np.asarray(w0s, dtype=np.float64), boxes)
    A = np.tile(edges[:-1], len(w0s))
    B = np.tile(edges[1:], len(w0s))
    best = incumbent
    unresolved = 0.0
    # Every level is at least w0 and block 0's is w0: a bound per w0 alone, used once.
    lw = np.log(obs)
    top = np.nanmax(allowed, axis=1) if allowed is not None else obs
    first = allowed[0] if allowed is not None else obs[:1]
    lw0 = np.log(np.asarray(w0s, dtype=np.float64))[:, None]
    above = np.where(top[None, 1:] >= np.exp(lw0), 0.0, np.maximum(lw0 - lw[None, 1:], 0.0))
    own = np.where(np.isin(np.exp(lw0[:, 0]), first), 0.0, np.abs(lw0[:, 0] - lw[0]))
    w0_bound = np.repeat(own + above.sum(axis=1), boxes)
    keep = w0_bound < best[0] - _TOL * d  # against the incumbent, then the first sweeps'
    W0, A, B, w0_bound = W0[keep], A[keep], B[keep], w0_bound[keep]
    while W0.size:
        rl, rh = wa_lo / W0, wa_hi / W0
        mid = np.sqrt(A * B)
        v, lo, hi = _sweep_chunked(W0, mid, mid, rl, rh, obs, allowed, w_max, point=True)
        i = int(np.argmin(v))
        if v[i] < best[0]:
            best = (float(v[i]), int(W0[i]), float(mid[i]), float(lo[i]), float(hi[i]))
        if w0_bound is not None:
            keep = w0_bound < best[0] - _TOL * d
            W0, A, B, rl, rh, mid = W0[keep], A[keep], B[keep], rl[keep], rh[keep], mid[keep]
            w0_bound = None
            if not W0.size:
                break
        lb, _, _ = _sweep_chunked(W0, A, B, rl, rh, obs, allowed, w_max, point=False)
        keep = lb < best[0] - _TOL * d
        W0, A, B, mid, lb = W0[keep], A[keep], B[keep], mid[keep], lb[keep]
        thin = B / A - 1.0 < _MIN_WIDTH
        if thin.any():
            # A box that stays below the best while it shrinks holds a point that fits better
            # than any piece around it: a level w0·wm^k / 8 exactly m + 1/2, rounded to even,
            # at wm a multiple of 1/32 (for w0 <= 248, the denominators it can be at), or an end.
            t0, ta, tb = W0[thin], A[thin], B[thin]
            dyadic = np.clip(np.round(np.sqrt(ta * tb) * 32.0) / 32.0, ta, tb)
            pts = np.concatenate([ta, tb, dyadic])
            t0 = np.concatenate([t0, t0, t0])
            rl, rh = wa_lo / t0, wa_hi / t0
            v, lo, hi = _sweep_chunked(t0, pts, pts, rl, rh, obs, allowed, w_max, point=True)
            i = int(np.argmin(v))
            if v[i] < best[0]:
                best = (float(v[i]), int(t0[i]), float(pts[i]), float(lo[i]), float(hi[i]))
            lb_thin = lb[thin]
            unresolved = max(
                unresolved, best[0] - float(lb_thin[lb_thin < best[0]].min(initial=best[0]))
            )
        W0, A, B, mid = W0[~thin], A[~thin], B[~thin], mid[~thin]
        W0 = np.concatenate([W0, W0])
        A, B = np.concatenate([A, mid]), np.concatenate([mid, B])
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
    padded = None
    if allowed is not None:
        m = max(s.size for s in sets)
        padded = np.full((obs.size, m), np.nan)
        for j, s in enumerate(sets):
            padded[j, : s.size] = s
    found, _ = _global_fit(obs, padded, w0s, bounds, (best[0] * obs.size, 0, 0.0, 0.0, 0.0))
    if found[1] == 0:  # nothing beat the exact-RegNet candidates
        return best[1], best[2], best[3], best[0]
    _, w0, wm, r_lo, r_hi = found
    # A rounder wm (2 to 6 decimals) that fits as well is kept, then the roundest wa.
    for p in range(2, 7):
        wr = round(wm, p)
        if wr > 1.0 and bounds["wm"][0] <= wr <= bounds["wm"][1]:
            x = np.array([wr])
            v, lo, hi = _sweep(
                np.array([float(w0)]), x, x, np.array([bounds["wa"][0] / w0]),
                np.array([bounds["wa"][1] / w0]), obs, padded, top, point=True,
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


# --- the grid search of many networks (DDS Fig. 8) ---------------------------------------
# DDS §3.3's RegNet space: w0 and wa below 256 (w0 a positive multiple of 8, wa >= 0) and
# 1.5 <= wm <= 3 (docs/method.md §3-4); read on the RegNetX preset's quanta.
REGNET_RANGES = {"w0": (8, 248), "wa": (0.0, 255.9), "wm": (1.5, 3.0)}
# Grid sizes chosen against a dense grid (every w0, wm step 0.005, 400 wa) on 36 AnyNetX
# networks: e_fit at most 0.03 above it (mean 0.005), ~1 ms a network (tests, benchmark).
_WM = np.linspace(*REGNET_RANGES["wm"], 16)  # coarse wm grid: step 0.1
_R = np.r_[0.0, np.geomspace(0.004, 32.0, 23)]  # coarse grid of the relative slope wa / w0
_STARTS = 4  # coarse points refined per network
_FINE = 7  # points per wm and wa axis of a local grid
# local refinement rounds: (wm half-width, wa ratio, points kept)
_ROUNDS = ((0.1, 1.3, 2), (0.025, 1.07, 1))
# fit_many's branch and bound (tol given): initial wm boxes per w0 (8 cost the least of 2,
# 8 and 16 on benchmarks/bench_fit.py's 300 networks), and boxes of least bound per network
# whose middles are swept exactly each round (1 let a few networks halve boxes for long)
_MANY_BOXES = 8
_POINTS = 2
_CHUNK = 1 << 22  # floats per (networks × grid × blocks) block


def _log_widths(w0, wa, wm, depth: int) -> np.ndarray:
    """log of the quantised per-block widths (docs/method.md §3) for broadcast parameters.

    Exponents s_j = round(log(1 + wa·j / w0) / log wm) index a small table of the levels
    log(round(w0·wm^k / 8)·8), so each block costs one logarithm.
    """
    w0, wa, wm = np.broadcast_arrays(*(np.asarray(v, np.float64) for v in (w0, wa, wm)))
    shape = w0.shape
    w0, wa, wm = (v.reshape(-1, 1) for v in (w0, wa, wm))
    log_wm = np.log(wm)
    j = np.arange(depth, dtype=np.float64)
    s = np.round(np.log1p(wa * (j / w0)) / log_wm).astype(np.int64)
    k = np.arange(int(s.max()) + 1 if s.size else 1, dtype=np.float64)
    levels = np.log(np.round(w0 * np.exp(k * log_wm) / QUANTUM) * QUANTUM)  # (rows, levels)
    s += (np.arange(s.shape[0]) * k.size)[:, None]  # flat index into the levels table
    return np.take(levels.ravel(), s).reshape(*shape, depth)


@lru_cache(maxsize=4)
def _exponents(depth: int) -> np.ndarray:
    """s_j = round(log(1 + r·j) / log wm) for the coarse (wm, r) grid, shape (wm·r, depth)."""
    wm, r = np.meshgrid(_WM, _R, indexing="ij")
    j = np.arange(depth, dtype=np.float64)
    s = np.round(np.log1p(r[..., None] * j) / np.log(wm)[..., None])
    return s.reshape(-1, depth).astype(np.float32)


def _coarse(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The _STARTS best coarse points (w0, wa, wm) per network, shape (n, _STARTS, 3), and the
    best point of each of the _PER_WM best wm rows of the grid, (n, _PER_WM, 3) (starts of
    `_descend` that are spread over wm).

    With wa = r·w0, the exponent s_j of block j depends on (r, wm) only, and up to the
    rounding of widths to 8, log w_pred_j = log w0 + s_j·log wm: for each (r, wm) the best
    log w0 is the median of log w_j − s_j·log wm (it minimises a mean absolute deviation),
    kept inside the w0 range. Its two neighbours on the grid of 8 are then scored exactly
    (the rounding matters for narrow networks). So the grid is 2-D and w0 is not searched.
    """
    n, d = obs.shape
    s = _exponents(max(64, int(2 ** np.ceil(np.log2(d)))))[:, :d]
    n_grid, n_k = s.shape[0], int(s.max()) + 1
    log_wm = np.repeat(np.log(_WM), _R.size)
    shift = (s * log_wm[:, None]).astype(np.float32)  # (grid, d)
    idx = s.astype(np.int64)[None]  # (1, grid, d)
    wm_k = np.exp(log_wm[:, None] * np.arange(n_k))  # wm^k, (grid, k)
    lobs = np.log(obs).astype(np.float32)
    lo, hi = REGNET_RANGES["w0"]
    step = max(1, _CHUNK // (n_grid * d))
    best = np.empty((n, _STARTS), dtype=np.int64)
    rows = np.empty((n, _PER_WM), dtype=np.int64)
    w0_best = np.empty((n, n_grid))
    for i in range(0, n, step):
        v = lobs[i : i + step, None, :] - shift[None]  # (m, grid, d)
        m = np.exp(np.median(v, axis=2).astype(np.float64))
        below = np.clip(np.floor(m / QUANTUM) * QUANTUM, lo, hi)
        err = []
        for w0 in (below, np.minimum(below + QUANTUM, hi)):
            levels = np.log(np.round(w0[..., None] * wm_k / QUANTUM) * QUANTUM).astype(np.float32)
            pred = np.take_along_axis(levels, np.broadcast_to(idx, v.shape), axis=2)
            err.append(np.abs(pred - lobs[i : i + step, None, :]).sum(axis=2))
        up = err[1] < err[0]
        w0_best[i : i + step] = np.where(up, np.minimum(below + QUANTUM, hi), below)
        e = np.where(up, err[1], err[0])
        best[i : i + step] = np.argpartition(e, _STARTS - 1, axis=1)[:, :_STARTS]
        per_wm = e.reshape(e.shape[0], _WM.size, _R.size)
        r_best = np.argmin(per_wm, axis=2)
        e_row = np.take_along_axis(per_wm, r_best[..., None], axis=2)[..., 0]
        top = np.argsort(e_row, axis=1, kind="stable")[:, :_PER_WM]
        rows[i : i + step] = top * _R.size + np.take_along_axis(r_best, top, axis=1)

    def points(k):
        im, ir = np.unravel_index(k, (_WM.size, _R.size))
        w0 = np.take_along_axis(w0_best, k, axis=1)
        wa = np.clip(_R[ir] * w0, *REGNET_RANGES["wa"])
        return np.stack([w0, wa, _WM[im]], axis=2)

    return points(best), points(rows)


def _local(starts: np.ndarray, wm_step: float, wa_ratio: float) -> np.ndarray:
    """Local grid points (n, m, 3) around start points (n, s, 3), inside REGNET_RANGES.

    w0 stays the start's (the coarse stage already chose it, scoring both neighbours on the
    grid of 8); wa and wm take a small grid (multiplicative in wa; a flat start, wa = 0,
    steps up to 0.6).
    """
    n = starts.shape[0]
    s = starts.reshape(-1, 3)
    t = np.linspace(-1.0, 1.0, _FINE)
    (wa_lo, wa_hi), (wm_lo, wm_hi) = REGNET_RANGES["wa"], REGNET_RANGES["wm"]
    wa = np.where(s[:, 1:2] > 0, s[:, 1:2] * np.power(wa_ratio, t), 0.3 * (t + 1))
    wa = np.clip(wa, wa_lo, wa_hi)
    wm = np.clip(s[:, 2:3] + wm_step * t, wm_lo, wm_hi)
    ia, im = (g.ravel() for g in np.meshgrid(range(_FINE), range(_FINE), indexing="ij"))
    w0 = np.broadcast_to(s[:, :1], (s.shape[0], ia.size))
    cand = np.stack([w0, wa[:, ia], wm[:, im]], axis=2).reshape(n, -1, 3)
    return np.concatenate([starts, cand], axis=1)  # the start points compete too


def _best(obs: np.ndarray, cand: np.ndarray, keep: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The `keep` best candidates (n, keep, 3) of each network and their e_fit (n, keep)."""
    n, d = obs.shape
    lobs = np.log(obs)
    e = np.empty(cand.shape[:2])
    step = max(1, _CHUNK // (cand.shape[1] * d))
    for i in range(0, n, step):
        c = cand[i : i + step]
        pred = _log_widths(c[..., 0], c[..., 1], c[..., 2], d)
        e[i : i + step] = np.abs(pred - lobs[i : i + step, None, :]).mean(axis=2)
    k = np.argsort(e, axis=1, kind="stable")[:, :keep]
    return np.take_along_axis(cand, k[..., None], axis=1), np.take_along_axis(e, k, axis=1)


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


def _kinks(obs: np.ndarray, w0: np.ndarray, s: np.ndarray) -> np.ndarray:
    """(n, d − 1, 3) points (w0, wa, wm) that keep each network's exponents s (n, d) and put
    block j's level on its width: wm = (w_j / w0)^(1/s_j) (an L1 fit's optimum tends to sit
    where a level meets a width), wa the middle of the window that keeps s; NaN where empty.

    Block j keeps s_j for r = wa / w0 in [(wm^(s_j − 1/2) − 1)/j, (wm^(s_j + 1/2) − 1)/j).
    """
    n, d = obs.shape
    (wm_lo, wm_hi), wa_hi = REGNET_RANGES["wm"], REGNET_RANGES["wa"][1]
    sj = s[:, 1:]
    with np.errstate(all="ignore"):
        wm = np.clip(np.power(obs[:, 1:] / w0[:, None], 1.0 / sj), wm_lo, wm_hi)
        same = np.zeros(sj.shape, dtype=bool)  # a block like the one before: the same point
        same[:, 1:] = (sj[:, 1:] == sj[:, :-1]) & (obs[:, 2:] == obs[:, 1:-1])
        wm = np.where((sj > 0) & ~same, wm, np.nan)[..., None]  # (n, d-1, 1)
        j = np.arange(1, d, dtype=np.float64)
        k = sj[:, None, :]
        lo = np.where(k >= 1, (np.power(wm, k - 0.5) - 1.0) / j, 0.0).max(axis=2)
        hi = ((np.power(wm, k + 0.5) - 1.0) / j).min(axis=2)
    lo, hi = lo * w0[:, None], np.minimum(hi * w0[:, None], wa_hi)
    wa = np.where(lo < hi, (lo + hi) / 2, np.nan)
    return np.stack([np.broadcast_to(w0[:, None], wa.shape), wa, wm[..., 0]], axis=2)


def _improve(obs: np.ndarray, best: np.ndarray, e: np.ndarray) -> None:
    """Replace a network's (w0, wa, wm) and e_fit in place by a kink (`_kinks`) that fits it
    better: of the grid's exponents, and of its own stages as exponents 0, 1, 2, ..."""
    n, d = obs.shape
    own = np.concatenate([np.zeros((n, 1)), np.cumsum(obs[:, 1:] != obs[:, :-1], axis=1)], 1)
    with np.errstate(all="ignore"):
        grid = np.round(np.log1p(best[:, 1:2] * np.arange(d) / best[:, :1]) / np.log(best[:, 2:]))
    step = max(1, _CHUNK // (4 * d * d))
    for i in range(0, n, step):
        sl = slice(i, i + step)
        cand = np.concatenate([_kinks(obs[sl], best[sl, 0], p[sl]) for p in (grid, own)], 1)
        m = cand.shape[1]
        flat = cand.reshape(-1, 3)
        ok = np.isfinite(flat).all(axis=1)
        err = np.full(flat.shape[0], np.inf)
        if ok.any():
            err[ok] = _e_fit(np.repeat(obs[sl], m, axis=0)[ok], flat[ok])
        err = err.reshape(-1, m)
        k = np.argmin(err, axis=1)
        rows = np.arange(err.shape[0])
        better = np.flatnonzero(err[rows, k] < e[sl])
        best[i + better] = cand[better, k[better]]
        e[i + better] = err[better, k[better]]


def _e_fit(obs: np.ndarray, params: np.ndarray) -> np.ndarray:
    """e_fit (n,) of (w0, wa, wm) rows (n, 3), from the widths the generator gives."""
    n, d = obs.shape
    pred, _, _ = quantized_widths(np.full(n, d), params[:, 0], params[:, 1], params[:, 2])
    with np.errstate(all="ignore"):
        e = np.abs(np.log(pred / obs)).mean(axis=1)
    return np.where(np.isfinite(e), e, np.inf)


# --- descent: exact in wa, then exact in wm for the exponents found (issue 21) --------------
# The grid above can miss the optimum by a few hundredths where it lies in a narrow piece of
# (w0, wm): at small w0 the rounding to 8 makes e_fit a step function of wm with pieces a few
# hundredths wide, and the exponents that fit best may be realisable in a thin window only.
# Two exact 1-D moves find many of them: for fixed (w0, wm), the best wa over its whole
# range by the breakpoint sweep (`_wa_sweep`); for fixed (w0, exponents), the best wm among
# the edges where a level round(w0·wm^k / 8)·8 steps, inside the interval where those
# exponents stay realisable (`_wm_polish`). They alternate from a few starts per network
# (`_descend`): the grid's fit, the coarse points of least e_fit in the 4 best wm rows of the
# grid, 8 points of wm scans at the fit's w0 and its neighbours, the two best coarse points'
# w0, the first width and (finer) w0 8-32 (`_scan_starts`), and 4 matched points.
_PER_WM = 4  # coarse wm rows whose best point is descended
_SCAN_WM = np.linspace(*REGNET_RANGES["wm"], 11)  # wm scanned at each candidate w0: step 0.15
_SCAN_NEAR = (-16, -8, 8, 16)  # the fit's w0 moved by these is scanned too
_SCAN_STARTS = 8  # scan points descended per network
# every network is also scanned at these w0, finer in wm: where a small w0 fits best, e_fit
# is a sawtooth in wm with teeth a few hundredths wide, the narrowest at w0 8, where the
# levels are 8·round(wm^k) (docs/method.md §3); w0: its wm grid (step 0.075; at w0 8 the
# edge points below find the narrow teeth that a step of 0.025 found, and more)
_SCAN_SMALL = dict.fromkeys((8.0, 16.0, 24.0, 32.0), np.linspace(*REGNET_RANGES["wm"], 21))
# at w0 8 the teeth can be narrower than any scan step (a few thousandths): the scan there
# also tries each wm where a level steps onto a width of the network (`_edge_wms`)
_EDGE_W0 = (8.0,)
_EDGE_MORE = 1  # level edges at W ± 4 and at this many multiples of 8 further out
_SCAN_BISECT = 5  # bisection steps for a scan point's tooth ends (3%/32 of wm)
_SCAN_SLACK = 0.1  # a scan point may move its wm by up to 10% to the relaxed best (ranking)
_MATCH_WIDTHS = 2  # a network's most frequent widths that a level is put on (`_matched_starts`)
_MATCH_STARTS = 4  # matched points descended per network
_DESCENT_ROUNDS = 1  # wa sweep then wm polish, this many times
_POLISH_SPAN = 0.03  # the wm polish looks within ±3% of the current wm
_EDGE_CAP = 64  # at most this many level edges per exponent (evenly thinned beyond)
_BISECT = 10  # bisection steps for the ends of the interval of realisable wm
_SWEEP_FLOATS = 1 << 15  # floats of (rows × blocks × levels) swept at once (cache)


def _wa_sweep(L, w0, wm, w_max):
    """Per row (w0, wm), log widths L (n, d): the least summed |log(level / width)| over
    wa in [0, wa_hi] and its piece of r = wa / w0, (value, r_lo, r_hi).

    `_sweep` for points, without the box machinery, over fewer exponents: only up to the
    first whose level is above every width plus one (k_cap + 1), and r only up to where the
    last block passes it. A piece past that (the last blocks far above every width while the
    first still climb) is missed, so this is a search step, not a bound; fit_many scores what
    it returns by the real e_fit. Rows are independent of the batch (events past a row's own
    exponents sort last and add 0)."""
    n, d = L.shape
    lw = np.log(wm)
    k_cap = np.maximum(np.ceil(np.log((w_max + QUANTUM) / w0) / lw), 0.0)
    r_eff = np.minimum(REGNET_RANGES["wa"][1] / w0, np.expm1(lw * (k_cap + 0.5)))
    k_row = np.minimum(np.round(np.log1p(r_eff * max(d - 1, 0)) / lw) + 1, k_cap + 1)
    if d > 1:
        r_eff = np.minimum(r_eff, np.expm1(lw * (k_row + 0.5)) / (d - 1))
    k_row = k_row.astype(np.int64)
    out = [np.empty(n) for _ in range(3)]
    order = np.argsort(k_row, kind="stable")  # rows of similar exponent counts together
    size = np.cumsum(d * (k_row[order] + 1.0))
    cuts = np.searchsorted(size, np.arange(_SWEEP_FLOATS, size[-1], _SWEEP_FLOATS)) if n else []
    for idx in np.split(order, np.unique(np.maximum(cuts, 1))):
        if idx.size:
            res = _wa_sweep_rows(L[idx], w0[idx], lw[idx], r_eff[idx], k_row[idx])
            for o, r in zip(out, res, strict=True):
                o[idx] = r
    return out


def _wa_sweep_rows(L, w0, lw, r_eff, k_row):
    """_wa_sweep for one chunk of rows."""
    n, d = L.shape
    K = int(k_row.max())
    ks = np.arange(K + 1, dtype=np.float64)
    level = np.round(w0[:, None] * np.exp(lw[:, None] * ks) / QUANTUM) * QUANTUM
    err = np.abs(np.log(np.maximum(level, 1.0))[:, None, :] - L[:, :, None])  # (n, d, K+1)
    init = err[:, :, 0].sum(axis=1)
    if d == 1:
        return init, np.zeros(n), r_eff
    # events k -> k + 1 of block j at r = (wm^(k+1/2) − 1)/j, laid out by k, then j from the
    # last block down: runs already in order, which the stable sort (timsort) merges
    j = np.arange(d - 1, 0, -1, dtype=np.float64)
    t = np.expm1(lw[:, None] * (ks[:-1] + 0.5))[:, :, None] / j  # (n, K, d-1)
    t = np.where(ks[None, :-1, None] < k_row[:, None, None], t, np.inf).reshape(n, -1)
    delta = np.diff(err[:, :0:-1, :], axis=2).transpose(0, 2, 1).reshape(n, -1)
    order = np.argsort(t, axis=1, kind="stable")
    order += (np.arange(n) * t.shape[1])[:, None]
    t = t.ravel()[order]
    total = init[:, None] + np.cumsum(delta.ravel()[order], axis=1)
    # piece i is [t_i, t_(i+1)) with the value after event i; before the first, [0, t_0)
    ends = np.minimum(np.concatenate([t[:, 1:], np.full((n, 1), np.inf)], axis=1), r_eff[:, None])
    total = np.where(ends - t > _EPS * np.maximum(1.0, ends), total, np.inf)
    best = np.argmin(total, axis=1)
    rows = np.arange(n)
    v, lo, hi = total[rows, best], t[rows, best], ends[rows, best]
    end0 = np.minimum(t[:, 0], r_eff)
    first = (init <= v) & (end0 > _EPS * np.maximum(1.0, end0))  # ties: the earlier piece
    return np.where(first, init, v), np.where(first, 0.0, lo), np.where(first, end0, hi)


def _window(s: np.ndarray, wm: np.ndarray, r_cap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """r = wa / w0 window [lo, hi) that gives exponents s (m, d) at wm (m,), hi <= r_cap.

    Block j keeps s_j for r in [(wm^(s_j − 1/2) − 1)/j, (wm^(s_j + 1/2) − 1)/j) (`_kinks`)."""
    d = s.shape[1]
    if d == 1:
        return np.zeros(wm.shape), r_cap
    j = np.arange(1, d, dtype=np.float64)
    sj, lwm = s[:, 1:], np.log(wm)[:, None]
    with np.errstate(over="ignore"):
        lo = np.where(sj >= 1, np.expm1(lwm * (sj - 0.5)) / j, 0.0).max(axis=1)
        hi = (np.expm1(lwm * (sj + 0.5)) / j).min(axis=1)
    return lo, np.minimum(hi, r_cap)


def _open(s, wm, r_cap) -> np.ndarray:
    """Whether the window of s at wm holds a float r that rounds the same way."""
    lo, hi = _window(s, wm, r_cap)
    return hi - lo > _EPS * np.maximum(1.0, np.abs(hi))


def _wm_interval(s, wm0, r_cap, steps: int = _BISECT) -> tuple[np.ndarray, np.ndarray]:
    """Ends of the wm interval around wm0 (within ±_POLISH_SPAN and the range) where the
    exponents s stay realisable, by bisection (the realisable wm of given exponents are one
    interval: each pair of blocks bounds wm on one side)."""
    wm_lo, wm_hi = REGNET_RANGES["wm"]
    m = wm0.size
    s2, cap2 = np.concatenate([s, s]), np.concatenate([r_cap, r_cap])
    target = np.clip(
        np.concatenate([wm0 * (1 - _POLISH_SPAN), wm0 * (1 + _POLISH_SPAN)]), wm_lo, wm_hi
    )
    done = _open(s2, target, cap2)
    good, bad = np.concatenate([wm0, wm0]), target.copy()
    todo = np.flatnonzero(~done)
    for _ in range(steps):
        if not todo.size:
            break
        mid = (good[todo] + bad[todo]) / 2
        ok = _open(s2[todo], mid, cap2[todo])
        good[todo] = np.where(ok, mid, good[todo])
        bad[todo] = np.where(ok, bad[todo], mid)
    ends = np.where(done, target, good)
    return ends[:m], ends[m:]


def _runs(L: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of blocks with equal exponent and width: exponents, log widths and block counts,
    each (m, R); runs past a row's own have count 0."""
    m, d = L.shape
    new = np.ones((m, d), dtype=bool)
    new[:, 1:] = (s[:, 1:] != s[:, :-1]) | (L[:, 1:] != L[:, :-1])
    run = np.cumsum(new, axis=1) - 1
    rows = np.repeat(np.arange(m), d)
    k, lw, count = (np.zeros((m, int(run.max()) + 1)) for _ in range(3))
    np.add.at(count, (rows, run.ravel()), 1.0)
    k[rows, run.ravel()] = s.ravel()
    lw[rows, run.ravel()] = L.ravel()
    return k, lw, count


def _wm_polish(L, s, w0, wm0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For exponents s (m, d) at w0 (m,): the wm near wm0 of least summed error, (value, wm,
    r with r the middle of s's window there). e_fit is a step function of wm for fixed
    exponents, stepping where a level round(w0·wm^k / 8)·8 does, at wm = ((8i + 4)/w0)^(1/k):
    each such edge is tried on both sides, inside the interval where s stays realisable, with
    its ends and wm0 (docs/method.md §3)."""
    m, d = L.shape
    r_cap = REGNET_RANGES["wa"][1] / w0
    a, b = _wm_interval(s, wm0, r_cap)
    K = max(1, int(s.max()))
    ks = np.arange(1, K + 1, dtype=np.float64)
    present = np.zeros((m, K + 1), dtype=bool)
    present[np.repeat(np.arange(m), d), s.ravel().astype(np.int64)] = True
    i_lo = np.floor(w0[:, None] * a[:, None] ** ks / QUANTUM)
    i_hi = np.ceil(w0[:, None] * b[:, None] ** ks / QUANTUM)
    count = np.where(present[:, 1:], i_hi - i_lo + 1, 0).astype(np.int64)
    step = np.maximum(1, -(-count // _EDGE_CAP))
    count = (-(-count // step)).ravel()
    rep = np.repeat(np.arange(count.size), count)
    pos = np.arange(rep.size) - np.repeat(np.cumsum(count) - count, count)
    item, k = np.divmod(rep, K)
    level_i = i_lo.ravel()[rep] + pos * step.ravel()[rep]
    with np.errstate(all="ignore"):
        edge = np.power((QUANTUM * level_i + QUANTUM / 2) / w0[item], 1.0 / (k + 1))
    every = np.arange(m)
    owner = np.concatenate([item, item, every, every, every])
    cand = np.concatenate([edge * (1 - _EPS), edge * (1 + _EPS), a, b, wm0])
    keep = (cand >= a[owner]) & (cand <= b[owner])
    owner, cand = owner[keep], cand[keep]
    rk, rl, rc = _runs(L, s)
    value = np.empty(cand.size)
    step_c = max(1, _CHUNK // (8 * rk.shape[1]))
    for i in range(0, cand.size, step_c):
        o, c = owner[i : i + step_c], cand[i : i + step_c]
        level = np.round(w0[o, None] * np.exp(rk[o] * np.log(c)[:, None]) / QUANTUM) * QUANTUM
        err = rc[o] * np.abs(np.log(np.maximum(level, 1.0)) - rl[o])
        # summed in order (cumsum): the padding runs add 0 at the end, so a row's sum does
        # not depend on the batch
        value[i : i + step_c] = np.cumsum(err, axis=1)[:, -1]
    order = np.lexsort((value, owner))  # the least per item; ties: the first candidate
    first = order[np.r_[True, owner[order][1:] != owner[order][:-1]]]
    best_v, best_wm = np.full(m, np.inf), wm0.copy()
    best_v[owner[first]], best_wm[owner[first]] = value[first], cand[first]
    lo, hi = _window(s, best_wm, r_cap)
    return best_v, best_wm, (lo + hi) / 2


def _scan_starts(
    obs: np.ndarray, best: np.ndarray, e: np.ndarray, coarse: np.ndarray
) -> np.ndarray:
    """(n, _SCAN_STARTS, 3) starts from a wm scan (_SCAN_WM, wa by `_wa_sweep`) at each
    distinct w0 of: the grid's fit and its neighbours (_SCAN_NEAR), the two best coarse
    points and the first width (to 8), and at _SCAN_SMALL (finer in wm; at w0 8 also the
    edge points of `_edge_points`, which join that w0's ranking as they are). Rows whose
    `_monotone_bound` over wm ± _POLISH_SPAN reaches the grid's fit are not swept. Each swept
    point also offers, with its exponents kept, the relaxed best wm (the weighted median of
    (log w_j − log w0)/s_j, weights s_j: e_fit without the rounding to 8 is convex in log wm
    for fixed w0 and exponents, and its minimum is at such a kink) where they are realisable
    there and it fits better, and the two ends of the wm interval (within ±_POLISH_SPAN)
    where they stay realisable: at small w0 the best fit is often a tooth's end, where the
    exponents stop being realisable (docs/method.md §3). Points that land on the same wm are
    one. The starts are the best point of each w0 (the least summed error first), then the
    second best of each, ..."""
    n, d = obs.shape
    lo8, hi8 = REGNET_RANGES["w0"]
    near = [np.clip(best[:, :1] + step, lo8, hi8) for step in _SCAN_NEAR]
    first = np.clip(np.round(obs[:, :1] / QUANTUM) * QUANTUM, lo8, hi8)
    w0c = np.sort(np.concatenate([best[:, :1], *near, coarse[:, :2, 0], first], axis=1), axis=1)
    small = np.broadcast_to(np.asarray(list(_SCAN_SMALL), dtype=np.float64), (n, len(_SCAN_SMALL)))
    w0c = np.sort(np.concatenate([w0c, small], axis=1), axis=1)
    nw = w0c.shape[1]
    distinct = np.ones(w0c.shape, dtype=bool)
    distinct[:, 1:] = w0c[:, 1:] != w0c[:, :-1]
    net0, col = np.nonzero(distinct)
    w0u = w0c[net0, col]
    grids = [_SCAN_SMALL.get(float(w), _SCAN_WM) for w in w0u]
    m = np.array([g.size for g in grids], dtype=np.int64)
    net, group, w0 = np.repeat(net0, m), np.repeat(net0 * nw + col, m), np.repeat(w0u, m)
    wm = np.concatenate(grids) if grids else np.zeros(0)
    L = np.log(obs)[net]
    r_cap = REGNET_RANGES["wa"][1] / w0
    v, lo, hi = _sweep_below(L, w0, wm, obs.max(axis=1)[net], (e * d)[net], _POLISH_SPAN)
    # only the swept rows go on (the others cannot beat the grid's fit)
    k = np.flatnonzero(np.isfinite(v))
    net, group, w0, wm, L, r_cap, v = net[k], group[k], w0[k], wm[k], L[k], r_cap[k], v[k]
    r = (lo[k] + np.minimum(hi[k], r_cap)) / 2
    s = np.round(np.log1p(r[:, None] * np.arange(d)) / np.log(wm)[:, None])
    x = np.where(s > 0, (L - np.log(w0)[:, None]) / np.maximum(s, 1.0), np.inf)
    order = np.argsort(x, axis=1, kind="stable")
    cum = np.cumsum(np.take_along_axis(s, order, axis=1), axis=1)
    half = np.argmax(cum >= cum[:, -1:] / 2, axis=1)
    lb = np.take_along_axis(x, order, axis=1)[np.arange(x.shape[0]), half]
    moved = np.clip(np.exp(np.where(np.isfinite(lb), lb, np.log(wm))), wm * (1 - _SCAN_SLACK),
                    wm * (1 + _SCAN_SLACK))  # fmt: skip
    moved = np.clip(moved, *REGNET_RANGES["wm"])
    level = np.round(w0[:, None] * np.power(moved[:, None], s) / QUANTUM) * QUANTUM
    v_moved = np.cumsum(np.abs(np.log(np.maximum(level, 1.0)) - L), axis=1)[:, -1]
    lo_m, hi_m = _window(s, moved, r_cap)
    use = (hi_m - lo_m > _EPS * np.maximum(1.0, np.abs(hi_m))) & (v_moved < v)
    cands = [(v, wm, r), (np.where(use, v_moved, np.inf), moved, (lo_m + hi_m) / 2)]
    # the ends of the wm interval where the exponents stay realisable (a tooth's ends)
    for end in _wm_interval(s, wm, r_cap, _SCAN_BISECT):
        level = np.round(w0[:, None] * np.power(end[:, None], s) / QUANTUM) * QUANTUM
        v_end = np.cumsum(np.abs(np.log(np.maximum(level, 1.0)) - L), axis=1)[:, -1]
        cands.append((v_end, end, np.sum(_window(s, end, r_cap), axis=0) / 2))
    c = len(cands)
    v = np.concatenate([x[0] for x in cands])
    wm, r = np.concatenate([x[1] for x in cands]), np.concatenate([x[2] for x in cands])
    net, group, w0 = np.tile(net, c), np.tile(group, c), np.tile(w0, c)
    ev, ewm, er, enet, ew0 = _edge_points(obs, e)
    v, wm, r = np.concatenate([v, ev]), np.concatenate([wm, ewm]), np.concatenate([r, er])
    ecol = np.argmax(w0c[enet] == ew0[:, None], axis=1)
    net, group = np.concatenate([net, enet]), np.concatenate([group, enet * nw + ecol])
    w0 = np.concatenate([w0, ew0])
    # points that moved to the same wm are one start: the later ones are left out
    same = np.lexsort((v, wm, group))
    dup = np.zeros(v.size, dtype=bool)
    dup[same[1:]] = (group[same][1:] == group[same][:-1]) & (wm[same][1:] == wm[same][:-1])
    v = np.where(dup, np.inf, v)
    # rank of each point within its (network, w0), then per network by (rank, value)
    order = np.lexsort((v, group))
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(order.size) - np.searchsorted(group[order], group[order])
    return _starts_per_net(best, net, np.lexsort((v, rank, net)), v, (w0, r * w0, wm), _SCAN_STARTS)


def _edge_wms(widths: np.ndarray, w0: float) -> np.ndarray:
    """wm where a level round(w0·wm^k / 8)·8 (any k) steps onto one of the network's widths
    W or a multiple of 8 up to _EDGE_MORE steps from it: w0·wm^k = W ∓ 4 ∓ 8i, on the side
    where the level is the nearer to W (docs/method.md §3)."""
    wm_lo, wm_hi = REGNET_RANGES["wm"]
    u = np.unique(widths)
    u = u[u > w0][:, None]
    q = QUANTUM / 2 + QUANTUM * np.arange(_EDGE_MORE + 1, dtype=np.float64)
    edge = np.concatenate([u - q, u + q]).ravel()  # level edges w0·wm^k = m·8 + 4
    side = np.repeat([1.0, -1.0], u.size * q.size)  # above an edge below W, below one above
    keep = edge > w0
    edge, side = edge[keep], side[keep]
    if not edge.size:
        return np.zeros(0)
    k = np.arange(1.0, math.ceil(math.log(edge.max() / w0) / math.log(wm_lo)) + 1)
    wm = np.power(edge[:, None] / w0, 1.0 / k) * (1.0 + side[:, None] * _EPS)
    return np.unique(wm[(wm > wm_lo) & (wm < wm_hi)])


def _edge_points(obs: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, ...]:
    """(summed error, wm, r, network, w0) of the edge points (`_edge_wms`) at each w0 of
    _EDGE_W0 that `_sweep_below` sweeps (the others cannot beat the grid's fit e)."""
    n, d = obs.shape
    wms = [_edge_wms(row, w) for row in obs for w in _EDGE_W0]
    m = [x.size for x in wms]
    net = np.repeat(np.repeat(np.arange(n), len(_EDGE_W0)), m)
    w0 = np.repeat(np.tile(np.asarray(_EDGE_W0, dtype=np.float64), n), m)
    wm = np.concatenate(wms) if wms else np.zeros(0)
    v, lo, hi = _sweep_below(np.log(obs)[net], w0, wm, obs.max(axis=1)[net], (e * d)[net])
    k = np.flatnonzero(np.isfinite(v))
    r = (lo[k] + np.minimum(hi[k], REGNET_RANGES["wa"][1] / w0[k])) / 2
    return v[k], wm[k], r, net[k], w0[k]


def _monotone_bound(L: np.ndarray, w0: np.ndarray, a: np.ndarray, b: np.ndarray):
    """Per row (log widths L (m, d), w0, a <= b inside REGNET_RANGES' wm): a lower bound of
    the summed error over every wa and every wm in [a, b] (a = b: at that wm).

    Block 0 is at level 0 (w0); the exponents never fall and stay at most the last block's at
    the largest wa; each block otherwise takes its best level (the nearest point of the range
    of level k over [a, b]): a small dynamic programme over the blocks (a running minimum over
    the levels), no sweep (docs/method.md §3)."""
    m, d = L.shape
    # one exponent more than the last block's at the largest wa: the generator's
    # log(u / w0) can round up where log1p rounds down
    k_cap = np.round(np.log1p(REGNET_RANGES["wa"][1] / w0 * max(d - 1, 0)) / np.log(a)) + 1
    ks = np.arange(int(k_cap.max(initial=0)) + 1, dtype=np.float64)
    out = ks > k_cap[:, None]

    def levels(x):  # as the generator computes them (np.power: a tie m + 1/2 rounds to even)
        q = np.round(w0[:, None] * np.power(x[:, None], ks) / QUANTUM) * QUANTUM
        return np.where(out, np.inf, np.log(np.maximum(q, 1.0)))

    low, high = levels(a), levels(b)
    # a run of equal widths takes one level at no loss (the better of any two it spans keeps
    # the exponents non-decreasing), so the programme steps over runs, not blocks
    rest = L[:, 1:]
    new = np.ones(rest.shape, dtype=bool)
    new[:, 1:] = rest[:, 1:] != rest[:, :-1]
    run = np.cumsum(new, axis=1) - 1
    n_runs = int(run.max(initial=-1)) + 1
    flat = (np.arange(m)[:, None] * n_runs + run).ravel()
    count = np.bincount(flat, minlength=m * n_runs).reshape(m, n_runs)
    width = np.zeros(m * n_runs)
    width[flat] = rest.ravel()
    width = width.reshape(m, n_runs)
    cost = np.zeros(low.shape)
    with np.errstate(invalid="ignore"):  # 0 blocks × an unreachable level: 0
        for i in range(n_runs):
            x = width[:, i : i + 1]
            err = count[:, i : i + 1] * np.maximum(np.maximum(low - x, x - high), 0.0)
            cost = np.minimum.accumulate(cost, axis=1) + np.where(count[:, i : i + 1] > 0, err, 0)
    return np.abs(np.log(w0) - L[:, 0]) + cost.min(axis=1)


def _sweep_below(L, w0, wm, w_max, incumbent, span=0.0):
    """`_wa_sweep` of the rows whose `_monotone_bound` is below incumbent (a summed error per
    row) at wm or, with span, at wm·(1 ± span); the others (value inf) cannot beat it at
    their (w0, wm), so their sweep is saved."""
    v, lo, hi = np.full(w0.size, np.inf), np.zeros(w0.size), np.zeros(w0.size)
    a = b = wm
    if span:
        wm_lo, wm_hi = REGNET_RANGES["wm"]
        a, b = np.maximum(wm * (1.0 - span), wm_lo), np.minimum(wm * (1.0 + span), wm_hi)
    live = np.flatnonzero(_monotone_bound(L, w0, a, b) < incumbent)
    if live.size:
        v[live], lo[live], hi[live] = _wa_sweep(L[live], w0[live], wm[live], w_max[live])
    return v, lo, hi


def _matched_starts(obs: np.ndarray, best: np.ndarray, e: np.ndarray) -> np.ndarray:
    """(n, _MATCH_STARTS, 3) starts that put a level round(w0·wm^k / 8)·8 on one of the
    network's _MATCH_WIDTHS most frequent widths: every w0 of the range, every k that leaves
    wm in it, wm the middle of the interval where the level is that width; wa by
    `_wa_sweep` (rows `_monotone_bound` rules out are skipped), the least summed error first.

    Where the grid misses, the optimum mostly has a w0 far from the grid's and a level on the
    width of the network's longest stage (docs/method.md §3)."""
    n, d = obs.shape
    (w0_lo, w0_hi), (wm_lo, wm_hi) = REGNET_RANGES["w0"], REGNET_RANGES["wm"]
    nets, widths = [], []
    for i, row in enumerate(obs):
        u, c = np.unique(row, return_counts=True)
        top = u[np.argsort(-c, kind="stable")[:_MATCH_WIDTHS]]
        nets += [i] * top.size
        widths += top.tolist()
    net, width = np.asarray(nets), np.asarray(widths, dtype=np.float64)
    w0s = np.arange(w0_lo, w0_hi + 1, QUANTUM, dtype=np.float64)
    k_max = math.ceil(math.log(width.max() / w0_lo + 1.0) / math.log(wm_lo))
    p, w0, k = (g.ravel() for g in np.meshgrid(
        np.arange(net.size), w0s, np.arange(1.0, k_max + 1), indexing="ij"))  # fmt: skip
    lo = np.maximum(np.power(np.maximum(width[p] - QUANTUM / 2, 1.0) / w0, 1.0 / k), wm_lo)
    hi = np.minimum(np.power((width[p] + QUANTUM / 2) / w0, 1.0 / k), wm_hi)
    ok = lo < hi
    p, w0, wm = p[ok], w0[ok], np.sqrt(lo[ok] * hi[ok])
    rows = net[p]
    v, r_lo, r_hi = _sweep_below(np.log(obs)[rows], w0, wm, obs.max(axis=1)[rows], (e * d)[rows])
    r_cap = REGNET_RANGES["wa"][1] / w0
    r = np.where(np.isfinite(r_hi), (r_lo + np.minimum(r_hi, r_cap)) / 2, r_lo)
    return _starts_per_net(best, rows, np.lexsort((v, rows)), v, (w0, r * w0, wm), _MATCH_STARTS)


def _starts_per_net(best, net, order, v, point, starts: int) -> np.ndarray:
    """(networks, starts, 3) descent starts: per network its first `starts` points (w0, wa, wm)
    in `order` (sorted by network first) with a finite value; `best` fills the slots left."""
    pos = np.arange(order.size) - np.searchsorted(net[order], net[order])
    take = (pos < starts) & np.isfinite(v[order])
    k, slot = order[take], pos[take]
    out = np.repeat(best[:, None, :], starts, axis=1)
    out[net[k], slot] = np.stack([x[k] for x in point], axis=1)
    return out


def _descend(obs: np.ndarray, best: np.ndarray, e: np.ndarray, starts: np.ndarray) -> None:
    """From starts (n, k, 3): _DESCENT_ROUNDS of `_wa_sweep` then `_wm_polish` (at the current
    w0 and at the median one for the new exponents, rounded to 8); replace best (n, 3) and
    e (n,) in place where a start ends at a real RegNet that fits better."""
    n, d = obs.shape
    k = starts.shape[1]
    L, w_max = np.log(obs), obs.max(axis=1)
    # a start equal to an earlier one of its network (the padding of the scans) is left out
    same = (starts[:, :, None, :] == starts[:, None, :, :]).all(axis=3)
    first = ~np.tril(same, -1).any(axis=2).ravel()
    net = np.repeat(np.arange(n), k)[first]
    cur = starts.reshape(-1, 3)[first].copy()
    rows = np.arange(cur.shape[0])
    wa_hi = REGNET_RANGES["wa"][1]
    for _ in range(_DESCENT_ROUNDS):
        _, lo, hi = _wa_sweep(L[net], cur[:, 0], cur[:, 2], w_max[net])
        r = np.where(np.isfinite(hi), (lo + np.minimum(hi, wa_hi / cur[:, 0])) / 2, lo)
        s = np.round(np.log1p(r[:, None] * np.arange(d)) / np.log(cur[:, 2:3]))
        med = np.exp(np.median(L[net] - s * np.log(cur[:, 2:3]), axis=1))
        w0_med = np.clip(np.round(med / QUANTUM) * QUANTUM, *REGNET_RANGES["w0"])
        other = np.flatnonzero(w0_med != cur[:, 0])  # the median w0 where it is another
        item = np.concatenate([rows, other])
        w0 = np.concatenate([cur[:, 0], w0_med[other]])
        v, wm, r = _wm_polish(L[net[item]], s[item], w0, cur[item, 2])
        v = np.where(np.isfinite(r), v, np.inf)
        sel = rows.copy()
        win = v[rows.size :] < v[other]  # ties: the current w0
        sel[other[win]] = rows.size + np.flatnonzero(win)
        cur = np.stack([w0[sel], np.clip(r[sel] * w0[sel], 0.0, wa_hi), wm[sel]], axis=1)
    real = np.full(cur.shape[0], np.inf)
    ok = np.isfinite(cur).all(axis=1)
    real[ok] = _e_fit(obs[net[ok]], cur[ok])
    order = np.lexsort((real, net))  # the least per network; ties: the earlier start
    top = order[np.r_[True, net[order][1:] != net[order][:-1]]]
    win = top[real[top] < e[net[top]]]
    best[net[win]], e[net[win]] = cur[win], real[win]


def _bound_many(obs: np.ndarray, best: np.ndarray, e: np.ndarray, tol: float) -> None:
    """Branch and bound of fit_regnet (`_global_fit`) for networks of one depth at once.

    Inside REGNET_RANGES, from the grid fits (best, e: replaced in place where a better real
    RegNet is found). A box is dropped when its bound is within tol of the network's best
    e_fit, so each network ends within tol of its global optimum.
    """
    n, d = obs.shape
    (w0_lo, w0_hi), (wa_lo, wa_hi), (wm_lo, wm_hi) = (REGNET_RANGES[k] for k in ("w0", "wa", "wm"))
    boxes = _MANY_BOXES
    edges = np.exp(np.geomspace(math.log(wm_lo), math.log(wm_hi), boxes + 1))
    edges[0], edges[-1] = wm_lo, wm_hi
    w0s = np.arange(w0_lo, w0_hi + 1, QUANTUM, dtype=np.float64)
    net = np.repeat(np.arange(n), w0s.size * boxes)
    W0 = np.tile(np.repeat(w0s, boxes), n)
    A, B = np.tile(edges[:-1], n * w0s.size), np.tile(edges[1:], n * w0s.size)
    # A w0 above every width loses to the first multiple of 8 at or above them (fit_regnet);
    # every level is at least w0 and block 0's is w0: a bound per w0 alone.
    w_max, L = obs.max(axis=1), np.log(obs)
    lw, lw0 = L[net], np.log(W0)
    bound = np.abs(lw0 - lw[:, 0]) + np.maximum(lw0[:, None] - lw[:, 1:], 0.0).sum(axis=1)
    inc = e * d  # the grid fits' summed errors: the incumbents
    found = np.full((n, 4), np.nan)  # w0, wm, r_lo, r_hi of a better piece
    keep = (W0 <= np.ceil(w_max / QUANTUM)[net] * QUANTUM) & (bound < inc[net] - tol * d)
    net, W0, A, B = net[keep], W0[keep], A[keep], B[keep]

    def better(rows, w0, wm, v, lo, hi):
        order = np.lexsort((v, rows))
        first = order[np.r_[True, rows[order][1:] != rows[order][:-1]]]
        win = first[v[first] < inc[rows[first]]]
        inc[rows[win]] = v[win]
        found[rows[win]] = np.stack([w0[win], wm[win], lo[win], hi[win]], axis=1)

    while W0.size:
        # the monotone bound first: about a tenth of a sweep's cost, it drops half the boxes
        mb = _monotone_bound(L[net], W0, A, B)  # exactly: an end may fit best (wm 2.5)
        keep = mb < inc[net] - tol * d
        net, W0, A, B = net[keep], W0[keep], A[keep], B[keep]
        if not W0.size:
            break
        rl, rh = wa_lo / W0, wa_hi / W0
        mid = np.sqrt(A * B)
        lb, _, _ = _sweep_chunked(W0, A, B, rl, rh, obs[net], None, w_max[net], point=False)
        keep = lb < inc[net] - tol * d
        net, W0, A, B, mid, lb = net[keep], W0[keep], A[keep], B[keep], mid[keep], lb[keep]
        if not W0.size:
            break
        # the incumbents improve at the boxes of least bound (_POINTS a network)
        order = np.lexsort((lb, net))
        rank = np.arange(order.size) - np.searchsorted(net[order], net[order])
        pick = order[rank < _POINTS]
        v, lo, hi = _sweep_chunked(
            W0[pick], mid[pick], mid[pick], wa_lo / W0[pick], wa_hi / W0[pick], obs[net[pick]],
            None, w_max[net[pick]], point=True,
        )  # fmt: skip
        better(net[pick], W0[pick], mid[pick], v, lo, hi)
        keep = lb < inc[net] - tol * d
        net, W0, A, B, mid = net[keep], W0[keep], A[keep], B[keep], mid[keep]
        thin = B / A - 1.0 < _MIN_WIDTH
        if thin.any():  # as in _global_fit: the ends and the multiple of 1/32 inside
            t0, ta, tb, tn = W0[thin], A[thin], B[thin], net[thin]
            dyadic = np.clip(np.round(np.sqrt(ta * tb) * 32.0) / 32.0, ta, tb)
            pts, t0, tn = np.concatenate([ta, tb, dyadic]), np.tile(t0, 3), np.tile(tn, 3)
            v, lo, hi = _sweep_chunked(
                t0, pts, pts, wa_lo / t0, wa_hi / t0, obs[tn], None, w_max[tn], point=True
            )
            better(tn, t0, pts, v, lo, hi)
        net, W0, A, B, mid = net[~thin], W0[~thin], A[~thin], B[~thin], mid[~thin]
        net, W0 = np.tile(net, 2), np.tile(W0, 2)
        A, B = np.concatenate([A, mid]), np.concatenate([mid, B])
    rows = np.flatnonzero(np.isfinite(found[:, 0]))
    if rows.size:
        w0, wm, lo, hi = found[rows].T
        cand = np.stack([w0, np.clip(w0 * (lo + hi) / 2, wa_lo, wa_hi), wm], axis=1)
        real = _e_fit(obs[rows], cand)
        win = real < e[rows]
        best[rows[win]], e[rows[win]] = cand[win], real[win]


def fit_many(block_widths_list, tol: float | None = None) -> list[tuple[int, float, float, float]]:
    """(w0, wa, wm, e_fit) per network inside REGNET_RANGES: DDS §3.3's grid search, then
    the descent (`_descend`); an upper bound of the global minimum, exactly 0 on a RegNet.

    With tol (e.g. 0.004), a branch and bound then brings each e_fit within tol of the
    global minimum over REGNET_RANGES (`_bound_many`; about 3x the default's time,
    docs/method.md §3).
    """
    if tol is not None and not tol >= 0:
        raise ValueError(f"tol: need a number >= 0, got {tol}")
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
    for idx in groups.values():
        obs = np.asarray([block_widths_list[i] for i in idx], dtype=np.float64)
        coarse, per_wm = _coarse(obs)
        starts = coarse
        for wm_step, wa_ratio, keep in _ROUNDS:
            starts, e = _best(obs, _local(starts, wm_step, wa_ratio), keep)
        best, e = starts[:, 0].copy(), e[:, 0].copy()
        if obs.shape[1] > 1:
            _improve(obs, best, e)
            # the descent (docs/method.md §3): it replaces a fit only by a better one
            scan = _scan_starts(obs, best, e, coarse)
            match = _matched_starts(obs, best, e)
            _descend(obs, best, e, np.concatenate([best[:, None], per_wm, scan, match], axis=1))
        # the network's own RegNet parameters where they may regenerate it
        own, rows = _exact_candidates(obs)
        if rows.size:
            e_own = _e_fit(obs[rows], own)
            # ties go to the own parameters: the middle of their window, where no level is
            # a tie of the rounding to 8 (a kink can be: 16·2.5^2 / 8 = 12.5)
            better = e_own <= e[rows]
            best[rows[better]], e[rows[better]] = own[better], e_own[better]
        if tol is not None:
            _bound_many(obs, best, e, float(tol))
        for k, i in enumerate(idx):
            # e_fit once more as quantized_block_widths computes it, one network at a time:
            # np.power in a batch can be an ulp off at such a tie (16·2.5^2 = 100 + 1e-14);
            # where that loses, wm a hair above or below gives the batch's level alone
            w0, wa, wm = best[k]
            ek = float(_e_fit(obs[k : k + 1], best[k : k + 1])[0])
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
