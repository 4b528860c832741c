"""Design-space families built from the classic pieces: mbconv, dense, inception and vgg.

Each family is described once, in the layer language, for ints (one network) and numpy
arrays (a sampler batch), so `build`, `complexity` and the sampler's vectorised counts walk
the same description; what each family builds, after which paper, is docs/method.md §1
("Families beyond ResNeXt"). anynet.families takes CLASSIC_BLOCKS and CLASSIC_RULES into its
BLOCKS and FAMILY_RULES. What each family is (SE or not, its per-stage fields, ...) is its
row of anynet.traits; families.check_se refuses se_ratio > 0 from that row before any
builder here runs.
"""

from __future__ import annotations

import numpy as np

from anynet.families.pieces import (
    FamilyRules,
    Stage,
    dense_stage,
    inception_block,
    mbconv_block,
    transition,
)
from anynet.layers import BN, RELU, SILU, Block, Conv, MaxPool, need
from anynet.rounding import make_divisible, split_width


def _se_width(w_in, se_ratio):
    """max(1, ⌊w_in·se_ratio⌋): EfficientNet's SE width from the block's input width."""
    if isinstance(w_in, np.ndarray):
        return np.maximum(1, np.floor(w_in * se_ratio).astype(np.int64))
    return max(1, int(w_in * se_ratio))


def _mbconv(w_in, stride, st: Stage, se_ratio: float, h) -> Block:
    """MBConv: expand to make_divisible(w_in·t, 8), depthwise k x k, SE, linear projection."""
    expanded = make_divisible(w_in * st.expansion, 8)  # torchvision MBConvConfig.adjust_channels
    c_se = _se_width(w_in, se_ratio) if se_ratio else 0
    return mbconv_block(w_in, st.width, expanded, st.kernel, stride, h, c_se, SILU)


def _dense(w_in, st: Stage, se_ratio: float, h) -> tuple[tuple, object, object]:
    """[transition iff stride 2] then `depth` dense layers of growth k = the stage's width."""
    nodes: tuple = ()
    if st.stride == 2:
        c = w_in // 2  # DenseNet-BC compression 0.5
        need(c >= 1, f"stages: a dense transition halves width {w_in} to 0")
        nodes, h = transition(w_in, c, h)
        w_in = c
    bn_size = st.inner // st.width  # inner = round(k·b) with b whole: b exactly
    layers, w_out = dense_stage(w_in, st.depth, st.width, bn_size, h)
    return nodes + layers, w_out, h


def _inception(w_in, stride, st: Stage, se_ratio: float, h) -> Block:
    """[3x3/2 ceil max-pool iff stride 2] then cat(1x1, 1x1→3x3, 1x1→5x5, pool→1x1)."""
    down: tuple = ()
    if stride == 2:
        pool = MaxPool(w_in, 3, 2, h, padding=0, ceil_mode=True)
        down, h = (pool,), pool.h_out
    c1, c3, c5, cp = split_width(st.width, st.branches)
    _, r3, r5, _ = split_width(st.inner, st.branches)
    if not isinstance(c1, np.ndarray):
        need(min(c1, c3, c5, cp, r3, r5) >= 1, f"stages: inception width {st.width} too narrow")
    node, _ = inception_block(w_in, c1, r3, c3, r5, c5, cp, h)
    return Block("inception", (node,), None, False, None, down, h)


def _vgg(w_in, stride, st: Stage, se_ratio: float, h) -> Block:
    """[2x2/2 max-pool iff stride 2] then [3x3 conv → BN → ReLU] x2 at stride 1."""
    down: tuple = ()
    if stride == 2:
        pool = MaxPool(w_in, 2, 2, h)
        down, h = (pool,), pool.h_out
    w = st.width
    a = Conv(w_in, w, 3, 1, 1, False, h)
    b = Conv(w, w, 3, 1, 1, False, h)
    return Block("vgg", (a, BN(w), RELU, b, BN(w), RELU), None, False, None, down, h)


# what anynet.families' BLOCKS and FAMILY_RULES take in from here
CLASSIC_BLOCKS = {"mbconv": _mbconv, "inception": _inception, "vgg": _vgg}
CLASSIC_RULES = {"mbconv": FamilyRules(act=SILU), "dense": FamilyRules(norm_act=True, stage=_dense)}
