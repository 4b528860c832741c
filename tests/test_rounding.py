"""The rounding rules, once: against torchvision's code and the documented pycls rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision.models._utils import _make_divisible

from anynet.regnet import adjust_widths_groups
from anynet.rounding import Rounding, group_rule, groups_of, inner_width, make_divisible


def _pycls_oracle(w: int, b: float, g: int) -> tuple[int, int]:
    """docs/method.md §3, written out: pycls adjust_block_compatibility for one stage."""
    v = int(max(1, w * b))
    g = int(min(g, v))
    m = math.lcm(g, int(b)) if b > 1 and float(b).is_integer() else g
    v = max(m, int(round(v / m) * m))
    return int(v / b), g


def _torchvision_oracle(w: int, b: float, g: int) -> tuple[int, int] | None:
    """torchvision BlockParams._adjust_widths_groups_compatibilty with its _make_divisible."""
    v = int(w * b)
    g = min(g, v)
    if g < 1:
        return None  # torchvision would divide by zero: no network
    return int(_make_divisible(v, g) / b), g


WIDTHS = st.lists(st.integers(1, 1100), min_size=1, max_size=4)
MULTIPLIERS = st.sampled_from([0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 0.75])
GROUPS = st.sampled_from([1, 2, 3, 8, 16, 24, 32, 64, 128])


@settings(max_examples=200, deadline=None)
@given(w=WIDTHS, m=MULTIPLIERS, g=GROUPS)
def test_group_rule_is_pycls_and_torchvision(w, m, g):
    n = len(w)
    vw, vg, ok = group_rule(np.array(w), np.full(n, m), np.full(n, g), Rounding.PYCLS)
    assert ok.all() and list(zip(vw.tolist(), vg.tolist(), strict=True)) == [
        _pycls_oracle(x, m, g) for x in w
    ]
    assert adjust_widths_groups(w, [m] * n, [g] * n, "pycls") == (vw.tolist(), vg.tolist())
    vw, vg, ok = group_rule(np.array(w), np.full(n, m), np.full(n, g), "torchvision")
    for i, x in enumerate(w):
        want = _torchvision_oracle(x, m, g)
        assert (want is None) == (not ok[i])
        if want is not None:
            assert (vw[i], vg[i]) == want
    if ok.all():
        assert adjust_widths_groups(w, [m] * n, [g] * n, "torchvision") == (
            vw.tolist(),
            vg.tolist(),
        )
    else:
        with pytest.raises(ValueError, match="bottleneck_multiplier: inner width"):
            adjust_widths_groups(w, [m] * n, [g] * n, "torchvision")


@settings(max_examples=100, deadline=None)
@given(w=WIDTHS, m=MULTIPLIERS, g=GROUPS)
def test_clamp_keeps_widths_and_clamps_groups(w, m, g):
    vw, vg, ok = group_rule(np.array(w), np.full(len(w), m), np.full(len(w), g), "clamp")
    assert vw.tolist() == w
    for x, gx, fine in zip(w, vg.tolist(), ok.tolist(), strict=True):
        inner = int(round(x * m))
        assert gx == min(g, max(inner, 1))
        assert fine == (inner >= 1 and inner % gx == 0)


@settings(max_examples=200, deadline=None)
@given(v=st.floats(0.5, 5000), divisor=st.sampled_from([1, 3, 8, 16, 24]))
def test_make_divisible_is_torchvisions_for_numbers_and_arrays(v, divisor):
    assert make_divisible(v, divisor) == _make_divisible(v, divisor)
    assert make_divisible(np.array([v, v + 7.0]), divisor).tolist() == [
        _make_divisible(v, divisor),
        _make_divisible(v + 7.0, divisor),
    ]


def test_inner_width_and_groups_agree_for_numbers_and_arrays():
    w, m = np.array([5, 6, 7, 10, 8]), np.array([0.5, 0.25, 0.5, 0.25, 0.0625])
    assert inner_width(w, m).tolist() == [
        inner_width(int(a), float(b)) for a, b in zip(w, m, strict=True)
    ]
    assert inner_width(5, 0.5) == 2 and inner_width(7, 0.5) == 4  # half to even, as pycls
    assert (
        groups_of(np.array([8, 3]), np.array([16, 1])).tolist()
        == [1, 3]
        == [
            groups_of(8, 16),
            groups_of(3, 1),
        ]
    )


def test_one_rounding_name_for_the_package():
    from anynet.regnet import RegNetParams
    from anynet.spaces import DesignSpace

    assert DesignSpace.model_fields["rounding"].annotation is Rounding
    assert RegNetParams.model_fields["rounding"].annotation is Rounding
    with pytest.raises(ValueError, match="rounding: must be one of pycls, torchvision"):
        RegNetParams(depth=13, w0=24, wa=36.44, wm=2.49, group_width=8, rounding="clamp")
    with pytest.raises(ValueError, match="rounding"):
        group_rule([8], [1.0], [8], "nearest")
