"""Synthetic errors with known answers, for the statistics and suggestion tests."""

from __future__ import annotations

import numpy as np


def bowl(seed, n=1000, best=20.0):
    """(x, err): n depths in [4, 60) whose error is a noisy parabola lowest at `best`."""
    rng = np.random.default_rng(seed)
    x = rng.integers(4, 60, n).astype(float)
    err = 0.2 + 0.0004 * (x - best) ** 2 + rng.normal(0, 0.02, n)
    return x, err
