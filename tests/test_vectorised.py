"""One description, two modes: counts over numpy arrays equal anynet.complexity per network."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from anynet import families as F
from anynet.complexity import anynet_counts, complexity, node_counts, sum_counts
from anynet.rounding import groups_of, inner_width
from anynet.spaces.sampling import sample
from anynet.spec import BOTTLENECK_BLOCKS, NetSpec
from search.spec.space import SpaceSpec

STEMS = ("cifar", "simple", "resnet", "convnext")
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _scalar(spec_kw: dict):
    """complexity of one network, or the ValueError describing it raises."""
    try:
        spec = NetSpec.model_validate(spec_kw)
    except ValidationError:
        return None  # not a NetSpec (e.g. groups that do not divide): not generated
    try:
        c = complexity(spec)
    except ValueError:
        return "invalid"
    return c["flops"], c["params"], c["acts"]


@SETTINGS
@given(data=st.data())
def test_batch_counts_equal_complexity_for_every_family_and_stem(data):
    block = data.draw(st.sampled_from(sorted(F.BLOCKS)), "block")
    stem = data.draw(st.sampled_from(STEMS), "stem")
    k = data.draw(st.integers(1, 3), "stages")
    strides = data.draw(st.lists(st.sampled_from([1, 2]), min_size=k, max_size=k))
    se = data.draw(st.sampled_from([0.0, 0.1, 0.25])) if block in BOTTLENECK_BLOCKS else 0.0
    fixed = {
        "stem": {"type": stem, "width": data.draw(st.sampled_from([1, 3, 8, 16]))},
        "block": block,
        "se_ratio": se,
        "head_width": data.draw(st.sampled_from([0, 16])),
        "num_classes": data.draw(st.integers(1, 12)),
        "in_channels": data.draw(st.sampled_from([1, 3])),
        "resolution": data.draw(st.sampled_from([3, 4, 7, 15, 32])),
    }
    stage = st.tuples(
        st.integers(1, 3),
        st.sampled_from([1, 2, 4, 8, 12, 16, 24]),
        st.sampled_from([0.25, 0.5, 1.0, 2.0]),
        st.sampled_from([1, 2, 4, 8]),
    )
    drawn = data.draw(st.lists(st.lists(stage, min_size=k, max_size=k), min_size=1, max_size=6))
    rows, expected = [], []
    for cand in drawn:
        stages = [
            {"depth": d, "width": w, "stride": s, "bottleneck_multiplier": b, "group_width": g}
            for (d, w, b, g), s in zip(cand, strides, strict=True)
        ]
        want = _scalar({**fixed, "stages": stages})
        if want is not None:
            rows.append(cand)
            expected.append(want)
    assume(rows)
    arr = np.asarray(rows, dtype=np.float64)  # (candidates, stages, 4)
    stages = []
    for j in range(k):
        d, w = arr[:, j, 0].astype(np.int64), arr[:, j, 1].astype(np.int64)
        inner = inner_width(w, arr[:, j, 2])
        groups = groups_of(inner, arr[:, j, 3].astype(np.int64))
        stages.append(F.Stage(d, w, strides[j], inner, groups))
    args = (fixed["stem"]["type"], fixed["stem"]["width"], fixed["in_channels"])
    try:
        f, p, a, _, ok = anynet_counts(
            *args, fixed["resolution"], block, se, stages, fixed["head_width"],
            fixed["num_classes"],
        )  # fmt: skip
    except ValueError:  # a problem of every candidate (the stem's resolution): all invalid
        assert all(e == "invalid" for e in expected)
        return
    ok = np.broadcast_to(ok, (len(rows),))
    for i, want in enumerate(expected):
        if want == "invalid":
            assert not ok[i]
        else:
            assert ok[i] and (int(f[i]), int(p[i]), int(a[i])) == want


def _at(counts, i) -> tuple:
    """Candidate i's counts (a count that is the same for every candidate is a plain int)."""
    return tuple(int(v[i]) if isinstance(v, np.ndarray) else v for v in counts)


@SETTINGS
@given(
    w_in=st.lists(st.sampled_from([8, 16, 24, 40]), min_size=1, max_size=5),
    data=st.data(),
    stride=st.sampled_from([1, 2]),
    h=st.sampled_from([1, 5, 16]),
)
def test_mbconv_counts_over_arrays_equal_each_block(w_in, data, stride, h):
    n = len(w_in)
    w_out = np.array(data.draw(st.lists(st.sampled_from([8, 16, 24]), min_size=n, max_size=n)))
    t = np.array(data.draw(st.lists(st.sampled_from([1, 4, 6]), min_size=n, max_size=n)))
    k = np.array(data.draw(st.lists(st.sampled_from([3, 5]), min_size=n, max_size=n)))
    w_in = np.array(w_in)
    expanded, c_se = w_in * t, np.maximum(1, w_in // 4)
    f, p, a, b, ok = node_counts((F.mbconv_block(w_in, w_out, expanded, k, stride, h, c_se),))
    assert np.all(ok)
    for i in range(n):
        one = F.mbconv_block(
            int(w_in[i]), int(w_out[i]), int(expanded[i]), int(k[i]), stride, h, int(c_se[i]),
            drop_path=0.1,
        )  # fmt: skip
        assert sum_counts((one,)) == _at((f, p, a, b), i)


@SETTINGS
@given(
    depth=st.lists(st.integers(1, 5), min_size=1, max_size=5),
    data=st.data(),
    h=st.sampled_from([1, 4, 9]),
)
def test_dense_stage_counts_over_arrays_loop_to_the_deepest(depth, data, h):
    n = len(depth)
    growth = np.array(data.draw(st.lists(st.sampled_from([4, 12, 32]), min_size=n, max_size=n)))
    c_in = np.array(data.draw(st.lists(st.sampled_from([8, 16, 24]), min_size=n, max_size=n)))
    depth = np.array(depth)
    nodes, c_out = F.dense_stage(c_in, depth, growth, 4, h)
    down, _ = F.transition(c_out, c_out // 2, h) if h > 1 else ((), None)
    f, p, a, b, ok = node_counts(nodes + down)
    assert np.all(ok)
    for i in range(n):
        one, c = F.dense_stage(int(c_in[i]), int(depth[i]), int(growth[i]), 4, h)
        assert c == c_out[i] and len(one) == depth[i]
        down, _ = F.transition(c, c // 2, h) if h > 1 else ((), None)
        assert sum_counts(one + down) == _at((f, p, a, b), i)


@SETTINGS
@given(widths=st.lists(st.lists(st.sampled_from([1, 4, 8, 16]), min_size=6, max_size=6),
                       min_size=1, max_size=5), h=st.sampled_from([1, 3, 14]))  # fmt: skip
def test_inception_counts_over_arrays_equal_each_block(widths, h):
    cols = [np.array(c) for c in zip(*widths, strict=True)]
    node, c_out = F.inception_block(32, *cols, h)
    f, p, a, b, ok = node_counts((node,))
    assert np.all(ok)
    for i, w in enumerate(widths):
        one, c = F.inception_block(32, *w, h)
        assert c == c_out[i] and sum_counts((one,)) == _at((f, p, a, b), i)


def test_an_se_width_of_zero_is_invalid_in_a_batch_and_raises_alone():
    # stage 2's first block takes stage 1's width: 1 gives SE width round(0.25) = 0
    one = F.Stage(1, np.array([1, 8]), 1, np.array([1, 8]), np.array([1, 1]))
    two = F.Stage(1, np.array([8, 8]), 1, np.array([8, 8]), np.array([1, 1]))
    *_, ok = anynet_counts("cifar", 8, 3, 8, "res_bottleneck", 0.25, [one, two], 0, 10)
    assert ok.tolist() == [False, True]
    stages = [{"depth": 1, "width": w, "stride": 1} for w in (1, 8)]
    with pytest.raises(ValueError, match="se_ratio: SE width round"):
        complexity(NetSpec(stem={"type": "cifar", "width": 8}, se_ratio=0.25, stages=stages))
    # the same value for every candidate (the stem's width) raises for the batch
    with pytest.raises(ValueError, match="se_ratio"):
        anynet_counts("cifar", 2, 3, 8, "res_bottleneck", 0.25, [two], 0, 10)


def test_a_depth_one_stage_describes_no_repeated_block():
    # its repeated block would take width 1 (SE width 0), but there is none
    spec = NetSpec(stem={"type": "cifar", "width": 8}, se_ratio=0.1, resolution=8,
                   stages=[{"depth": 1, "width": 1, "stride": 1}])  # fmt: skip
    assert len(F.describe(spec).stages[0]) == 1
    # stem 3·9·8 + 16; block 8 + 2 + 9 + 2 + SE (2·1·1 + 1 + 1) + 1 + 2 + projection 8 + 2;
    # Linear 1·10 + 10
    assert complexity(spec)["params"] == 232 + 38 + 20


OVERRIDES = [
    {"preset": "AnyNetX_A", "block": "convnext", "stem": {"type": "convnext", "width": 24},
     "group_width": 1, "resolution": 64},
    {"preset": "AnyNetY_B", "head_width": 64, "rounding": "torchvision"},
    {"preset": "RegNetX", "constraints": [], "resolution": 32, "head_width": 32},
    {"preset": "RegNetY", "block": "res_bottleneck_linear", "stages": 3, "strides": [1, 2, 2]},
    {"preset": "Vanilla", "stem": {"type": "resnet", "width": 8}, "resolution": 40},
]  # fmt: skip


@settings(max_examples=10, deadline=None)
@given(which=st.integers(0, len(OVERRIDES) - 1), seed=st.integers(0, 2**31))
def test_sampled_networks_record_their_exact_complexity(which, seed):
    space = SpaceSpec.model_validate(OVERRIDES[which]).resolve()
    for s in sample(space, 4, seed, bounds={"flops": (0, 5e9)}).samples:
        assert s.complexity == complexity(s.spec)
