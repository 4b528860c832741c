"""Counts of a torch module by torch itself, to hold anynet.complexity to (docs/method.md §2)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def meta_macs(model: nn.Module, shape) -> int:
    """Multiply-adds FlopCounterMode sees on meta tensors (no compute; bias adds left out)."""
    with FlopCounterMode(display=False) as counter:
        model.to("meta")(torch.empty(*shape, device="meta"))
    return counter.get_total_flops() // 2


def acts(model: nn.Module, x: torch.Tensor) -> int:
    """Output elements of every conv, non-global pool and linear (docs/method.md §2)."""
    seen = [0]
    kinds = nn.Conv2d | nn.MaxPool2d | nn.AvgPool2d | nn.AdaptiveAvgPool2d | nn.Linear
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: seen.__setitem__(0, seen[0] + out.numel()))
        for m in model.modules()
        if isinstance(m, kinds)
    ]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return seen[0]
