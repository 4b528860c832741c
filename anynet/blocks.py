"""torch modules for the layer descriptions of anynet.layers (docs/method.md §1, pycls init)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from anynet import layers as L


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW tensor (works for channels_last too)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise each pixel's channel vector ((N, C) input: each row)."""
        if x.ndim == 2:  # pooled features in the convnext head
            return super().forward(x)
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class SqueezeExcite(nn.Module):
    """avg-pool → 1x1 (bias) → act → 1x1 (bias) → sigmoid, times the input (docs/method.md §1)."""

    def __init__(self, c: int, c_se: int, act: L.Act = L.RELU):
        super().__init__()
        self.reduce = nn.Conv2d(c, c_se, 1, bias=True)
        self.expand = nn.Conv2d(c_se, c, 1, bias=True)
        self.act = activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Rescale the channels of x."""
        s = F.adaptive_avg_pool2d(x, 1)
        s = self.expand(self.act(self.reduce(s)))
        return x * torch.sigmoid(s)


class GlobalAvgPool(nn.Module):
    """Global average pool to (N, C)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mean over the spatial dimensions."""
        return x.mean(dim=(2, 3))


class DropPath(nn.Module):
    """Stochastic depth per sample (torchvision StochasticDepth 'row'); identity at eval."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Zero whole samples of x with probability p while training, rescaling the rest."""
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask.div_(keep) if keep > 0 else x * mask

    def extra_repr(self) -> str:
        """Show p."""
        return f"p={self.p}"


class LayerScale(nn.Module):
    """x · γ with one learned γ per channel, shaped (C, 1, 1) as torchvision's ConvNeXt."""

    def __init__(self, c: int, init: float):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((c, 1, 1), float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scale the channels of x."""
        return x * self.gamma


class ZeroPadShortcut(nn.Module):
    """Option A shortcut (He et al. 2016 §4.2): subsample by the stride, zero-pad channels."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.extra, self.stride = c_out - c_in, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x[:, :, ::s, ::s] with `extra` zero channels appended."""
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra)) if self.extra else x

    def extra_repr(self) -> str:
        """Show the padding and stride."""
        return f"extra_channels={self.extra}, stride={self.stride}"


_ACTIVATIONS = {
    "relu": lambda inplace: nn.ReLU(inplace=inplace),
    "gelu": lambda inplace: nn.GELU(),
    "sigmoid": lambda inplace: nn.Sigmoid(),
    "tanh": lambda inplace: nn.Tanh(),
    "relu6": lambda inplace: nn.ReLU6(inplace=inplace),
    "silu": lambda inplace: nn.SiLU(inplace=inplace),
    "hardswish": lambda inplace: nn.Hardswish(inplace=inplace),
}


def activation(a: L.Act, inplace: bool = True) -> nn.Module:
    """The module of an activation (in place unless it would overwrite a shared input)."""
    return _ACTIVATIONS[a.kind](inplace)


def _conv(c: L.Conv) -> nn.Module:
    return nn.Conv2d(c.c_in, c.c_out, c.k, c.stride, c.padding, groups=c.groups, bias=c.bias)


# layer description type -> module factory; a new layer type must be added here
MODULES = {
    L.Conv: _conv,
    L.BN: lambda b: nn.BatchNorm2d(b.c, eps=b.eps, momentum=b.momentum),
    L.LayerNorm: lambda n: ChannelLayerNorm(n.c, eps=n.eps),
    L.Act: activation,
    L.MaxPool: lambda p: nn.MaxPool2d(p.k, p.stride, p.padding, ceil_mode=p.ceil_mode),
    L.AvgPool: lambda p: nn.AvgPool2d(
        p.k, p.stride, p.padding, ceil_mode=p.ceil_mode, count_include_pad=p.count_include_pad
    ),
    L.AdaptiveAvgPool: lambda p: nn.AdaptiveAvgPool2d(p.size),
    L.GlobalAvgPool: lambda g: GlobalAvgPool(),
    L.SE: lambda s: SqueezeExcite(s.c, s.c_se, s.act),
    L.Linear: lambda f: nn.Linear(f.c_in, f.c_out, bias=f.bias),
    L.Flatten: lambda f: nn.Flatten(1),
    L.Dropout: lambda d: nn.Dropout(d.p),
    L.DropPath: lambda d: DropPath(d.p),
    L.LayerScale: lambda s: LayerScale(s.c, s.init),
    L.ZeroPadShortcut: lambda z: ZeroPadShortcut(z.c_in, z.c_out, z.stride),
}


def module(node) -> nn.Module:
    """The module of one node: a layer, a residual Block or a Concat."""
    if isinstance(node, L.Block):
        return AnyBlock(node)
    if isinstance(node, L.Concat):
        return ConcatBlock(node)
    return MODULES[type(node)](node)


def sequential(nodes: tuple, shares_input: bool = False) -> nn.Sequential:
    """nn.Sequential of the modules of some nodes (a Repeat's nodes `times` times).

    shares_input: the input is also used elsewhere (a skip, a sibling branch), so a leading
    activation must not work in place.
    """
    mods = []
    for node in nodes:
        if isinstance(node, L.Repeat):
            mods += [module(n) for _ in range(int(node.times)) for n in node.nodes]
        elif isinstance(node, L.Act) and shares_input and not mods:
            mods.append(activation(node, inplace=False))
        else:
            mods.append(module(node))
    return nn.Sequential(*mods)


class AnyBlock(nn.Module):
    """One block: x = downsample(x); y = f(x) [+ proj(x) or x]; activation(y)."""

    def __init__(self, block: L.Block):
        super().__init__()
        self.kind = block.kind
        self.residual = bool(block.residual)
        self.downsample = sequential(block.downsample) if block.downsample else None
        skip = self.residual or bool(block.shortcut)
        self.f = sequential(block.transform, shares_input=skip)
        self.proj = sequential(block.shortcut, shares_input=True) if block.shortcut else None
        self.activation = activation(block.activation) if block.activation else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block."""
        if self.downsample is not None:
            x = self.downsample(x)
        y = self.f(x)
        if self.proj is not None:
            y = y + self.proj(x)
        elif self.residual:
            y = y + x
        if self.activation is not None:
            y = self.activation(y)
        return y

    def extra_repr(self) -> str:
        """Show the block family."""
        return f"kind={self.kind!r}, residual={self.residual}"


class ConcatBlock(nn.Module):
    """Branches on one input, concatenated along channels; an empty branch passes x."""

    def __init__(self, concat: L.Concat):
        super().__init__()
        self.branches = nn.ModuleList(sequential(b, shares_input=True) for b in concat.branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """cat([branch(x) for each branch], channels)."""
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class AnyNet(nn.Module):
    """stem → stages → head (docs/method.md §1); `spec` keeps the NetSpec it was built from."""

    def __init__(self, net: L.Net, spec=None):
        super().__init__()
        self.spec = spec
        self.net = net
        self.stem = sequential(net.stem)
        self.stages = nn.Sequential(*(sequential(stage) for stage in net.stages))
        self.head = sequential(net.head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, num_classes) of images x (N, in_channels, H, W)."""
        return self.head(self.stages(self.stem(x)))


def init_weights(model: nn.Module, zero_init_final_bn: bool = False) -> None:
    """pycls init (docs/method.md §1): conv N(0, sqrt(2/fan_out)), fan_out = k·k·out; norms γ=1,
    β=0; Linear N(0, 0.01), bias 0. Conv biases (SE, ConvNeXt) start at 0.

    zero_init_final_bn (pycls ZERO_INIT_FINAL_BN): γ=0 on the last BN of every residual
    transform, so each residual block starts as its shortcut.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, mean=0.0, std=math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    if zero_init_final_bn:
        for m in model.modules():
            if isinstance(m, AnyBlock) and m.residual and isinstance(m.f[-1], nn.BatchNorm2d):
                nn.init.zeros_(m.f[-1].weight)
