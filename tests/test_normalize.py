"""search.normalize: NDS normalisation of several spaces over one range (docs/method.md §6)."""

from __future__ import annotations

import numpy as np
import pytest

from search.analysis import normalized_weights
from search.normalize import normalise


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
