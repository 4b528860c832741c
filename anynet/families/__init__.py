"""Stems, block families, heads and stages, described once; a NetSpec walked into a Net.

The AnyNet blocks and the walk of a NetSpec live here; the pieces every family and the
reference networks share (Stage, FamilyRules, torchvision's classic modules) in
anynet.families.pieces, re-exported here; the families beyond ResNeXt in
anynet.families.classic, whose builders and rules BLOCKS and FAMILY_RULES take in.

Every function takes ints (one network) or numpy arrays (a sampler batch) and returns the
nodes of anynet.layers, so `build`, `complexity` and the sampler's vectorised counts all
walk these functions. No torch here. The stems, blocks, SE and head, with the conventions
chosen where the references leave a choice (the head, ConvNeXt's block, which families
take SE), are docs/method.md §1.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from anynet.families.classic import CLASSIC_BLOCKS, CLASSIC_RULES
from anynet.families.pieces import (  # the shared pieces stay public here: anynet.families.X
    FamilyRules,
    Stage,
)
from anynet.families.pieces import (
    classifier as classifier,
)
from anynet.families.pieces import (
    conv_norm_act as conv_norm_act,
)
from anynet.families.pieces import (
    dense_layer as dense_layer,
)
from anynet.families.pieces import (
    dense_stage as dense_stage,
)
from anynet.families.pieces import (
    inception_block as inception_block,
)
from anynet.families.pieces import (
    mbconv_block as mbconv_block,
)
from anynet.families.pieces import (
    transition as transition,
)
from anynet.layers import (
    BN,
    GELU,
    RELU,
    SE,
    Act,
    Block,
    Conv,
    GlobalAvgPool,
    LayerNorm,
    Linear,
    MaxPool,
    Net,
    need,
    repeat,
    when,
)
from anynet.spec import NetSpec, StageSpec
from anynet.traits import FAMILY_FIELDS, no_se_message, traits

CONVNEXT_MLP_RATIO = 4  # ConvNeXt's inverted-bottleneck MLP ratio


def stage_of(st: StageSpec) -> Stage:
    """The Stage values of a StageSpec."""
    family = {name: value for name in FAMILY_FIELDS if (value := getattr(st, name)) is not None}
    return Stage(st.depth, st.width, st.stride, st.inner_width, st.groups, **family)


# --- stems (docs/method.md §1) ---------------------------------------------------------------
def stem_layers(kind: str, width, in_channels, h, act: Act = RELU) -> tuple[tuple, Any]:
    """Layers of a stem and its output size (`act`: the family's activation, FamilyRules)."""
    if kind in ("cifar", "simple"):
        conv = Conv(in_channels, width, 3, 1 if kind == "cifar" else 2, 1, False, h)
        return (conv, BN(width), act), conv.h_out
    if kind == "resnet":
        conv = Conv(in_channels, width, 7, 2, 1, False, h)
        pool = MaxPool(width, 3, 2, conv.h_out)
        return (conv, BN(width), act, pool), pool.h_out
    if kind == "convnext":
        conv = Conv(in_channels, width, 4, 4, 1, True, h)  # patchify
        return (conv, LayerNorm(width)), conv.h_out
    raise ValueError(f"stem.type: unknown stem {kind!r}")


# --- AnyNet block families (docs/method.md §1, pycls conventions) ----------------------------
def projection(w_in, w_out, stride, h) -> tuple | None:
    """1x1 conv(stride) → BN where width or stride changes (docs/method.md §1), else None."""
    conv = Conv(w_in, w_out, 1, stride, 1, False, h)
    return when((w_in != w_out) | (stride != 1), (conv, BN(w_out))) or None


def _round(x):
    """round(x) half to even, for ints or arrays (Python's round, numpy's round)."""
    return np.round(x).astype(np.int64) if isinstance(x, np.ndarray) else int(round(x))


def check_se(kind: str, se_ratio: float) -> None:
    """Refuse se_ratio > 0 for a family without SE (anynet.traits), the spec's error."""
    need(traits(kind).se or not se_ratio, no_se_message(kind))


def _vanilla(w_in, stride, st: Stage, se_ratio, h) -> Block:
    """[3x3 conv(stride) → BN → ReLU] x2, no residual; ignores b and g."""
    w = st.width
    a = Conv(w_in, w, 3, stride, 1, False, h)
    b = Conv(w, w, 3, 1, 1, False, a.h_out)
    return Block("vanilla", (a, BN(w), RELU, b, BN(w), RELU), None, False, None, (), b.h_out)


def _res_basic(w_in, stride, st: Stage, se_ratio, h) -> Block:
    """relu(proj(x) + [3x3(stride) → BN → ReLU → 3x3 → BN](x)); ignores b and g."""
    w = st.width
    a = Conv(w_in, w, 3, stride, 1, False, h)
    b = Conv(w, w, 3, 1, 1, False, a.h_out)
    f = (a, BN(w), RELU, b, BN(w))
    return Block("res_basic", f, projection(w_in, w, stride, h), True, RELU, (), b.h_out)


def _bottleneck_transform(w_in, stride, st: Stage, se_ratio, h) -> tuple[tuple, Any]:
    """1x1 → BN → ReLU → 3x3 grouped(stride) → BN → ReLU → [SE] → 1x1 → BN."""
    inner = st.inner
    a = Conv(w_in, inner, 1, 1, 1, False, h)
    b = Conv(inner, inner, 3, stride, st.groups, False, h)
    se: tuple = ()
    if se_ratio:
        # w_se uses the block's *input* width (docs/method.md §1, pycls)
        w_se = _round(w_in * se_ratio)
        need(w_se >= 1, f"se_ratio: SE width round({w_in} x {se_ratio}) is 0; raise se_ratio")
        se = (SE(inner, w_se),)
    c = Conv(inner, st.width, 1, 1, 1, False, b.h_out)
    return (a, BN(inner), RELU, b, BN(inner), RELU, *se, c, BN(st.width)), b.h_out


def _res_bottleneck(w_in, stride, st: Stage, se_ratio, h) -> Block:
    """relu(proj(x) + bottleneck(x)) (ResNeXt / AnyNetX / AnyNetY)."""
    f, h_out = _bottleneck_transform(w_in, stride, st, se_ratio, h)
    return Block("res_bottleneck", f, projection(w_in, st.width, stride, h), True, RELU, (), h_out)


def _res_bottleneck_linear(w_in, stride, st: Stage, se_ratio, h) -> Block:
    """x + bottleneck(x) only when w_in == w and stride 1; no activation after the add."""
    f, h_out = _bottleneck_transform(w_in, stride, st, se_ratio, h)
    skip = (w_in == st.width) & (stride == 1)
    return Block("res_bottleneck_linear", f, None, skip, None, (), h_out)


def _convnext(w_in, stride, st: Stage, se_ratio, h) -> Block:
    """[downsample] then x + pw(GELU(pw(LN(dw7x7(x))))); see the module docstring."""
    w = st.width
    conv = Conv(w_in, w, 2 if stride == 2 else 1, stride, 1, True, h)
    down = when((w_in != w) | (stride != 1), (LayerNorm(w_in), conv))
    h = conv.h_out  # a 1x1 stride-1 conv keeps the size where there is no downsample
    mlp = CONVNEXT_MLP_RATIO * st.inner
    need(mlp >= 1, "stages: convnext inner width round(w x b) is 0")
    f = (
        Conv(w, w, 7, 1, w, True, h),
        LayerNorm(w),
        Conv(w, mlp, 1, 1, 1, True, h),
        GELU,
        Conv(mlp, w, 1, 1, 1, True, h),
    )
    return Block("convnext", f, None, True, None, down, h)


# block family -> (w_in, stride, Stage, se_ratio, h_in) -> Block
BLOCKS: dict[str, Callable[..., Block]] = {
    "vanilla": _vanilla,
    "res_basic": _res_basic,
    "res_bottleneck": _res_bottleneck,
    "res_bottleneck_linear": _res_bottleneck_linear,
    "convnext": _convnext,
    **CLASSIC_BLOCKS,  # mbconv, inception, vgg (dense describes whole stages: its rules)
}


def block_layers(kind: str, w_in, stride, st: Stage, se_ratio: float, h) -> Block:
    """Describe one block of family `kind` with the stage's values on an h x h input."""
    check_se(kind, se_ratio)
    try:
        make = BLOCKS[kind]
    except KeyError:
        raise ValueError(f"block: unknown block family {kind!r}") from None
    return make(w_in, stride, st, se_ratio, h)


def stage_blocks(
    kind: str, w_in, st: Stage, se_ratio: float, h, make: Callable = block_layers
) -> tuple:
    """A stage: its first block takes w_in and the stride, the rest repeat (docs/method.md §1).

    `make` describes one block (default `block_layers`; complexity passes a memoised
    counter with the same arguments whose result has `.h_out`). For one network the
    repeated blocks are one object, so callers may count one and multiply.
    """
    first = make(kind, w_in, st.stride, st, se_ratio, h)
    if not isinstance(st.depth, np.ndarray) and st.depth == 1:
        return (first,)  # no repeated block to describe (its SE width may be 0)
    rest = make(kind, st.width, 1, st, se_ratio, first.h_out)
    return (first, *repeat(st.depth - 1, rest))


def stage_key(kind: str, w_in: int, st: StageSpec, se_ratio: float, h: int) -> tuple:
    """The plain arguments of `stage_blocks` for a StageSpec (hashable, for memoising)."""
    return (kind, w_in, stage_of(st), se_ratio, h)


def head_layers(
    w_in,
    head_width: int,
    num_classes: int,
    h,
    final_norm: bool = False,
    act: Act = RELU,
    norm_act: bool = False,
) -> tuple:
    """pycls AnyHead: [1x1 conv → BN → act iff head_width > 0] → avg-pool → [LN] → Linear.

    norm_act: BN → act first (pre-activation families end that way: DenseNet's norm5).
    """
    pre = (BN(w_in), act) if norm_act else ()
    conv: tuple = ()
    if head_width > 0:
        conv = (Conv(w_in, head_width, 1, 1, 1, False, h), BN(head_width), act)
        w_in = head_width
    norm = (LayerNorm(w_in),) if final_norm else ()  # ConvNeXt normalises pooled features
    return (*pre, *conv, GlobalAvgPool(w_in), *norm, Linear(w_in, num_classes))


# block family -> its rules (these, and anynet.families.classic's)
FAMILY_RULES: dict[str, FamilyRules] = {"convnext": FamilyRules(final_norm=True), **CLASSIC_RULES}
_DEFAULT_RULES = FamilyRules()


def rules(kind: str) -> FamilyRules:
    """The network-wide rules of a block family."""
    return FAMILY_RULES.get(kind, _DEFAULT_RULES)


def stage_nodes(kind: str, w_in, st: Stage, se_ratio: float, h) -> tuple[tuple, Any, Any]:
    """A stage's nodes, output width and output size, for any family."""
    whole = rules(kind).stage
    if whole is not None:
        return whole(w_in, st, se_ratio, h)
    blocks = stage_blocks(kind, w_in, st, se_ratio, h)
    return blocks, st.width, blocks[0].h_out  # repeated blocks keep the first's size


def describe_anynet(
    stem: str,
    stem_width,
    in_channels,
    resolution,
    block: str,
    se_ratio: float,
    stages: Sequence[Stage],
    head_width: int,
    num_classes: int,
) -> Net:
    """An AnyNet from its parts: stem → stages of one block family → head (docs/method.md §1)."""
    check_se(block, se_ratio)
    family = rules(block)
    nodes, h = stem_layers(stem, stem_width, in_channels, resolution, family.act)
    w_in, out = stem_width, []
    for st in stages:
        blocks, w_in, h = stage_nodes(block, w_in, st, se_ratio, h)
        out.append(blocks)
    head = head_layers(
        w_in, head_width, num_classes, h, family.final_norm, family.act, family.norm_act
    )
    return Net(nodes, tuple(out), head, in_channels, resolution, num_classes)


def describe(spec: NetSpec) -> Net:
    """Walk a NetSpec once into its layers: stem, stages of blocks, head."""
    return describe_anynet(
        spec.stem.type,
        spec.stem.width,
        spec.in_channels,
        spec.resolution,
        spec.block,
        spec.se_ratio,
        [stage_of(st) for st in spec.stages],
        spec.head_width,
        spec.num_classes,
    )
