"""The layer language: layer descriptions, the nodes that combine them, and whole networks.

A network is described once, as frozen data: `build` turns each description into a torch
module (anynet.blocks) and `complexity` counts it (docs/method.md §1–§2), so the two cannot
disagree. No torch here. A value in a description is a Python int for one network, or a
numpy array with one value per candidate when the sampler describes a whole batch at once.
Structure that depends on the values is written with three helpers:
- `when(on, nodes)`: the nodes exist where `on` (a projection shortcut, an expand conv);
- `repeat(n, node)`: the node n times (a stage's repeated block; n = depth - 1);
- `need(ok, message)`: for one network, ValueError(message) unless ok; a batch never raises
  and its invalid candidates are those with a size below 1 (complexity.node_counts' ok).
Inputs are square, so a spatial size is one number `h`; `c` and `w` are channel widths.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

ACTIVATIONS = ("relu", "gelu", "sigmoid", "tanh", "relu6", "silu", "hardswish")
BN_EPS, BN_MOMENTUM = 1e-5, 0.1  # torch / pycls BatchNorm defaults
LN_EPS = 1e-6  # ConvNeXt


def need(ok, message: str) -> None:
    """One network: raise ValueError(message) unless ok. Arrays (a batch): no-op."""
    if not isinstance(ok, np.ndarray) and not ok:
        raise ValueError(message)


def auto_padding(k):
    """'same' padding (k-1)/2 for odd k; 0 for even k (patchify convs, 2x2 pools)."""
    return (k - 1) // 2 * (k % 2)


def out_size(h, k, stride, padding, ceil_mode=False):
    """Output size of a conv or pool, as torch computes it (ceil_mode: pools only)."""
    span = h + 2 * padding - k
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    # torch drops a last window that would start in the right padding
    return out - ((out - 1) * stride >= h + padding)


def _set(obj, **values) -> None:
    for name, value in values.items():
        object.__setattr__(obj, name, value)


def _spatial(layer, what: str) -> None:
    """Resolve a conv's or pool's padding and output size; one network: refuse a size < 1."""
    pad = auto_padding(layer.k) if layer.padding is None else layer.padding
    h = out_size(layer.h_in, layer.k, layer.stride, pad, getattr(layer, "ceil_mode", False))
    _set(layer, padding=pad, h_out=h)
    if not isinstance(h, np.ndarray) and h < 1:
        raise ValueError(
            f"resolution: too small, the feature map vanishes at a {layer.k}x{layer.k} "
            f"stride-{layer.stride} {what} ({layer.h_in} px in)"
        )


# --- layers -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Conv:
    """k x k conv2d on an h_in x h_in input; padding None: (k-1)/2 for odd k, 0 for even."""

    c_in: int
    c_out: int
    k: int
    stride: int
    groups: int
    bias: bool
    h_in: int
    padding: int | None = None
    h_out: int = field(init=False)

    def __post_init__(self):
        _spatial(self, "conv")


@dataclass(frozen=True, slots=True)
class BN:
    """BatchNorm2d over c channels (eps and momentum per network: GoogLeNet uses 1e-3)."""

    c: int
    eps: float = BN_EPS
    momentum: float = BN_MOMENTUM


@dataclass(frozen=True, slots=True)
class LayerNorm:
    """LayerNorm over the channels of an NCHW tensor (ConvNeXt)."""

    c: int
    eps: float = LN_EPS


@dataclass(frozen=True, slots=True)
class Act:
    """Activation, one of ACTIVATIONS."""

    kind: str

    def __post_init__(self):
        if self.kind not in ACTIVATIONS:
            raise ValueError(f"activation: unknown kind {self.kind!r}; known: {ACTIVATIONS}")


@dataclass(frozen=True, slots=True)
class _Pool:
    """k x k pool; padding None: (k-1)/2 for odd k (the resnet stem's 3x3/2), else 0."""

    c: int
    k: int
    stride: int
    h_in: int
    padding: int | None = None
    ceil_mode: bool = False
    h_out: int = field(init=False)

    def __post_init__(self):
        _spatial(self, type(self).__name__)


@dataclass(frozen=True, slots=True)
class MaxPool(_Pool):
    """k x k max-pool (the resnet stem, GoogLeNet's ceil-mode pools)."""


@dataclass(frozen=True, slots=True)
class AvgPool(_Pool):
    """k x k average pool (LeNet, DenseNet transitions)."""

    count_include_pad: bool = True


@dataclass(frozen=True, slots=True)
class AdaptiveAvgPool:
    """Average pool to a fixed size x size map (AlexNet, VGG: 6, 7)."""

    c: int
    size: int
    h_in: int

    @property
    def h_out(self) -> int:
        """Output size."""
        return self.size


@dataclass(frozen=True, slots=True)
class GlobalAvgPool:
    """Global average pool to an (N, c) tensor (pycls head; counted as pycls does)."""

    c: int


@dataclass(frozen=True, slots=True)
class SE:
    """Squeeze-excite: avg-pool → 1x1 (bias) c→c_se → act → 1x1 (bias) c_se→c → sigmoid, x."""

    c: int
    c_se: int
    act: Act = Act("relu")


@dataclass(frozen=True, slots=True)
class Linear:
    """Fully connected layer, with bias unless said otherwise."""

    c_in: int
    c_out: int
    bias: bool = True


@dataclass(frozen=True, slots=True)
class Flatten:
    """(N, C, H, W) → (N, C·H·W) before a Linear head."""


@dataclass(frozen=True, slots=True)
class Dropout:
    """Dropout with probability p (identity at eval)."""

    p: float


@dataclass(frozen=True, slots=True)
class DropPath:
    """Stochastic depth on a residual branch (per sample; identity at eval, no parameters)."""

    p: float


@dataclass(frozen=True, slots=True)
class LayerScale:
    """Learned per-channel scale of a residual branch (ConvNeXt), starting at `init`."""

    c: int
    init: float = 1e-6


@dataclass(frozen=True, slots=True)
class ZeroPadShortcut:
    """He et al.'s option A shortcut (2016 §4.2): x[:, :, ::stride, ::stride], then zero
    channels appended up to c_out; no parameters, the identity where nothing changes."""

    c_in: int
    c_out: int
    stride: int
    h_in: int
    h_out: int = field(init=False)

    def __post_init__(self):
        _set(self, h_out=(self.h_in - 1) // self.stride + 1)  # a 1x1 stride-s conv's size


Layer = (
    Conv | BN | LayerNorm | Act | MaxPool | AvgPool | AdaptiveAvgPool | GlobalAvgPool | SE
    | Linear | Flatten | Dropout | DropPath | LayerScale | ZeroPadShortcut
)  # fmt: skip
RELU, GELU, SILU, SIGMOID = Act("relu"), Act("gelu"), Act("silu"), Act("sigmoid")


# --- nodes: how layers combine ------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Block:
    """A residual block: x = downsample(x); y = transform(x) [+ shortcut(x) or x]; act(y)."""

    kind: str
    transform: tuple
    shortcut: tuple | None  # a projection; None with residual = identity skip
    residual: Any  # bool (an array of them for a batch)
    activation: Act | None  # after the add (ReLU for res_basic / res_bottleneck)
    downsample: tuple  # convnext stage entry, else ()
    h_out: int

    @property
    def layers(self) -> tuple:
        """Every node of the block, in order."""
        act = (self.activation,) if self.activation else ()
        return self.downsample + self.transform + (self.shortcut or ()) + act


@dataclass(frozen=True, slots=True)
class Concat:
    """Branches on the same input, concatenated along channels; an empty branch is x itself.

    Inception is four branches; a DenseNet layer is ((), H): cat(x, H(x)).
    """

    branches: tuple[tuple, ...]


@dataclass(frozen=True, slots=True)
class Repeat:
    """`nodes` `times` times; a batch's per-candidate count (0 = absent). See repeat/when."""

    times: Any
    nodes: tuple


def repeat(n, node) -> tuple:
    """The node n times: n copies for one network, one Repeat node for a batch."""
    if isinstance(n, np.ndarray):
        return (Repeat(n, (node,)),)
    return (node,) * n


def when(on, nodes: tuple) -> tuple:
    """The nodes where `on` holds: the nodes or () for one network, a Repeat for a batch."""
    if isinstance(on, np.ndarray):
        return (Repeat(on, nodes),)
    return nodes if on else ()


def flatten(nodes) -> tuple:
    """Every layer under some nodes, in order (a Repeat's layers once)."""
    out: list = []
    for node in nodes:
        if isinstance(node, Block):
            out += flatten(node.layers)
        elif isinstance(node, Concat):
            for branch in node.branches:
                out += flatten(branch)
        elif isinstance(node, Repeat):
            out += flatten(node.nodes)
        else:
            out.append(node)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Net:
    """A whole network: stem nodes, stages of nodes, head nodes, and the input it takes."""

    stem: tuple
    stages: tuple[tuple, ...]
    head: tuple
    in_channels: int
    resolution: int
    num_classes: int

    @property
    def nodes(self) -> tuple:
        """Every top-level node, in order."""
        return self.stem + tuple(node for stage in self.stages for node in stage) + self.head

    @property
    def layers(self) -> tuple:
        """Every layer of the network, in order."""
        return flatten(self.nodes)
