"""Rounding rules, once: group compatibility (pycls, torchvision, clamp) and make_divisible.

Every function here takes Python numbers or numpy arrays (one value per candidate of a
sampler batch) and gives the same values either way, so `regnet`, the NetSpec rules and the
sampler's vectorised draws share one definition (docs/method.md §3).
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np


class Rounding(StrEnum):
    """How a width is made compatible with its group width (docs/method.md §3).

    pycls and torchvision are the RegNet rules of those libraries; clamp (design spaces
    only) keeps the width and clamps the group width to the inner width, rejecting a
    network whose inner width does not divide into the groups.
    """

    PYCLS = "pycls"
    TORCHVISION = "torchvision"
    CLAMP = "clamp"


ROUNDINGS: tuple[str, ...] = tuple(r.value for r in Rounding)
REGNET_ROUNDINGS: tuple[str, ...] = (Rounding.PYCLS.value, Rounding.TORCHVISION.value)


def inner_width(width, multiplier):
    """Inner width of a bottleneck: round(w x b), half to even (pycls; docs/method.md §1)."""
    if isinstance(width, np.ndarray) or isinstance(multiplier, np.ndarray):
        return np.round(np.multiply(width, multiplier)).astype(np.int64)
    return int(round(width * multiplier))


def groups_of(inner, group_width):
    """Groups of the grouped conv: inner width // group width, at least 1 (pycls)."""
    if isinstance(inner, np.ndarray) or isinstance(group_width, np.ndarray):
        return np.maximum(1, inner // group_width)
    return max(1, inner // group_width)


def make_divisible(v, divisor, min_value=None):
    """Nearest multiple of `divisor` >= min_value, never more than 10% below v.

    torchvision.models._utils._make_divisible (from the TF MobileNet code): EfficientNet and
    MobileNet round channels with it, and torchvision's RegNet group rule is this with the
    group width as divisor (docs/method.md §3).
    """
    if min_value is None:
        min_value = divisor
    if isinstance(v, np.ndarray) or isinstance(divisor, np.ndarray):
        new = np.maximum(min_value, np.floor(v + divisor / 2).astype(np.int64) // divisor * divisor)
        return np.where(new < 0.9 * v, new + divisor, new)
    new = max(min_value, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def group_rule(widths, multipliers, group_widths, rounding):
    """Group compatibility over arrays: (widths, group widths, ok) (docs/method.md §3).

    ok is False where the rule has no network: torchvision refuses an inner width int(w·b)
    of 0; clamp needs round(w·b) >= 1 and divisible by the clamped group width.
    """
    w = np.asarray(widths, np.int64)
    g = np.asarray(group_widths, np.int64)
    m = np.asarray(multipliers, np.float64)
    with np.errstate(all="ignore"):
        if rounding == Rounding.CLAMP:
            v = inner_width(w, m)
            g = np.minimum(g, np.maximum(v, 1))
            return w, g, (v >= 1) & (v % g == 0)
        if rounding == Rounding.PYCLS:
            # pycls adjust_block_compatibility: v = int(w·b); g = min(g, v); q = lcm(g, b) for
            # a whole b > 1, else g; v = max(q, round(v/q)·q) half to even; w = int(v/b).
            v = np.floor(np.maximum(1.0, w * m)).astype(np.int64)
            g = np.minimum(g, v)
            whole = (m > 1) & (m == np.floor(m))
            q = np.where(whole, np.lcm(g, np.floor(m).astype(np.int64)), g)
            v = np.maximum(q, (np.round(v / q) * q).astype(np.int64))
            return np.floor(v / m).astype(np.int64), g, np.ones(w.shape, bool)
        if rounding == Rounding.TORCHVISION:
            # torchvision BlockParams: v = int(w·b); g = min(g, v); v = _make_divisible(v, g)
            v = np.floor(w * m).astype(np.int64)
            ok = v >= 1
            g = np.minimum(g, np.maximum(v, 1))
            return np.floor(make_divisible(v, g) / m).astype(np.int64), g, ok
    raise ValueError(f"rounding: must be one of {', '.join(ROUNDINGS)}, got {rounding!r}")


def split_width(width, weights):
    """Branch widths that share `width` by integer weights: ⌊w·a_i/Σa⌋, the last takes the rest.

    The inception family's four branches (docs/method.md §1); ints, or arrays over a batch.
    """
    total = sum(weights)
    parts = [width * a // total for a in weights[:-1]]
    return (*parts, width - sum(parts))
