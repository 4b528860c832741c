"""anynet.network: a NetSpec or a reference network by name, as one trainable description;
every reference network counted as built and trained by the worker's training path."""

from __future__ import annotations

import functools
import math

import pytest
import torch
from pydantic import ValidationError

from anynet.complexity import bias_flops
from anynet.network import describe_network, network, network_spec, with_input
from anynet.reference import REFERENCES, ReferenceSpec, least_resolution
from anynet.spec import NetSpec
from search.spec.study import DatasetSpec, Recipe
from testkit.torch_counts import forward_counts
from worker.data import load_dataset
from worker.loop import fit_to_data
from worker.train import train

torch.set_num_threads(1)
HEAVY = {"alexnet", "vgg11", "vgg16"}  # 57-129 M parameters even at their least input
DIGITS = 16  # digits upsampled to 16 px, the size the issue trains references at


def _names():
    return [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in REFERENCES]


def _side(name: str) -> int:
    """16 px where the network's strides allow it, else the least input it takes."""
    return max(DIGITS, least_resolution(name))


@functools.cache
def _digits(resolution: int):
    """A tiny digits split (16 train, 8 val images) at `resolution`, loaded once."""
    spec = DatasetSpec(name="digits", resolution=resolution, train_size=16, val_size=8)
    return load_dataset(spec)


@pytest.mark.parametrize("name", list(REFERENCES))
def test_reference_complexity_equals_its_module_at_digits_size(name):
    # cheap on the meta device, so the heavy networks are not slow here
    side = _side(name)
    spec = ReferenceSpec(reference=name, num_classes=10, in_channels=1, resolution=side)
    with torch.device("meta"):  # structure and counts only: no memory, no init
        model, cx = network(spec)
    assert model.spec == spec
    assert cx["params"] == sum(p.numel() for p in model.parameters())
    out, macs, acts = forward_counts(model.eval(), torch.empty(1, 1, side, side, device="meta"))
    assert out.shape == (1, 10)
    assert cx["flops"] - bias_flops(describe_network(spec)) == macs
    assert cx["acts"] == acts


@pytest.mark.parametrize("name", _names())
def test_every_reference_trains_on_digits(name):
    side = _side(name)
    if side > DIGITS:  # refused at 16 px: the error names the least resolution it takes
        with pytest.raises(ValueError, match=f"resolution: {name} needs at least {side} px"):
            ReferenceSpec(reference=name, resolution=DIGITS)
    data = _digits(side)
    spec = fit_to_data({"reference": name}, data)  # the worker's path: a stored description
    assert (spec.num_classes, spec.in_channels, spec.resolution) == (10, 3, side)
    recipe = Recipe(batch_size=8, lr=0.01, precision="fp32", crop_padding=0, flip=False)
    result = train(spec, data, recipe, epochs=1, seed=0)  # two steps
    assert result.status == "done", result.message
    assert math.isfinite(result.epochs[0]["train_loss"]) and result.val_error is not None


def test_reference_spec_is_data_with_native_defaults():
    spec = ReferenceSpec(reference="resnet56")
    assert (spec.num_classes, spec.in_channels, spec.resolution, spec.options) == (10, 3, 32, {})
    again = network_spec(spec.to_dict())
    assert again == spec and isinstance(again, ReferenceSpec)
    assert ReferenceSpec.model_validate_json(spec.to_json()) == spec
    other = network_spec({"reference": "resnet56", "options": {"shortcut": "projection"}})
    assert describe_network(other) != describe_network(spec)
    assert "He et al." in spec.source
    netspec = {"stages": [{"depth": 1, "width": 8}], "resolution": 16}
    assert isinstance(network_spec(netspec), NetSpec)
    assert network_spec(netspec) is not None and network_spec(spec) is spec


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"reference": "resnet57"}, "reference: unknown network 'resnet57'"),
        ({"reference": "vgg16", "resolution": 16}, "resolution: vgg16 needs at least 32 px"),
        ({"reference": "resnet56", "options": {"dropout": 0.1}}, "dropout: resnet56 takes no"),
        ({"reference": "resnet56", "options": {"resolution": 8}}, "options.resolution: give"),
        ({"reference": "lenet", "num_classes": 0}, "num_classes"),
        ({"reference": "lenet", "colour": True}, "colour"),
        (["resnet56"], "net: expected a NetSpec or reference object"),
    ],
)
def test_bad_descriptions_name_the_field(data, needle):
    with pytest.raises(ValueError, match=needle):
        network_spec(data)


def test_with_input_refits_a_network_and_validates_it():
    spec = ReferenceSpec(reference="convnext_tiny")
    small = with_input(spec, num_classes=10, resolution=32)
    assert (small.num_classes, small.resolution, small.options) == (10, 32, {})
    assert with_input(small, num_classes=10) is small
    with pytest.raises(ValidationError, match="convnext_tiny needs at least 32 px"):
        with_input(spec, resolution=16)
    with pytest.raises(ValueError, match="depth: not an input"):
        with_input(spec, depth=3)
    net = NetSpec(stages=[{"depth": 1, "width": 8}], resolution=16)
    assert with_input(net, resolution=24).resolution == 24


def test_network_of_a_netspec_is_build_and_complexity():
    spec = NetSpec(stages=[{"depth": 2, "width": 8, "group_width": 4}], resolution=16)
    with torch.device("meta"):  # structure and counts only: no memory, no init
        model, cx = network(spec)
    assert model.spec == spec and cx["params"] == sum(p.numel() for p in model.parameters())
