"""The families beyond ResNeXt (mbconv, dense, inception, vgg): one description, exact counts.

EfficientNet-B0/B1/B2 and DenseNet-121 written as NetSpecs are torchvision's networks; every
family counts a batch over numpy arrays as it counts each network; preset samples build,
count as torch counts and train on digits; wrong family fields are refused by name.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from anynet import families as F
from anynet.build import build
from anynet.complexity import anynet_counts, bias_flops, complexity
from anynet.export import export_dict
from anynet.rounding import inner_width
from anynet.scaling import compound
from anynet.spaces import DesignSpace, get_space
from anynet.spaces.families import EFFICIENTNET_B0, EFFICIENTNET_B0_NET, FAMILY_PRESETS
from anynet.spaces.sampling import sample
from anynet.spec import NetSpec
from search.spec.space import SpaceSpec
from search.spec.study import DatasetSpec, Recipe
from testkit.cli import run_json
from testkit.nets import B0, b0_spec
from testkit.torch_counts import forward_counts, meta_macs
from worker.data import load_dataset
from worker.train import train

torch.set_num_threads(1)
FAMILIES = list(FAMILY_PRESETS)  # EfficientNet, DenseNet, Inception, VGG
WEIGHTS = {
    "efficientnet_b0": "EfficientNet_B0_Weights",
    "efficientnet_b1": "EfficientNet_B1_Weights",
    "efficientnet_b2": "EfficientNet_B2_Weights",
    "densenet121": "DenseNet121_Weights",
}


def _same_network(spec: NetSpec, name: str) -> None:
    """Parameters, tensor shapes in order and multiply-adds equal torchvision's `name`.

    Both models are made on the meta device: shapes and counts need no memory or init.
    """
    with torch.device("meta"):
        theirs, ours = getattr(torchvision.models, name)(), build(spec)
    cx = complexity(spec)
    weights = getattr(torchvision.models, WEIGHTS[name]).IMAGENET1K_V1
    assert cx["params"] == sum(p.numel() for p in theirs.parameters()) == weights.meta["num_params"]
    assert cx["params"] == sum(p.numel() for p in ours.parameters())
    shapes = [v.shape for v in ours.state_dict().values()]
    assert shapes == [v.shape for v in theirs.state_dict().values()]
    shape = (1, 3, spec.resolution, spec.resolution)
    # our count is held equal to our built modules' elsewhere (and below for the presets)
    assert cx["flops"] - bias_flops(spec) == meta_macs(theirs, shape)


def test_efficientnet_b0_is_an_mbconv_netspec():
    spec = b0_spec()
    assert spec == NetSpec(**EFFICIENTNET_B0_NET, stages=[dict(depth=d, width=w, stride=s, expansion=t, kernel=k) for d, w, s, t, k in EFFICIENTNET_B0],
                           num_classes=1000, resolution=224)  # fmt: skip
    _same_network(spec, "efficientnet_b0")
    space = get_space("EfficientNet")  # B0 lies in the preset space
    for j, (d, w, _, t, k) in enumerate(B0):
        assert space.per_stage("depth")[j].lo <= d <= space.per_stage("depth")[j].hi
        assert w in space.per_stage("width")[j].values
        assert t in space.per_stage("expansion")[j].values
        assert k in space.per_stage("kernel")[j].values


@pytest.mark.parametrize(
    ("name", "width", "depth", "resolution"),
    [("efficientnet_b1", 1.0, 1.1, 240), ("efficientnet_b2", 1.1, 1.2, 260)],
)
def test_b0_scaled_by_published_multipliers_is_b1_and_b2(name, width, depth, resolution):
    spec = compound(b0_spec(), width=width, depth=depth, resolution=resolution)
    assert spec.resolution == resolution
    _same_network(spec, name)


def test_densenet121_is_a_dense_netspec():
    spec = NetSpec(
        stem={"type": "resnet", "width": 64},
        block="dense",
        num_classes=1000,
        resolution=224,
        stages=[dict(depth=d, width=32, stride=s, bottleneck_multiplier=4)
                for d, s in ((6, 1), (12, 2), (24, 2), (16, 2))],
    )  # fmt: skip
    _same_network(spec, "densenet121")


# --- one description, two modes ------------------------------------------------------------
def _stage_values(block: str):
    """(depth, width, bottleneck multiplier, family fields) of one stage of `block`."""
    depth = st.integers(1, 3)
    if block == "mbconv":
        fields = st.fixed_dictionaries(
            {"expansion": st.sampled_from([1, 3, 6]), "kernel": st.sampled_from([1, 3, 5])}
        )
        return st.tuples(depth, st.sampled_from([8, 12, 16, 40]), st.just(1.0), fields)
    if block == "dense":
        return st.tuples(depth, st.sampled_from([2, 4, 12]), st.sampled_from([1, 2, 4]),
                         st.just({}))  # fmt: skip
    if block == "inception":
        weights = st.tuples(*[st.integers(1, 4)] * 4)
        return st.tuples(depth, st.sampled_from([4, 8, 16, 40]),
                         st.sampled_from([0.25, 0.5, 1.0]),
                         st.fixed_dictionaries({"branches": weights}))  # fmt: skip
    return st.tuples(depth, st.sampled_from([1, 8, 24]), st.just(1.0), st.just({}))


def _counts(spec_kw: dict):
    """(flops, params, acts) of one network, 'invalid' if describing it raises, None if no spec."""
    try:
        spec = NetSpec.model_validate(spec_kw)
    except ValidationError:
        return None
    try:
        c = complexity(spec)
    except ValueError:
        return "invalid"
    return c["flops"], c["params"], c["acts"]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_batch_counts_equal_each_network_for_every_new_family(data):
    block = data.draw(st.sampled_from(["mbconv", "dense", "inception", "vgg"]), "block")
    k = data.draw(st.integers(1, 3), "stages")
    strides = data.draw(st.lists(st.sampled_from([1, 2]), min_size=k, max_size=k))
    fixed = {
        "stem": {"type": data.draw(st.sampled_from(["cifar", "simple", "resnet"])),
                 "width": data.draw(st.sampled_from([3, 8, 16]))},
        "block": block,
        "se_ratio": data.draw(st.sampled_from([0.0, 0.25])) if block == "mbconv" else 0.0,
        "head_width": data.draw(st.sampled_from([0, 16])),
        "num_classes": data.draw(st.integers(1, 12)),
        "in_channels": data.draw(st.sampled_from([1, 3])),
        "resolution": data.draw(st.sampled_from([4, 7, 16, 33])),
    }  # fmt: skip
    stage = _stage_values(block)
    drawn = data.draw(st.lists(st.lists(stage, min_size=k, max_size=k), min_size=1, max_size=6))
    rows, expected = [], []
    for cand in drawn:
        stages = [{"depth": d, "width": w, "stride": s, "bottleneck_multiplier": b, **extra}
                  for (d, w, b, extra), s in zip(cand, strides, strict=True)]  # fmt: skip
        want = _counts({**fixed, "stages": stages})
        if want is not None:
            rows.append(cand)
            expected.append(want)
    assume(rows)
    stages = []
    for j in range(k):
        d, w, b = (np.array([r[j][i] for r in rows]) for i in range(3))
        family = {}
        if block == "mbconv":
            family["expansion"] = np.array([r[j][3]["expansion"] for r in rows], np.float64)
            family["kernel"] = np.array([r[j][3]["kernel"] for r in rows])
        if block == "inception":
            weights = np.array([r[j][3]["branches"] for r in rows])
            family["branches"] = tuple(weights[:, i] for i in range(4))
        stages.append(F.Stage(d, w, strides[j], inner_width(w, b), 1, **family))
    try:
        f, p, a, _, ok = anynet_counts(
            fixed["stem"]["type"], fixed["stem"]["width"], fixed["in_channels"],
            fixed["resolution"], block, fixed["se_ratio"], stages, fixed["head_width"],
            fixed["num_classes"],
        )  # fmt: skip
    except ValueError:  # a size every candidate shares vanishes: none is a network
        assert all(e == "invalid" for e in expected)
        return
    ok = np.broadcast_to(ok, (len(rows),))
    f, p, a = (np.broadcast_to(v, (len(rows),)) for v in (f, p, a))
    for i, want in enumerate(expected):
        if want == "invalid":
            assert not ok[i]
        else:
            assert ok[i] and (int(f[i]), int(p[i]), int(a[i])) == want


# --- presets: samples build, count as torch counts, and train on digits ----------------------
def _digits_space(name: str) -> DesignSpace:
    """The preset at digits' 16 px and 10 classes; DenseNet's and Inception's ImageNet stems
    and pools need about 32 px, so there they take the cifar stem (width 16)."""
    over = {"preset": name, "resolution": 16, "num_classes": 10}
    if name in ("DenseNet", "Inception"):
        over["stem"] = {"type": "cifar", "width": 16}
    return SpaceSpec.model_validate(over).resolve()


@pytest.fixture(scope="module")
def digits():
    data = load_dataset(DatasetSpec(name="digits", resolution=16))
    import dataclasses

    return dataclasses.replace(data, train_x=data.train_x[:128], train_y=data.train_y[:128])


@pytest.mark.parametrize("name", FAMILIES)
def test_preset_samples_build_count_exactly_and_train_on_digits(name, digits):
    space = _digits_space(name)
    samples = sample(space, 2, seed=3, bounds={"flops": (0, 40e6)}).samples
    for s in samples:
        spec = s.spec
        assert spec.block == space.block and s.complexity == complexity(spec)
        model = build(spec).eval()
        assert sum(p.numel() for p in model.parameters()) == s.complexity["params"]
        _, macs, acts = forward_counts(model, torch.randn(1, 3, 16, 16))
        assert acts == s.complexity["acts"]
        assert s.complexity["flops"] - bias_flops(spec) == macs
    recipe = Recipe(batch_size=32, lr=0.05, warmup_epochs=0, crop_padding=0, flip=False,
                    precision="fp32")  # fmt: skip
    result = train(samples[0].spec, digits, recipe, epochs=1, seed=0)
    assert result.status == "done", result.message
    assert np.isfinite(result.epochs[0]["train_loss"])


# --- bad input names the field ------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ({"block": "res_bottleneck", "stages": [{"depth": 1, "width": 8, "kernel": 5}]},
         "stages[0].kernel: only the mbconv block"),
        ({"block": "mbconv", "stages": [{"depth": 1, "width": 8, "kernel": 4}]},
         "kernel: must be odd"),
        ({"block": "vgg", "stages": [{"depth": 1, "width": 8, "branches": [1, 1, 1, 1]}]},
         "stages[0].branches: only the inception block"),
        ({"block": "dense", "stages": [{"depth": 1, "width": 8, "bottleneck_multiplier": 0.5}]},
         "bottleneck_multiplier: dense needs a whole number"),
        ({"block": "dense", "se_ratio": 0.25, "stages": [{"depth": 1, "width": 8}]},
         "se_ratio: the dense block has no SE"),
        ({"block": "inception", "stages": [{"depth": 1, "width": 3}]},
         "inception branch widths"),
        ({"block": "inception", "stages": [{"depth": 1, "width": 8, "branches": [1, 0, 1, 1]}]},
         "branches: weights must lie in"),
        ({"block": "mbconv", "stages": [{"depth": 1, "width": 4096, "expansion": 32}]},
         "stages[0].expansion: expanded width 4096 x 32.0 exceeds 65536"),
    ],
)  # fmt: skip
def test_bad_family_specs_name_the_field(spec, needle):
    with pytest.raises(ValidationError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        NetSpec.model_validate(spec)


@pytest.mark.parametrize(
    ("over", "needle"),
    [
        ({"preset": "DenseNet", "kernel": {"choice": [3, 5]}}, "kernel: only the mbconv block"),
        ({"preset": "RegNetX", "expansion": 6}, "expansion: only anynet spaces"),
        ({"preset": "DenseNet", "bottleneck_multiplier": {"choice": [2, 0.5]}},
         "bottleneck_multiplier: dense bottlenecks are whole"),
        ({"preset": "EfficientNet", "kernel": {"choice": [3, 4]}}, "kernel: kernel sizes must"),
        ({"preset": "VGG", "se_ratio": 0.25}, "se_ratio: the vgg block has no SE"),
    ],
)  # fmt: skip
def test_bad_family_spaces_name_the_field(over, needle):
    with pytest.raises(ValidationError, match=needle):
        SpaceSpec.model_validate(over)


def test_every_family_of_the_table_is_built_and_its_se_checked_from_it():
    from anynet.traits import TRAITS

    whole = {name for name, rules in F.FAMILY_RULES.items() if rules.stage is not None}
    assert set(F.BLOCKS) | whole == set(TRAITS) and not set(F.BLOCKS) & whole
    one = F.Stage(1, 16, 1, 16, 1)
    for name, family in TRAITS.items():
        args = ("simple", 16, 3, 32, name, 0.25, [one], 0, 10)
        if family.se:
            assert anynet_counts(*args)[0] > anynet_counts(*args[:5], 0.0, *args[6:])[0]
        else:  # the builders refuse it with the spec's error, never ignore it
            with pytest.raises(ValueError, match=f"se_ratio: the {name} block has no SE"):
                anynet_counts(*args)


def test_overrides_restage_the_family_fields():
    space = SpaceSpec.model_validate(
        {"preset": "EfficientNet", "stages": 3, "kernel": [3, 5], "expansion": {"choice": [4]}}
    ).resolve()
    assert space.stages == 3 and len(space.per_stage("width")) == 3
    assert space.strides == (1, 2, 2)
    for s in sample(space, 3, seed=1, resolution=32).samples:
        assert [st_.expansion for st_ in s.spec.stages] == [4.0] * 3
        assert {st_.kernel for st_ in s.spec.stages} <= {3, 5}
        assert s.params["exp1"] == 4 and s.params["kernel1"] in (3, 5)
    inception = sample(get_space("Inception"), 1, seed=0).samples[0]
    weights = [inception.params[f"br1_{b}"] for b in ("1x1", "3x3", "5x5", "pool")]
    assert list(inception.spec.stages[0].branches) == weights


def test_old_specs_keep_their_json():
    spec = NetSpec(stages=[{"depth": 1, "width": 8}])
    assert "kernel" not in spec.to_dict()["stages"][0]  # family fields only where set
    assert NetSpec.from_dict(b0_spec().to_dict()) == b0_spec()


@pytest.mark.parametrize("block", ["mbconv", "dense", "inception", "vgg"])
@pytest.mark.parametrize(
    ("fmt", "needle"),
    [("pycls", "block: pycls has no"), ("timm", "block: timm's RegNet builds res_bottleneck"),
     ("torchvision", "block: torchvision's RegNet builds res_bottleneck")],
)  # fmt: skip
def test_exports_refuse_the_families_their_targets_cannot_build(block, fmt, needle):
    spec = sample(
        _digits_space(
            {"mbconv": "EfficientNet", "dense": "DenseNet", "inception": "Inception", "vgg": "VGG"}[
                block
            ]
        ),
        1,
        0,
    )
    spec = spec.samples[0].spec
    with pytest.raises(ValueError, match=needle):
        export_dict(spec, fmt)
    out = export_dict(spec, "json")  # our own format carries any network
    assert NetSpec.from_dict(out["config"]["spec"]) == spec


@pytest.mark.parametrize("name", FAMILIES)
def test_dse_sample_takes_the_family_presets(capsys, name):
    data = run_json(capsys, "sample", "--space", name, "--n", "2", "--seed", "0")
    assert data["space"] == name and len(data["samples"]) == 2
    for s in data["samples"]:
        spec = NetSpec.from_dict(s["spec"])
        assert spec.block == get_space(name).block and s["complexity"] == complexity(spec)
