"""Reference networks by name: the classic networks, each described once in the layer language.

`reference(name, **overrides)` gives the Net of a named network; `build` makes its module and
`complexity` counts it, exactly (docs/method.md §2). Every network takes num_classes,
in_channels and resolution (its native input by default) and fails with a ValueError naming
the smallest resolution its strides allow when the feature map would vanish.

Names and sources (each is the same network as its source: same parameters, same flops as
torch.utils.flop_counter, same logits with the source's weights; tests/test_reference.py):
- torchvision's constructors `resnet18`, `densenet121`, `googlenet` (aux_logits=False,
  transform_input=False), `efficientnet_b0`;
- `lenet`: d2l's LeNet (Dive into Deep Learning §7.6): 5x5 convs with sigmoid, 2x2 average
  pools, a 120-84-10 head on 1x28x28 digits; 61,706 parameters.
Adding a network means describing it here with anynet.families' pieces and registering it.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from anynet.families import (
    classifier,
    conv_norm_act,
    dense_stage,
    describe,
    inception_block,
    mbconv_block,
    transition,
)
from anynet.layers import (
    BN,
    RELU,
    SIGMOID,
    SILU,
    AvgPool,
    Conv,
    Flatten,
    GlobalAvgPool,
    Linear,
    MaxPool,
    Net,
)
from anynet.rounding import make_divisible
from anynet.spec import NetSpec, StageSpec, StemSpec

INPUT = ("num_classes", "in_channels", "resolution")


@dataclass(frozen=True)
class Reference:
    """One reference network: its description and the input it was made for."""

    name: str
    source: str
    describe: Callable[..., Net]  # (num_classes, in_channels, resolution, **options) -> Net
    num_classes: int = 1000
    in_channels: int = 3
    resolution: int = 224


REFERENCES: dict[str, Reference] = {}


def _register(name: str, source: str, **native):
    """Add the decorated description to REFERENCES under `name`."""

    def add(fn: Callable[..., Net]) -> Callable[..., Net]:
        REFERENCES[name] = Reference(name, source, fn, **native)
        return fn

    return add


def reference(name: str, **overrides) -> Net:
    """The Net of the reference network `name`.

    overrides: num_classes, in_channels, resolution (default: the network's native input)
    and the network's own options (e.g. dropout). Bad input raises a ValueError naming it.
    """
    if name not in REFERENCES:
        raise ValueError(f"reference: unknown network {name!r}; known: {', '.join(REFERENCES)}")
    ref = REFERENCES[name]
    options = list(inspect.signature(ref.describe).parameters)
    for key in overrides:
        if key not in options:
            raise ValueError(f"{key}: {name} takes no option {key!r}; it takes {options}")
    values = {key: getattr(ref, key) for key in INPUT} | overrides
    for key in INPUT:
        v = values[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{key}: need an integer >= 1, got {v!r}")
    try:
        return ref.describe(**values)
    except ValueError as e:
        if not str(e).startswith("resolution:"):
            raise
        least = _least_resolution(ref, values)
        raise ValueError(
            f"resolution: {name} needs at least {least} px for its strides, got "
            f"{values['resolution']} ({e})"
        ) from None


def _least_resolution(ref: Reference, values: dict) -> int | str:
    """The smallest resolution above the given one at which the network exists."""
    for r in range(values["resolution"] + 1, 4097):
        try:
            ref.describe(**{**values, "resolution": r})
            return r
        except ValueError:
            continue
    return "more than 4096"


# --- the networks ----------------------------------------------------------------------------
@_register("lenet", "d2l LeNet (Dive into Deep Learning §7.6)", num_classes=10, in_channels=1,
           resolution=28)  # fmt: skip
def lenet(num_classes: int, in_channels: int, resolution: int) -> Net:
    """LeNet-5 as d2l writes it: conv5x5(6, pad 2) → σ → avg2 → conv5x5(16) → σ → avg2 → FC."""
    c1 = Conv(in_channels, 6, 5, 1, 1, True, resolution, padding=2)
    p1 = AvgPool(6, 2, 2, c1.h_out)
    c2 = Conv(6, 16, 5, 1, 1, True, p1.h_out, padding=0)
    p2 = AvgPool(16, 2, 2, c2.h_out)
    head = (
        Flatten(),
        Linear(16 * p2.h_out * p2.h_out, 120),
        SIGMOID,
        Linear(120, 84),
        SIGMOID,
        Linear(84, num_classes),
    )
    stages = ((c2, SIGMOID, p2),)
    return Net((c1, SIGMOID, p1), stages, head, in_channels, resolution, num_classes)


@_register("resnet18", "torchvision.models.resnet18")
def resnet18(num_classes: int, in_channels: int, resolution: int) -> Net:
    """ResNet-18: the resnet stem and four stages of two res_basic blocks (a NetSpec)."""
    stages = [
        StageSpec(depth=2, width=w, stride=s) for w, s in ((64, 1), (128, 2), (256, 2), (512, 2))
    ]
    spec = NetSpec(
        stem=StemSpec(type="resnet", width=64),
        block="res_basic",
        stages=stages,
        num_classes=num_classes,
        in_channels=in_channels,
        resolution=resolution,
    )
    return describe(spec)


@_register("densenet121", "torchvision.models.densenet121")
def densenet121(
    num_classes: int,
    in_channels: int,
    resolution: int,
    growth_rate: int = 32,
    block_config: tuple[int, ...] = (6, 12, 24, 16),
    num_init_features: int = 64,
    bn_size: int = 4,
) -> Net:
    """DenseNet-BC: 7x7 stem, dense blocks with halving transitions, BN-ReLU-pool-FC head."""
    stem, h = conv_norm_act(in_channels, num_init_features, 7, 2, resolution)
    pool = MaxPool(num_init_features, 3, 2, h)
    c, h, stages = num_init_features, pool.h_out, []
    for i, depth in enumerate(block_config):
        nodes, c = dense_stage(c, depth, growth_rate, bn_size, h)
        if i < len(block_config) - 1:  # transitions halve the width (compression 0.5)
            down, h = transition(c, c // 2, h)
            nodes, c = nodes + down, c // 2
        stages.append(nodes)
    head = (BN(c), RELU, GlobalAvgPool(c), Linear(c, num_classes))
    return Net((*stem, pool), tuple(stages), head, in_channels, resolution, num_classes)


# torchvision GoogLeNet: inception widths (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj)
_INCEPTION = (
    ((64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64)),
    ((192, 96, 208, 16, 48, 64), (160, 112, 224, 24, 64, 64), (128, 128, 256, 24, 64, 64),
     (112, 144, 288, 32, 64, 64), (256, 160, 320, 32, 128, 128)),
    ((256, 160, 320, 32, 128, 128), (384, 192, 384, 48, 128, 128)),
)  # fmt: skip


@_register("googlenet", "torchvision.models.googlenet(aux_logits=False, transform_input=False)")
def googlenet(num_classes: int, in_channels: int, resolution: int, dropout: float = 0.2) -> Net:
    """GoogLeNet without auxiliary heads: BN eps 1e-3, ceil-mode max-pools between stages."""
    norm = partial(BN, eps=1e-3)  # torchvision BasicConv2d
    cna = partial(conv_norm_act, act=RELU, norm=norm)
    conv1, h = cna(in_channels, 64, 7, 2, resolution)
    pool1 = MaxPool(64, 3, 2, h, padding=0, ceil_mode=True)
    conv2, h = cna(64, 64, 1, 1, pool1.h_out)
    conv3, h = cna(64, 192, 3, 1, h)
    pool2 = MaxPool(192, 3, 2, h, padding=0, ceil_mode=True)
    stem = (*conv1, pool1, *conv2, *conv3, pool2)
    c, h, stages = 192, pool2.h_out, []
    for i, widths in enumerate(_INCEPTION):
        nodes: tuple = ()
        if i:  # maxpool3 (3x3) and maxpool4 (2x2) open stages 4 and 5
            pool = MaxPool(c, 3 if i == 1 else 2, 2, h, padding=0, ceil_mode=True)
            nodes, h = (pool,), pool.h_out
        for w in widths:
            block, c = inception_block(c, *w, h, k5=3, norm=norm)
            nodes += (block,)
        stages.append(nodes)
    head = classifier(c, num_classes, dropout)
    return Net(stem, tuple(stages), head, in_channels, resolution, num_classes)


# EfficientNet-B0 stages (torchvision _efficientnet_conf; EfficientNet Table 1):
# (expand ratio, kernel, stride, input width, output width, depth)
_B0 = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)


def efficientnet(
    num_classes: int,
    in_channels: int,
    resolution: int,
    width_mult: float = 1.0,
    depth_mult: float = 1.0,
    dropout: float = 0.2,
    stochastic_depth: float = 0.2,
    norm: Callable = BN,
) -> Net:
    """EfficientNet as torchvision builds it: B0's stages scaled in width and depth.

    Widths make_divisible(c·width_mult, 8), depths ceil(d·depth_mult); MBConv expands to
    make_divisible(w_in·t, 8) with SE of max(1, w_in // 4) and SiLU; stochastic depth grows
    linearly to `stochastic_depth` over the blocks (identity at eval).
    """
    width = partial(make_divisible, divisor=8)
    stem, h = conv_norm_act(in_channels, width(32 * width_mult), 3, 2, resolution, SILU, norm=norm)
    rows = [(t, k, s, width(a * width_mult), width(b * width_mult), math.ceil(n * depth_mult))
            for t, k, s, a, b, n in _B0]  # fmt: skip
    total, done, stages = sum(r[-1] for r in rows), 0, []
    for t, k, s, w_in, w_out, depth in rows:
        blocks = []
        for i in range(depth):
            c = w_in if i == 0 else w_out
            blocks.append(
                mbconv_block(c, w_out, width(c * t), k, s if i == 0 else 1, h, max(1, c // 4),
                             SILU, norm, stochastic_depth * done / total)
            )  # fmt: skip
            h, done = blocks[-1].h_out, done + 1
        stages.append(tuple(blocks))
    last = 4 * rows[-1][4]
    conv, _ = conv_norm_act(rows[-1][4], last, 1, 1, h, SILU, norm=norm)
    head = (*conv, *classifier(last, num_classes, dropout))
    return Net(stem, tuple(stages), head, in_channels, resolution, num_classes)


@_register("efficientnet_b0", "torchvision.models.efficientnet_b0")
def efficientnet_b0(
    num_classes: int, in_channels: int, resolution: int, dropout: float = 0.2
) -> Net:
    """EfficientNet-B0 (width 1.0, depth 1.0, 224 px; torchvision's BatchNorm defaults)."""
    return efficientnet(num_classes, in_channels, resolution, dropout=dropout)
