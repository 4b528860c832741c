"""Export a reference network to a library that has the same network: torchvision or timm.

An export names the library's constructor and the arguments that build *the same network*
(the same layers, parameter count and multiply-adds; tests build each export and compare), or
refuses with the reason where the library has no such network: the CIFAR and d2l networks
are in neither; timm has no AlexNet or GoogLeNet, and its VGGs replace the 7x7 adaptive pool
and first Linear layer with a 7x7 conv (ConvMlp), a different network at other inputs;
torchvision's stems take 3 channels. `json` is our own format (the ReferenceSpec).
"""

from __future__ import annotations

from typing import Any

from anynet.reference import REFERENCES, ReferenceSpec

FORMATS = ("torchvision", "timm", "json")

# name -> (constructor, fixed keyword arguments, {our option: its keyword argument})
TORCHVISION: dict[str, tuple[str, dict, dict]] = {
    "alexnet": ("alexnet", {}, {"dropout": "dropout"}),
    "vgg11": ("vgg11", {}, {"dropout": "dropout"}),
    "vgg16": ("vgg16", {}, {"dropout": "dropout"}),
    "googlenet": (
        "googlenet",
        {"aux_logits": False, "transform_input": False, "init_weights": True},
        {"dropout": "dropout"},
    ),
    "resnet18": ("resnet18", {}, {}),
    "resnet50": ("resnet50", {}, {}),
    "resnext50_32x4d": ("resnext50_32x4d", {}, {}),
    # densenet121() fixes its growth rate, blocks and stem width: other values go to DenseNet
    "densenet121": ("densenet121", {}, {}),
    "mobilenet_v2": ("mobilenet_v2", {}, {"dropout": "dropout"}),
    "efficientnet_b0": ("efficientnet_b0", {}, {"dropout": "dropout"}),
    "regnet_y_400mf": ("regnet_y_400mf", {}, {}),
    "convnext_tiny": (
        "convnext_tiny",
        {},
        {"stochastic_depth": "stochastic_depth_prob", "layer_scale": "layer_scale"},
    ),
}
_DENSENET_OPTIONS = ("growth_rate", "block_config", "num_init_features", "bn_size")

# name -> (timm model name, fixed keyword arguments, {our option: its keyword argument}); the
# fixed arguments give timm torchvision's regularisation (timm's defaults are 0)
TIMM: dict[str, tuple[str, dict, dict]] = {
    "resnet18": ("resnet18", {}, {}),
    "resnet50": ("resnet50", {}, {}),
    "resnext50_32x4d": ("resnext50_32x4d", {}, {}),
    "densenet121": ("densenet121", {}, {}),
    "mobilenet_v2": ("mobilenetv2_100", {"drop_rate": 0.2}, {"dropout": "drop_rate"}),
    "efficientnet_b0": (
        "efficientnet_b0",
        {"drop_rate": 0.2, "drop_path_rate": 0.2},
        {"dropout": "drop_rate"},
    ),
    "regnet_y_400mf": ("regnety_004", {}, {}),
    "convnext_tiny": (
        "convnext_tiny",
        {"drop_path_rate": 0.1},
        {"stochastic_depth": "drop_path_rate", "layer_scale": "ls_init_value"},
    ),
}
_NOT_IN_TIMM = {
    "alexnet": "timm has no AlexNet",
    "googlenet": "timm has no GoogLeNet (only Inception-v3)",
    "vgg11": "timm's vgg11 computes its classifier with a 7x7 conv (ConvMlp) instead of a 7x7 "
    "adaptive pool and Linear: a different network at inputs other than 224-255 px",
    "vgg16": "timm's vgg16 computes its classifier with a 7x7 conv (ConvMlp) instead of a 7x7 "
    "adaptive pool and Linear: a different network at inputs other than 224-255 px",
}


def _refuse(spec: ReferenceSpec, fmt: str, why: str) -> ValueError:
    return ValueError(f"format: {fmt} has no {spec.reference} ({why}); use --format json")


def _kwargs(spec: ReferenceSpec, fixed: dict, options: dict, fmt: str) -> dict:
    """The library's keyword arguments for the spec's options (unmapped ones are refused)."""
    kw = dict(fixed)
    for key, value in spec.options.items():
        if key not in options:
            raise _refuse(spec, fmt, f"no argument for the option {key}={value!r}")
        kw[options[key]] = list(value) if isinstance(value, tuple) else value
    return kw


def _torchvision(spec: ReferenceSpec) -> dict:
    if spec.reference not in TORCHVISION:
        raise _refuse(spec, "torchvision", REFERENCES[spec.reference].source)
    if spec.in_channels != 3:
        raise ValueError(
            f"in_channels: torchvision's {spec.reference} takes 3 input channels, not "
            f"{spec.in_channels}; use --format timm (in_chans) or json"
        )
    constructor, fixed, options = TORCHVISION[spec.reference]
    if spec.reference == "densenet121" and spec.options:
        options = {key: key for key in _DENSENET_OPTIONS}
        fixed = {"growth_rate": 32, "block_config": [6, 12, 24, 16], "num_init_features": 64}
        constructor = "DenseNet"
    kw = _kwargs(spec, fixed, options, "torchvision") | {"num_classes": spec.num_classes}
    code = f"import torchvision\n\nmodel = torchvision.models.{constructor}({_text(kw)})\n"
    return {"constructor": f"torchvision.models.{constructor}", "kwargs": kw, "code": code}


def _timm(spec: ReferenceSpec) -> dict:
    if spec.reference in _NOT_IN_TIMM:
        raise _refuse(spec, "timm", _NOT_IN_TIMM[spec.reference])
    if spec.reference not in TIMM:
        raise _refuse(spec, "timm", REFERENCES[spec.reference].source)
    model, fixed, options = TIMM[spec.reference]
    kw = _kwargs(spec, fixed, options, "timm")
    kw |= {"num_classes": spec.num_classes, "in_chans": spec.in_channels}
    code = f"import timm\n\nmodel = timm.create_model({model!r}, {_text(kw)})\n"
    return {"model_name": model, "kwargs": kw, "code": code}


def _json(spec: ReferenceSpec) -> dict:
    return {"spec": spec.to_dict(), "code": spec.to_json(indent=2) + "\n"}


def export_reference(spec: ReferenceSpec, fmt: str) -> dict:
    """Structured export of a reference network: format, reference, note, config (with the
    code to paste); a ValueError naming the reason where the target has no such network."""
    targets = {"torchvision": _torchvision, "timm": _timm, "json": _json}
    if fmt not in targets:
        raise ValueError(
            f"format: a reference network exports to {', '.join(FORMATS)}, not {fmt!r}"
        )
    config = targets[fmt](spec)
    note = (
        f"{spec.reference} ({REFERENCES[spec.reference].source}) for "
        f"{spec.in_channels}x{spec.resolution}x{spec.resolution} inputs, {spec.num_classes} "
        "classes: the same network as ours (layers, parameters, multiply-adds)"
    )
    return {"format": fmt, "reference": spec.reference, "note": note, "config": config}


def render_reference(out: dict) -> str:
    """The text of a reference export: the note, then the code."""
    if out["format"] == "json":
        return out["config"]["code"]
    return f"# {out['note']}\n{out['config']['code']}"


def _text(kw: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kw.items())
