"""The pieces every block family and the reference networks share, in the layer language.

Stage (one stage's values), FamilyRules (what a family sets beyond its blocks) and the
classic modules of torchvision, layer for layer (conv_norm_act, mbconv_block, dense_layer,
dense_stage, transition, inception_block, classifier), so reference networks written with
them load torchvision's weights (anynet.reference). Ints or numpy arrays, no torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from anynet.layers import (
    BN,
    RELU,
    SE,
    SILU,
    Act,
    AvgPool,
    Block,
    Concat,
    Conv,
    Dropout,
    DropPath,
    GlobalAvgPool,
    Linear,
    MaxPool,
    when,
)


@dataclass(frozen=True, slots=True)
class Stage:
    """One stage's values as the block families read them: ints, or arrays over a batch.

    `inner` is the inner width round(w·b) and `groups` the groups of the grouped conv
    (docs/method.md §1). A family that needs more per-stage values adds a field here.
    """

    depth: Any
    width: Any
    stride: Any
    inner: Any = 1
    groups: Any = 1
    kernel: Any = 3  # mbconv's depthwise k
    expansion: Any = 1.0  # mbconv's expansion ratio t
    branches: Any = (1, 1, 1, 1)  # inception's branch weights (a tuple of 4 over a batch)


@dataclass(frozen=True, slots=True)
class FamilyRules:
    """What a block family sets beyond its blocks (docs/method.md §1); default: ReLU, blocks.

    act: the stem's and head conv's activation (mbconv: SiLU, as EfficientNet);
    norm_act: the head starts with BN → act (pre-activation families: dense);
    final_norm: the head normalises the pooled features with LayerNorm (convnext);
    stage: describes a whole stage, (w_in, Stage, se_ratio, h) → (nodes, w_out, h_out),
    for families whose blocks differ within a stage (dense: every layer's input grows).
    """

    act: Act = RELU
    norm_act: bool = False
    final_norm: bool = False
    stage: Callable | None = None


# --- classic pieces (torchvision's modules, layer for layer) -------------------------------
def conv_norm_act(
    c_in, c_out, k, stride, h, act: Act | None = RELU, groups=1, norm: Callable = BN, padding=None
) -> tuple[tuple, Any]:
    """conv (no bias) → norm → [act]: torchvision's Conv2dNormActivation, GoogLeNet's BasicConv2d."""
    conv = Conv(c_in, c_out, k, stride, groups, False, h, padding)
    return (conv, norm(c_out), *((act,) if act else ())), conv.h_out


def mbconv_block(
    w_in,
    w_out,
    expanded,
    k,
    stride,
    h,
    c_se=0,
    act: Act = SILU,
    norm: Callable = BN,
    drop_path: float = 0.0,
) -> Block:
    """Inverted residual (MobileNetV2, EfficientNet MBConv as torchvision builds it).

    [1x1 expand to `expanded` → norm → act, iff expanded != w_in] → k x k depthwise(stride)
    → norm → act → [SE on the expanded width with `act` inside, c_se > 0] → 1x1 linear
    projection → norm; + x when stride 1 and w_in == w_out, through stochastic depth
    (identity at eval). The caller rounds `expanded` and `c_se` as its network does.
    """
    expand = when(expanded != w_in, conv_norm_act(w_in, expanded, 1, 1, h, act, norm=norm)[0])
    dw, h_out = conv_norm_act(expanded, expanded, k, stride, h, act, groups=expanded, norm=norm)
    se = (SE(expanded, c_se, act),) if (isinstance(c_se, np.ndarray) or c_se) else ()
    project, _ = conv_norm_act(expanded, w_out, 1, 1, h_out, None, norm=norm)
    residual = (stride == 1) & (w_in == w_out)
    drop = when(residual, (DropPath(drop_path),)) if drop_path else ()
    return Block("mbconv", (*expand, *dw, *se, *project, *drop), None, residual, None, (), h_out)


def dense_layer(c_in, growth, bn_size, h, norm: Callable = BN, act: Act = RELU) -> Concat:
    """DenseNet-BC layer: cat(x, conv3x3(act(norm(conv1x1(act(norm(x))))))), pre-activation.

    torchvision _DenseLayer: bottleneck width bn_size·growth, `growth` new channels.
    """
    inner = bn_size * growth
    f = (
        norm(c_in),
        act,
        Conv(c_in, inner, 1, 1, 1, False, h),
        norm(inner),
        act,
        Conv(inner, growth, 3, 1, 1, False, h),
    )
    return Concat(((), f))


def dense_stage(c_in, depth, growth, bn_size, h, norm: Callable = BN, act: Act = RELU):
    """`depth` dense layers; (nodes, output width c_in + depth·growth).

    A batch's per-candidate depths loop to the largest, each layer present where l < depth.
    """
    n = int(np.max(depth)) if isinstance(depth, np.ndarray) else depth
    nodes: tuple = ()
    for i in range(n):
        layer = dense_layer(c_in + i * growth, growth, bn_size, h, norm, act)
        nodes += when(depth > i, (layer,)) if isinstance(depth, np.ndarray) else (layer,)
    return nodes, c_in + depth * growth


def transition(c_in, c_out, h, norm: Callable = BN, act: Act = RELU) -> tuple[tuple, Any]:
    """DenseNet transition: norm → act → 1x1 conv → 2x2 average pool stride 2."""
    pool = AvgPool(c_out, 2, 2, h)
    return (norm(c_in), act, Conv(c_in, c_out, 1, 1, 1, False, h), pool), pool.h_out


def inception_block(
    c_in, c1, c3_reduce, c3, c5_reduce, c5, pool_proj, h, k5=5, norm: Callable = BN, act=RELU
) -> tuple[Concat, Any]:
    """GoogLeNet inception: cat(1x1, 1x1→3x3, 1x1→k5 x k5, 3x3 max-pool→1x1); (node, width).

    Each conv is conv → norm → act. torchvision's GoogLeNet uses k5 = 3 (its known
    deviation from the paper's 5x5, pytorch/vision#906).
    """

    def cna(a, b, k):
        return conv_norm_act(a, b, k, 1, h, act, norm=norm)[0]

    pool = MaxPool(c_in, 3, 1, h, padding=1, ceil_mode=True)
    branches = (
        cna(c_in, c1, 1),
        cna(c_in, c3_reduce, 1) + cna(c3_reduce, c3, 3),
        cna(c_in, c5_reduce, 1) + cna(c5_reduce, c5, k5),
        (pool, *cna(c_in, pool_proj, 1)),
    )
    return Concat(branches), c1 + c3 + c5 + pool_proj


def classifier(c_in, num_classes, dropout: float = 0.0) -> tuple:
    """Global average pool → [dropout] → Linear (torchvision's ImageNet heads)."""
    drop = (Dropout(dropout),) if dropout else ()
    return (GlobalAvgPool(c_in), *drop, Linear(c_in, num_classes))
