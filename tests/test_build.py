"""build(spec): structure, pycls init, forward under bf16 autocast / channels_last, torchvision."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from anynet import families as F
from anynet import layers as L
from anynet.blocks import AnyBlock, ChannelLayerNorm, SqueezeExcite
from anynet.build import build
from anynet.spec import NetSpec
from testkit.nets import assert_same_function, net, resnet50_spec

torch.set_num_threads(1)


FAMILIES = {
    "vanilla": net("vanilla", [(1, 8, 1, 1, 1), (2, 16, 2, 1, 1)], stem="cifar"),
    "res_basic": net(
        "res_basic", [(2, 8, 2, 1, 1), (1, 16, 2, 1, 1)], stem="resnet", resolution=33
    ),
    "res_bottleneck": net("res_bottleneck", [(2, 16, 2, 1, 4)], se_ratio=0.25, head_width=24),
    "res_bottleneck_linear": net("res_bottleneck_linear", [(2, 8, 1, 4, 1), (2, 16, 2, 2, 1)]),
    "convnext": net(
        "convnext", [(1, 8, 1, 1, 1), (2, 16, 2, 1, 1)], stem="convnext", resolution=32
    ),
}


@pytest.mark.parametrize("name", list(FAMILIES))
def test_forward_bf16_autocast_channels_last(name):
    spec = FAMILIES[name]
    model = build(spec).to(memory_format=torch.channels_last).train()
    x = torch.randn(2, spec.in_channels, spec.resolution, spec.resolution)
    x = x.to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    assert out.shape == (2, spec.num_classes)
    assert torch.isfinite(out.float()).all()
    out.float().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_forward_nchw_matches_channels_last(name):
    spec = FAMILIES[name]
    torch.manual_seed(0)
    model = build(spec).eval()
    x = torch.randn(2, spec.in_channels, spec.resolution, spec.resolution)
    with torch.no_grad():
        a = model(x)
        b = model.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_model_structure_follows_the_description():
    spec = FAMILIES["res_bottleneck"]
    model = build(spec)
    assert model.spec is spec
    assert len(model.stages) == len(spec.stages)
    assert [len(s) for s in model.stages] == spec.stage_depths
    first, second = model.stages[0]
    assert first.proj is not None and second.proj is None  # width 8 -> 16, stride 2
    grouped = first.f[3]
    assert isinstance(grouped, nn.Conv2d) and grouped.groups == 4 and grouped.stride == (2, 2)
    se = first.f[6]
    assert isinstance(se, SqueezeExcite)
    assert se.reduce.out_channels == round(8 * 0.25)  # w_se from the block *input* width
    # pycls head: 1x1 conv → BN → ReLU at the last resolution, then pool and Linear
    assert isinstance(model.head[0], nn.Conv2d) and model.head[0].out_channels == 24
    assert isinstance(model.head[-1], nn.Linear) and model.head[-1].in_features == 24


def test_linear_bottleneck_skip_and_no_final_activation():
    model = build(FAMILIES["res_bottleneck_linear"])
    blocks = [b for stage in model.stages for b in stage]
    assert [b.residual for b in blocks] == [True, True, False, True]  # stem 8 -> 8 at stride 1
    assert all(b.activation is None and b.proj is None for b in blocks)
    assert isinstance(blocks[0].f[-1], nn.BatchNorm2d)  # final 1x1 → BN, no ReLU
    assert blocks[0].f[3].groups == 32  # b = 4, g = 1: depthwise


def test_convnext_downsample_and_block():
    model = build(FAMILIES["convnext"])
    first, second = model.stages[1][0], model.stages[1][1]
    assert isinstance(first.downsample[0], ChannelLayerNorm)
    assert first.downsample[1].kernel_size == (2, 2) and first.downsample[1].stride == (2, 2)
    assert model.stages[0][0].downsample is None and second.downsample is None
    dw, _, up, _, down = second.f
    assert dw.groups == 16 and dw.kernel_size == (7, 7) and dw.bias is not None
    assert up.out_channels == 4 * 16 and down.out_channels == 16
    width_only = build(net("convnext", [(1, 8, 1, 1, 1), (1, 12, 1, 1, 1)], stem="convnext"))
    assert width_only.stages[1][0].downsample[1].kernel_size == (1, 1)


def test_channel_layer_norm_normalises_channels():
    ln = ChannelLayerNorm(6, eps=1e-6)
    x = torch.randn(2, 6, 5, 5) * 3 + 1
    y = ln(x)
    torch.testing.assert_close(y.mean(dim=1), torch.zeros(2, 5, 5), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(dim=1, unbiased=False), torch.ones(2, 5, 5), atol=1e-3, rtol=0)


def test_pycls_init():
    torch.manual_seed(0)
    spec = net("res_bottleneck", [(2, 64, 2, 1, 8)], se_ratio=0.25, num_classes=100)
    model = build(spec)
    conv = model.stages[0][0].f[0]  # 1x1, 64 out: fan_out 64
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / 64), rel=0.1)
    fc = model.head[-1]
    assert fc.weight.std().item() == pytest.approx(0.01, rel=0.1)
    assert (fc.bias == 0).all()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert (m.weight == 1).all() and (m.bias == 0).all()
        if isinstance(m, nn.Conv2d) and m.bias is not None:
            assert (m.bias == 0).all()
    zeroed = build(spec, zero_init_final_bn=True)
    finals = [b.f[-1].weight for b in zeroed.stages[0] if isinstance(b, AnyBlock)]
    assert len(finals) == 2 and all((w == 0).all() for w in finals)
    assert (zeroed.stages[0][0].proj[1].weight == 1).all()


def test_build_rejects_non_spec():
    with pytest.raises(ValueError, match="spec"):
        build({"stages": []})


def test_resnet50_equals_torchvision_resnet50():
    import torchvision

    ours, ref = build(resnet50_spec()).eval(), torchvision.models.resnet50().eval()
    mine = list(ours.state_dict().items())
    theirs = list(ref.state_dict().items())
    # same tensors in the same order: stem, blocks (conv1..bn3, projection), fc
    assert [v.shape for _, v in mine] == [v.shape for _, v in theirs]
    ours.load_state_dict({k: v for (k, _), (_, v) in zip(mine, theirs, strict=True)})
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), rtol=1e-4, atol=1e-5)


def test_odd_resolution_feature_sizes():
    spec = net("res_basic", [(1, 8, 2, 1, 1), (1, 8, 2, 1, 1)], stem="resnet", resolution=15)
    sizes = []
    model = build(spec).eval()  # batch 1 at 1x1: BN needs eval mode
    for stage in model.stages:
        stage.register_forward_hook(lambda _m, _i, out: sizes.append(out.shape[-1]))
    model(torch.zeros(1, 3, 15, 15))
    described = [blocks[-1].h_out for blocks in F.describe(spec).stages]
    assert sizes == described == [2, 1]  # 15 → 8 (conv) → 4 (pool) → 2 → 1


def test_convnext_equals_timm_convnext_without_layer_scale():
    from timm.models.convnext import ConvNeXt

    torch.manual_seed(0)
    depths, dims = (2, 2, 6, 2), (40, 80, 160, 320)  # convnext_atto
    reference = ConvNeXt(depths=depths, dims=dims, ls_init_value=None, conv_mlp=True).eval()
    spec = NetSpec(
        stem={"type": "convnext", "width": dims[0]},
        block="convnext",
        stages=[
            dict(depth=d, width=w, stride=1 if i == 0 else 2)
            for i, (d, w) in enumerate(zip(depths, dims, strict=True))
        ],
        num_classes=1000,
        resolution=224,
    )
    ours = build(spec).eval()
    names = {"conv_dw": "f.0", "norm": "f.1", "mlp.fc1": "f.2", "mlp.fc2": "f.4"}

    def rename(key: str) -> str:
        *path, tensor = key.split(".")
        if path[0] == "stem":
            return key
        if path[0] == "head":
            return f"head.{ {'norm': 1, 'fc': 2}[path[1]] }.{tensor}"
        if path[2] == "downsample":  # stages.{i}.downsample.{0|1}: first block of stage i
            return f"stages.{path[1]}.0.downsample.{path[3]}.{tensor}"
        # stages.{i}.blocks.{j}.{layer}
        return f"stages.{path[1]}.{path[3]}.{names['.'.join(path[4:])]}.{tensor}"

    assert_same_function(ours, reference, rename, atol=1e-4)


def test_new_layers_build_the_modules_they_describe():
    from anynet.blocks import DropPath, LayerScale, module

    bn = module(L.BN(4, eps=1e-3, momentum=0.01))
    assert (bn.eps, bn.momentum) == (1e-3, 0.01)
    kinds = {"relu6": nn.ReLU6, "silu": nn.SiLU, "hardswish": nn.Hardswish, "tanh": nn.Tanh,
             "sigmoid": nn.Sigmoid, "gelu": nn.GELU, "relu": nn.ReLU}  # fmt: skip
    assert set(kinds) == set(L.ACTIVATIONS)
    for kind, cls in kinds.items():
        assert type(module(L.Act(kind))) is cls
    with pytest.raises(ValueError, match="activation"):
        L.Act("swish")
    pool = module(L.MaxPool(3, 3, 2, 8, padding=0, ceil_mode=True))
    assert pool.ceil_mode and pool.padding == 0
    scale = module(L.LayerScale(5, 0.25))
    assert isinstance(scale, LayerScale) and scale.gamma.shape == (5, 1, 1)  # torchvision's
    x = torch.randn(2, 5, 3, 3)
    torch.testing.assert_close(scale(x), x * 0.25)
    drop = module(L.DropPath(0.5))
    assert isinstance(drop, DropPath) and not list(drop.parameters())
    assert drop.eval()(x) is x  # identity at eval
    torch.manual_seed(0)
    y = drop.train()(torch.ones(4000, 1, 1, 1))
    assert set(y.unique().tolist()) == {0.0, 2.0}  # whole samples dropped, the rest x / (1 - p)
    assert y.mean().item() == pytest.approx(1.0, abs=0.1)


def test_a_branch_starting_with_an_activation_leaves_the_shared_input_alone():
    # cat(x, relu(x)): an in-place ReLU on the first branch would change the identity branch
    net = L.Net((), ((L.Concat(((), (L.RELU,))),),), (), 1, 4, 2)
    x = torch.randn(1, 1, 4, 4)
    with torch.no_grad():
        y = build(net)(x.clone())
    torch.testing.assert_close(y[:, :1], x)
    torch.testing.assert_close(y[:, 1:], x.relu())
