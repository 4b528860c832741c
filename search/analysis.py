"""Comparing design spaces by their error distributions (docs/method.md §6): pure functions on arrays.

Conventions shared by every function here:
- A NaN error is a diverged trial; it counts as error 1.0 (the worst possible) and summaries
  report how many there were as `n_diverged`.
- Weights are normalised to sum to 1; None means uniform weights 1/n.
- Bad *data* (empty arrays, one trial, all-equal errors, NaN) gives a defined answer (NaN
  statistics, empty EDF); bad *arguments* (negative weights, mismatched lengths, bins < 1)
  raise ValueError naming the argument.
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache

import numpy as np
from scipy import stats

DIVERGED_ERROR = 1.0  # a diverged network is as bad as a network can be (issue 5)
DEFAULT_M = tuple(2**k for k in range(11))  # 1, 2, 4, ..., 1024 draws
ALPHA = 0.05


def as_errors(errors) -> np.ndarray:
    """Errors as a float64 vector with diverged (NaN) trials set to 1.0."""
    e = np.asarray(errors, dtype=np.float64).ravel()
    return np.where(np.isnan(e), DIVERGED_ERROR, e)


def _weights(weights, n: int, name: str = "weights") -> np.ndarray:
    """Weights normalised to sum 1 (uniform when None); all-zero or negative → ValueError."""
    if weights is None:
        return np.full(n, 1.0 / n) if n else np.zeros(0)
    w = np.asarray(weights, dtype=np.float64).ravel()
    if w.size != n:
        raise ValueError(f"{name}: length {w.size} differs from the {n} errors")
    if n == 0:
        return w
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError(f"{name}: every weight must be a finite number >= 0")
    total = w.sum()
    if total <= 0:
        raise ValueError(f"{name}: weights sum to 0")
    return w / total


def _cumulative(errors, weights) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct errors and the cumulative weight up to and including each."""
    e = as_errors(errors)
    w = _weights(weights, e.size)
    if e.size == 0:
        return np.zeros(0), np.zeros(0)
    order = np.argsort(e, kind="stable")
    e, cw = e[order], np.cumsum(w[order])
    last = np.r_[e[1:] != e[:-1], True]  # the last copy of each distinct value
    return e[last], np.minimum(cw[last], 1.0)


def edf(errors, weights=None) -> tuple[np.ndarray, np.ndarray]:
    """EDF F(e) = Σ w_i 1[e_i < e] as step points: F jumps to F[k] just after x[k] (NDS §4)."""
    return _cumulative(errors, weights)


def _quantile(x: np.ndarray, cw: np.ndarray, q: float) -> float:
    """Smallest x whose cumulative weight reaches q (the inverted-CDF quantile)."""
    return float(x[min(int(np.searchsorted(cw, q - 1e-12)), x.size - 1)])


def summary(errors, weights=None) -> dict:
    """n, n_diverged, min, mean (= area above the EDF), quartiles and max, weighted if given."""
    raw = np.asarray(errors, dtype=np.float64).ravel()
    out = {"n": int(raw.size), "n_diverged": int(np.isnan(raw).sum())}
    if raw.size == 0:
        return out | dict.fromkeys(("min", "q1", "median", "q3", "mean", "max"), math.nan)
    e, w = as_errors(raw), _weights(weights, raw.size)
    x, cw = _cumulative(e, w)
    return out | {
        "min": float(x[0]),
        "q1": _quantile(x, cw, 0.25),
        "median": _quantile(x, cw, 0.5),
        "q3": _quantile(x, cw, 0.75),
        "mean": float(np.dot(w, e)),
        "max": float(x[-1]),
    }


def _bin_index(c: np.ndarray, lo: float, hi: float, bins: int) -> np.ndarray:
    """Equal-width bin of each value over [lo, hi]; hi itself falls in the last bin."""
    if hi <= lo:
        return np.zeros(c.size, dtype=np.int64)
    return np.clip(((c - lo) / (hi - lo) * bins).astype(np.int64), 0, bins - 1)


def normalized_weights(complexity, bins: int, c_range=None) -> np.ndarray:
    """NDS normalisation: B equal bins over the range, w_i = 1 / (B · count(bin(i))) (§6)."""
    c = np.asarray(complexity, dtype=np.float64).ravel()
    if isinstance(bins, bool) or int(bins) != bins or bins < 1:
        raise ValueError(f"bins: need a whole number >= 1, got {bins!r}")
    bins = int(bins)
    if c.size == 0:
        return np.zeros(0)
    if not np.all(np.isfinite(c)):
        raise ValueError("complexity: every value must be a finite number")
    lo, hi = (float(c.min()), float(c.max())) if c_range is None else map(float, c_range)
    if not lo <= hi:
        raise ValueError(f"c_range: need lo <= hi, got [{lo}, {hi}]")
    outside = int(np.sum((c < lo) | (c > hi)))
    if outside:
        raise ValueError(f"complexity: {outside} values lie outside c_range [{lo:.6g}, {hi:.6g}]")
    if hi == lo:  # one complexity value: a single bin holds everything
        return np.full(c.size, 1.0 / c.size)
    counts = np.bincount(_bin_index(c, lo, hi, bins), minlength=bins)
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        k, step = int(empty[0]), (hi - lo) / bins
        fits = max_bins([c], (lo, hi), bins)
        raise ValueError(
            f"bins: bin {k} of {bins}, complexity [{lo + k * step:.6g}, {lo + (k + 1) * step:.6g}),"
            f" holds no network ({empty.size} empty bins); use fewer bins (at most {fits} leave"
            f" none empty) or a narrower complexity range"
        )
    return 1.0 / (bins * counts[_bin_index(c, lo, hi, bins)])


def max_bins(groups, c_range, upper: int = 40) -> int:
    """The most equal bins (<= upper) over c_range leaving no bin of any group empty (>= 1)."""
    cs = [np.asarray(c, dtype=np.float64).ravel() for c in groups]
    lo, hi = map(float, c_range)
    for b in range(upper, 1, -1):
        if all(
            c.size and np.all(np.bincount(_bin_index(c, lo, hi, b), minlength=b) > 0) for c in cs
        ):
            return b
    return 1


def effective_n(weights) -> float:
    """Kish effective sample size (Σw)² / Σw² of a weighting."""
    w = np.asarray(weights, dtype=np.float64)
    s2 = float(np.dot(w, w))
    return float(w.sum() ** 2 / s2) if s2 > 0 else 0.0


def ks_statistic(a, b, weights_a=None, weights_b=None) -> float:
    """D = sup_e |F_a(e) − F_b(e)| between two (weighted) EDFs."""
    xa, fa = _cumulative(a, weights_a)
    xb, fb = _cumulative(b, weights_b)
    if xa.size == 0 or xb.size == 0:
        return math.nan
    grid = np.union1d(xa, xb)
    ca = np.r_[0.0, fa][np.searchsorted(xa, grid, side="right")]
    cb = np.r_[0.0, fb][np.searchsorted(xb, grid, side="right")]
    return float(np.max(np.abs(ca - cb)))


def ks_test(a, b, weights_a=None, weights_b=None) -> tuple[float, float]:
    """Two-sample KS (D, p); = scipy.stats.ks_2samp when unweighted.

    Weighted: D on the weighted EDFs; p from the asymptotic Kolmogorov distribution,
    p = kstwobign.sf(D·sqrt(m·n/(m+n))), with m, n the effective sample sizes (Σw)²/Σw²
    of each weighting. Either side empty → (NaN, NaN).
    """
    ea, eb = as_errors(a), as_errors(b)
    if ea.size == 0 or eb.size == 0:
        return math.nan, math.nan
    if weights_a is None and weights_b is None:
        with warnings.catch_warnings():  # "exact calculation unsuccessful → asymp" notices
            warnings.simplefilter("ignore", RuntimeWarning)
            res = stats.ks_2samp(ea, eb)
        return float(res.statistic), float(res.pvalue)
    wa, wb = _weights(weights_a, ea.size, "weights_a"), _weights(weights_b, eb.size, "weights_b")
    d = ks_statistic(ea, eb, wa, wb)
    m, n = effective_n(wa), effective_n(wb)
    return d, float(stats.kstwobign.sf(d * math.sqrt(m * n / (m + n))))


def bootstrap_best_draws(errors, frac: float = 0.25, reps: int = 10_000, seed: int = 0):
    """Index of the lowest-error network in each of `reps` bootstrap draws (DDS §3.2).

    A draw picks m = round(frac·n) networks with replacement and keeps the best. The best of
    such a draw is the network of sorted position k with the exact probability
    ((n−k)/n)^m − ((n−k−1)/n)^m, so the draws are sampled from that law directly: the same
    distribution as resampling, in O(reps) instead of O(reps·m). Ties (common: validation
    errors are multiples of 1/n_val) go to a uniformly random member of the tied group, as
    the first-drawn of them would in resampling.
    """
    e = as_errors(errors)
    n = e.size
    if not 0 < frac <= 1:
        raise ValueError(f"frac: need 0 < frac <= 1, got {frac}")
    if reps < 1:
        raise ValueError(f"reps: need at least 1, got {reps}")
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    m = max(1, round(frac * n))
    order = np.argsort(e, kind="stable")
    e_sorted = e[order]
    survive = ((n - np.arange(n + 1)) / n) ** m  # P(best sorted position >= k)
    cdf = 1.0 - survive[1:]
    rng = np.random.default_rng(seed)
    u, v = rng.random(reps), rng.random(reps)
    pos = np.minimum(np.searchsorted(cdf, u, side="right"), n - 1)
    start = np.searchsorted(e_sorted, e_sorted[pos], side="left")
    end = np.searchsorted(e_sorted, e_sorted[pos], side="right")
    return order[start + (v * (end - start)).astype(np.int64)]


def best_range(x, draws) -> tuple[float, float, float]:
    """(2.5%, 50%, 97.5%) of x over bootstrap winners `draws` (indices); NaN x are skipped.

    Inverted-CDF percentiles (the ends are values that were sampled), computed from how often
    each network won: equal to np.percentile(x[draws], method="inverted_cdf"), but O(n).
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    wins = np.bincount(np.asarray(draws, dtype=np.int64), minlength=x.size)[: x.size]
    ok = np.isfinite(x) & (wins > 0)
    if not ok.any():
        return math.nan, math.nan, math.nan
    v, c = x[ok], wins[ok]
    order = np.argsort(v, kind="stable")
    v, cw = v[order], np.cumsum(c[order])
    pos = np.searchsorted(cw, np.array([0.025, 0.5, 0.975]) * cw[-1], side="left")
    lo, med, hi = v[np.minimum(pos, v.size - 1)]
    return float(lo), float(med), float(hi)


def bootstrap_best_range(x, errors, frac=0.25, reps=10_000, seed=0) -> tuple[float, float, float]:
    """DDS empirical bootstrap of the best value of x: (lo, median, hi) of a 95% interval."""
    xs = np.asarray(x, dtype=np.float64).ravel()
    e = as_errors(errors)
    if xs.size != e.size:
        raise ValueError(f"x: length {xs.size} differs from the {e.size} errors")
    keep = np.isfinite(xs)
    return best_range(xs[keep], bootstrap_best_draws(e[keep], frac, reps, seed))


def rank_correlation(errors_low, errors_high) -> tuple[float, float]:
    """(Spearman ρ, Kendall τ) between two fidelities' errors of the same networks."""
    lo, hi = as_errors(errors_low), as_errors(errors_high)
    if lo.size != hi.size:
        raise ValueError(f"errors_high: length {hi.size} differs from errors_low's {lo.size}")
    if lo.size < 2 or np.all(lo == lo[0]) or np.all(hi == hi[0]):
        return math.nan, math.nan  # undefined for fewer than two networks or no spread
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(stats.spearmanr(lo, hi)[0]), float(stats.kendalltau(lo, hi)[0])


def random_search_efficiency(errors, weights=None, m_values=DEFAULT_M) -> np.ndarray:
    """Expected min error of m i.i.d. draws from the (weighted) EDF, per m (NDS §4).

    With distinct sorted values v_j and S_j = P(e >= v_j): E[min] = Σ_j v_j (S_j^m − S_{j+1}^m).
    """
    m = np.asarray(m_values, dtype=np.float64).ravel()
    if np.any(m < 1):
        raise ValueError("m_values: every m must be >= 1")
    x, cw = _cumulative(errors, weights)
    if x.size == 0:
        return np.full(m.size, math.nan)
    s = np.clip(1.0 - np.r_[0.0, cw[:-1]], 0.0, 1.0)  # P(e >= x_j)
    s_next = np.r_[s[1:], 0.0]
    return (s[None, :] ** m[:, None] - s_next[None, :] ** m[:, None]) @ x


def dkw_band(n: float, alpha: float = ALPHA) -> float:
    """DKW half-width ε = sqrt(log(2/α) / (2n)): P(sup|F̂ − F| > ε) <= α (inf for n = 0)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha: need 0 < alpha < 1, got {alpha}")
    return math.sqrt(math.log(2.0 / alpha) / (2.0 * n)) if n > 0 else math.inf


@lru_cache(maxsize=4096)
def _fit(widths: tuple[int, ...]) -> tuple[int, float, float, float]:
    """fit_regnet memoised by widths (it is a pure function and costs ~0.1 s)."""
    from anynet.regnet import fit_regnet

    return fit_regnet(list(widths))


def fit_top_regnet(block_widths_list, errors, k: int = 3) -> dict | None:
    """Fit a RegNet (DDS §3.3) to each of the k lowest-error networks; the best fit wins.

    Returns {index, error, depth, w0, wa, wm, e_fit, mean_e_fit, k} (index into the list,
    so the caller can take group width, bottleneck and SE from that network), or None.
    """
    e = as_errors(errors)
    if len(block_widths_list) != e.size:
        raise ValueError(f"block_widths_list: {len(block_widths_list)} networks, {e.size} errors")
    fits = []
    for i in np.argsort(e, kind="stable")[: max(0, int(k))]:
        widths = tuple(int(w) for w in block_widths_list[i])
        if widths:
            fits.append((int(i), widths, _fit(widths)))
    if not fits:
        return None
    i, widths, (w0, wa, wm, e_fit) = min(fits, key=lambda f: (f[2][3], e[f[0]]))
    return {
        "index": i,
        "error": float(e[i]),
        "depth": len(widths),
        "w0": int(w0),
        "wa": float(wa),
        "wm": float(wm),
        "e_fit": float(e_fit),
        "mean_e_fit": float(np.mean([f[2][3] for f in fits])),
        "k": len(fits),
    }
