"""Compiled inner loops of the RegNet fits (anynet/regnet_fit.py), one row at a time.

A row is one network at one w0 and one interval [a, b] of wm (a = b: a point). The branch
and bound of the fits evaluates a few hundred rows a network, each a short loop with a
sort: numba compiles them (cached on disk after the first call), where numpy's whole-batch
arrays spent most of their time sorting padded events (docs/method.md §3).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from anynet.regnet import QUANTUM

EPS = 1e-9  # a piece of r narrower than this (relative) holds no float that rounds alike


def _compiled(**options):
    """numba.njit, its machine code cached on disk where numba finds a writable place
    (beside this file, else the user's cache); compiled in each process where it finds none
    (a read-only install and home)."""

    def wrap(function):
        try:
            return numba.njit(cache=True, **options)(function)
        except RuntimeError:  # numba: "cannot cache function ...: no locator available"
            return numba.njit(**options)(function)

    return wrap


@_compiled(inline="always")
def _level(w0: float, wm: float, k: float) -> float:
    """round(w0·wm^k / 8)·8 as the generator computes it (pow, ties to even)."""
    return np.rint(w0 * wm ** float(k) / QUANTUM) * QUANTUM


@_compiled(inline="always")
def _same(x, y) -> bool:
    """Whether two NaN-padded rows of allowed widths are the same."""
    for i in range(x.size):
        if x[i] != y[i] and not (math.isnan(x[i]) and math.isnan(y[i])):
            return False
    return True


@_compiled()
def _merge(t, delta, seg):
    """(t, delta) sorted by t, stably, from sorted segments t[seg[i]:seg[i + 1]]: merged in
    pairs, then pairs of pairs (log2 of the segments passes, not log2 of the events)."""
    n_seg = seg.size - 1
    bounds = seg.copy()
    t2, d2 = np.empty_like(t), np.empty_like(delta)
    while n_seg > 1:
        out = 0
        m = 0
        for s in range(0, n_seg, 2):
            lo, mid = bounds[s], bounds[s + 1]
            hi = bounds[s + 2] if s + 2 <= n_seg else mid
            i, j = lo, mid
            while i < mid and j < hi:
                if t[j] < t[i]:
                    t2[out], d2[out] = t[j], delta[j]
                    j += 1
                else:
                    t2[out], d2[out] = t[i], delta[i]
                    i += 1
                out += 1
            while i < mid:
                t2[out], d2[out] = t[i], delta[i]
                i += 1
                out += 1
            while j < hi:
                t2[out], d2[out] = t[j], delta[j]
                j += 1
                out += 1
            bounds[m] = lo
            m += 1
        bounds[m] = out
        n_seg = m
        t, t2, delta, d2 = t2, t, d2, delta
    return t, delta


@_compiled()
def _sweep_row(w0, a, b, r_lo, r_hi, obs, log_obs, log_q, allowed, w_max, point):
    """(value, lo, hi): the least summed block error over r = wa / w0 in [r_lo, r_hi] at w0
    and wm in [a, b], and its piece of r. A lower bound of e_fit·d over the box; exact over
    realisable pieces when `point` (a = b). allowed: (d, m) widths that count as exact per
    block, NaN-padded (m = 0: none)."""
    d = obs.size
    la, lb = math.log(a), math.log(b)
    # past r_cap every block j >= 1 has a level above every width: more r only raises them
    k_cap = max(math.ceil(math.log((w_max + QUANTUM) / w0) / la), 0.0)
    r_eff = max(r_lo, min(r_hi, math.expm1(lb * (k_cap + 0.5))))
    K = int(np.rint(math.log1p(r_eff * max(d - 1, 0)) / la)) + 1
    # blocks 1.. in runs of equal widths and allowed sets, which share their errors; row 0
    # of err is block 0, row r + 1 run r (first block starts[r])
    starts = np.empty(d, dtype=np.int64)
    n_runs = 0
    for j in range(1, d):
        if j == 1 or obs[j] != obs[j - 1] or not _same(allowed[j], allowed[j - 1]):
            starts[n_runs] = j
            n_runs += 1
    starts[n_runs] = d
    # err[r, k]: least |log(level / w)| over the multiples of 8 between the levels of
    # exponent k at a and at b; 0 where an allowed width lies there
    err = np.empty((n_runs + 1, K + 1))
    for k in range(K + 1):
        lo_k, hi_k = _level(w0, a, k), _level(w0, b, k)
        log_lo, log_hi = math.log(lo_k), math.log(hi_k)
        for r in range(n_runs + 1):
            j = 0 if r == 0 else starts[r - 1]
            w, lw = obs[j], log_obs[j]
            if w <= lo_k:
                e = log_lo - lw
            elif w >= hi_k:
                e = lw - log_hi
            else:  # the multiples of 8 around w (both inside [lo_k, hi_k])
                m = math.floor(w / QUANTUM)
                e = lw - log_q[m]
                if m * QUANTUM != w:
                    e = min(e, log_q[m + 1] - lw)
            for x in allowed[j]:
                if x >= lo_k and x <= hi_k:
                    e = 0.0
            err[r, k] = e
    init = err[0, 0]
    for r in range(n_runs):
        init += (starts[r + 1] - starts[r]) * err[r + 1, 0]
    if d == 1:
        return init, r_lo, max(r_lo, r_eff)
    # the exponent range [klo, khi] of block j changes at r = c / j, c = expm1((k + 1/2)·log
    # of an end of the box), in the same order for every block: the two ends' sequences
    # merged (ties: khi first); at a point both ends step together, once
    n_c = K if a == b else 2 * K
    cs = np.empty(n_c)
    klo = np.empty(n_c, dtype=np.int64)
    khi = np.empty(n_c, dtype=np.int64)
    n_lo = n_hi = 0
    for i in range(n_c):
        x_hi = math.expm1(la * (n_hi + 0.5)) if n_hi < K else math.inf
        x_lo = math.expm1(lb * (n_lo + 0.5)) if n_lo < K else math.inf
        if n_c == K:
            n_lo += 1
            n_hi += 1
        elif x_hi <= x_lo:
            n_hi += 1
        else:
            n_lo += 1
        cs[i] = min(x_hi, x_lo)
        klo[i], khi[i] = n_lo, n_hi
    # least[r, i]: run r's least error over [klo, khi] after the i-th c
    least = np.empty((n_runs, n_c))
    for i in range(n_c):
        for r in range(n_runs):
            v = err[r + 1, klo[i]]
            for k in range(klo[i] + 1, khi[i] + 1):
                v = min(v, err[r + 1, k])
            least[r, i] = v
    # events past r_eff only start pieces outside [r_lo, r_eff], and an event that leaves
    # the block's least error as it was only splits a piece: both are left out
    t = np.empty((d - 1) * 2 * K)
    delta = np.empty((d - 1) * 2 * K)
    n_ev = 0
    seg = np.empty(d, dtype=np.int64)  # block j's events are t[seg[j - 1]:seg[j]], sorted
    seg[0] = 0
    for r in range(n_runs):
        for j in range(starts[r], starts[r + 1]):
            prev = err[r + 1, 0]
            for i in range(n_c):
                x = cs[i] / j
                if x > r_eff:
                    break
                v = least[r, i]
                if v != prev:
                    t[n_ev] = x
                    delta[n_ev] = v - prev
                    n_ev += 1
                prev = v
            seg[j] = n_ev
    t, delta = _merge(t, delta, seg)
    # piece 0 is [0, t_0) at init; piece i + 1 is [t_i, t_(i+1)) after event i
    best_v, best_lo, best_hi = math.inf, 0.0, 0.0
    total = init
    start = 0.0
    for i in range(n_ev + 1):
        if i > 0:
            total += delta[i - 1]
            start = t[i - 1]
        end = t[i] if i < n_ev else math.inf
        lo, hi = max(start, r_lo), min(end, r_eff)
        if point:
            ok = hi - lo > EPS * max(1.0, hi) or (r_lo == r_eff and start <= r_lo < end)
        else:
            ok = hi >= lo
        if ok and total < best_v:
            best_v, best_lo, best_hi = total, lo, hi
        elif i == 0:
            best_lo, best_hi = lo, hi
    return best_v, best_lo, best_hi


@_compiled()
def sweep(w0, a, b, r_lo, r_hi, net, obs, allowed, w_max, point):
    """`_sweep_row` of each row (network net[i] of obs (N, d), w_max (N,))."""
    n = w0.size
    v, lo, hi = np.empty(n), np.empty(n), np.empty(n)
    log_obs = np.log(obs)
    log_q = np.log(QUANTUM * np.arange(max(2.0, obs.max() / QUANTUM + 2.0)))  # log(8m)
    for i in range(n):
        g = net[i]
        v[i], lo[i], hi[i] = _sweep_row(
            w0[i], a[i], b[i], r_lo[i], r_hi[i], obs[g], log_obs[g], log_q, allowed,
            w_max[g], point,
        )  # fmt: skip
    return v, lo, hi


@_compiled()
def _monotone_row(log_obs, w0, a, b, r_top, w_max):
    """A lower bound of the summed error over every wa up to r_top·w0 (inf: any) and every
    wm in [a, b] at w0, from log widths alone (docs/method.md §3): no sweep, a seventh of
    its cost.

    Block 0 is at level 0 (w0); the exponents never fall and stay at most the last block's
    at the largest wa (one more: the generator's log(u / w0) can round up where log1p rounds
    down), and at most the first whose level at a is above every width (higher ones only
    cost more); each block otherwise takes its best level (the nearest point of the range of
    level k over [a, b]): a dynamic programme over runs of equal widths (a run takes one
    level at no loss), a running minimum over the levels."""
    d = log_obs.size
    k_cap = 0
    while _level(w0, a, k_cap) <= w_max:
        k_cap += 1
    if r_top < math.inf:
        k_cap = min(k_cap, int(np.rint(math.log1p(r_top * max(d - 1, 0)) / math.log(a))) + 1)
    low, high = np.empty(k_cap + 1), np.empty(k_cap + 1)
    for k in range(k_cap + 1):
        low[k] = math.log(max(_level(w0, a, k), 1.0))
        high[k] = math.log(max(_level(w0, b, k), 1.0))
    cost = np.zeros(k_cap + 1)
    j = 1
    while j < d:
        x, count = log_obs[j], 0
        while j < d and log_obs[j] == x:
            count += 1
            j += 1
        run_min = math.inf
        for k in range(k_cap + 1):
            run_min = min(run_min, cost[k])
            cost[k] = run_min + count * max(low[k] - x, x - high[k], 0.0)
    return abs(math.log(w0) - log_obs[0]) + cost.min()


@_compiled()
def _push(keys, boxes, n, key, swept, w0, a, b):
    """Put a box in the heap (keys, boxes) of n boxes, grown when full: (keys, boxes, n)."""
    if n == keys.size:
        keys = np.concatenate((keys, np.empty(n)))
        boxes = np.concatenate((boxes, np.empty((n, 4))))
    i = n
    while i > 0 and keys[(i - 1) // 2] > key:  # sift up
        p = (i - 1) // 2
        keys[i], boxes[i] = keys[p], boxes[p]
        i = p
    keys[i] = key
    boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3] = swept, w0, a, b
    return keys, boxes, n + 1


@_compiled()
def _pop(keys, boxes, n):
    """Take the box of least key (slot 0, read before) out of the heap: the new n."""
    n -= 1
    key, box = keys[n], boxes[n].copy()
    i = 0
    while 2 * i + 1 < n:  # sift down
        c = 2 * i + 1
        if c + 1 < n and keys[c + 1] < keys[c]:
            c += 1
        if keys[c] >= key:
            break
        keys[i], boxes[i] = keys[c], boxes[c]
        i = c
    keys[i], boxes[i] = key, box
    return n


@_compiled(inline="always")
def _at_point(best, w0, wm, r_lo, r_hi, obs, log_obs, log_q, allowed, w_max):
    """best (summed error, w0, wm, r_lo, r_hi), or the point (w0, wm) swept exactly where it
    fits better."""
    v, lo, hi = _sweep_row(w0, wm, wm, r_lo, r_hi, obs, log_obs, log_q, allowed, w_max, True)
    return (v, w0, wm, lo, hi) if v < best[0] else best


@_compiled()
def branch_and_bound(
    obs, allowed, w0s, edges, wa_lo, wa_hi, incumbent, slack, min_width, edge_width
):
    """Best-first branch and bound of one network over (w0, wm) boxes (docs/method.md §3):
    (summed error, w0, wm, r_lo, r_hi) of the best point found, w0 = 0 if none beats the
    incumbent, and how much a box left unresolved (narrower than min_width) could still
    beat it. Boxes start as each w0 of w0s times each interval of edges; the box of least
    bound is taken first, its middle swept exactly, and it is halved unless its bound is
    within slack of the best (then every box left is, and the search ends).

    A box's key is the monotone bound (no allowed sets) until it is taken the first time,
    then the box sweep's bound; a half keeps its parent's bound where that is higher."""
    log_obs = np.log(obs)
    log_q = np.log(QUANTUM * np.arange(max(2.0, obs.max() / QUANTUM + 2.0)))
    w_max = obs.max()
    for j in range(allowed.shape[0]):
        for x in allowed[j]:
            if x > w_max:
                w_max = x
    mono = allowed.shape[1] == 0
    best = (incumbent, 0.0, 0.0, 0.0, 0.0)
    unresolved = 0.0
    keys = np.empty(2 * w0s.size * edges.size + 16)  # a binary heap of boxes by key
    boxes = np.empty((keys.size, 4))  # swept (0 or 1), w0, a, b
    n = 0
    for w0 in w0s:
        for i in range(edges.size - 1):
            a, b = edges[i], edges[i + 1]
            key = _monotone_row(log_obs, w0, a, b, wa_hi / w0, w_max) if mono else -math.inf
            if key < best[0] - slack:
                keys, boxes, n = _push(keys, boxes, n, key, 0.0, w0, a, b)
    while n:
        key, swept, w0, a, b = keys[0], boxes[0, 0], boxes[0, 1], boxes[0, 2], boxes[0, 3]
        n = _pop(keys, boxes, n)
        if key >= best[0] - slack:
            break
        r_lo, r_hi = wa_lo / w0, wa_hi / w0
        if swept == 0.0:  # the box sweep's bound, then back in line
            lb, _, _ = _sweep_row(w0, a, b, r_lo, r_hi, obs, log_obs, log_q, allowed, w_max, False)
            lb = max(lb, key)
            if lb < best[0] - slack:
                keys, boxes, n = _push(keys, boxes, n, lb, 1.0, w0, a, b)
            continue
        mid = math.sqrt(a * b)
        best = _at_point(best, w0, mid, r_lo, r_hi, obs, log_obs, log_q, allowed, w_max)
        if key >= best[0] - slack:
            continue
        if b / a - 1.0 < min_width:
            # a box that stays below the best while it shrinks holds a point that fits better
            # than any piece around it: a level w0·wm^k / 8 exactly m + 1/2, rounded to even,
            # at wm a multiple of 1/32 (for w0 <= 248, the denominators it can be at), or an end
            dyadic = min(max(np.rint(mid * 32.0) / 32.0, a), b)
            for x in (a, b, dyadic):
                best = _at_point(best, w0, x, r_lo, r_hi, obs, log_obs, log_q, allowed, w_max)
            unresolved = max(unresolved, best[0] - key)
            continue
        left, right = mid, mid
        if b / a - 1.0 < edge_width:
            # a narrow box that holds a level edge bounds the levels on both sides of it at
            # once, however narrow: it is cut there instead, and the floats between the two
            # sides (the tie itself) are swept as points
            left, right = _edge_cut(w0, a, b, w_max)
            if left == 0.0:
                left, right = mid, mid
            # the floats between the sides, and a side that is one point (an edge at an end
            # of the box: a tie of the rounding at wm 1.5, 216·1.5 / 8 = 40.5 -> 320, 328
            # above)
            x = left if left == a else np.nextafter(left, math.inf)
            while x < right or (x == right and right == b):
                best = _at_point(best, w0, x, r_lo, r_hi, obs, log_obs, log_q, allowed, w_max)
                x = np.nextafter(x, math.inf)
        for x, y in ((a, left), (right, b)):
            if x == y:
                continue
            k = max(key, _monotone_row(log_obs, w0, x, y, wa_hi / w0, w_max)) if mono else key
            if k < best[0] - slack:
                keys, boxes, n = _push(keys, boxes, n, k, 0.0, w0, x, y)
    return best, max(unresolved, 0.0)


@_compiled()
def _edge_cut(w0, a, b, w_max):
    """(left, right): the last float of [a, b] below a level edge and the first above it
    (the first exponent whose level steps inside the box, at its first step), or (0, 0)."""
    k = 1
    while k < 64 and _level(w0, a, k) <= 2.0 * w_max + 2.0 * QUANTUM:
        below = _level(w0, a, k)
        if _level(w0, b, k) != below:
            edge = ((below + QUANTUM / 2) / w0) ** (1.0 / k)
            left, right = min(edge, b), max(edge, a)
            for _ in range(16):
                if _level(w0, left, k) == below:
                    break
                left = np.nextafter(left, 0.0)
            for _ in range(16):
                if _level(w0, right, k) == below + QUANTUM:
                    break
                right = np.nextafter(right, math.inf)
            ok = _level(w0, left, k) == below and _level(w0, right, k) == below + QUANTUM
            if ok and a <= left < right <= b:
                return left, right
        k += 1
    return 0.0, 0.0
