"""`dse model|export|train --reference NAME` and `dse model --references`, in-process."""

from __future__ import annotations

import pytest
import torch

from anynet.build import build
from anynet.complexity import counts
from anynet.network import network_complexity
from anynet.reference import REFERENCES, ReferenceSpec
from anynet.reference.export import TIMM, TORCHVISION
from testkit.cli import bad, run, run_json
from testkit.torch_counts import meta_macs

torch.set_num_threads(1)


def test_model_reference_json_has_the_counts_and_the_layer_table(capsys):
    data = run_json(capsys, "model", "--reference", "resnet56", "--classes", "100",
                    "--option", "shortcut=projection")  # fmt: skip
    spec = ReferenceSpec.model_validate(data["spec"])
    assert (spec.num_classes, spec.options) == (100, {"shortcut": "projection"})
    assert {k: data[k] for k in ("flops", "params", "acts")} == network_complexity(spec)
    for key in ("flops", "params", "acts"):
        assert sum(row[key] for row in data["layers"]) == data[key]
        assert sum(part[key] for part in data["parts"]) == data[key]
    assert data["reference"] == "resnet56" and "He et al." in data["source"]
    # a row's path names the built module's layer: its parameters are the row's
    state = build(spec.net).state_dict()
    for row in data["layers"]:
        owned = [k for k in state if k.startswith(row["path"] + ".") and "running" not in k
                 and "num_batches" not in k]  # fmt: skip
        assert sum(state[k].numel() for k in owned) == row["params"], row["path"]
    convs = [r for r in data["layers"] if r["layer"] == "Conv"]
    assert convs[0] == {**convs[0], "c_in": 3, "c_out": 16, "k": 3, "stride": 1, "h_out": 32}


def test_model_regnet_json_has_the_layer_table_too(capsys):
    data = run_json(capsys, "model", "--regnet", "13,24,36.44,2.49,8")
    assert data["stage_widths"] == [24, 56, 152, 368]  # RegNetX-200MF, docs/method.md §3
    for key in ("flops", "params", "acts"):
        assert sum(row[key] for row in data["layers"]) == data[key]


def test_model_references_lists_every_network_at_its_native_input(capsys):
    rows = run_json(capsys, "model", "--references")["references"]
    assert [r["name"] for r in rows] == list(REFERENCES)
    by_name = {r["name"]: r for r in rows}
    assert by_name["lenet"]["params"] == 61_706 and by_name["nin"]["params"] == 1_992_166
    assert by_name["resnet50"]["params"] == 25_557_032
    assert by_name["vgg16"]["least_resolution"] == 32
    code, out, _ = run(capsys, "model", "--references")
    assert code == 0 and len(out.splitlines()) == 1 + len(REFERENCES) and "densenet121" in out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (("model", "--reference", "vgg16", "--resolution", "16"),
         "resolution: vgg16 needs at least 32 px"),
        (("model", "--reference", "resnet57"), "reference: unknown network 'resnet57'"),
        (("model", "--reference", "resnet56", "--se", "0.25"), "--se: applies to --regnet only"),
        (("model", "--regnet", "13,24,36.44,2.49,8", "--in-channels", "1"),
         "--in-channels: applies to --reference only"),
        (("model", "--reference", "nin", "--option", "dropout"), "--option: expected KEY=VALUE"),
        (("model", "--reference", "nin", "--option", "dropout=2"), "options.dropout: nin needs"),
        (("model", "--references", "--classes", "10"), "--classes: applies to one network"),
        (("export", "--reference", "resnet56", "--format", "torchvision"),
         "format: torchvision has no resnet56"),
        (("export", "--reference", "googlenet", "--format", "timm"), "timm has no GoogLeNet"),
        (("export", "--reference", "vgg16", "--format", "timm"), "ConvMlp"),
        (("export", "--reference", "resnet18", "--format", "torchvision", "--in-channels", "1"),
         "in_channels: torchvision's resnet18 takes 3 input channels"),
        (("export", "--reference", "resnet18", "--format", "pycls"),
         "format: a reference network exports to torchvision, timm, json"),
        (("train", "--reference", "vgg16_cifar", "--dataset", "digits", "--resolution", "16",
          "--epochs", "1"), "resolution: vgg16_cifar needs at least 32 px"),
        (("train", "--spec", "x.json", "--option", "a=1", "--dataset", "digits", "--epochs", "1"),
         "--option: applies to --reference only"),
    ],
)  # fmt: skip
def test_bad_reference_input_is_one_line_naming_the_field(capsys, argv, needle):
    assert needle in bad(capsys, *argv)


def _built(code: str):
    """The model an export's code builds, on the meta device (no memory, no init)."""
    namespace: dict = {}
    try:
        with torch.device("meta"):
            exec(code, namespace)
    except NotImplementedError:  # torchvision's RegNet computes its widths with tensors
        exec(code, namespace)
    return namespace["model"].eval()


@pytest.mark.parametrize("name", list(TORCHVISION))
def test_torchvision_export_builds_our_network(capsys, name):
    data = run_json(capsys, "export", "--reference", name, "--format", "torchvision",
                    "--classes", "10")  # fmt: skip
    theirs = _built(data["config"]["code"])
    spec = ReferenceSpec(reference=name, num_classes=10)
    assert sum(p.numel() for p in theirs.parameters()) == network_complexity(spec)["params"]


def test_torchvision_export_of_densenet_options_uses_the_class(capsys):
    data = run_json(capsys, "export", "--reference", "densenet121", "--format", "torchvision",
                    "--option", "growth_rate=12", "--option", "block_config=[2,2,2,2]")  # fmt: skip
    assert "torchvision.models.DenseNet(" in data["config"]["code"]
    spec = ReferenceSpec(reference="densenet121", options={"growth_rate": 12,
                                                           "block_config": [2, 2, 2, 2]})  # fmt: skip
    theirs = _built(data["config"]["code"])
    assert sum(p.numel() for p in theirs.parameters()) == network_complexity(spec)["params"]


@pytest.mark.parametrize("name", list(TIMM))
def test_timm_export_builds_our_network(capsys, name):
    pytest.importorskip("timm")
    argv = ("--classes", "10", "--in-channels", "1", "--resolution", "64")
    data = run_json(capsys, "export", "--reference", name, "--format", "timm", *argv)
    theirs = _built(data["config"]["code"])
    spec = ReferenceSpec(reference=name, num_classes=10, in_channels=1, resolution=64)
    flops, params, _, bias = counts(spec.net)
    assert sum(p.numel() for p in theirs.parameters()) == params
    assert meta_macs(theirs, (1, 1, 64, 64)) == flops - bias  # the same multiply-adds


def test_json_export_is_the_reference_spec(capsys):
    code, out, _ = run(capsys, "export", "--reference", "resnet20", "--format", "json")
    assert code == 0
    assert ReferenceSpec.model_validate_json(out) == ReferenceSpec(reference="resnet20")


def test_train_reference_on_digits(capsys):
    data = run_json(capsys, "train", "--reference", "lenet", "--dataset", "digits",
                    "--resolution", "16", "--epochs", "1", "--threads", "1")  # fmt: skip
    assert data["status"] == "done" and data["val_error"] is not None
    spec = ReferenceSpec.model_validate(data["spec"])
    assert (spec.reference, spec.resolution, spec.in_channels, spec.num_classes) == (
        "lenet", 16, 3, 10)  # fmt: skip
    assert data["params"] == network_complexity(spec)["params"]
