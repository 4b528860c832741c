"""complexity(spec) against the built network: params, FLOP counter, activation hooks."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from anynet import families as F
from anynet import layers as L
from anynet.build import build
from anynet.complexity import bias_flops, complexity, layer_counts
from anynet.spec import NetSpec
from testkit.nets import assert_same_function, net, resnet50_spec
from testkit.torch_counts import forward_counts, meta_macs

torch.set_num_threads(1)


CASES = {
    "vanilla_cifar": net(
        "vanilla", [(2, 8, 1, 1, 1), (1, 16, 2, 1, 1)], stem="cifar", resolution=15
    ),
    "res_basic_resnet_stem": net(
        "res_basic", [(1, 8, 1, 1, 1), (2, 16, 2, 1, 1)], stem="resnet", resolution=33
    ),
    "res_basic_head": net("res_basic", [(2, 12, 2, 1, 1)], head_width=20, resolution=17),
    "bottleneck_groups": net("res_bottleneck", [(1, 16, 1, 1, 4), (2, 32, 2, 0.5, 8)]),
    "bottleneck_se": net(
        "res_bottleneck", [(2, 16, 2, 1, 8), (1, 24, 2, 1, 8)], se_ratio=0.25, resolution=33
    ),
    "bottleneck_depthwise": net("res_bottleneck", [(2, 16, 1, 1, 1), (1, 32, 2, 2, 1)]),
    "linear_depthwise_se": net(
        "res_bottleneck_linear",
        [(2, 8, 1, 4, 1), (2, 16, 2, 2, 1)],
        se_ratio=0.5,
        head_width=32,
        in_channels=1,
        resolution=15,
    ),
    "linear_groups": net("res_bottleneck_linear", [(1, 8, 1, 1, 8), (1, 8, 2, 2, 4)]),
    "convnext": net(
        "convnext",
        [(1, 8, 1, 1, 1), (2, 16, 2, 1, 1), (1, 24, 1, 0.5, 1)],
        stem="convnext",
        resolution=33,
    ),
    "convnext_same_width_stride": net(
        "convnext", [(1, 8, 1, 1, 1), (1, 8, 2, 1, 1)], stem="convnext", resolution=17
    ),
}


def _count_with_torch(model: nn.Module, spec: NetSpec) -> dict[str, int]:
    """Multiply-adds seen by FlopCounterMode and output elements of conv/pool/linear modules."""
    acts = [0]

    def hook(_m, _inp, out):
        acts[0] += out.numel()

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, nn.Conv2d | nn.MaxPool2d | nn.Linear)
    ]
    x = torch.zeros(1, spec.in_channels, spec.resolution, spec.resolution)
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = model(x)
    for h in handles:
        h.remove()
    assert out.shape == (1, spec.num_classes)
    total = counter.get_total_flops()
    assert total % 2 == 0  # conv and mm count 2 per multiply-add
    return {
        "macs": total // 2,
        "params": sum(p.numel() for p in model.parameters()),
        "acts": acts[0],
    }


def _check(spec: NetSpec) -> None:
    c = complexity(spec)
    seen = _count_with_torch(build(spec), spec)
    assert c["params"] == seen["params"]
    # FlopCounterMode leaves out bias additions; our convention counts them (docs/method.md §2)
    assert c["flops"] - bias_flops(spec) == seen["macs"]
    assert c["acts"] == seen["acts"]


@pytest.mark.parametrize("name", list(CASES))
def test_complexity_equals_built_network(name):
    _check(CASES[name])


def test_random_specs_equal_built_network():
    rng = random.Random(0)
    for _ in range(12):
        block = rng.choice(sorted(F.BLOCKS))
        stem = "convnext" if block == "convnext" else rng.choice(["cifar", "simple", "resnet"])
        stages = []
        for _ in range(rng.randint(1, 3)):
            g = rng.choice([1, 2, 4, 8])
            b = rng.choice([0.5, 1, 2]) if block != "convnext" else 1
            w = rng.choice([8, 16, 24])
            stages.append((rng.randint(1, 2), w, rng.choice([1, 2]), b, min(g, int(w * b))))
        se = rng.choice([0.0, 0.25]) if block in ("res_bottleneck", "res_bottleneck_linear") else 0
        spec = net(
            block,
            stages,
            stem=stem,
            resolution=rng.choice([33, 64] if block == "convnext" else [15, 17, 32, 33]),
            se_ratio=se,
            head_width=rng.choice([0, 16]),
        )
        _check(spec)


def test_bias_flops_are_the_bias_adds():
    spec = CASES["linear_depthwise_se"]
    # head: Linear(32 -> 10) has 10 bias adds; SE convs have c_se + c each
    expected = 0
    for layer in F.describe(spec).layers:
        if isinstance(layer, L.Conv) and layer.bias:
            expected += layer.c_out * layer.h_out**2
        elif isinstance(layer, L.SE):
            expected += layer.c + layer.c_se
        elif isinstance(layer, L.Linear):
            expected += layer.c_out
    assert bias_flops(spec) == expected > 10


def test_layer_counts_by_hand():
    # 3x3 conv 4->6 groups 2 stride 2 on 9x9 with bias: h' = 5
    conv = L.Conv(4, 6, 3, 2, 2, True, 9)
    assert layer_counts(conv) == (9 * 4 * 6 // 2 * 25 + 6 * 25, 9 * 4 * 6 // 2 + 6, 6 * 25, 150)
    assert layer_counts(L.Linear(5, 3)) == (18, 18, 3, 3)
    assert layer_counts(L.SE(8, 2)) == (2 * 16 + 10, 2 * 16 + 10, 10, 10)
    assert layer_counts(L.BN(7)) == (0, 14, 0, 0)
    assert layer_counts(L.LayerNorm(7)) == (0, 14, 0, 0)
    assert layer_counts(L.MaxPool(4, 3, 2, 8)) == (0, 0, 4 * 16, 0)


def test_resnet50_matches_torchvision():
    import torchvision

    spec = resnet50_spec()
    c = complexity(spec)
    reference = torchvision.models.resnet50()
    assert c["params"] == 25_557_032 == sum(p.numel() for p in reference.parameters())
    # torchvision's FLOP count on meta tensors (no compute): bias adds are only the fc's 1000
    assert c["flops"] - bias_flops(spec) == meta_macs(reference, (1, 3, 224, 224))
    assert bias_flops(spec) == 1000


def test_resnet56_cifar_hand_count():
    spec = net(
        "res_basic",
        [(9, 16, 1, 1, 1), (9, 32, 2, 1, 1), (9, 64, 2, 1, 1)],
        stem="cifar",
        stem_width=16,
        resolution=32,
    )
    # stem 3·9·16 + 32; stage1 9·(2·2304 + 64); stage2 first 4608 + 9216 + 128 + proj 512 + 64,
    # then 8·(2·9216 + 128); stage3 first 18432 + 36864 + 256 + proj 2048 + 128, then
    # 8·(2·36864 + 256); fc 64·10 + 10. pycls-style projection shortcuts give 855,770 (the
    # paper's option-A ResNet-56 without projections has 853,018).
    hand = 464 + 9 * 4672 + (14528 + 8 * 18560) + (57728 + 8 * 73984) + 650
    assert complexity(spec)["params"] == hand == 855_770
    assert complexity(spec)["flops"] == pytest.approx(0.126e9, rel=0.01)


def test_bad_specs_raise_value_error_naming_the_field():
    with pytest.raises(ValueError, match="se_ratio"):
        complexity(net("vanilla", [(1, 8, 2, 1, 1)], se_ratio=0.25))
    with pytest.raises(ValueError, match="se_ratio"):
        complexity(net("res_basic", [(1, 8, 2, 1, 1)], se_ratio=0.25))
    with pytest.raises(ValueError, match="se_ratio"):  # w_se = round(1 x 0.25) = 0
        complexity(net("res_bottleneck", [(1, 8, 2, 1, 1)], stem_width=1, se_ratio=0.25))
    with pytest.raises(ValueError, match="resolution"):
        complexity(net("convnext", [(1, 8, 2, 1, 1)], stem="convnext", resolution=3))
    with pytest.raises(ValueError, match="resolution"):
        complexity(net("convnext", [(1, 8, 2, 1, 1)], stem="convnext", resolution=7))


def test_stride_one_first_stage_keeps_resolution():
    spec = net("res_bottleneck", [(1, 8, 1, 1, 1)], stem="cifar", resolution=15)
    (first,) = F.describe(spec).stages[0]
    assert first.h_out == 15
    assert first.shortcut is None  # stem width 8 == stage width 8 at stride 1: identity skip


def test_complexity_does_not_import_torch():
    code = (
        "import sys; import anynet.complexity, anynet.layers; "
        "from anynet.complexity import complexity; from anynet.spec import NetSpec; "
        "complexity(NetSpec(stages=[{'depth': 1, 'width': 8}])); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _spec_of_torchvision_regnet(model, se_ratio: float) -> NetSpec:
    """Read stage depths, widths, strides and group widths off a torchvision RegNet."""
    stages = []
    for stage in model.trunk_output:
        f = stage[0].f
        inner, groups = f.b[0].out_channels, f.b[0].groups
        width = f.c[0].out_channels
        stages.append(
            dict(
                depth=len(stage),
                width=width,
                stride=f.b[0].stride[0],
                bottleneck_multiplier=inner / width,
                group_width=inner // groups,
            )
        )
    return NetSpec(
        stem={"type": "simple", "width": model.stem[0].out_channels},
        block="res_bottleneck",
        stages=stages,
        se_ratio=se_ratio,
        num_classes=1000,
        resolution=224,
    )


@pytest.mark.parametrize(
    "name,se_ratio", [("regnet_x_400mf", 0.0), ("regnet_y_400mf", 0.25), ("regnet_y_800mf", 0.25)]
)
def test_torchvision_regnets_counted_exactly(name, se_ratio):
    import torchvision

    reference = getattr(torchvision.models, name)()
    spec = _spec_of_torchvision_regnet(reference, se_ratio)
    c = complexity(spec)
    assert c["params"] == sum(p.numel() for p in reference.parameters())
    assert c["flops"] - bias_flops(spec) == meta_macs(reference, (1, 3, 224, 224))


def test_regnet_y_forward_equals_torchvision():
    import torchvision

    torch.manual_seed(0)
    reference = torchvision.models.regnet_y_400mf().eval()
    spec = _spec_of_torchvision_regnet(reference, 0.25)
    ours = build(spec).eval()
    names = {"a.0": "0", "a.1": "1", "b.0": "3", "b.1": "4", "c.0": "7", "c.1": "8"}
    names |= {"se.fc1": "6.reduce", "se.fc2": "6.expand"}

    def rename(key: str) -> str:
        if key.startswith("stem."):
            return key
        if key.startswith("fc."):
            return "head.1." + key[3:]
        # trunk_output.block{i}.block{i}-{j}.{f|proj}.{layer}.{tensor}
        _, stage, block, part, *rest = key.split(".")
        i, j = int(stage[5:]) - 1, int(block.split("-")[1])
        layer, tensor = ".".join(rest[:-1]), rest[-1]
        layer = names[layer] if part == "f" else layer
        return f"stages.{i}.{j}.{part}.{layer}.{tensor}"

    assert_same_function(ours, reference, rename, atol=1e-5)


def test_convnext_counted_like_timm():
    from timm.models.convnext import ConvNeXt

    depths, dims = (2, 2, 6, 2), (40, 80, 160, 320)  # convnext_atto without layer scale
    reference = ConvNeXt(depths=depths, dims=dims, ls_init_value=None)
    spec = NetSpec(
        stem={"type": "convnext", "width": 40},
        block="convnext",
        stages=[
            dict(depth=d, width=w, stride=1 if w == 40 else 2)
            for d, w in zip(depths, dims, strict=True)
        ],
        num_classes=1000,
        resolution=224,
    )
    c = complexity(spec)
    assert c["params"] == sum(p.numel() for p in reference.parameters())
    # timm's MLP runs as Linear here (mm, bias not counted), like our 1x1 convs with bias
    assert c["flops"] - bias_flops(spec) == meta_macs(reference, (1, 3, 224, 224))


@settings(max_examples=150, deadline=None)
@given(
    h=st.integers(1, 24),
    k=st.integers(1, 7),
    stride=st.integers(1, 3),
    pad=st.integers(0, 3),
    ceil=st.booleans(),
)
def test_out_size_is_torchs(h, k, stride, pad, ceil):
    assume(2 * pad <= k)  # torch: padding at most half the kernel
    x = torch.zeros(1, 1, h, h)
    try:
        torch_h = nn.MaxPool2d(k, stride, pad, ceil_mode=ceil)(x).shape[-1]
    except RuntimeError:  # output too small
        torch_h = 0
    assert max(0, L.out_size(h, k, stride, pad, ceil)) == torch_h
    try:
        conv_h = nn.Conv2d(1, 1, k, stride, pad)(x).shape[-1]
    except RuntimeError:
        conv_h = 0
    assert max(0, L.out_size(h, k, stride, pad)) == conv_h


def test_new_layers_counted_by_hand():
    assert layer_counts(L.AvgPool(4, 2, 2, 9)) == (0, 0, 4 * 16, 0)
    assert layer_counts(L.AdaptiveAvgPool(5, 6, 13)) == (0, 0, 5 * 36, 0)
    assert layer_counts(L.LayerScale(7)) == (0, 7, 0, 0)
    assert layer_counts(L.Linear(5, 3, bias=False)) == (15, 15, 3, 0)
    assert layer_counts(L.SE(8, 2, L.SILU)) == layer_counts(L.SE(8, 2))
    for nothing in (L.Flatten(), L.Dropout(0.5), L.DropPath(0.1), L.GlobalAvgPool(9), L.SILU):
        assert layer_counts(nothing) == (0, 0, 0, 0)
    assert L.MaxPool(3, 3, 2, 8, padding=0, ceil_mode=True).h_out == 4  # GoogLeNet's pools
    assert L.Conv(1, 6, 5, 1, 1, True, 28, padding=0).h_out == 24


def _every_node_net() -> L.Net:
    """A small Net that uses every layer and node type (shapes consistent by hand)."""
    c1 = L.Conv(2, 8, 3, 1, 1, True, 12)
    stem = (c1, L.BN(8, eps=1e-3, momentum=0.01), L.Act("relu6"), L.AvgPool(8, 2, 2, 12))
    dense, c = F.dense_stage(8, 2, 4, 2, 6, act=L.Act("hardswish"))  # 8 -> 16 channels
    incept, c = F.inception_block(c, 4, 4, 8, 2, 4, 4, 6, k5=5, act=L.Act("tanh"))  # 20
    mb = F.mbconv_block(c, c, 40, 5, 1, 6, c_se=5, drop_path=0.2)
    ln = L.Block("scaled", (L.Conv(c, c, 3, 1, c, True, 6), L.LayerNorm(c), L.GELU,
                            L.LayerScale(c, 0.5)), None, True, None, (), 6)  # fmt: skip
    stage = (*dense, incept, mb, L.Repeat(2, (ln,)), L.MaxPool(c, 3, 2, 6, ceil_mode=True))
    head = (L.AdaptiveAvgPool(c, 2, 3), L.Flatten(), L.Dropout(0.1), L.Linear(4 * c, 6, bias=False),
            L.SIGMOID, L.Linear(6, 5))  # fmt: skip
    return L.Net(stem, (stage,), head, 2, 12, 5)


def test_every_layer_and_node_counts_as_built():
    net = _every_node_net()
    model = build(net).eval()
    c = complexity(net)
    assert c["params"] == sum(p.numel() for p in model.parameters())
    out, macs, acts = forward_counts(model, torch.randn(1, 2, 12, 12))
    assert out.shape == (1, 5)
    assert c["flops"] - bias_flops(net) == macs
    assert c["acts"] == acts
