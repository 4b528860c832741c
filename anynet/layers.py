"""Layer descriptions: a NetSpec walked once into the layers `build` and `complexity` share.

One description per network (docs/design.md): `build` turns these frozen descriptions into
modules and `complexity` sums them, so the two cannot disagree. No torch here (docs/method.md §1).

Inputs are square (NetSpec has one `resolution`), so a spatial size is one number `h_in`;
`w_*` always means channel width, as in pycls.

Conventions chosen where the references leave a choice:
- Head (pycls AnyHead): [1x1 conv → BN → ReLU at the last resolution, iff head_width > 0]
  → global average pool → [LayerNorm, convnext block only: ConvNeXt's final norm] → Linear
  (bias).
- SE exists only in the bottleneck blocks (RegNetY); se_ratio > 0 with vanilla, res_basic
  or convnext is a ValueError, never silently ignored.
- ConvNeXt block: 7x7 depthwise conv (bias) → LayerNorm → 1x1 (bias) to 4 x inner width →
  GELU → 1x1 (bias) back → + x. inner width = int(round(w x b)) as for every block, so the
  default b = 1 gives ConvNeXt's MLP ratio 4; g is ignored (always depthwise). No layer
  scale, no drop path. Entering a stage whose width or stride differs, the first block
  starts with a downsample: LayerNorm → 2x2 conv stride 2 (bias), or 1x1 conv (bias) when
  only the width changes. With this, the convnext family equals timm's ConvNeXt with
  ls_init_value=None (tested against convnext_atto's configuration).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from anynet.spec import BOTTLENECK_BLOCKS, NetSpec, StageSpec

CONVNEXT_MLP_RATIO = 4  # ConvNeXt's inverted-bottleneck MLP ratio


def out_size(h: int, k: int, stride: int) -> int:
    """Output size of a conv/pool: padding (k-1)//2 for odd k, none for patchify (k even)."""
    pad = (k - 1) // 2 if k % 2 else 0
    return (h + 2 * pad - k) // stride + 1


# --- layers -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Conv:
    """k x k conv2d on an h_in x h_in input; padding (k-1)//2 for odd k, 0 for patchify."""

    c_in: int
    c_out: int
    k: int
    stride: int
    groups: int
    bias: bool
    h_in: int

    @property
    def padding(self) -> int:
        """Zero padding on each side."""
        return (self.k - 1) // 2 if self.k % 2 else 0

    @property
    def h_out(self) -> int:
        """Output size."""
        return out_size(self.h_in, self.k, self.stride)


@dataclass(frozen=True, slots=True)
class BN:
    """BatchNorm2d over c channels."""

    c: int


@dataclass(frozen=True, slots=True)
class LayerNorm:
    """LayerNorm over the channels of an NCHW tensor (ConvNeXt)."""

    c: int


@dataclass(frozen=True, slots=True)
class Act:
    """Activation: "relu" or "gelu"."""

    kind: str


@dataclass(frozen=True, slots=True)
class MaxPool:
    """k x k max-pool, padding (k-1)//2 (the resnet stem's 3x3 stride 2)."""

    c: int
    k: int
    stride: int
    h_in: int

    @property
    def h_out(self) -> int:
        """Output size."""
        return out_size(self.h_in, self.k, self.stride)


@dataclass(frozen=True, slots=True)
class SE:
    """Squeeze-excite: avg-pool → 1x1 (bias) c→c_se → ReLU → 1x1 (bias) c_se→c → sigmoid, x."""

    c: int
    c_se: int


@dataclass(frozen=True, slots=True)
class GlobalAvgPool:
    """Global average pool to an (N, c) tensor."""

    c: int


@dataclass(frozen=True, slots=True)
class Linear:
    """Fully connected layer with bias."""

    c_in: int
    c_out: int


Layer = Conv | BN | LayerNorm | Act | MaxPool | SE | GlobalAvgPool | Linear


# --- structure --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Block:
    """One block: x = downsample(x); y = transform(x) [+ shortcut(x) or x]; activation(y)."""

    kind: str
    transform: tuple[Layer, ...]
    shortcut: tuple[Layer, ...] | None  # projection; None with residual = identity skip
    residual: bool
    activation: Act | None  # after the add (ReLU for res_basic / res_bottleneck)
    downsample: tuple[Layer, ...]  # convnext stage entry, else ()
    h_out: int

    @property
    def layers(self) -> tuple[Layer, ...]:
        """Every layer of the block, in order."""
        act = (self.activation,) if self.activation else ()
        return self.downsample + self.transform + (self.shortcut or ()) + act


@dataclass(frozen=True, slots=True)
class Net:
    """A whole network: stem layers, stages of blocks, head layers."""

    stem: tuple[Layer, ...]
    stages: tuple[tuple[Block, ...], ...]
    head: tuple[Layer, ...]

    @property
    def layers(self) -> tuple[Layer, ...]:
        """Every layer of the network, in order."""
        inner = tuple(lay for stage in self.stages for blk in stage for lay in blk.layers)
        return self.stem + inner + self.head


RELU = Act("relu")
GELU = Act("gelu")


def _check_size(h: int, where: str) -> int:
    if h < 1:
        raise ValueError(f"resolution: too small, the feature map vanishes at {where}")
    return h


# --- stems (docs/method.md §1) ---------------------------------------------------------------
def stem_layers(kind: str, width: int, in_channels: int, h: int) -> tuple[tuple[Layer, ...], int]:
    """Layers of a stem and its output size."""
    if kind == "cifar":
        conv = Conv(in_channels, width, 3, 1, 1, False, h)
        return (conv, BN(width), RELU), conv.h_out
    if kind == "simple":
        conv = Conv(in_channels, width, 3, 2, 1, False, h)
        return (conv, BN(width), RELU), conv.h_out
    if kind == "resnet":
        conv = Conv(in_channels, width, 7, 2, 1, False, h)
        pool = MaxPool(width, 3, 2, conv.h_out)
        return (conv, BN(width), RELU, pool), pool.h_out
    if kind == "convnext":
        conv = Conv(in_channels, width, 4, 4, 1, True, h)  # patchify
        return (conv, LayerNorm(width)), _check_size(conv.h_out, "the convnext stem")
    raise ValueError(f"stem.type: unknown stem {kind!r}")


# --- blocks (docs/method.md §1, pycls conventions) -------------------------------------------
def _projection(w_in: int, w_out: int, stride: int, h: int) -> tuple[Layer, ...] | None:
    """1x1 conv(stride) → BN iff width or stride changes (docs/method.md §1)."""
    if w_in == w_out and stride == 1:
        return None
    return (Conv(w_in, w_out, 1, stride, 1, False, h), BN(w_out))


def _no_se(kind: str, se_ratio: float) -> None:
    if se_ratio:
        raise ValueError(
            f"se_ratio: block {kind!r} has no SE (only {', '.join(BOTTLENECK_BLOCKS)}); use 0"
        )


def _vanilla(w_in, w_out, stride, inner, groups, se_ratio, h) -> Block:
    """[3x3 conv(stride) → BN → ReLU] x2, no residual; ignores b and g."""
    _no_se("vanilla", se_ratio)
    a = Conv(w_in, w_out, 3, stride, 1, False, h)
    b = Conv(w_out, w_out, 3, 1, 1, False, a.h_out)
    layers = (a, BN(w_out), RELU, b, BN(w_out), RELU)
    return Block("vanilla", layers, None, False, None, (), b.h_out)


def _res_basic(w_in, w_out, stride, inner, groups, se_ratio, h) -> Block:
    """relu(proj(x) + [3x3(stride) → BN → ReLU → 3x3 → BN](x)); ignores b and g."""
    _no_se("res_basic", se_ratio)
    a = Conv(w_in, w_out, 3, stride, 1, False, h)
    b = Conv(w_out, w_out, 3, 1, 1, False, a.h_out)
    layers = (a, BN(w_out), RELU, b, BN(w_out))
    return Block("res_basic", layers, _projection(w_in, w_out, stride, h), True, RELU, (), b.h_out)


def _bottleneck_transform(w_in, w_out, stride, inner, groups, se_ratio, h):
    """1x1 → BN → ReLU → 3x3 grouped(stride) → BN → ReLU → [SE] → 1x1 → BN."""
    a = Conv(w_in, inner, 1, 1, 1, False, h)
    b = Conv(inner, inner, 3, stride, groups, False, h)
    # w_se uses the block's *input* width (docs/method.md §1, pycls)
    w_se = int(round(w_in * se_ratio))
    if se_ratio and w_se < 1:
        raise ValueError(f"se_ratio: SE width round({w_in} x {se_ratio}) is 0; raise se_ratio")
    se = (SE(inner, w_se),) if se_ratio else ()
    c = Conv(inner, w_out, 1, 1, 1, False, b.h_out)
    return (a, BN(inner), RELU, b, BN(inner), RELU, *se, c, BN(w_out)), b.h_out


def _res_bottleneck(w_in, w_out, stride, inner, groups, se_ratio, h) -> Block:
    """relu(proj(x) + bottleneck(x)) (ResNeXt / AnyNetX / AnyNetY)."""
    f, h_out = _bottleneck_transform(w_in, w_out, stride, inner, groups, se_ratio, h)
    proj = _projection(w_in, w_out, stride, h)
    return Block("res_bottleneck", f, proj, True, RELU, (), h_out)


def _res_bottleneck_linear(w_in, w_out, stride, inner, groups, se_ratio, h) -> Block:
    """x + bottleneck(x) only when w_in == w and stride 1; no activation after the add."""
    f, h_out = _bottleneck_transform(w_in, w_out, stride, inner, groups, se_ratio, h)
    skip = w_in == w_out and stride == 1
    return Block("res_bottleneck_linear", f, None, skip, None, (), h_out)


def _convnext(w_in, w_out, stride, inner, groups, se_ratio, h) -> Block:
    """[downsample] then x + pw(GELU(pw(LN(dw7x7(x))))); see the module docstring."""
    _no_se("convnext", se_ratio)
    down: tuple[Layer, ...] = ()
    if w_in != w_out or stride != 1:
        k = 2 if stride == 2 else 1
        conv = Conv(w_in, w_out, k, stride, 1, True, h)
        down = (LayerNorm(w_in), conv)
        h = _check_size(conv.h_out, "a convnext downsample")
    mlp = CONVNEXT_MLP_RATIO * inner
    if mlp < 1:
        raise ValueError("stages: convnext inner width round(w x b) is 0")
    layers = (
        Conv(w_out, w_out, 7, 1, w_out, True, h),
        LayerNorm(w_out),
        Conv(w_out, mlp, 1, 1, 1, True, h),
        GELU,
        Conv(mlp, w_out, 1, 1, 1, True, h),
    )
    return Block("convnext", layers, None, True, None, down, h)


# block family -> (w_in, w_out, stride, inner width, groups, se_ratio, h_in) -> Block
BLOCKS: dict[str, Callable[..., Block]] = {
    "vanilla": _vanilla,
    "res_basic": _res_basic,
    "res_bottleneck": _res_bottleneck,
    "res_bottleneck_linear": _res_bottleneck_linear,
    "convnext": _convnext,
}


def block_layers(
    kind: str, w_in: int, w_out: int, stride: int, inner: int, groups: int, se_ratio: float, h: int
) -> Block:
    """Describe one block of family `kind` on an h x h input."""
    try:
        make = BLOCKS[kind]
    except KeyError:
        raise ValueError(f"block: unknown block family {kind!r}") from None
    return make(w_in, w_out, stride, inner, groups, se_ratio, h)


def stage_blocks(
    kind: str,
    w_in: int,
    depth: int,
    width: int,
    stride: int,
    inner: int,
    groups: int,
    se_ratio: float,
    h: int,
    make: Callable = block_layers,
) -> tuple:
    """A stage: its first block takes w_in and the stride, the rest repeat (docs/method.md §1).

    `make` describes one block (default `block_layers`; complexity passes a memoised
    counter with the same arguments whose result has `.h_out`). The repeated blocks are the
    same object, so callers may count one and multiply.
    """
    first = make(kind, w_in, width, stride, inner, groups, se_ratio, h)
    h = _check_size(first.h_out, "a stage")
    rest = make(kind, width, width, 1, inner, groups, se_ratio, h)
    return (first,) + (rest,) * (depth - 1)


def stage_key(kind: str, w_in: int, st: StageSpec, se_ratio: float, h: int) -> tuple:
    """The plain arguments of `stage_blocks` for a StageSpec (hashable, for memoising)."""
    return (kind, w_in, st.depth, st.width, st.stride, st.inner_width, st.groups, se_ratio, h)


def head_layers(
    w_in: int, head_width: int, num_classes: int, h: int, final_norm: bool = False
) -> tuple[Layer, ...]:
    """pycls AnyHead: [1x1 conv → BN → ReLU iff head_width > 0] → avg-pool → [LN] → Linear."""
    conv: tuple[Layer, ...] = ()
    if head_width > 0:
        conv = (Conv(w_in, head_width, 1, 1, 1, False, h), BN(head_width), RELU)
        w_in = head_width
    norm = (LayerNorm(w_in),) if final_norm else ()  # ConvNeXt normalises pooled features
    return (*conv, GlobalAvgPool(w_in), *norm, Linear(w_in, num_classes))


def describe(spec: NetSpec) -> Net:
    """Walk a NetSpec once into its layers: stem, stages of blocks, head."""
    stem, h = stem_layers(spec.stem.type, spec.stem.width, spec.in_channels, spec.resolution)
    w_in = spec.stem.width
    stages = []
    for st in spec.stages:
        blocks = stage_blocks(*stage_key(spec.block, w_in, st, spec.se_ratio, h))
        stages.append(blocks)
        h, w_in = blocks[-1].h_out, st.width
    head = head_layers(w_in, spec.head_width, spec.num_classes, h, spec.block == "convnext")
    return Net(stem, tuple(stages), head)
