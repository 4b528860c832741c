"""Reference networks by name: the classic networks, each described once in the layer language.

`reference(name, **overrides)` gives the Net of a named network; `build` makes its module and
`complexity` counts it, exactly. `ReferenceSpec` is the same request as data (a name, the
input, the options), the form studies and workers pass around. Every network takes
num_classes, in_channels and resolution (its native input by default) and fails with a
ValueError naming the smallest resolution its strides allow when the feature map would
vanish. The networks and their sources are docs/method.md §1 ("Reference networks"); they
live in anynet.reference.torchvision and anynet.reference.papers, and adding one means
describing it there and adding a row to REFERENCES.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from anynet.complexity import counts
from anynet.layers import Net
from anynet.reference import papers as P
from anynet.reference import torchvision as T

INPUT = ("num_classes", "in_channels", "resolution")
# options that are probabilities (dropout, stochastic depth): 0 <= p < 1
PROBABILITIES = ("dropout", "stochastic_depth")


@dataclass(frozen=True)
class Reference:
    """One reference network: its description, its source and the input it was made for."""

    name: str
    source: str
    describe: Callable[..., Net]  # (num_classes, in_channels, resolution, **options) -> Net
    num_classes: int = 1000
    in_channels: int = 3
    resolution: int = 224

    @property
    def options(self) -> dict[str, Any]:
        """The network's own options and their defaults (beyond the input)."""
        params = inspect.signature(self.describe).parameters.values()
        return {p.name: p.default for p in params if p.name not in INPUT}


_TV = "torchvision.models."
_CIFAR = {"num_classes": 10, "in_channels": 3, "resolution": 32}
REFERENCES: dict[str, Reference] = {
    r.name: r
    for r in (
        Reference("lenet", "d2l LeNet (Dive into Deep Learning §7.6)", P.lenet, 10, 1, 28),
        Reference("nin", "d2l NiN (Dive into Deep Learning §8.3)", P.nin, 10, 1, 224),
        Reference("alexnet", _TV + "alexnet", T.alexnet),
        Reference("vgg11", _TV + "vgg11", T.vgg11),
        Reference("vgg16", _TV + "vgg16", T.vgg16),
        Reference(
            "googlenet", _TV + "googlenet(aux_logits=False, transform_input=False)", T.googlenet
        ),  # fmt: skip
        Reference("resnet18", _TV + "resnet18", T.resnet18),
        Reference("resnet50", _TV + "resnet50", T.resnet50),
        Reference("resnext50_32x4d", _TV + "resnext50_32x4d", T.resnext50_32x4d),
        Reference("densenet121", _TV + "densenet121", T.densenet121),
        Reference("mobilenet_v2", _TV + "mobilenet_v2", T.mobilenet_v2),
        Reference("efficientnet_b0", _TV + "efficientnet_b0", T.efficientnet_b0),
        Reference("regnet_y_400mf", _TV + "regnet_y_400mf", T.regnet_y_400mf),
        Reference("convnext_tiny", _TV + "convnext_tiny", T.convnext_tiny),
        Reference("resnet20", "He et al. 2016 §4.2, CIFAR ResNet-20", P.resnet20, **_CIFAR),
        Reference("resnet56", "He et al. 2016 §4.2, CIFAR ResNet-56", P.resnet56, **_CIFAR),
        Reference("resnet110", "He et al. 2016 §4.2, CIFAR ResNet-110", P.resnet110, **_CIFAR),
        Reference(
            "densenet_bc_100_k12",
            "Huang et al. 2017 §3, CIFAR DenseNet-BC (L=100, k=12)",
            P.densenet_bc_100_k12,
            **_CIFAR,
        ),  # fmt: skip
        Reference(
            "vgg16_cifar",
            "VGG-16 with BN for CIFAR (kuangliu/pytorch-cifar VGG16)",
            P.vgg16_cifar,
            **_CIFAR,
        ),  # fmt: skip
    )
}


def _check_option(name: str, key: str, value, default) -> None:
    """A ValueError naming the option unless value has its default's type (and range)."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(default, float):
        ok = number and (not key.endswith(PROBABILITIES) or 0 <= value < 1) and value >= 0
        need = "a probability in [0, 1)" if key.endswith(PROBABILITIES) else "a number >= 0"
    elif isinstance(default, tuple):
        ok = isinstance(value, list | tuple) and all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value
        )
        need = "a list of integers >= 1"
    elif isinstance(default, int):
        ok, need = number and isinstance(value, int) and value >= 1, "an integer >= 1"
    else:
        ok, need = isinstance(value, type(default)), f"a {type(default).__name__}"
    if not ok:
        raise ValueError(f"{key}: {name} needs {need}, got {value!r}")


def reference(name: str, **overrides) -> Net:
    """The Net of the reference network `name`.

    overrides: num_classes, in_channels, resolution (default: the network's native input)
    and the network's own options (e.g. dropout). Bad input raises a ValueError naming it.
    """
    if name not in REFERENCES:
        raise ValueError(f"reference: unknown network {name!r}; known: {', '.join(REFERENCES)}")
    ref = REFERENCES[name]
    options = ref.options
    for key, value in overrides.items():
        if key in INPUT:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key}: need an integer >= 1, got {value!r}")
        elif key not in options:
            raise ValueError(
                f"{key}: {name} takes no option {key!r}; it takes {[*INPUT, *options]}"
            )
        else:
            _check_option(name, key, value, options[key])
    values = {key: getattr(ref, key) for key in INPUT} | overrides
    try:
        return ref.describe(**values)
    except ValueError as e:
        if not str(e).startswith("resolution:"):
            raise
        least = least_resolution(name, **values)
        raise ValueError(
            f"resolution: {name} needs at least {least} px for its strides, got "
            f"{values['resolution']} ({e})"
        ) from None


def least_resolution(name: str, **overrides) -> int:
    """The smallest input side at which the network `name` (with overrides) exists."""
    ref = REFERENCES[name]
    values = {key: getattr(ref, key) for key in INPUT} | overrides
    lo, hi = 1, max(values["resolution"], 1)
    while not _exists(ref, values, hi):  # grow an upper bound, then bisect (sizes grow with h)
        lo, hi = hi + 1, 2 * hi
        if hi > 1 << 16:
            raise ValueError(f"resolution: {name} exists at no resolution up to {hi} px")
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if _exists(ref, values, mid) else (mid + 1, hi)
    return lo


def _exists(ref: Reference, values: dict, resolution: int) -> bool:
    try:
        ref.describe(**{**values, "resolution": resolution})
    except ValueError as e:
        if str(e).startswith("resolution:"):
            return False
        raise
    return True


class ReferenceSpec(BaseModel):
    """A reference network as data: its name, its input (native unless given) and options.

    JSON: {"reference": "resnet56", "num_classes": 10, "resolution": 32, "options": {...}}.
    Validating it describes the network once, so a spec that exists is a network that builds.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    reference: str
    num_classes: int = Field(ge=1)
    in_channels: int = Field(ge=1)
    resolution: int = Field(ge=1)
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _native_input(cls, data: Any) -> Any:
        """Fill the input the data leaves out with the network's native input."""
        if isinstance(data, dict) and isinstance(data.get("reference"), str):
            name = data["reference"]
            if name not in REFERENCES:
                known = ", ".join(REFERENCES)
                raise ValueError(f"reference: unknown network {name!r}; known: {known}")
            native = {key: getattr(REFERENCES[name], key) for key in INPUT}
            data = native | {k: v for k, v in data.items() if v is not None}
        return data

    @model_validator(mode="after")
    def _exists(self) -> ReferenceSpec:
        for key in set(self.options) & set(INPUT):
            raise ValueError(f"options.{key}: give {key} as a field of its own, not an option")
        try:
            _ = self.net  # describing it raises a ValueError naming the field
        except ValueError as e:
            if str(e).partition(":")[0] in self.options:  # name it where the data has it
                raise ValueError(f"options.{e}") from None
            raise
        return self

    @property
    def net(self) -> Net:
        """The Net this spec names."""
        inputs = {key: getattr(self, key) for key in INPUT}
        return reference(self.reference, **inputs, **self.options)

    @property
    def source(self) -> str:
        """Where the network comes from (a torchvision constructor, a paper, a book)."""
        return REFERENCES[self.reference].source

    def to_dict(self) -> dict:
        """Plain JSON-ready dict."""
        return self.model_dump(mode="json")

    def to_json(self, **kw) -> str:
        """JSON text of the spec."""
        return json.dumps(self.to_dict(), **kw)


def catalogue() -> list[dict]:
    """Every reference network: source, native input, exact complexity there (flops with bias
    adds, docs/method.md §2, and `macs` without them, as FLOP counters and torchvision's
    tables count) and the least input side its strides allow."""
    rows = []
    for ref in REFERENCES.values():
        inputs = {key: getattr(ref, key) for key in INPUT}
        flops, params, acts, bias = counts(reference(ref.name))
        rows.append(
            {"name": ref.name, "source": ref.source, **inputs, "flops": flops, "params": params,
             "acts": acts, "macs": flops - bias, "least_resolution": least_resolution(ref.name)}
        )  # fmt: skip
    return rows


def markdown_table() -> str:
    """The README's table of reference networks at their native input (tests keep it true)."""
    lines = [
        "| name | source | input | flops | flops w/o bias | params | acts | least side |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in catalogue():
        size = f"{r['in_channels']}x{r['resolution']}², {r['num_classes']} classes"
        lines.append(
            f"| `{r['name']}` | {r['source']} | {size} | {r['flops']:,} | {r['macs']:,} "
            f"| {r['params']:,} | {r['acts']:,} | {r['least_resolution']} |"
        )
    return "\n".join(lines) + "\n"
