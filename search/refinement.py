"""Refinement: what a study's errors say about the next constraint or range (DDS §3).

Pure functions over the per-space arrays that search.results gathers; the statistics come
from search.analysis (means, KS tests, bootstrap best ranges).
"""

from __future__ import annotations

import math

import numpy as np

from search.analysis import ALPHA, as_errors, best_range, bootstrap_best_draws, ks_test, summary

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


def _subset_weights(weights, mask):
    return None if weights is None else np.asarray(weights, dtype=np.float64)[mask]


def _compare(e_a, w_a, e_b, w_b, words: tuple) -> dict:
    """KS and mean errors of a (without) vs b (with); `words` phrase it once p is adjusted."""
    d, p = ks_test(e_a, e_b, w_a, w_b)
    ma, mb = _mean(e_a, w_a), _mean(e_b, w_b)
    return {"D": d, "p": p, "mean_without": ma, "mean_with": mb, "_words": words}


def _say(row: dict) -> str:
    """One sentence on a comparison: which side is better, by how much, how sure."""
    head, with_, without, n_with, n_without, tail = row.pop("_words")
    nums = (
        f"mean error {row['mean_with']:.4f} ({with_}, n={n_with}) vs {row['mean_without']:.4f}"
        f" ({without}, n={n_without}); KS D={row['D']:.3f}, p={row['p']:.3g},"
        f" q={row['q']:.3g}"
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


def _constraint_suggestions(name: str, spaces: dict) -> list[dict]:
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
            cmp = _compare(
                e,
                s.get("weights"),
                te,
                spaces[t].get("weights"),
                (head, t, name, te.size, e.size, ""),
            )
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
        w, e = s.get("weights"), s["errors"]
        head = f"{k} of {n} networks of {name} ({k / n:.0%}) have {words}; "
        words_ = (head, f"those with {words}", "the others", k, n - k, "")
        cmp = _compare(
            e[~mask], _subset_weights(w, ~mask), e[mask], _subset_weights(w, mask), words_
        )
        out.append(row | cmp | {"evidence": "subset", "fraction": k / n})
    return out


def _range_suggestions(name: str, s: dict, frac: float, reps: int, seed: int) -> list[dict]:
    out = []
    e, w = s["errors"], s.get("weights")
    draws = bootstrap_best_draws(e, frac, reps, seed)
    # Held-out check: an interval chosen on one random half, tested on the other, so the
    # KS p-value is not flattered by having picked the interval on the same networks.
    half = np.random.default_rng(seed).random(e.size) < 0.5
    fit_idx, test_idx = np.flatnonzero(half), np.flatnonzero(~half)
    fit_draws = fit_idx[bootstrap_best_draws(e[fit_idx], frac, reps, seed)] if fit_idx.size else []
    for param, x in s.get("params", {}).items():
        x = np.asarray(x, dtype=np.float64)
        if np.isfinite(x).sum() < 2 or np.nanmin(x) == np.nanmax(x):
            continue
        lo, med, hi = best_range(x, draws)
        xmin, xmax = float(np.nanmin(x)), float(np.nanmax(x))
        row = {"space": name, "kind": "range", "param": param, "lo": lo, "median": med, "hi": hi}
        row |= {"observed": [xmin, xmax], "evidence": "bootstrap"}
        head = (
            f"{name}: best {param} ≈ {med:.4g} (95% bootstrap interval [{lo:.4g}, {hi:.4g}]"
            f" of the sampled [{xmin:.4g}, {xmax:.4g}])"
        )
        if (hi - lo) > 0.5 * (xmax - xmin):
            out.append(row | {"text": head + "; too wide to suggest a narrower range."})
            continue
        flo, _, fhi = best_range(x, fit_draws)
        xt, et = x[test_idx], e[test_idx]
        wt = _subset_weights(w, test_idx)
        inside, outside = (xt >= flo) & (xt <= fhi), np.isfinite(xt) & ~((xt >= flo) & (xt <= fhi))
        if min(inside.sum(), outside.sum()) < _MIN_SUBSET:
            text = "; too few held-out networks on one side to test narrowing it."
            out.append(row | {"text": head + text})
            continue
        head += f"; narrowing {param} to it, held-out check on half the networks: "
        words = (head, "inside", "outside", int(inside.sum()), int(outside.sum()), "")
        wi, wo = _subset_weights(wt, inside), _subset_weights(wt, outside)
        out.append(row | _compare(et[outside], wo, et[inside], wi, words))
    return out


def refinement_suggestions(spaces: dict[str, dict], frac=0.25, reps=10_000, seed=0) -> list:
    """What the data say about each constraint a user could add next and each best range.

    spaces[name] holds arrays: errors, weights (or None), params {name: x}, satisfies
    {constraint: bool mask of networks that meet it}, and constraints (names the space
    already has) plus base (what must match for two spaces to differ only by constraints).
    Constraint evidence: KS between spaces that differ by exactly that constraint, else KS
    between the networks of one space that meet it and those that do not. Range evidence:
    the DDS bootstrap of the best value, plus KS inside vs outside an interval found on a
    random half and tested on the other half. Verdicts use Benjamini–Hochberg q-values over
    every test of the call (many tests at α = 0.05 would otherwise find effects by chance).
    """
    spaces = {k: v | {"errors": as_errors(v.get("errors", ()))} for k, v in spaces.items()}
    out = []
    for name, s in spaces.items():
        if s["errors"].size:
            out += _constraint_suggestions(name, spaces)
            out += _range_suggestions(name, s, frac, reps, seed)
    tested = [r for r in out if "_words" in r]
    for r, q in zip(tested, benjamini_hochberg([r["p"] for r in tested]), strict=True):
        r["q"] = float(q)
        better = r["mean_with"] < r["mean_without"]
        r["verdict"] = (
            "no detectable difference" if not q < ALPHA else ("better" if better else "worse")
        )
        r["text"] = _say(r)
    return out
