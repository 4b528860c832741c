"""search.refinement: suggested constraints and ranges, with their false-discovery control."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from test_analysis import _bowl  # errors with a known best depth

from search import refinement as R


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
    x, err = _bowl(1, n=600)
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
