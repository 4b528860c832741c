"""build(spec): the torch module of a NetSpec, from the same layer descriptions complexity counts."""

from __future__ import annotations

import math

import torch
from torch import nn

from anynet.blocks import AnyBlock, sequential
from anynet.layers import describe
from anynet.spec import NetSpec


class AnyNet(nn.Module):
    """stem → stages → head (docs/method.md §1); `spec` keeps the NetSpec it was built from."""

    def __init__(self, spec: NetSpec):
        super().__init__()
        net = describe(spec)
        self.spec = spec
        self.stem = sequential(net.stem)
        self.stages = nn.Sequential(
            *(nn.Sequential(*(AnyBlock(b) for b in stage)) for stage in net.stages)
        )
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
            nn.init.zeros_(m.bias)
    if zero_init_final_bn:
        for m in model.modules():
            if isinstance(m, AnyBlock) and m.residual and isinstance(m.f[-1], nn.BatchNorm2d):
                nn.init.zeros_(m.f[-1].weight)


def build(spec: NetSpec, zero_init_final_bn: bool = False) -> AnyNet:
    """The torch module of `spec`, pycls-initialised; params equal complexity(spec)["params"]."""
    if not isinstance(spec, NetSpec):
        raise ValueError(f"spec: expected a NetSpec, got {type(spec).__name__}")
    model = AnyNet(spec)
    init_weights(model, zero_init_final_bn)
    return model
