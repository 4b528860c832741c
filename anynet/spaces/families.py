"""Preset design spaces of the families beyond ResNeXt, as data (docs/method.md §4).

Each preset generalises a reference network per stage, AnyNet-style, and says what its
ranges follow; anynet.spaces appends them to its preset table. Ranges are ImageNet's
(224 px, 1000 classes), as for AnyNetX; a study overrides resolution, classes, stem and
stages for small data (DenseNet and Inception need about 32 px for their pools).

- EfficientNet: EfficientNet-B0's skeleton (Tan & Le 2019, Table 1: simple stem 32, seven
  mbconv stages with strides 1, 2, 2, 2, 1, 2, 1, SE 1/4, SiLU, a 1x1 head conv to 1280)
  with per-stage values from the MnasNet search space B0 was found in (Tan et al. 2019,
  §4.1; EfficientNet §4): kernel k ∈ {3, 5}, depth B0's ± 1 (at least 1), width B0's
  x {0.75, 1, 1.25} rounded with make_divisible(·, 8), expansion t ∈ {1, 3, 6} (MnasNet's
  SepConv and MBConv3/6). B0 itself is in the space.
- DenseNet: DenseNet-BC's ImageNet form (Huang et al. 2017, Table 1; torchvision's
  densenet121/161/169/201): resnet stem 64, four dense stages with strides 1, 2, 2, 2 (a
  transition opens stages 2–4), bottleneck 4·k, compression 0.5; per stage a depth in
  [1, 2 x DenseNet-121's] = [1, 12], [1, 24], [1, 48], [1, 32] (covers 121, 161, 169, 201)
  and a growth rate k ∈ {12, 16, 24, 32, 40, 48} (the paper's 12–48).
- Inception: GoogLeNet's inception stages 3–5 (Szegedy et al. 2015, Table 1): resnet stem
  64 (GoogLeNet's 7x7/2 conv and 3x3/2 max-pool; its 1x1-64 and 3x3-192 convs left out),
  three stages opened by 3x3/2 max-pools, depth in [1, 2 x GoogLeNet's 2, 5, 2], width
  ∈ {128, 144, …, 1024} (GoogLeNet's 256–1024), each branch weight ∈ {1, 2, 3, 4}
  (GoogLeNet's 3a is 2:4:1:1, 5b 3:3:1:1), reductions b ∈ {1/4, 1/2, 3/4} of the width.
- VGG: VGG with BN (Simonyan & Zisserman 2015, Table 1; torchvision vgg*_bn) in NDS'
  Vanilla blocks: cifar stem 64 (VGG's first conv, full resolution), five stages with
  strides 1, 2, 2, 2, 2 taken by 2x2 max-pools, 1–2 vanilla blocks (2–4 convs, VGG-13's to
  VGG-19's) per stage, widths from half to twice VGG's 64, 128, 256, 512, 512 in steps of
  16; pycls' head (pool → linear) instead of VGG's three 4096-wide FC layers.
"""

from __future__ import annotations

from anynet.rounding import make_divisible

# EfficientNet-B0 (Tan & Le 2019, Table 1): (depth, width, stride, expansion, kernel)
EFFICIENTNET_B0 = (
    (1, 16, 1, 1, 3),
    (2, 24, 2, 6, 3),
    (2, 40, 2, 6, 5),
    (3, 80, 2, 6, 3),
    (3, 112, 1, 6, 5),
    (4, 192, 2, 6, 5),
    (1, 320, 1, 6, 3),
)
EFFICIENTNET_B0_NET = {  # the rest of B0: stem, SE, head (torchvision efficientnet_b0)
    "stem": {"type": "simple", "width": 32},
    "block": "mbconv",
    "se_ratio": 0.25,
    "head_width": 1280,
}
MNASNET_WIDTH_SCALES = (0.75, 1.0, 1.25)  # MnasNet §4.1: filter sizes relative to the base


def _choice(values) -> dict:
    return {"kind": "choice", "values": sorted(set(values))}


def _uniform(lo: int, hi: int, step: int = 1) -> dict:
    return {"kind": "uniform_int", "lo": lo, "hi": hi, "step": step}


_EFFICIENTNET = {
    **EFFICIENTNET_B0_NET,
    "kind": "anynet",
    "stages": len(EFFICIENTNET_B0),
    "strides": [s for _, _, s, _, _ in EFFICIENTNET_B0],
    "depth": [_uniform(max(1, d - 1), d + 1) for d, *_ in EFFICIENTNET_B0],
    "width": [
        _choice(make_divisible(w * f, 8) for f in MNASNET_WIDTH_SCALES)
        for _, w, *_ in EFFICIENTNET_B0
    ],
    "expansion": _choice([1, 3, 6]),
    "kernel": _choice([3, 5]),
    "resolution": 224,
    "num_classes": 1000,
}
DENSENET_121_DEPTHS = (6, 12, 24, 16)
_DENSENET = {
    "kind": "anynet",
    "stem": {"type": "resnet", "width": 64},
    "block": "dense",
    "stages": 4,
    "strides": [1, 2, 2, 2],
    "depth": [_uniform(1, 2 * d) for d in DENSENET_121_DEPTHS],
    "width": _choice([12, 16, 24, 32, 40, 48]),  # the growth rate k
    "bottleneck_multiplier": _choice([4]),  # DenseNet-BC: 1x1 bottleneck to 4k
    "resolution": 224,
    "num_classes": 1000,
}
GOOGLENET_DEPTHS = (2, 5, 2)  # inception blocks of stages 3, 4, 5
_INCEPTION = {
    "kind": "anynet",
    "stem": {"type": "resnet", "width": 64},
    "block": "inception",
    "stages": 3,
    "strides": [2, 2, 2],
    "depth": [_uniform(1, 2 * d) for d in GOOGLENET_DEPTHS],
    "width": _uniform(128, 1024, 16),
    "branches": _choice([1, 2, 3, 4]),
    "bottleneck_multiplier": _choice([0.25, 0.5, 0.75]),
    "resolution": 224,
    "num_classes": 1000,
}
VGG_WIDTHS = (64, 128, 256, 512, 512)
_VGG = {
    "kind": "anynet",
    "stem": {"type": "cifar", "width": 64},
    "block": "vgg",
    "stages": 5,
    "strides": [1, 2, 2, 2, 2],
    "depth": _uniform(1, 2),
    "width": [_uniform(w // 2, 2 * w, 16) for w in VGG_WIDTHS],
    "resolution": 224,
    "num_classes": 1000,
}
FAMILY_PRESETS: dict[str, dict] = {
    "EfficientNet": _EFFICIENTNET,
    "DenseNet": _DENSENET,
    "Inception": _INCEPTION,
    "VGG": _VGG,
}
