"""The textbook and CIFAR reference networks, each described once in the layer language.

- d2l (Dive into Deep Learning): `lenet` (§7.6) and `nin` (§8.3), exactly as the book's
  PyTorch code builds them (61,706 and 1,992,166 parameters at their native inputs).
- The CIFAR networks NDS and DDS compare against, as their papers define them:
  `resnet20/56/110` (He et al. 2016 §4.2), `densenet_bc_100_k12` (Huang et al. 2017 §3) and
  `vgg16_cifar` (VGG-16's 13 convs with BN and one linear layer, the common CIFAR form).
No torch; anynet.reference registers them with their native inputs.
"""

from __future__ import annotations

from anynet.families import dense_stage, describe, stem_layers, transition
from anynet.layers import (
    BN,
    RELU,
    SIGMOID,
    AvgPool,
    Block,
    Conv,
    Dropout,
    Flatten,
    GlobalAvgPool,
    Linear,
    MaxPool,
    Net,
    ZeroPadShortcut,
)
from anynet.reference.torchvision import VGG_CONFIGS, vgg_stages
from anynet.spec import NetSpec, StageSpec, StemSpec


# --- d2l ---------------------------------------------------------------------------------------
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


def nin_block(c_in, c_out, k, stride, padding, h) -> tuple[tuple, int]:
    """d2l's NiN block: k x k conv (bias) → ReLU → [1x1 conv (bias) → ReLU] x2; (layers, size)."""
    conv = Conv(c_in, c_out, k, stride, 1, True, h, padding)
    h = conv.h_out
    pointwise = (Conv(c_out, c_out, 1, 1, 1, True, h), RELU)
    return (conv, RELU, *pointwise, *pointwise), h


def nin(num_classes: int, in_channels: int, resolution: int, dropout: float = 0.5) -> Net:
    """Network in Network (d2l §8.3): NiN blocks 96/256/384 with 3x3 stride-2 max-pools, dropout,
    a last NiN block to the classes and a global average pool as the classifier."""
    c, h, stem = 96, resolution, ()
    stages = []
    for i, (w, k, stride, pad) in enumerate(((96, 11, 4, 0), (256, 5, 1, 2), (384, 3, 1, 1))):
        block, h = nin_block(in_channels if i == 0 else c, w, k, stride, pad, h)
        pool = MaxPool(w, 3, 2, h, padding=0)
        nodes, c, h = (*block, pool), w, pool.h_out
        if i == 0:
            stem = nodes
        else:
            stages.append(nodes)
    stages[-1] += (Dropout(dropout),)
    last, _ = nin_block(c, num_classes, 3, 1, 1, h)
    head = (*last, GlobalAvgPool(num_classes))  # the pooled class maps are the logits
    return Net(stem, tuple(stages), head, in_channels, resolution, num_classes)


# --- CIFAR ResNets (He et al. 2016 §4.2) ---------------------------------------------------
SHORTCUTS = ("zero_pad", "projection")


def _basic_block_option_a(w_in, w, stride, h) -> Block:
    """relu(x' + [3x3(stride) → BN → ReLU → 3x3 → BN](x)), x' = the option A shortcut of x."""
    a = Conv(w_in, w, 3, stride, 1, False, h)
    b = Conv(w, w, 3, 1, 1, False, a.h_out)
    changes = w_in != w or stride != 1
    skip = (ZeroPadShortcut(w_in, w, stride, h),) if changes else None
    return Block("res_basic", (a, BN(w), RELU, b, BN(w)), skip, True, RELU, (), b.h_out)


def resnet_cifar(
    depth: int, num_classes: int, in_channels: int, resolution: int, shortcut: str = "zero_pad"
) -> Net:
    """He et al.'s CIFAR ResNet of `depth` = 6n + 2 layers: 3x3 conv 16 → BN → ReLU, three
    stages of n basic blocks (widths 16, 32, 64; strides 1, 2, 2), global pool, FC.

    shortcut "zero_pad": the paper's option A (identity shortcuts, zero channels added where the
    width grows; §4.2: "we use identity shortcuts in all cases"); "projection": 1x1 conv → BN
    where the width or stride changes, the form of the NDS ResNet design space (pycls).
    """
    if shortcut not in SHORTCUTS:
        raise ValueError(f"shortcut: must be one of {SHORTCUTS}, got {shortcut!r}")
    n = (depth - 2) // 6
    stages = ((n, 16, 1), (n, 32, 2), (n, 64, 2))
    if shortcut == "projection":
        spec = NetSpec(
            stem=StemSpec(type="cifar", width=16),
            block="res_basic",
            stages=[StageSpec(depth=d, width=w, stride=s) for d, w, s in stages],
            num_classes=num_classes,
            in_channels=in_channels,
            resolution=resolution,
        )
        return describe(spec)
    stem, h = stem_layers("cifar", 16, in_channels, resolution)
    w_in, out = 16, []
    for d, w, s in stages:
        first = _basic_block_option_a(w_in, w, s, h)
        rest = _basic_block_option_a(w, w, 1, first.h_out)
        out.append((first,) + (rest,) * (d - 1))
        w_in, h = w, first.h_out
    head = (GlobalAvgPool(64), Linear(64, num_classes))
    return Net(stem, tuple(out), head, in_channels, resolution, num_classes)


def resnet20(num_classes: int, in_channels: int, resolution: int, shortcut: str = "zero_pad"):
    """ResNet-20 (n = 3): 269,722 parameters with option A (paper: 0.27M)."""
    return resnet_cifar(20, num_classes, in_channels, resolution, shortcut)


def resnet56(num_classes: int, in_channels: int, resolution: int, shortcut: str = "zero_pad"):
    """ResNet-56 (n = 9): 853,018 parameters with option A (paper: 0.85M)."""
    return resnet_cifar(56, num_classes, in_channels, resolution, shortcut)


def resnet110(num_classes: int, in_channels: int, resolution: int, shortcut: str = "zero_pad"):
    """ResNet-110 (n = 18): 1,727,962 parameters with option A (paper: 1.7M)."""
    return resnet_cifar(110, num_classes, in_channels, resolution, shortcut)


# --- CIFAR DenseNet-BC (Huang et al. 2017 §3) ------------------------------------------------
def densenet_bc_100_k12(num_classes: int, in_channels: int, resolution: int) -> Net:
    """DenseNet-BC, L = 100, k = 12: 3x3 conv to 2k → three dense blocks of 16 bottleneck
    layers (BN-ReLU-1x1 to 4k-BN-ReLU-3x3 to k) with BN-ReLU-1x1-avgpool transitions halving
    the width (θ = 0.5, floored) → BN-ReLU-global pool-FC. Convs without bias (the authors'
    code removes them); 769,162 parameters for 10 classes (paper: 0.8M)."""
    growth, layers = 12, (100 - 4) // 6
    stem = Conv(in_channels, 2 * growth, 3, 1, 1, False, resolution)
    c, h, stages = 2 * growth, stem.h_out, []
    for i in range(3):
        nodes, c = dense_stage(c, layers, growth, 4, h)
        if i < 2:
            down, h = transition(c, c // 2, h)
            nodes, c = nodes + down, c // 2
        stages.append(nodes)
    head = (BN(c), RELU, GlobalAvgPool(c), Linear(c, num_classes))
    return Net((stem,), tuple(stages), head, in_channels, resolution, num_classes)


# --- CIFAR VGG-16 --------------------------------------------------------------------------
def vgg16_cifar(num_classes: int, in_channels: int, resolution: int) -> Net:
    """VGG-16 for CIFAR: VGG's 13 3x3 convs (bias) each → BN → ReLU, five 2x2 max-pools,
    one Linear(512, classes); the form of kuangliu/pytorch-cifar's VGG('VGG16') and of
    torchvision's vgg16_bn features. Its 1x1 map at 32 px is flattened by a global average
    pool, the same there and defined at larger inputs. 14,728,266 parameters for 10 classes."""
    stages, c, h = vgg_stages(VGG_CONFIGS["vgg16"], in_channels, resolution, True)
    head = (GlobalAvgPool(c), Linear(c, num_classes))
    return Net((), stages, head, in_channels, resolution, num_classes)
