"""search.analysis.normalize: NDS normalisation of several spaces over one range (docs/method.md §6)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from search.analysis import statistics as A
from search.analysis.normalize import DEFAULT_BINS, MIN_PER_BIN, choose_bins, ks_refusal, normalise
from search.analysis.statistics import normalized_weights


def test_default_range_is_the_overlap_and_outside_is_left_out():
    groups = {"A": np.arange(0.0, 100.0), "B": np.arange(20.0, 120.0), "C": np.zeros(0)}
    n = normalise(groups, "flops", bins=8)
    assert n.c_range == (20.0, 99.0) and n.bins == 8  # largest minimum, smallest maximum
    assert n.outside == {"A": 20, "B": 20, "C": 0}  # C has no network yet: skipped
    inside = groups["A"][n.inside["A"]]
    assert n.weights["A"] == pytest.approx(normalized_weights(inside, 8, (20.0, 99.0)))
    assert n.weights["A"].sum() == pytest.approx(1.0) and n.bin_of["A"].max() == 7


def test_bad_ranges_and_bins_are_named():
    with pytest.raises(
        ValueError, match=r"range: the spaces' acts do not overlap \(B starts at 50"
    ):
        normalise({"A": np.array([1.0, 2.0]), "B": np.array([50.0, 60.0])}, "acts")
    with pytest.raises(
        ValueError, match=r"bins: space B has no network in bin 2 of 3 \(flops \[3, 6\)"
    ):
        normalise({"A": np.arange(10.0), "B": np.array([0.0, 1.0, 9.0])}, "flops", bins=3)
    with pytest.raises(ValueError, match="range: need finite lo < hi"):
        normalise({"A": np.arange(3.0)}, "flops", c_range=(2, 1))
    with pytest.raises(ValueError, match="bins: need a whole number"):
        normalise({"A": np.arange(3.0)}, "flops", bins=2.5)
    one = normalise({"A": np.full(3, 5.0), "B": np.full(2, 5.0)}, "flops")
    assert one.bins == 1 and one.weights["B"].tolist() == [0.5, 0.5]
    assert normalise({"A": np.zeros(0)}, "flops") is None


# --- bins chosen from the data, and a test that says when it cannot be trusted (issue 21) ---


def _two_spaces(rng, n, fall=0.2, sd=0.01, shift=0.0):
    """Complexity spread differently inside wide bins; one error law given complexity."""
    ca, cb = 4 * rng.beta(1.5, 2.5, n), 4 * rng.beta(2.5, 1.5, n)
    law = lambda c: 0.3 - fall * np.log1p(c) / np.log(5.0)  # noqa: E731
    return law(ca) + rng.normal(0, sd, n), ca, law(cb) + rng.normal(0, sd, n) + shift, cb


def test_default_bins_are_the_most_that_leave_every_space_three_a_bin():
    rng = np.random.default_rng(0)
    groups = {"A": rng.uniform(0, 100, 60), "B": rng.uniform(0, 100, 90)}
    n = normalise(groups, "flops")
    assert n.auto and 1 <= n.bins <= DEFAULT_BINS
    lo, hi = n.c_range
    assert n.bins == choose_bins(n.complexity, lo, hi)
    for name in groups:  # every bin of every space holds at least MIN_PER_BIN networks
        assert np.bincount(n.bin_of[name], minlength=n.bins).min() >= MIN_PER_BIN
    fuller = [np.bincount(A.bin_index(c, lo, hi, n.bins + 1)).min() for c in n.complexity.values()]
    assert min(fuller) < MIN_PER_BIN or n.bins + 1 > DEFAULT_BINS  # one more would not do
    assert ks_refusal(n, "A", "B") is None
    # many networks: NDS' 40 bins
    big = {"A": np.linspace(0, 1, 2000), "B": np.linspace(0, 1, 1000)}
    assert normalise(big, "flops").bins == DEFAULT_BINS
    given = normalise(big, "flops", bins=10)
    assert given.bins == 10 and not given.auto


def test_the_readme_study_normalises_by_default():
    # issue 23: 16 networks a space over 1–12 M flops; NDS' 40 bins (and 8) left a bin empty
    rng = np.random.default_rng(3)
    flops = {s: np.exp(rng.uniform(np.log(1e6), np.log(12e6), 16)) for s in ("A", "E")}
    with pytest.raises(ValueError, match="no network in bin"):
        normalise(flops, "flops", bins=40)
    n = normalise(flops, "flops")
    assert 1 <= n.bins < 8 and ks_refusal(n, "A", "E") is None


def test_refusals_say_why_and_advise_only_honest_bins():
    rng = np.random.default_rng(1)
    groups = {"A": rng.uniform(0, 1, 40), "B": rng.uniform(0, 1, 40)}
    best = choose_bins({k: v[(v >= 0) & (v <= 1)] for k, v in groups.items()}, 0.0, 1.0)
    sparse = normalise(groups, "flops", bins=best + 1, c_range=(0, 1))  # no bin empty here
    reason = ks_refusal(sparse, "A", "B")
    assert re.search(r"space [AB] has [0-2] networks? in bin \d+ of " + str(best + 1), reason)
    assert f"{best} bins leave every space at least {MIN_PER_BIN} networks a bin" in reason
    with pytest.raises(ValueError, match=f"no network in bin .*; {best} bins leave every space"):
        normalise(groups, "flops", bins=200, c_range=(0, 1))
    # two networks of a space in the range: no bin count is honest, and none is advised
    few = {"A": np.array([0.0, 0.5, 1.0]), "B": np.array([0.1, 0.9])}
    n = normalise(few, "flops")
    assert n.bins == 1 and "no bin count leaves every space 3 networks" in ks_refusal(n, "A", "B")
    with pytest.raises(ValueError, match="no bin count leaves") as e:
        normalise(few, "flops", bins=3)
    assert "fewer bins" not in str(e.value)


def test_trend_fit_takes_bin_means_and_a_shared_polynomial():
    rng = np.random.default_rng(2)
    c = rng.uniform(0, 4, 300)
    k = A.bin_index(c, 0, 4, 5)
    e = np.array([0.1, 0.3, 0.2, 0.5, 0.4])[k] + 0.02 * c - 0.003 * c**2
    fitted, resid = A.trend_fit(e, c, k)
    assert np.abs(resid).max() < 1e-10 and fitted == pytest.approx(e)
    with pytest.raises(ValueError, match="complexity/bins"):
        A.trend_fit(e, c[:-1], k)


def test_adjusted_test_is_calibrated_where_the_label_permutation_is_not():
    # issue 21: 1,000 networks a space, error falling 0.2 across the range, noise sd 0.01,
    # 5 wide bins: permuting labels within bins rejects a true null far above 5%; permuting
    # the residuals of the error-vs-complexity fit stays near it (docs/method.md §6 table)
    sims, adjusted, labels = 150, 0, 0
    for i in range(sims):
        ea, ca, eb, cb = _two_spaces(np.random.default_rng(i), 1000)
        n = normalise({"a": ca, "b": cb}, "flops", bins=5)
        ia, ib, ka, kb = n.inside["a"], n.inside["b"], n.bin_of["a"], n.bin_of["b"]
        seed = 10**6 + i  # not the data's seed: the same stream would tie the two together
        adj = A.stratified_ks_test(
            ea[ia], ka, eb[ib], kb, reps=39, seed=seed, complexity_a=ca[ia], complexity_b=cb[ib]
        )
        adjusted += adj[1] <= 0.05
        labels += A.stratified_ks_test(ea[ia], ka, eb[ib], kb, reps=39, seed=seed)[1] <= 0.05
        assert adj[0] == pytest.approx(
            A.ks_statistic(ea[ia], eb[ib], n.weights["a"], n.weights["b"])
        )
    assert labels / sims > 0.25 and adjusted / sims < 0.1


def test_adjusted_test_finds_a_shift():
    hits = 0
    for i in range(40):
        ea, ca, eb, cb = _two_spaces(
            np.random.default_rng(100 + i), 300, fall=0.05, sd=0.03, shift=0.02
        )
        n = normalise({"a": ca, "b": cb}, "flops")
        ia, ib = n.inside["a"], n.inside["b"]
        p = A.stratified_ks_test(ea[ia], n.bin_of["a"], eb[ib], n.bin_of["b"], reps=99, seed=i,
                                 complexity_a=ca[ia], complexity_b=cb[ib])[1]  # fmt: skip
        hits += p <= 0.05
    assert hits >= 30


README_STUDY = {  # the README's first study (16 networks a space), trained here synthetically
    "name": "first",
    "dataset": {"name": "digits", "resolution": 16},
    "spaces": [
        {
            "preset": p,
            "stem": {"type": "cifar", "width": 16},
            "stages": 3,
            "depth": [1, 3],
            "width": [8, 64],
        }
        for p in ("AnyNetX_A", "AnyNetX_E")
    ],  # fmt: skip
    "samples": 16,
    "complexity": {"flops": [1e6, 12e6]},
    "fidelities": [2],
    "references": ["resnet20"],
    "reference_seeds": 1,
    "seed": 0,
}


def test_readme_normalised_command_works_on_the_readme_study(sqlite_url, tmp_path, capsys):
    # issue 23: `dse edf 1 --normalize flops --bins 40 --png edf.png` exited 2 on this study
    from api.cli import main
    from search.store import Store, TrialOutcome

    store = Store(sqlite_url)
    try:
        study_id = store.create_study(README_STUDY)
        rng = np.random.default_rng(0)
        while (claim := store.claim("w")) is not None:
            outcome = TrialOutcome("done", float(rng.uniform(0.1, 0.6)), seconds=1.0,
                                   images_per_s=1.0, chance_error=0.9, val_size=288)  # fmt: skip
            store.finish(claim, outcome)
    finally:
        store.close()
    png = tmp_path / "edf.png"
    argv = ["edf", str(study_id), "--db", sqlite_url, "--normalize", "flops"]
    assert main([*argv, "--png", str(png)]) == 0 and png.stat().st_size > 0
    capsys.readouterr()
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "bins chosen from the data" in out and "AnyNetX_A vs AnyNetX_E: D=" in out
    assert "refused" not in out
    assert main([*argv, "--bins", "40"]) == 2  # NDS' 40: an empty bin, and honest advice
    err = capsys.readouterr().err
    assert "no network in bin" in err and "bins leave every space at least 3" in err
