"""search.analysis.suggestions: suggested constraints and ranges, with their false-discovery control."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from search.analysis import suggestions as R
from testkit.synthetic import bowl  # errors with a known best depth


def test_no_networks_no_suggestions():
    assert R.refinement_suggestions({"A": {"errors": []}}) == []


def test_refinement_between_spaces_and_within_one():
    rng = np.random.default_rng(0)
    base = ("res_bottleneck", False)
    c_spaces = {
        "C": {
            "errors": rng.normal(0.35, 0.05, 300),
            "constraints": {"shared_bottleneck", "shared_group_width"},
            "base": base,
        },
        "D": {
            "errors": rng.normal(0.30, 0.05, 300),
            "constraints": {"shared_bottleneck", "shared_group_width", "increasing_width"},
            "base": base,
        },
    }
    rows = R.refinement_suggestions(c_spaces, reps=2000)
    cd = [r for r in rows if r["space"] == "C" and r["constraint"] == "increasing_width"]
    assert cd[0]["evidence"] == "spaces" and cd[0]["verdict"] == "better"
    assert cd[0]["p"] < 1e-6 and "C → D" in cd[0]["text"] and "KS D=" in cd[0]["text"]
    # within one space: networks meeting the constraint are better, depth has a known best
    x, err = bowl(1, n=600)
    inc = rng.random(600) < 0.3
    err = err - 0.05 * inc
    rows = R.refinement_suggestions(
        {"A": {"errors": err, "satisfies": {"increasing_width": inc}, "params": {"depth": x}}},
        reps=2000,
    )
    sub = next(r for r in rows if r.get("constraint") == "increasing_width")
    assert sub["evidence"] == "subset" and sub["verdict"] == "better"
    assert sub["fraction"] == pytest.approx(inc.mean())
    rng_row = next(r for r in rows if r["kind"] == "range")
    assert rng_row["lo"] <= 20 <= rng_row["hi"] and "depth" in rng_row["text"]
    assert rng_row["verdict"] == "better"  # inside the interval beats outside


def test_benjamini_hochberg_matches_scipy_and_hand_worked():
    q = R.benjamini_hochberg([0.01, 0.04, 0.03, 0.5])
    assert q.tolist() == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.5])
    p = np.random.default_rng(0).random(50) ** 2
    assert R.benjamini_hochberg(p) == pytest.approx(stats.false_discovery_control(p))
    assert np.isnan(R.benjamini_hochberg([0.1, float("nan")])[1])


def test_refinement_claims_nothing_when_nothing_matters():
    rng = np.random.default_rng(11)
    n = 800
    params = {f"p{j}": rng.integers(1, 17, n).astype(float) for j in range(12)}
    masks = {c: rng.random(n) < 0.4 for c in R.CONSTRAINTS[:4]}
    rows = R.refinement_suggestions(
        {"A": {"errors": rng.normal(0.3, 0.05, n), "params": params, "satisfies": masks}},
        reps=2000,
    )
    verdicts = [r["verdict"] for r in rows if "verdict" in r]
    assert len(verdicts) >= 4 and set(verdicts) == {"no detectable difference"}
    assert all("q=" in r["text"] for r in rows if "verdict" in r)


def test_subset_evidence_is_whole_space_against_the_subset():
    # DDS compares the whole space with the constrained one: D is whole vs subset, and its
    # test (subset vs the rest) has D_rest = D_whole / (1 - k/n) unweighted
    rng = np.random.default_rng(3)
    e = rng.normal(0.3, 0.05, 400)
    mask = rng.random(400) < 0.3
    e[mask] -= 0.03
    (row,) = [
        r
        for r in R.refinement_suggestions(
            {"A": {"errors": e, "satisfies": {"increasing_width": mask}}}, reps=500
        )
        if r.get("constraint") == "increasing_width"
    ]
    d_whole, _ = stats.ks_2samp(e, e[mask])[:2]
    d_rest, p_rest = stats.ks_2samp(e[~mask], e[mask])[:2]
    assert row["D"] == pytest.approx(d_whole) == pytest.approx(d_rest * (1 - mask.mean()))
    assert row["p"] == pytest.approx(p_rest) and row["mean_without"] == pytest.approx(e.mean())
    assert "all of A" in row["text"] and "within-space tests" in row["text"]


def test_space_rows_reuse_the_pairwise_ks_table():
    rng = np.random.default_rng(4)
    base = ("res_bottleneck", False)
    spaces = {
        "C": {"errors": rng.normal(0.35, 0.05, 60), "constraints": {"x"}, "base": base},
        "D": {
            "errors": rng.normal(0.33, 0.05, 60),
            "constraints": {"x", "increasing_width"},
            "base": base,
        },
    }
    table = {("C", "D"): {"D": 0.2, "p": 0.004, "q": 0.008}}
    rows = R.refinement_suggestions(spaces, reps=500, pairwise=table)
    (cd,) = [r for r in rows if r.get("with") == "D"]
    assert (cd["D"], cd["p"], cd["q"]) == (0.2, 0.004, 0.008) and cd["verdict"] == "better"
    assert "1 pairwise space comparisons of the KS table" in cd["text"]


def test_normalised_refinement_uses_the_stratified_test():
    # with NDS bins, subset evidence is the within-bin permutation test (seeded); with the
    # networks' complexity too, residuals of the error-vs-complexity fit are permuted
    # (docs/method.md §6)
    rng = np.random.default_rng(5)
    n = 300
    bins = rng.integers(0, 5, n)
    e = 0.4 - 0.02 * bins + rng.normal(0, 0.03, n)  # error falls with complexity
    # the constraint is met mostly by complex networks, and has no effect given the bin
    mask = rng.random(n) < np.where(bins >= 3, 0.7, 0.1)
    s = {"errors": e, "bins": bins, "weights": 1.0 / (5 * np.bincount(bins)[bins])}
    rows = R.refinement_suggestions({"A": s | {"satisfies": {"increasing_width": mask}}}, reps=500)
    (row,) = [r for r in rows if r.get("constraint") == "increasing_width"]
    from search.analysis.statistics import stratified_ks_test

    assert row["p"] == stratified_ks_test(e[~mask], bins[~mask], e[mask], bins[mask])[1]
    assert row["verdict"] == "no detectable difference"
    c = bins + rng.random(n)  # complexity inside the bins: error does not depend on it there
    adjusted = R.refinement_suggestions(
        {"A": s | {"complexity": c, "satisfies": {"increasing_width": mask}}}, reps=500
    )
    (row,) = [r for r in adjusted if r.get("constraint") == "increasing_width"]
    test = stratified_ks_test(
        e[~mask], bins[~mask], e[mask], bins[mask], complexity_a=c[~mask], complexity_b=c[mask]
    )
    assert row["p"] == test[1] != stratified_ks_test(e[~mask], bins[~mask], e[mask], bins[mask])[1]
    plain = R.refinement_suggestions(
        {"A": {"errors": e, "satisfies": {"increasing_width": mask}}}, reps=500
    )
    assert next(r for r in plain if r.get("constraint") == "increasing_width")["p"] < 1e-6
    apart = R.refinement_suggestions(
        {"A": s | {"satisfies": {"increasing_width": bins >= 3}}}, reps=500
    )  # subset and rest share no bin: said, not tested
    row = next(r for r in apart if r.get("constraint") == "increasing_width")
    assert row["evidence"] == "none" and "no complexity bin holds" in row["text"]
