"""Reference networks: the same networks as torchvision's constructors and d2l's LeNet."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import anynet
from anynet.build import build
from anynet.complexity import bias_flops, complexity
from anynet.reference import REFERENCES, reference

torch.set_num_threads(1)

# torchvision constructor keyword arguments: GoogLeNet without auxiliary heads; its
# init_weights=False only skips a slow truncated-normal init (weights are loaded anyway)
TORCHVISION = {
    "resnet18": {},
    "densenet121": {},
    "googlenet": {"aux_logits": False, "transform_input": False, "init_weights": False},
    "efficientnet_b0": {},
}
WEIGHTS = {
    "resnet18": "ResNet18_Weights",
    "densenet121": "DenseNet121_Weights",
    "googlenet": "GoogLeNet_Weights",
    "efficientnet_b0": "EfficientNet_B0_Weights",
}


def _torchvision(name: str) -> nn.Module:
    torch.manual_seed(0)
    return getattr(torchvision.models, name)(**TORCHVISION[name]).eval()


def _meta_macs(model: nn.Module, shape) -> int:
    """Multiply-adds FlopCounterMode sees on meta tensors (no compute; bias adds left out)."""
    with FlopCounterMode(display=False) as counter:
        model.to("meta")(torch.empty(*shape, device="meta"))
    return counter.get_total_flops() // 2


def _acts(model: nn.Module, x: torch.Tensor) -> int:
    """Output elements of every conv, non-global pool and linear (docs/method.md §2)."""
    seen = [0]
    kinds = nn.Conv2d | nn.MaxPool2d | nn.AvgPool2d | nn.AdaptiveAvgPool2d | nn.Linear
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: seen.__setitem__(0, seen[0] + out.numel()))
        for m in model.modules()
        if isinstance(m, kinds)
    ]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return seen[0]


@pytest.mark.parametrize("name", list(TORCHVISION))
def test_params_and_flops_equal_torchvision(name):
    net = reference(name)
    cx = complexity(net)
    theirs = _torchvision(name)
    assert cx["params"] == sum(p.numel() for p in theirs.parameters())
    assert (
        cx["params"] == getattr(torchvision.models, WEIGHTS[name]).IMAGENET1K_V1.meta["num_params"]
    )
    ours = build(net)
    assert sum(p.numel() for p in ours.parameters()) == cx["params"]
    shape = (1, 3, 224, 224)
    # our convention counts bias adds (docs/method.md §2); FLOP counters leave them out
    assert cx["flops"] - bias_flops(net) == _meta_macs(theirs, shape) == _meta_macs(ours, shape)


@pytest.mark.parametrize("name", ["resnet18", "densenet121", "efficientnet_b0", "googlenet"])
def test_logits_equal_torchvision_with_its_weights(name):
    theirs = _torchvision(name)
    ours = build(reference(name, resolution=64)).eval()
    mine, their_state = list(ours.state_dict().items()), list(theirs.state_dict().items())
    # the same tensors in the same order: the description follows torchvision layer for layer
    assert [v.shape for _, v in mine] == [v.shape for _, v in their_state]
    ours.load_state_dict({k: v for (k, _), (_, v) in zip(mine, their_state, strict=True)})
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = theirs(x)
        torch.testing.assert_close(ours(x), expected, rtol=1e-4, atol=1e-5)
    assert expected.std() > 0


def test_lenet_is_d2l_lenet():
    net = reference("lenet")
    assert (net.in_channels, net.resolution, net.num_classes) == (1, 28, 10)
    assert complexity(net)["params"] == 61_706  # d2l §7.6
    d2l = nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Sigmoid(), nn.AvgPool2d(2, 2),
        nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(), nn.AvgPool2d(2, 2), nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(), nn.Linear(120, 84), nn.Sigmoid(),
        nn.Linear(84, 10),
    ).eval()  # fmt: skip
    ours = build(net).eval()
    ours.load_state_dict(dict(zip(ours.state_dict(), d2l.state_dict().values(), strict=True)))
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), d2l(x))
    assert complexity(net)["flops"] - bias_flops(net) == _meta_macs(d2l, (1, 1, 28, 28))


@pytest.mark.parametrize("name", list(REFERENCES))
def test_complexity_equals_built_module_at_small_inputs(name):
    # digits-sized inputs: 16 px (densenet121 needs 29), 10 classes, grey images
    resolution = 32 if name == "densenet121" else 16
    net = reference(name, resolution=resolution, num_classes=10, in_channels=1)
    model = build(net).eval()
    cx = complexity(net)
    assert cx["params"] == sum(p.numel() for p in model.parameters())
    x = torch.randn(2, 1, resolution, resolution)
    assert _acts(model, x[:1]) == cx["acts"]
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = model(x[:1])
    assert out.shape == (1, 10)
    assert cx["flops"] - bias_flops(net) == counter.get_total_flops() // 2
    model.train()(x).sum().backward()  # trains: gradients reach every parameter
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("name", ["densenet121", "googlenet"])
def test_too_small_resolution_names_the_least_torchvision_allows(name):
    least = getattr(torchvision.models, WEIGHTS[name]).IMAGENET1K_V1.meta["min_size"][0]
    with pytest.raises(ValueError, match=f"resolution: {name} needs at least {least} px"):
        reference(name, resolution=least - 1)
    net = reference(name, resolution=least)
    with torch.no_grad():
        assert build(net).eval()(torch.zeros(1, 3, least, least)).shape == (1, 1000)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ({"name": "alexnet_v9"}, "reference: unknown network"),
        ({"name": "lenet", "width": 3}, "width: lenet takes no option"),
        ({"name": "resnet18", "num_classes": 0}, "num_classes: need an integer >= 1"),
        ({"name": "resnet18", "resolution": 2.5}, "resolution: need an integer >= 1"),
        ({"name": "lenet", "resolution": 8}, "resolution: lenet needs at least 12 px"),
    ],
)
def test_bad_input_names_the_field(args, needle):
    with pytest.raises(ValueError, match=needle):
        reference(**args)


def test_overrides_reach_the_network():
    net = reference("googlenet", dropout=0.5, num_classes=7)
    assert net.head[-2].p == 0.5 and net.head[-1].c_out == 7
    assert net == reference("googlenet", dropout=0.5, num_classes=7)  # plain, comparable data


def test_import_anynet_stays_torch_free_and_names_are_functions():
    code = (
        "import sys, anynet\n"
        "net = anynet.reference('efficientnet_b0', resolution=32)\n"
        "assert anynet.complexity(net)['params'] > 0\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "import anynet.build, anynet.complexity, anynet.export, anynet.reference\n"
        "assert all(callable(f) for f in (anynet.build, anynet.complexity, anynet.export,\n"
        "    anynet.reference, anynet.sample))\n"
        "anynet.build(net)\n"
        "assert 'torch' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert anynet.reference is reference
