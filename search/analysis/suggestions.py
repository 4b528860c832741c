"""Refinement: what a study's errors say about the next constraint or range (DDS §3).

Pure functions over the per-space arrays that search.analysis.results gathers; the statistics
come from search.analysis.statistics (means, KS tests, permutation tests, bootstrap best
ranges). How a constraint or a range is judged, and which tests form one Benjamini–Hochberg
family, is docs/method.md §6 ("Refinement", "Multiple tests"): space-vs-space rows reuse the
study's pairwise KS table, so the page and `dse edf` agree; with NDS normalisation (`bins`
given) the tests are search.analysis.statistics.stratified_ks_test, complexity-adjusted
where `complexity` is given.
"""

from __future__ import annotations

import math

import numpy as np

from search.analysis.statistics import (
    ALPHA,
    as_errors,
    best_range,
    bootstrap_best_draws,
    ks_statistic,
    ks_test,
    stratified_ks_test,
    summary,
)

_CONSTRAINT_WORDS = {  # the constraints a user could add next (DDS §3.2), in plain words
    "shared_bottleneck": "a shared bottleneck multiplier",
    "shared_group_width": "a shared group width",
    "increasing_width": "increasing widths",
    "increasing_depth": "increasing depths",
    "regnet": "the RegNet (linear, quantised widths) parametrisation",
}
CONSTRAINTS = tuple(_CONSTRAINT_WORDS)
_MIN_SUBSET = 5  # fewer networks on one side of a split say nothing


def _mean(errors, weights) -> float:
    return summary(errors, weights)["mean"]


def _bin_weights(bins: np.ndarray) -> np.ndarray:
    """NDS weights of networks by bin: every bin held weighs the same (NDS §4)."""
    _, k, counts = np.unique(bins, return_inverse=True, return_counts=True)
    return 1.0 / (counts.size * counts[k])


def _test(e_a, k_a, e_b, k_b, seed: int, c_a=None, c_b=None) -> tuple[float, float]:
    """(D, p) of a vs b: stratified KS with bins (adjusted given complexities), else plain KS."""
    if k_a is None:
        return ks_test(e_a, e_b)
    if c_a is None or c_b is None:
        c_a = c_b = None
    return stratified_ks_test(e_a, k_a, e_b, k_b, seed=seed, complexity_a=c_a, complexity_b=c_b)


def _compare_subset(s: dict, mask: np.ndarray, words: tuple, seed: int) -> dict:
    """Whole space vs its subset `mask` (DDS): D of whole vs subset, p of subset vs rest."""
    e, w, k, c = s["errors"], s.get("weights"), s.get("bins"), s.get("complexity")
    sub = (lambda a: None) if k is None else (lambda a: np.asarray(k)[a])
    cs = (lambda a: None) if c is None or k is None else (lambda a: np.asarray(c)[a])
    _, p = _test(e[~mask], sub(~mask), e[mask], sub(mask), seed, cs(~mask), cs(mask))
    if not np.isfinite(p):  # normalised, and no complexity bin holds networks of both sides
        text = "no complexity bin holds networks of both sides, so they cannot be compared"
        return {"evidence": "none", "text": f"{words[0]}{text} at equal complexity."}
    w_sub = None if k is None else _bin_weights(np.asarray(k)[mask])
    d = ks_statistic(e, e[mask], w, w_sub)
    return {"D": d, "p": p, "mean_without": _mean(e, w), "mean_with": _mean(e[mask], w_sub)} | {
        "_words": words
    }


def _say(row: dict) -> str:
    """One sentence on a comparison: which side is better, by how much, how sure."""
    head, with_, without, n_with, n_without, tail = row.pop("_words")
    nums = (
        f"mean error {row['mean_with']:.4f} ({with_}, n={n_with}) vs {row['mean_without']:.4f}"
        f" ({without}, n={n_without}); KS D={row['D']:.3f}, p={row['p']:.3g},"
        f" q={row['q']:.3g} {row['family']}"
    )
    if row["verdict"] == "no detectable difference":
        return f"{head}no detectable difference (q >= {ALPHA}): {nums}{tail}."
    return f"{head}{with_} is {row['verdict']}: {nums}{tail}."


def benjamini_hochberg(p) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (q); NaN stays NaN and is not counted."""
    p = np.asarray(p, dtype=np.float64)
    q = np.full(p.shape, math.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if ok.size:
        order = ok[np.argsort(p[ok], kind="stable")]
        ranked = p[order] * ok.size / np.arange(1, ok.size + 1)
        q[order] = np.minimum(1.0, np.minimum.accumulate(ranked[::-1])[::-1])
    return q


def _pair(pairwise: dict, a: str, b: str) -> dict | None:
    """The KS-table row of spaces a and b, in either order."""
    return pairwise.get((a, b)) or pairwise.get((b, a))


def _constraint_suggestions(name: str, spaces: dict, pairwise: dict, seed: int) -> list[dict]:
    s = spaces[name]
    out = []
    have = set(s.get("constraints", ()))
    for c in CONSTRAINTS:
        if c in have:
            continue
        words = _CONSTRAINT_WORDS[c]
        twins = [
            t
            for t, v in spaces.items()
            if set(v.get("constraints", ())) == have | {c} and v.get("base") == s.get("base")
        ]
        row = {"space": name, "kind": "constraint", "constraint": c}
        if twins and spaces[twins[0]]["errors"].size:
            t, e, te = twins[0], s["errors"], spaces[twins[0]]["errors"]
            head = f"Adding {words} to {name} ({name} → {t}): "
            cmp = {
                "mean_without": _mean(e, s.get("weights")),
                "mean_with": _mean(te, spaces[t].get("weights")),
                "_words": (head, t, name, te.size, e.size, ""),
            }
            known = _pair(pairwise, name, t)
            if known is not None:  # the KS table's own test and q (one family, one answer)
                cmp |= {"D": known["D"], "p": known["p"], "q": known["q"], "_family": "pairwise"}
            else:
                d, p = _test(
                    e,
                    s.get("bins"),
                    te,
                    spaces[t].get("bins"),
                    seed,
                    s.get("complexity"),
                    spaces[t].get("complexity"),
                )
                cmp |= {"D": d, "p": p}
            out.append(row | cmp | {"evidence": "spaces", "with": t})
            continue
        mask = s.get("satisfies", {}).get(c)
        if mask is None:
            continue
        mask = np.asarray(mask, dtype=bool)
        k, n = int(mask.sum()), mask.size
        if min(k, n - k) < _MIN_SUBSET:
            text = (
                f"{k} of {n} networks of {name} have {words}: too few on one side"
                f" (< {_MIN_SUBSET}) to judge adding it."
            )
            out.append(
                row | {"evidence": "none", "fraction": k / n if n else math.nan, "text": text}
            )
            continue
        head = f"{k} of {n} networks of {name} ({k / n:.0%}) have {words}; "
        words_ = (head, f"those with {words}", f"all of {name}", k, n, "")
        cmp = _compare_subset(s, mask, words_, seed)
        out.append(row | {"evidence": "subset", "fraction": k / n} | cmp)
    return out


def _range_suggestions(name: str, s: dict, frac: float, reps: int, seed: int) -> list[dict]:
    out = []
    e, k, c = s["errors"], s.get("bins"), s.get("complexity")
    draws = bootstrap_best_draws(e, frac, reps, seed)
    # Held-out check: an interval chosen on one random half, tested on the other, so the
    # KS p-value is not flattered by having picked the interval on the same networks.
    half = np.random.default_rng(seed).random(e.size) < 0.5
    fit_idx, test_idx = np.flatnonzero(half), np.flatnonzero(~half)
    fit_draws = fit_idx[bootstrap_best_draws(e[fit_idx], frac, reps, seed)] if fit_idx.size else []
    held = {
        "errors": e[test_idx],
        "weights": None if k is None else _bin_weights(np.asarray(k)[test_idx]),
        "bins": None if k is None else np.asarray(k)[test_idx],
        "complexity": None if c is None else np.asarray(c)[test_idx],
    }
    for param, x in s.get("params", {}).items():
        x = np.asarray(x, dtype=np.float64)
        if np.isfinite(x).sum() < 2 or np.nanmin(x) == np.nanmax(x):
            continue
        lo, med, hi = best_range(x, draws)
        xmin, xmax = float(np.nanmin(x)), float(np.nanmax(x))
        row = {"space": name, "kind": "range", "param": param, "lo": lo, "median": med, "hi": hi}
        narrows = bool((hi - lo) <= 0.5 * (xmax - xmin))  # else too wide to suggest
        row |= {"observed": [xmin, xmax], "evidence": "bootstrap", "narrows": narrows}
        head = (
            f"{name}: best {param} ≈ {med:.4g} (95% bootstrap interval [{lo:.4g}, {hi:.4g}]"
            f" of the sampled [{xmin:.4g}, {xmax:.4g}])"
        )
        if not narrows:
            out.append(row | {"text": head + "; too wide to suggest a narrower range."})
            continue
        flo, _, fhi = best_range(x, fit_draws)
        xt = x[test_idx]
        inside = (xt >= flo) & (xt <= fhi)
        outside = np.isfinite(xt) & ~inside
        if min(inside.sum(), outside.sum()) < _MIN_SUBSET:
            text = "; too few held-out networks on one side to test narrowing it."
            out.append(row | {"text": head + text})
            continue
        head += f"; narrowing {param} to it, held-out check on half the networks: "
        known = np.isfinite(xt)
        part = {key: (v[known] if v is not None else None) for key, v in held.items()}
        words = (head, "inside", "the held-out half", int(inside.sum()), int(known.sum()), "")
        out.append(row | _compare_subset(part, inside[known], words, seed))
    return out


def refinement_suggestions(
    spaces: dict[str, dict], frac=0.25, reps=10_000, seed=0, pairwise: dict | None = None
) -> list:
    """What the data say about each constraint a user could add next and each best range.

    spaces[name] holds arrays: errors, weights, bins and complexity (NDS normalisation; or
    None), params
    {name: x}, satisfies {constraint: bool mask of networks that meet it}, and constraints
    (names the space already has) plus base (what must match for two spaces to differ only
    by constraints). Constraint evidence: the whole space against another space that differs
    by exactly that constraint (its row of `pairwise`, {(a, b): {D, p, q}}, the study's KS
    table, when given), else against the subset of its networks that meet it. Range
    evidence: the DDS bootstrap of the best value, plus the whole held-out half against its
    networks inside an interval found on the other half. Verdicts use Benjamini–Hochberg
    q-values: the pairwise table's for space-vs-space rows, and over every within-space test
    of the call for the rest (many tests at α = 0.05 would otherwise find effects by chance).
    """
    spaces = {k: v | {"errors": as_errors(v.get("errors", ()))} for k, v in spaces.items()}
    pairwise = pairwise or {}
    out = []
    for name, s in spaces.items():
        if s["errors"].size:
            out += _constraint_suggestions(name, spaces, pairwise, seed)
            out += _range_suggestions(name, s, frac, reps, seed)
    tested = [r for r in out if "_words" in r and "_family" not in r]
    for r, q in zip(tested, benjamini_hochberg([r["p"] for r in tested]), strict=True):
        r["q"] = float(q)
    n_pairs = len(pairwise)
    for r in out:
        if "_words" not in r:
            continue
        if r.pop("_family", None) == "pairwise":
            r["family"] = f"(over the {n_pairs} pairwise space comparisons of the KS table)"
        else:
            r["family"] = f"(over the {len(tested)} within-space tests)"
        better = r["mean_with"] < r["mean_without"]
        r["verdict"] = (
            "no detectable difference" if not r["q"] < ALPHA else ("better" if better else "worse")
        )
        r["text"] = _say(r)
    return out
