"""Preset design spaces of the families beyond ResNeXt, as data (docs/method.md §4).

Each preset generalises a reference network per stage, AnyNet-style (EfficientNet-B0,
DenseNet-BC, GoogLeNet, VGG-BN), and says what its ranges follow; anynet.spaces appends them
to its preset table. Ranges are ImageNet's (224 px, 1000 classes), as for AnyNetX; a study
overrides resolution, classes, stem and stages for small data (DenseNet and Inception need
about 32 px for their pools). Each preset's ranges and their sources are docs/method.md §4
("Family presets"); where a preset departs from its network, §7.
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
