"""Design spaces as data: distributions, presets, JSON round trip, the study-spec format."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anynet.spaces import (
    PRESETS,
    Choice,
    DesignSpace,
    LogUniform,
    PowerOfTwo,
    PowerOfTwoOrLogUniform,
    UniformInt,
    get_space,
)
from search.spec.space import SpaceSpec
from testkit.spaces import NDS_SETS
from testkit.specs import TINY_SPACE

EXPECTED = [
    *(f"AnyNetX_{c}" for c in "ABCDE"),
    *(f"AnyNetY_{c}" for c in "ABCDE"),
    "RegNetX",
    "RegNetY",
    "RegNetX_pycls",
    "RegNetY_pycls",
    "Vanilla",
    "ResNet",
    "ResNeXt_A",
    "ResNeXt_B",
    "EfficientNet",
    "DenseNet",
    "Inception",
    "VGG",
]


def test_every_named_preset_exists():
    assert list(PRESETS) == EXPECTED


@pytest.mark.parametrize("name", EXPECTED)
def test_json_round_trip(name):
    space = get_space(name)
    assert DesignSpace.model_validate_json(space.to_json()) == space
    assert SpaceSpec.model_validate({"space": space.model_dump()}).resolve() == space
    assert SpaceSpec(space=space).resolve() == space
    as_json = SpaceSpec(space=space).model_dump_json()
    assert SpaceSpec.model_validate_json(as_json).resolve() == space


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ValueError, match="AnyNetZ") as info:
        get_space("AnyNetZ")
    assert "AnyNetX_A" in str(info.value) and "ResNeXt_B" in str(info.value)
    with pytest.raises(ValueError, match="AnyNetZ"):
        SpaceSpec.model_validate({"preset": "AnyNetZ"})


def test_anynetx_steps_add_one_constraint_each():
    # DDS §3.2: B shares b, C also g, D increasing widths, E increasing depths.
    prev: set = set()
    for c in "ABCDE":
        x, y = get_space(f"AnyNetX_{c}"), get_space(f"AnyNetY_{c}")
        cons = set(x.constraints)
        assert prev <= cons and len(cons) == len(prev) + (c != "A")
        prev = cons
        assert x.se_ratio == 0 and y.se_ratio == 0.25
        assert y.model_copy(update={"name": x.name, "se_ratio": 0.0}) == x
    a = get_space("AnyNetX_A")
    assert (a.stages, a.stem.type, a.stem.width, a.resolution, a.num_classes) == (
        4,
        "simple",
        32,
        224,
        1000,
    )
    # DDS §3.2: log-uniform d_i <= 16 and w_i <= 1024 divisible by 8 (pycls quanta)
    assert a.depth == LogUniform(lo=1, hi=16, quantum=1)
    assert a.width == LogUniform(lo=8, hi=1024, quantum=8)
    assert sorted(a.bottleneck_multiplier.values) == [0.25, 0.5, 1.0]  # b ∈ {1, 2, 4}
    assert a.group_width.values == (1, 2, 4, 8, 16, 32)


# depth, w0, wa, wm of the RegNet presets: DDS §3.3 (d < 64, w0, wa < 256, 1.5 <= wm <= 3)
# and pycls' sampler (12 <= d <= 28, w0, wa <= 256, 2 <= wm <= 3)
REGNET_DRAWS = {
    "RegNetX": (UniformInt(lo=1, hi=63), LogUniform(lo=8, hi=248, quantum=8),
                LogUniform(lo=8, hi=255.9, quantum=0.1), LogUniform(lo=1.5, hi=3, quantum=0.001)),
    "RegNetX_pycls": (UniformInt(lo=12, hi=28), LogUniform(lo=8, hi=256, quantum=8),
                      LogUniform(lo=8, hi=256, quantum=0.1), LogUniform(lo=2, hi=3, quantum=0.001)),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(REGNET_DRAWS))
def test_regnet_presets_draw_depth_w0_wa_wm(name):
    x, y = get_space(name), get_space(name.replace("RegNetX", "RegNetY"))
    assert x.kind == "regnet" and x.num_stages == 4 and y.se_ratio == 0.25
    assert (x.depth, x.w0, x.wa, x.wm) == REGNET_DRAWS[name]


def test_regnet_presets_are_dds_regnet_space():
    # DDS §3.3: b and g as AnyNetX; RegNetY is RegNetX with SE
    x, y = get_space("RegNetX"), get_space("RegNetY")
    a = get_space("AnyNetX_A")
    assert x.group_width == a.group_width
    assert x.bottleneck_multiplier == a.bottleneck_multiplier
    assert y.model_copy(update={"name": x.name, "se_ratio": 0.0}) == x


def test_regnet_pycls_presets_follow_pycls_sampler():
    x = get_space("RegNetX_pycls")
    assert x.group_width == PowerOfTwoOrLogUniform(lo=8, hi=128, quantum=8)
    assert x.bottleneck_multiplier == Choice(values=(1.0,))


@pytest.mark.parametrize("name", sorted(NDS_SETS))
def test_nds_presets_hold_their_value_sets(name):
    s = get_space(name)
    for field, values in NDS_SETS[name].items():
        assert isinstance(getattr(s, field), Choice)
        assert set(getattr(s, field).values) == values, field


def test_complexity_presets():
    from anynet.spaces import complexity_preset

    # NDS §4: at most the size of ResNet-56, 0.856 M params and 0.129 GF
    assert complexity_preset("nds_r56") == {"params": (0.0, 856_000.0), "flops": (0.0, 129e6)}
    with pytest.raises(ValueError, match="complexity: unknown preset 'r57'.*nds_r56"):
        complexity_preset("r57")


def test_log_uniform_override_snaps_to_its_quantum():
    # pycls validate_rand: both ends of a log-uniform range are multiples of its quantum
    s = SpaceSpec.model_validate({**TINY_SPACE, "width": [10, 30]}).resolve()
    assert s.width == LogUniform(lo=16, hi=24, quantum=8)
    with pytest.raises(ValueError, match="width: log_uniform: no multiple of quantum 8"):
        SpaceSpec.model_validate({**TINY_SPACE, "width": [9, 15]})
    wa = SpaceSpec.model_validate({"preset": "RegNetX", "wa": [10.04, 20.06]}).resolve().wa
    assert wa == LogUniform(lo=10.1, hi=20.0, quantum=0.1)


@pytest.mark.parametrize("name", ["Vanilla", "ResNet", "ResNeXt_A", "ResNeXt_B"])
def test_nds_spaces_are_cifar(name):
    s = get_space(name)
    assert (s.stem.type, s.stem.width, s.stages, s.strides) == ("cifar", 16, 3, (1, 2, 2))
    assert (s.resolution, s.num_classes) == (32, 10)


def test_issue_space_resolves():
    space = SpaceSpec.model_validate(TINY_SPACE).resolve()
    assert space.name == "AnyNetX_A" and space.stages == 2
    assert space.stem.type == "cifar" and space.stem.width == 16
    assert space.depth == LogUniform(lo=1, hi=2, quantum=1)  # the preset's kind is kept
    assert space.width == LogUniform(lo=8, hi=32, quantum=8)
    e = SpaceSpec.model_validate({**TINY_SPACE, "preset": "AnyNetX_E", "name": "e"}).resolve()
    assert e.name == "e" and "increasing_depth" in e.constraints


def test_overrides_field_by_field():
    spec = SpaceSpec.model_validate(
        {
            "preset": "RegNetY",
            "stages": 3,
            "depth": [10, 14],
            "group_width": {"choice": [8, 16]},
            "wm": 2.5,
            "resolution": 32,
            "num_classes": 10,
            "block": "res_bottleneck",
            "rounding": "torchvision",
        }
    )
    s = spec.resolve()
    assert s.num_stages == 3 and s.depth == UniformInt(lo=10, hi=14)  # uniform d (pycls)
    assert s.group_width == Choice(values=(8, 16)) and s.wm == Choice(values=(2.5,))
    assert (s.resolution, s.num_classes, s.rounding, s.se_ratio) == (32, 10, "torchvision", 0.25)
    nds = SpaceSpec.model_validate({"preset": "ResNet", "stages": 2}).resolve()
    assert nds.strides == (1, 2)
    four = SpaceSpec.model_validate({"preset": "Vanilla", "stages": 4}).resolve()
    assert four.strides == (1, 2, 2, 2)
    per = SpaceSpec.model_validate(
        {"preset": "AnyNetX_A", "width": [[8, 64], [64, 256], [256, 512], {"choice": [1024]}]}
    )
    assert per.resolve().per_stage("width")[3] == Choice(values=(1024,))
    g = SpaceSpec.model_validate(
        {"preset": "AnyNetX_A", "width": {"kind": "log_uniform", "lo": 8, "hi": 64, "quantum": 8}}
    )
    assert g.resolve().width == LogUniform(lo=8, hi=64, quantum=8)


@pytest.mark.parametrize(
    ("patch", "needle"),
    [
        ({"widht": [8, 16]}, "widht"),
        ({"depth": [5, 2]}, "depth"),
        ({"depth": [0, 2]}, "depth"),
        ({"width": "wide"}, "width"),
        ({"width": {"kind": "uniform_int", "lo": 8, "hi": 20, "step": 8}}, "step"),
        ({"width": [9, 15]}, "width"),
        ({"constraints": ["sorted_widths"]}, "sorted_widths"),
        ({"stages": 0}, "stages"),
        ({"rounding": "floor"}, "rounding"),
        ({"stem": {"type": "tiny", "width": 16}}, "type"),
        ({"block": "transformer"}, "block"),
        ({"wa": [8, 16]}, "wa"),
        ({"bottleneck_multiplier": [2, 3]}, "bottleneck_multiplier"),
    ],
)
def test_bad_overrides_name_the_field(patch, needle):
    with pytest.raises(ValueError, match=needle):
        SpaceSpec.model_validate({**TINY_SPACE, **patch})


@pytest.mark.parametrize(
    ("patch", "needle"),
    [
        ({"width": [8, 16]}, "width"),
        ({"rounding": "clamp"}, "rounding"),
        ({"depth": [[12, 14], [14, 16]]}, "depth"),
        ({"groups": {"choice": [1, 2]}}, "groups"),
        ({"strides": [2, 2, 2]}, "strides"),
        ({"constraints": [], "strides": [2, 2, 2, 2]}, "strides"),
        ({"constraints": ["increasing_width", {"num_stages": 4}]}, "increasing_width"),
        ({"constraints": [{"num_stages": 4}, {"num_stages": 3}]}, "at most once"),
    ],
)
def test_bad_regnet_overrides_name_the_field(patch, needle):
    with pytest.raises(ValueError, match=needle):
        SpaceSpec.model_validate({"preset": "RegNetX", **patch})


def test_exactly_one_of_preset_and_space():
    with pytest.raises(ValueError, match="preset"):
        SpaceSpec.model_validate({"depth": [1, 2]})
    with pytest.raises(ValueError, match="preset"):
        SpaceSpec.model_validate({"preset": "ResNet", "space": get_space("ResNet").model_dump()})


def test_full_space_as_json():
    data = {
        "name": "tiny",
        "stem": {"type": "cifar", "width": 8},
        "block": "res_basic",
        "stages": 2,
        "strides": [1, 2],
        "depth": {"kind": "uniform_int", "lo": 1, "hi": 3},
        "width": {"kind": "power_of_two", "lo": 8, "hi": 64},
        "constraints": ["increasing_width"],
        "resolution": 16,
        "num_classes": 3,
    }
    s = SpaceSpec.model_validate({"space": data}).resolve()
    assert s.name == "tiny" and s.width == PowerOfTwo(lo=8, hi=64)
    assert SpaceSpec.model_validate({"space": data, "name": "t2"}).resolve().name == "t2"
    with pytest.raises(ValueError, match="strides"):
        DesignSpace.model_validate({**data, "strides": [1, 2, 2]})
    with pytest.raises(ValueError, match="w0"):
        DesignSpace.model_validate({**data, "w0": {"kind": "choice", "values": [8]}})


# --- distributions ---------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(
    lo=st.integers(1, 64),
    span=st.integers(0, 512),
    q=st.sampled_from([1, 2, 8, 0.5, 0.1, 0.001]),
    seed=st.integers(0, 2**31),
)
def test_log_uniform_is_quantised_and_in_range(lo, span, q, seed):
    lo = lo * q
    hi = lo + round(span / 8) * q
    vals = LogUniform(lo=lo, hi=hi, quantum=q).draw(np.random.default_rng(seed), 500)
    assert vals.min() >= lo - 1e-9 and vals.max() <= hi + 1e-9
    k = np.asarray(vals, np.float64) / q
    assert np.allclose(k, np.round(k), atol=1e-6)


def test_log_uniform_is_log_uniform():
    vals = LogUniform(lo=8, hi=256, quantum=8).draw(np.random.default_rng(0), 200_000)
    # pycls: exp(U[log(8 − 4), log 256]) rounded up to 8, so P(8) = log(8/4)/log(256/4).
    assert np.mean(vals == 8) == pytest.approx(np.log(2) / np.log(64), abs=0.005)
    assert np.median(vals) == pytest.approx(np.ceil(np.sqrt(4 * 256) / 8) * 8, abs=8)
    assert vals.dtype.kind == "i"


def test_power_two_or_log_uniform_matches_pycls_rule():
    rng = np.random.default_rng(1)
    v = PowerOfTwoOrLogUniform(lo=1, hi=32, quantum=8).draw(rng, 50_000)
    small = v[v < 8]
    assert set(np.unique(small)) == {1, 2, 4}
    assert np.all(v[v >= 8] % 8 == 0) and v.max() <= 32
    # P(power of two < 8) = 3 of the 6 powers 1..32 (pycls power2_uniform first).
    assert np.mean(v < 8) == pytest.approx(0.5, abs=0.02)
    g = PowerOfTwoOrLogUniform(lo=8, hi=128, quantum=8).draw(rng, 10_000)
    assert g.min() >= 8 and g.max() <= 128 and np.all(g % 8 == 0)


def test_uniform_choice_power_of_two():
    rng = np.random.default_rng(2)
    u = UniformInt(lo=8, hi=64, step=8).draw(rng, 20_000)
    assert set(np.unique(u)) == set(range(8, 65, 8))
    c = Choice(values=(1, 0.5, 0.25)).draw(rng, 3000)
    assert set(np.unique(c)) == {0.25, 0.5, 1.0}
    p = PowerOfTwo(lo=2, hi=16).draw(rng, 3000)
    assert set(np.unique(p)) == {2, 4, 8, 16}
    with pytest.raises(ValueError, match="2\\^k"):
        PowerOfTwo(lo=3, hi=16)
    with pytest.raises(ValueError, match="lo"):
        UniformInt(lo=5, hi=2)
    with pytest.raises(ValueError, match="no value"):
        Choice(values=(1, 2)).with_range(5, 9)


@pytest.mark.parametrize("old", sorted(__import__("anynet").MOVED))
def test_old_anynet_module_paths_load_their_new_homes(old):
    import importlib

    import anynet

    assert importlib.import_module(old) is importlib.import_module(anynet.MOVED[old])
