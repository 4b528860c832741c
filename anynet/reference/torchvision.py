"""torchvision's classic ImageNet networks, each described once in the layer language.

Every function is the same network as the torchvision constructor of the same name: the same
layers in the same order (so torchvision's state dict maps onto ours tensor for tensor), the
same parameter count and the same multiply-adds as torch.utils.flop_counter
(tests/test_reference_networks.py). Each takes num_classes, in_channels and resolution (anynet.reference
supplies the native 1000, 3, 224) and the constructor's own regularisation options. No torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

from anynet.families import (
    classifier,
    conv_norm_act,
    dense_stage,
    describe,
    inception_block,
    mbconv_block,
    stem_layers,
    transition,
)
from anynet.layers import (
    BN,
    GELU,
    RELU,
    SILU,
    Act,
    AdaptiveAvgPool,
    Block,
    Conv,
    Dropout,
    DropPath,
    Flatten,
    GlobalAvgPool,
    LayerNorm,
    LayerScale,
    Linear,
    MaxPool,
    Net,
)
from anynet.regnet import regnet_spec
from anynet.rounding import make_divisible
from anynet.spec import NetSpec, StageSpec, StemSpec

RELU6 = Act("relu6")


# --- AlexNet and VGG: conv stacks, max-pools, an adaptive pool and a dropout MLP ------------
def _mlp_head(c_in: int, hidden: int, num_classes: int, dropout: float, first: bool) -> tuple:
    """Flatten → FC-ReLU-FC-ReLU-FC with dropout before (AlexNet) or after (VGG) each hidden FC."""
    drop = (Dropout(dropout),)
    layers: tuple = (Flatten(),)
    for c in (c_in, hidden):
        fc = (Linear(c, hidden), RELU)
        layers += drop + fc if first else fc + drop
    return layers + (Linear(hidden, num_classes),)


def alexnet(num_classes: int, in_channels: int, resolution: int, dropout: float = 0.5) -> Net:
    """AlexNet as torchvision builds it ("one weird trick" widths 64-192-384-256-256)."""

    def pool(c, h):
        return MaxPool(c, 3, 2, h, padding=0)

    c1 = Conv(in_channels, 64, 11, 4, 1, True, resolution, padding=2)
    p1 = pool(64, c1.h_out)
    c2 = Conv(64, 192, 5, 1, 1, True, p1.h_out)
    p2 = pool(192, c2.h_out)
    c3 = Conv(192, 384, 3, 1, 1, True, p2.h_out)
    c4 = Conv(384, 256, 3, 1, 1, True, c3.h_out)
    c5 = Conv(256, 256, 3, 1, 1, True, c4.h_out)
    p3 = pool(256, c5.h_out)
    stages = ((c2, RELU, p2), (c3, RELU, c4, RELU, c5, RELU, p3))
    head = (
        AdaptiveAvgPool(256, 6, p3.h_out),
        *_mlp_head(256 * 36, 4096, num_classes, dropout, True),
    )
    return Net((c1, RELU, p1), stages, head, in_channels, resolution, num_classes)


# torchvision VGG configurations: widths of the 3x3 convs, "M" a 2x2 max-pool (VGG Table 1)
VGG_CONFIGS = {
    "vgg11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M"),
}  # fmt: skip


def vgg_stages(config, in_channels: int, h, batch_norm: bool) -> tuple[tuple, int, int]:
    """VGG features: [3x3 conv (bias) → [BN] → ReLU]... each run closed by a 2x2 max-pool.

    Returns (stages, width, size); torchvision and the CIFAR VGGs keep the conv bias with BN.
    """
    stages, nodes, c = [], (), in_channels
    for v in config:
        if v == "M":
            pool = MaxPool(c, 2, 2, h)
            stages.append((*nodes, pool))
            nodes, h = (), pool.h_out
            continue
        conv = Conv(c, v, 3, 1, 1, True, h)
        nodes += (conv, *((BN(v),) if batch_norm else ()), RELU)
        c = v
    return tuple(stages), c, h


def vgg(
    config: str, num_classes: int, in_channels: int, resolution: int, dropout: float = 0.5
) -> Net:
    """VGG without BN as torchvision builds it: features → 7x7 adaptive pool → 4096-4096 MLP."""
    stages, c, h = vgg_stages(VGG_CONFIGS[config], in_channels, resolution, False)
    head = (AdaptiveAvgPool(c, 7, h), *_mlp_head(c * 49, 4096, num_classes, dropout, False))
    return Net((), stages, head, in_channels, resolution, num_classes)


vgg11 = partial(vgg, "vgg11")
vgg16 = partial(vgg, "vgg16")


# --- GoogLeNet ------------------------------------------------------------------------------
# inception widths (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj), GoogLeNet Table 1
_INCEPTION = (
    ((64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64)),
    ((192, 96, 208, 16, 48, 64), (160, 112, 224, 24, 64, 64), (128, 128, 256, 24, 64, 64),
     (112, 144, 288, 32, 64, 64), (256, 160, 320, 32, 128, 128)),
    ((256, 160, 320, 32, 128, 128), (384, 192, 384, 48, 128, 128)),
)  # fmt: skip


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


# --- ResNets and RegNet: NetSpecs of the AnyNet families ---------------------------------------
def _resnet(
    block: str, stages: tuple, multiplier: float, groups: int, inputs: tuple[int, int, int]
) -> Net:
    """A torchvision ResNet/ResNeXt: resnet stem, stages (depth, width, stride), fc head.

    Bottleneck inner width = width·multiplier with `groups` groups (torchvision's
    int(planes·base_width/64)·groups); the stride sits in the 3x3 (ResNet v1.5).
    """
    num_classes, in_channels, resolution = inputs
    specs = [
        StageSpec(
            depth=d,
            width=w,
            stride=s,
            bottleneck_multiplier=multiplier,
            group_width=max(1, round(w * multiplier) // groups),
        )
        for d, w, s in stages
    ]
    spec = NetSpec(
        stem=StemSpec(type="resnet", width=64),
        block=block,
        stages=specs,
        num_classes=num_classes,
        in_channels=in_channels,
        resolution=resolution,
    )
    return describe(spec)


def resnet18(num_classes: int, in_channels: int, resolution: int) -> Net:
    """ResNet-18: the resnet stem and four stages of two res_basic blocks."""
    stages = ((2, 64, 1), (2, 128, 2), (2, 256, 2), (2, 512, 2))
    return _resnet("res_basic", stages, 1.0, 1, (num_classes, in_channels, resolution))


_RESNET50 = ((3, 256, 1), (4, 512, 2), (6, 1024, 2), (3, 2048, 2))


def resnet50(num_classes: int, in_channels: int, resolution: int) -> Net:
    """ResNet-50: bottleneck blocks with inner width w/4, one group."""
    return _resnet("res_bottleneck", _RESNET50, 0.25, 1, (num_classes, in_channels, resolution))


def resnext50_32x4d(num_classes: int, in_channels: int, resolution: int) -> Net:
    """ResNeXt-50 32x4d: ResNet-50's stages with inner width w/2 in 32 groups."""
    return _resnet("res_bottleneck", _RESNET50, 0.5, 32, (num_classes, in_channels, resolution))


def regnet_y_400mf(num_classes: int, in_channels: int, resolution: int) -> Net:
    """RegNetY-400MF as torchvision builds it: (16, 48, 27.89, 2.09, g 8, SE 1/4), its rule."""
    spec = regnet_spec(16, 48, 27.89, 2.09, 8, se_ratio=0.25, rounding="torchvision",
                       num_classes=num_classes, in_channels=in_channels, resolution=resolution)  # fmt: skip
    return describe(spec)


# --- DenseNet ------------------------------------------------------------------------------
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


# --- MobileNetV2 and EfficientNet: inverted residuals -----------------------------------------
# MobileNetV2 Table 2: (expand ratio t, width c, depth n, stride s)
_MOBILENET_V2 = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                 (6, 160, 3, 2), (6, 320, 1, 1))  # fmt: skip


def mobilenet_v2(num_classes: int, in_channels: int, resolution: int, dropout: float = 0.2) -> Net:
    """MobileNetV2: ReLU6 inverted residuals expanding to int(round(w_in·t)), no SE."""
    stem, h = conv_norm_act(in_channels, 32, 3, 2, resolution, RELU6)
    c, stages = 32, []
    for t, w, n, s in _MOBILENET_V2:
        blocks = []
        for i in range(n):
            blocks.append(mbconv_block(c, w, int(round(c * t)), 3, s if i == 0 else 1, h, 0, RELU6))
            h, c = blocks[-1].h_out, w
        stages.append(tuple(blocks))
    last, _ = conv_norm_act(c, 1280, 1, 1, h, RELU6)
    head = (*last, *classifier(1280, num_classes, dropout))
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


def efficientnet_b0(
    num_classes: int, in_channels: int, resolution: int, dropout: float = 0.2
) -> Net:
    """EfficientNet-B0 (width 1.0, depth 1.0, 224 px; torchvision's BatchNorm defaults)."""
    return efficientnet(num_classes, in_channels, resolution, dropout=dropout)


# --- ConvNeXt ------------------------------------------------------------------------------
def convnext_block(c, h, layer_scale: float, drop_path: float) -> Block:
    """torchvision's CNBlock: x + drop_path(γ · pw(GELU(pw(LN(dw7x7(x)))))), MLP ratio 4.

    torchvision's two Linear layers on channels-last pixels are our 1x1 convs (bias): the
    same weights (reshaped) and multiply-adds.
    """
    f = (
        Conv(c, c, 7, 1, c, True, h),
        LayerNorm(c),
        Conv(c, 4 * c, 1, 1, 1, True, h),
        GELU,
        Conv(4 * c, c, 1, 1, 1, True, h),
        LayerScale(c, layer_scale),
        DropPath(drop_path),
    )
    return Block("convnext", f, None, True, None, (), h)


def convnext_tiny(
    num_classes: int,
    in_channels: int,
    resolution: int,
    stochastic_depth: float = 0.1,
    layer_scale: float = 1e-6,
) -> Net:
    """ConvNeXt-T: depths (3, 3, 9, 3), widths (96, 192, 384, 768); LayerNorm + 2x2 stride-2
    conv between stages; drop path rising linearly to `stochastic_depth` over all blocks."""
    depths, widths = (3, 3, 9, 3), (96, 192, 384, 768)
    stem, h = stem_layers("convnext", widths[0], in_channels, resolution)  # 4x4/4 conv → LN
    total, done, c, stages = sum(depths), 0, widths[0], []
    for depth, w in zip(depths, widths, strict=True):
        nodes: tuple = ()
        if w != c:  # torchvision's downsampling layers sit between the stages
            down = Conv(c, w, 2, 2, 1, True, h)
            nodes, c, h = (LayerNorm(c), down), w, down.h_out
        for _ in range(depth):
            nodes += (convnext_block(c, h, layer_scale, stochastic_depth * done / (total - 1)),)
            done += 1
        stages.append(nodes)
    head = (GlobalAvgPool(c), LayerNorm(c), Linear(c, num_classes))
    return Net(stem, tuple(stages), head, in_channels, resolution, num_classes)
