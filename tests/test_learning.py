"""Did it learn? (search/spec/learning.py): chance error, the binomial test, the 10% warning."""

from __future__ import annotations

import pytest
from scipy.stats import binomtest

from search.spec.learning import (
    ALPHA,
    WARN_FRACTION,
    above_chance_p,
    chance_error,
    learned,
    not_learned_warning,
)


def test_chance_error_is_the_error_of_guessing_the_most_common_label():
    assert chance_error([0, 1, 2, 3]) == 0.75
    assert chance_error([1, 1, 1, 0]) == 0.25
    assert chance_error([]) is None


@pytest.mark.parametrize(
    ("error", "chance", "n"), [(0.85, 0.9, 288), (0.5, 0.5, 40), (0.1, 0.9, 7)]
)
def test_p_value_is_scipys_one_sided_exact_binomial_test(error, chance, n):
    correct = round((1 - error) * n)
    expected = binomtest(correct, n, 1 - chance, alternative="greater").pvalue
    assert above_chance_p(error, chance, n) == pytest.approx(expected, rel=1e-9)


def test_clearly_below_chance_depends_on_the_validation_size():
    # 10 classes, 288 validation images (digits): chance accuracy 0.1 → about 42 right needed
    assert learned(0.86, 0.9, 288) is False and learned(0.85, 0.9, 288) is True
    assert learned(0.80, 0.9, 20) is False  # 4 of 20 right could be luck
    assert learned(0.05, 0.9, 20) is True
    assert learned(0.89, 0.9, 100_000) is True  # a tiny edge is real on a huge set
    assert learned(None, 0.9, 288) is None and learned(0.5, None, 288) is None
    assert learned(0.5, 0.9, 0) is None
    assert above_chance_p(0.86, 0.9, 288) >= ALPHA > above_chance_p(0.85, 0.9, 288)


def test_warning_above_ten_percent_names_the_causes():
    assert WARN_FRACTION == 0.10
    assert not_learned_warning("A", 2, 20) is None  # exactly 10%: no warning
    text = not_learned_warning("A (1 epochs)", 3, 20)
    assert text.startswith("A (1 epochs): 3 of 20 finished trials (15%) did not learn")
    assert all(cause in text for cause in ("epochs", "learning rate", "batch"))
    assert not_learned_warning("A", 0, 0) is None
