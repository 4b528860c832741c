"""Counts of a torch module by torch itself, to hold anynet.complexity to (docs/method.md §2)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

# the modules whose outputs count as activations: every conv, pool and linear layer
ACT_KINDS = nn.Conv2d | nn.MaxPool2d | nn.AvgPool2d | nn.AdaptiveAvgPool2d | nn.Linear


def meta_macs(model: nn.Module, shape) -> int:
    """Multiply-adds FlopCounterMode sees on meta tensors (no compute; bias adds left out)."""
    with FlopCounterMode(display=False) as counter:
        model.to("meta")(torch.empty(*shape, device="meta"))
    return counter.get_total_flops() // 2


def forward_counts(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    """One forward pass without grad: (output, multiply-adds FlopCounterMode sees, activations)."""
    seen = [0]
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: seen.__setitem__(0, seen[0] + out.numel()))
        for m in model.modules()
        if isinstance(m, ACT_KINDS)
    ]
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            out = model(x)
    finally:
        for h in hooks:
            h.remove()
    return out, counter.get_total_flops() // 2, seen[0]
