"""torch modules for the layer descriptions of anynet.layers (docs/method.md §1, pycls)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from anynet import layers as L

BN_EPS = 1e-5  # pycls / torchvision BatchNorm defaults
LN_EPS = 1e-6  # ConvNeXt


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
    """avg-pool → 1x1 (bias) → ReLU → 1x1 (bias) → sigmoid, times the input (docs/method.md §1)."""

    def __init__(self, c: int, c_se: int):
        super().__init__()
        self.reduce = nn.Conv2d(c, c_se, 1, bias=True)
        self.expand = nn.Conv2d(c_se, c, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Rescale the channels of x."""
        s = F.adaptive_avg_pool2d(x, 1)
        s = self.expand(F.relu(self.reduce(s), inplace=True))
        return x * torch.sigmoid(s)


class GlobalAvgPool(nn.Module):
    """Global average pool to (N, C)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mean over the spatial dimensions."""
        return x.mean(dim=(2, 3))


def _conv(c: L.Conv) -> nn.Module:
    return nn.Conv2d(c.c_in, c.c_out, c.k, c.stride, c.padding, groups=c.groups, bias=c.bias)


def _act(a: L.Act) -> nn.Module:
    if a.kind == "relu":
        return nn.ReLU(inplace=True)
    if a.kind == "gelu":
        return nn.GELU()
    raise ValueError(f"activation: unknown kind {a.kind!r}")


# layer description type -> module factory
MODULES = {
    L.Conv: _conv,
    L.BN: lambda b: nn.BatchNorm2d(b.c, eps=BN_EPS),
    L.LayerNorm: lambda n: ChannelLayerNorm(n.c, eps=LN_EPS),
    L.Act: _act,
    L.MaxPool: lambda p: nn.MaxPool2d(p.k, p.stride, (p.k - 1) // 2),
    L.SE: lambda s: SqueezeExcite(s.c, s.c_se),
    L.GlobalAvgPool: lambda g: GlobalAvgPool(),
    L.Linear: lambda f: nn.Linear(f.c_in, f.c_out, bias=True),
}


def layer_module(layer: L.Layer) -> nn.Module:
    """The module for one layer description."""
    return MODULES[type(layer)](layer)


def sequential(layers: tuple[L.Layer, ...]) -> nn.Sequential:
    """nn.Sequential of the modules for some layer descriptions."""
    return nn.Sequential(*(layer_module(layer) for layer in layers))


class AnyBlock(nn.Module):
    """One block: x = downsample(x); y = f(x) [+ proj(x) or x]; activation(y)."""

    def __init__(self, block: L.Block):
        super().__init__()
        self.kind = block.kind
        self.residual = block.residual
        self.downsample = sequential(block.downsample) if block.downsample else None
        self.f = sequential(block.transform)
        self.proj = sequential(block.shortcut) if block.shortcut else None
        self.activation = _act(block.activation) if block.activation else None

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
