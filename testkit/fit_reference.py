"""The exhaustive reference RegNet fit that tests and benchmarks hold the fits to (issue 21).

Every multiple of 8 for w0 inside the ranges, a fine wm grid, and for each (w0, wm) every
piece of wa: the quantised prediction of block j moves from exponent k to k + 1 at
wa = w0·(wm^(k+1/2) − 1)/j (docs/method.md §3), so e_fit is a step function of wa and its
minimum over wa is read off the sorted breakpoints. Slow (about 1 s a network at the
default grid) and not used by the service; written apart from anynet.regnet_fit so that
it checks that module rather than repeating it.
"""

from __future__ import annotations

import numpy as np

from anynet.regnet import QUANTUM, quantized_block_widths

_ROWS = 256  # (w0, wm) rows swept at once


def e_fit(widths, w0: int, wa: float, wm: float) -> float:
    """e_fit of (w0, wa, wm) for per-block widths: mean |log(w_pred / w_observed)| (DDS §3.3)."""
    obs = np.asarray(widths, dtype=np.float64)
    pred = np.asarray(quantized_block_widths(obs.size, w0, wa, wm), dtype=np.float64)
    return float(np.mean(np.abs(np.log(pred / obs))))


def _sweep(w0: float, wms: np.ndarray, obs: np.ndarray, wa_range) -> tuple:
    """Per wm: the least e_fit over wa in wa_range, and a wa inside that piece."""
    d = obs.size
    r_lo, r_hi = wa_range[0] / w0, wa_range[1] / w0
    lw = np.log(wms)[:, None]
    k_max = int(np.ceil(np.log1p(r_hi * (d - 1)) / lw.min())) + 2
    ks = np.arange(k_max + 1, dtype=np.float64)
    levels = np.round(w0 * np.exp(lw * ks) / QUANTUM) * QUANTUM  # (M, K+1)
    err = np.abs(np.log(levels[:, None, :] / obs[None, :, None]))  # (M, d, K+1)
    e0 = err[:, :, 0].sum(axis=1)
    if d == 1:
        return e0 / d, np.full(wms.size, wa_range[0])
    j = np.arange(1, d, dtype=np.float64)[None, :, None]
    t = (np.exp(lw[:, :, None] * (ks[None, None, :-1] + 0.5)) - 1.0) / j  # (M, d-1, K)
    delta = err[:, 1:, 1:] - err[:, 1:, :-1]
    t, delta = t.reshape(wms.size, -1), delta.reshape(wms.size, -1)
    order = np.argsort(t, axis=1, kind="stable")
    t = np.take_along_axis(t, order, axis=1)
    total = e0[:, None] + np.cumsum(np.take_along_axis(delta, order, axis=1), axis=1)
    # piece i is [t_i, t_{i+1}) with the value after event i; piece -1 is [0, t_0)
    starts = np.concatenate([np.zeros((wms.size, 1)), t], axis=1)
    ends = np.concatenate([t, np.full((wms.size, 1), np.inf)], axis=1)
    values = np.concatenate([e0[:, None], total], axis=1)
    lo = np.maximum(starts, r_lo)
    hi = np.minimum(ends, r_hi)
    ok = (hi > lo + 1e-9 * np.maximum(1.0, lo)) | ((hi >= lo) & (r_lo == r_hi))
    values = np.where(ok, values, np.inf)
    best = np.argmin(values, axis=1)
    rows = np.arange(wms.size)
    lo, hi = lo[rows, best], hi[rows, best]
    wa = w0 * np.where(np.isfinite(hi), (lo + hi) / 2, lo + 1.0)
    return values[rows, best] / d, wa


def reference_fit(widths, ranges: dict, wm_step: float = 0.001) -> tuple[int, float, float, float]:
    """(w0, wa, wm, e_fit): every w0, every wa piece, wm on a grid of wm_step (tests only)."""
    obs = np.asarray(widths, dtype=np.float64)
    (w0_lo, w0_hi), wa_range, (wm_lo, wm_hi) = ranges["w0"], ranges["wa"], ranges["wm"]
    wms = np.arange(wm_lo, wm_hi + wm_step / 2, wm_step)
    wms = wms[(wms > 1.0) & (wms <= wm_hi)]
    w0s = np.arange(int(np.ceil(w0_lo / QUANTUM)), int(w0_hi // QUANTUM) + 1) * QUANTUM
    best = (np.inf, 0, 0.0, 0.0)
    for w0 in w0s:
        for i in range(0, wms.size, _ROWS):
            e, wa = _sweep(float(w0), wms[i : i + _ROWS], obs, wa_range)
            k = int(np.argmin(e))
            if e[k] < best[0] - 1e-12:
                best = (float(e[k]), int(w0), float(wa[k]), float(wms[i + k]))
    _, w0, wa, wm = best
    return w0, wa, wm, e_fit(obs, w0, wa, wm)
