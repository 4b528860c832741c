"""worker.small_bn: batch norm (+ ReLU) of few-channel channels_last CPU tensors gives torch's
answers, as close to float64 as torch's own kernels or closer, and the engine uses it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from worker.small_bn import SmallChannelBatchNorm, folds, use_small_channel_bn

CL = torch.channels_last


def _bn(c: int, dtype=torch.float32, relu: bool = False) -> nn.Module:
    torch.manual_seed(1)
    bn = SmallChannelBatchNorm(c, relu=relu) if relu is not None else nn.BatchNorm2d(c)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    return bn


def _run(module, x, dy):
    """(y, dx, dweight, dbias, running_mean, running_var) of one training step, in float64."""
    x = x.detach().clone().requires_grad_()
    y = module(x)
    y.backward(dy)
    outs = (
        y,
        x.grad,
        module.weight.grad,
        module.bias.grad,
        module.running_mean,
        module.running_var,
    )
    return [t.detach().double() for t in outs]


def _torch(c, x, dy, relu, double=False):
    """The same step by torch's nn.BatchNorm2d (+ nn.ReLU), optionally in float64."""
    torch.manual_seed(1)
    bn = nn.BatchNorm2d(c)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    module = nn.Sequential(bn, nn.ReLU()) if relu else nn.Sequential(bn)
    if double:
        module, x, dy = module.double(), x.double(), dy.double()
    x = x.detach().clone().requires_grad_()
    y = module(x)
    y.backward(dy)
    outs = (y, x.grad, bn.weight.grad, bn.bias.grad, bn.running_mean, bn.running_var)
    return [t.detach().double() for t in outs]


def _rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("c", [1, 4, 6])
def test_fp32_matches_float64_at_least_as_closely_as_torch(c, relu):
    torch.manual_seed(0)
    x = (torch.randn(8, c, 12, 10) * 2 + 1).contiguous(memory_format=CL)
    dy = torch.randn(8, c, 12, 10).contiguous(memory_format=CL)
    assert folds(x)
    ours = _run(_bn(c, relu=relu), x, dy)
    ref = _torch(c, x, dy, relu, double=True)
    theirs = _torch(c, x, dy, relu)
    for name, a, b, t in zip(
        ("y", "dx", "dw", "db", "mean", "var"), ours, ref, theirs, strict=True
    ):
        assert _rel(a, b) <= max(2 * _rel(t, b), 1e-6), name


@pytest.mark.parametrize("relu", [True, False])
def test_bf16_gives_torchs_answers(relu):
    """bf16 in and out as torch's mixed batch norm (float32 statistics and parameters)."""
    torch.manual_seed(0)
    x = torch.randn(16, 4, 8, 8).to(torch.bfloat16).contiguous(memory_format=CL)
    dy = torch.randn(16, 4, 8, 8).to(torch.bfloat16).contiguous(memory_format=CL)
    module = _bn(4, relu=relu)
    xg = x.detach().clone().requires_grad_()
    y = module(xg)
    y.backward(dy)
    assert y.dtype == torch.bfloat16 and y.is_contiguous(memory_format=CL)
    assert xg.grad.dtype == torch.bfloat16 and module.weight.grad.dtype == torch.float32
    ours = [y, xg.grad, module.weight.grad, module.bias.grad]
    theirs = _torch(4, x, dy, relu)[:4]
    for name, a, b in zip(("y", "dx", "dw", "db"), ours, theirs, strict=True):
        assert _rel(a.double(), b) < 2e-2, name  # a few bf16 roundings apart


def test_eval_and_other_layouts_run_torchs_kernels():
    torch.manual_seed(0)
    x = torch.randn(4, 4, 6, 6)
    assert not folds(x)  # NCHW
    assert not folds(torch.randn(4, 8, 6, 6).contiguous(memory_format=CL))  # 8 channels
    ours, ref = _bn(4, relu=True), nn.Sequential(_bn(4, relu=None), nn.ReLU())
    for m in (ours, ref):
        m.train()
        m(x.contiguous(memory_format=CL))
        m.eval()
    cl = x.contiguous(memory_format=CL)
    assert torch.equal(ours(cl), ref(cl))
    assert torch.equal(ours(x), ref(x))


def test_swaps_only_few_channel_norms_keeping_the_state_dict():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(inplace=True),
        nn.Sequential(nn.Conv2d(4, 6, 1), nn.BatchNorm2d(6)),
        nn.Conv2d(6, 16, 1),
        nn.BatchNorm2d(16),
        nn.ReLU(inplace=True),
    )
    keys = set(model.state_dict())
    with torch.no_grad():
        model[1].running_mean.fill_(0.25)
    assert use_small_channel_bn(model) == 2
    assert set(model.state_dict()) == keys
    assert isinstance(model[1], SmallChannelBatchNorm) and model[1].relu
    assert isinstance(model[2], nn.Identity)
    assert isinstance(model[3][1], SmallChannelBatchNorm) and not model[3][1].relu
    assert type(model[5]) is nn.BatchNorm2d and isinstance(model[6], nn.ReLU)
    assert torch.all(model[1].running_mean == 0.25)


def test_a_swapped_network_trains_as_torchs_does():
    """One SGD step of a small net with and without the swap: the same weights after it."""
    from anynet.build import build
    from anynet.spec import NetSpec, StageSpec, StemSpec

    spec = NetSpec(
        stem=StemSpec(type="cifar", width=16),
        block="res_bottleneck",
        stages=(StageSpec(depth=1, width=16, stride=1, bottleneck_multiplier=0.25, group_width=2),),
        num_classes=10,
        resolution=8,
    )
    torch.manual_seed(0)
    x = torch.randn(16, 3, 8, 8).contiguous(memory_format=CL)
    y = torch.randint(0, 10, (16,))
    nets = []
    for swap in (False, True):
        torch.manual_seed(0)
        net = build(spec).to(memory_format=CL)
        if swap:
            assert use_small_channel_bn(net) == 2
        opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
        nets.append(net.state_dict())
    for key, value in nets[0].items():
        assert torch.allclose(nets[1][key].double(), value.double(), atol=1e-5), key


def test_the_engine_swaps_on_cpu_in_channels_last_only():
    from search.spec.study import Recipe
    from worker.train import Engine

    def model():
        return nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.ReLU())

    cpu = torch.device("cpu")
    on = Engine(model(), Recipe(precision="fp32"), cpu)
    assert on.small_bn and isinstance(on.model[1], SmallChannelBatchNorm)
    nchw = Engine(model(), Recipe(precision="fp32", channels_last=False), cpu)
    assert not nchw.small_bn and type(nchw.model[1]) is nn.BatchNorm2d
    off = Engine(model(), Recipe(precision="fp32"), cpu, small_bn=False)
    assert type(off.model[1]) is nn.BatchNorm2d
