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
from collections.abc import Callable

import numpy as np
from scipy import stats

DIVERGED_ERROR = 1.0  # a diverged network is as bad as a network can be (issue 5)
DEFAULT_M = tuple(2**k for k in range(11))  # 1, 2, 4, ..., 1024 draws
ALPHA = 0.05
# Permutations of a stratified KS test: p >= 1/2000, so 10 pairwise tests can reach q = 0.005
PERMUTATIONS = 1999
_PERM_BLOCK = 1 << 21  # labels per block of permutations (memory)
_STOP_HITS = 20  # sequential stop of a permutation test (Besag & Clifford)
_TIE = 1e-5  # D values this close count as equal (float32 sums of at most ~1e5 weights)


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


def bin_index(c: np.ndarray, lo: float, hi: float, bins: int) -> np.ndarray:
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
    k, counts = filled_bins(
        c, lo, hi, bins,
        lambda number, a, b, n_empty: f"bins: bin {number} of {bins}, complexity [{a:.6g},"
        f" {b:.6g}), holds no network ({n_empty} empty bins); use fewer bins or a narrower"
        " complexity range",
    )  # fmt: skip
    return 1.0 / (bins * counts[k])


def filled_bins(
    c: np.ndarray, lo: float, hi: float, bins: int, refuse: Callable[[int, float, float, int], str]
) -> tuple[np.ndarray, np.ndarray]:
    """Each value's bin and the count of every bin; ValueError(refuse(number from 1, lower
    edge, upper edge, how many bins are empty)) naming the first bin that holds no network."""
    k = bin_index(c, lo, hi, bins)
    counts = np.bincount(k, minlength=bins)
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        j, step = int(empty[0]), (hi - lo) / bins
        raise ValueError(refuse(j + 1, lo + j * step, lo + (j + 1) * step, int(empty.size)))
    return k, counts


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


def trend_fit(errors, complexity, bins, degree: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """(fitted, residuals) of error on bin means plus one polynomial in complexity (§6).

    The model is error = α_bin + Σ_{j<=degree} β_j z^j + ε, z the complexity scaled to
    [-1, 1], fitted by least squares on every network given: the bin means take the
    between-bin trend, the polynomial the trend inside bins, shared by all bins.
    """
    e = as_errors(errors)
    c = np.asarray(complexity, dtype=np.float64).ravel()
    k = np.asarray(bins, dtype=np.int64).ravel()
    if not e.size == c.size == k.size:
        raise ValueError(f"complexity/bins: need one per error ({e.size}, {c.size}, {k.size})")
    if e.size == 0:
        return np.zeros(0), np.zeros(0)
    _, k = np.unique(k, return_inverse=True)
    lo, hi = float(c.min()), float(c.max())
    z = 2 * (c - lo) / (hi - lo) - 1 if hi > lo else np.zeros(c.size)
    counts = np.bincount(k).astype(np.float64)

    def demean(v: np.ndarray) -> np.ndarray:  # within bins: the bin means' part of the fit
        return v - (np.bincount(k, weights=v) / counts)[k]

    x = np.column_stack([demean(z**j) for j in range(1, degree + 1)]) if degree else None
    trend = np.zeros(e.size)
    if x is not None and np.any(x):  # Frisch-Waugh: the polynomial from within-bin variation
        trend = x @ np.linalg.lstsq(x, demean(e), rcond=None)[0]
    resid = demean(e) - trend
    return e - resid, resid


def stratified_ks_test(
    errors_a,
    bins_a,
    errors_b,
    bins_b,
    reps: int = PERMUTATIONS,
    seed: int = 0,
    complexity_a=None,
    complexity_b=None,
) -> tuple[float, float]:
    """NDS-normalised KS test: (D, p) with p from permutations within bins (§6).

    Only bins that both sides hold count; each gets weight 1/K (K such bins), split equally
    among its networks on each side (NDS §4), and D = sup |F_a − F_b| of those weighted EDFs.
    Without complexities the space labels are permuted within bins: p = (1 + #{D_perm >= D})
    / (1 + reps) is exact when error is exchangeable inside a bin under the null, and too
    small when error depends on complexity and the sides spread differently inside a bin.
    With complexities (complexity_a/_b) the residuals of trend_fit (bin means plus a
    polynomial in complexity, fitted on both sides, the null model) are permuted within bins
    instead and D is recomputed on fitted + permuted residuals (Freedman & Lane 1983): not
    exact, calibrated to docs/method.md §6's table. Permutations stop at the _STOP_HITS-th
    D_perm >= D with p = hits / permutations (Besag & Clifford 1991). Seeded.
    """
    ea, eb = as_errors(errors_a), as_errors(errors_b)
    ka, kb = (np.asarray(k, dtype=np.int64).ravel() for k in (bins_a, bins_b))
    if ka.size != ea.size or kb.size != eb.size:
        raise ValueError(f"bins_a/bins_b: need one bin per error ({ea.size}, {eb.size})")
    if isinstance(reps, bool) or int(reps) != reps or reps < 1:
        raise ValueError(f"reps: need a whole number >= 1, got {reps!r}")
    adjust = complexity_a is not None or complexity_b is not None
    if adjust:
        ca, cb = (np.asarray(c, dtype=np.float64).ravel() for c in (complexity_a, complexity_b))
        if ca.size != ea.size or cb.size != eb.size:
            raise ValueError(
                f"complexity_a/complexity_b: need one per error ({ea.size}, {eb.size})"
            )
    common = np.intersect1d(ka, kb)
    if not common.size:
        return math.nan, math.nan
    in_a, in_b = np.isin(ka, common), np.isin(kb, common)
    e = np.concatenate([ea[in_a], eb[in_b]])
    k = np.searchsorted(common, np.concatenate([ka[in_a], kb[in_b]]))
    is_b = np.arange(e.size) >= int(in_a.sum())
    n_bins = common.size
    w_a = 1.0 / (n_bins * np.bincount(k[~is_b], minlength=n_bins))
    w_b = 1.0 / (n_bins * np.bincount(k[is_b], minlength=n_bins))
    rng = np.random.default_rng(seed)
    if adjust:
        c = np.concatenate([ca[in_a], cb[in_b]])
        return _residual_permutation_ks(e, c, k, is_b, w_a, w_b, int(reps), rng)
    order = np.argsort(e, kind="stable")
    e, k, is_b = e[order], k[order], is_b[order]
    ends = np.flatnonzero(np.append(e[1:] != e[:-1], True))  # F is read after each tie group
    plus, minus = w_a[k].astype(np.float32), (-w_b[k]).astype(np.float32)

    def sup_distance(labels: np.ndarray) -> np.ndarray:
        steps = np.cumsum(np.where(labels, minus, plus), axis=1)
        steps = steps if ends.size == e.size else steps[:, ends]
        return np.maximum(steps.max(axis=1), -steps.min(axis=1))

    d = float(sup_distance(is_b[None])[0])
    # permutations are drawn bin by bin (contiguous columns), then put in error order
    by_bin = np.argsort(k, kind="stable")
    to_error_order = np.argsort(by_bin, kind="stable")
    edges = np.cumsum(np.bincount(k, minlength=n_bins)) - np.bincount(k, minlength=n_bins)
    edges = np.append(edges, e.size)
    n_b = np.bincount(k[is_b], minlength=n_bins)

    def exceed(r: int) -> np.ndarray:
        labels = np.empty((r, e.size), dtype=bool)
        for j in range(n_bins):
            lo, hi = edges[j], edges[j + 1]
            u = rng.random((r, hi - lo))  # a uniform n_b-subset: the n_b smallest keys
            cut = np.partition(u, n_b[j] - 1, axis=1)[:, n_b[j] - 1 : n_b[j]]
            labels[:, lo:hi] = u <= cut
        return sup_distance(labels[:, to_error_order]) >= d - _TIE

    return d, _sequential_p(exceed, int(reps), e.size)


def _sequential_p(exceed, reps: int, n: int) -> float:
    """Permutation p from blocks of exceedances, stopped at the _STOP_HITS-th (Besag-Clifford)."""
    done, hits, block = 0, 0, 64
    while done < reps:
        r = min(block, reps - done, max(1, _PERM_BLOCK // n))
        over = np.cumsum(exceed(r))
        if hits + over[-1] >= _STOP_HITS:  # stop at the h-th exceedance, p = h/l
            return _STOP_HITS / (done + 1 + int(np.searchsorted(over, _STOP_HITS - hits)))
        hits, done, block = hits + int(over[-1]), done + r, 2 * block
    return (1 + hits) / (1 + reps)


def _residual_permutation_ks(e, c, k, is_b, w_a, w_b, reps, rng) -> tuple[float, float]:
    """(D, p) with trend_fit's residuals permuted within bins (Freedman-Lane), labels kept."""
    by_bin = np.argsort(k, kind="stable")
    e, c, k, is_b = e[by_bin], c[by_bin], k[by_bin], is_b[by_bin]
    signed = np.where(is_b, -w_b[k], w_a[k])
    fitted, resid = trend_fit(e, c, k)
    order = np.argsort(e, kind="stable")
    ends = np.flatnonzero(np.append(e[order][1:] != e[order][:-1], True))
    steps = np.cumsum(signed[order])[ends]
    d = float(max(steps.max(), -steps.min()))

    def exceed(r: int) -> np.ndarray:
        perm = np.argsort(k[None, :] + rng.random((r, e.size)), axis=1)  # within-bin shuffles
        pseudo = fitted[None, :] + resid[perm]
        steps = np.cumsum(signed[np.argsort(pseudo, axis=1)], axis=1)
        return np.maximum(steps.max(axis=1), -steps.min(axis=1)) >= d - _TIE

    return d, _sequential_p(exceed, reps, e.size)


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
