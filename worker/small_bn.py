"""Batch norm (+ the ReLU after it) for channels_last CPU tensors with fewer than 8 channels.

torch's channels_last batch norm kernels vectorise over the channels, so below 8 they run
almost scalar: forward + backward of a 128x4x32x32 activation took 3.2-3.7 ms here, where
one elementwise pass over it takes 0.02-0.05 ms (AMD EPYC, AVX-512, one thread). Here the
channels of k neighbouring pixels are read as one row of k x C >= 64 values (a view, no copy),
so every pass runs on wide rows: the sums, the scale and shift, and the backward in closed form
(Ioffe & Szegedy 2015, §3). The statistics are two-pass (the mean, then the squared deviations)
with float32 sums, as torch's; they came out closer to float64 than torch's own (relative
errors ~1e-7 against ~1e-5, tests/test_small_bn.py). Everywhere else (8 channels and up, NCHW,
eval, other devices) torch's kernels run as before.
"""

from __future__ import annotations

import torch
from torch import nn

FEW_CHANNELS = 8  # below this torch's channels_last kernels are 2-5x slower than these passes
ROW_WIDTH = 64  # values per folded row: k pixels x C channels, k a power of two


def folds(x: torch.Tensor) -> bool:
    """Whether `x` takes this path: a 4-d channels_last CPU float tensor with few channels."""
    return (
        x.dim() == 4
        and x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.bfloat16)
        and x.shape[1] < FEW_CHANNELS
        and x.is_contiguous(memory_format=torch.channels_last)
    )


def _rows(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(N, C, H, W) channels_last as (N*H*W / k, k*C) rows (a view), and k."""
    n, c, h, w = x.shape
    pixels, k = n * h * w, 1
    while k * c < ROW_WIDTH and pixels % (2 * k) == 0:
        k *= 2
    return x.permute(0, 2, 3, 1).reshape(pixels // k, k * c), k


def _image(rows: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Rows back as `like`'s (N, C, H, W) in channels_last (a view)."""
    n, c, h, w = like.shape
    return rows.view(n, h, w, c).permute(0, 3, 1, 2)


def _channel_sums(rows: torch.Tensor, k: int, c: int) -> torch.Tensor:
    """Per-channel float32 sums of folded rows."""
    return rows.sum(0, dtype=torch.float32).view(k, c).sum(0)


class _BatchNormReLU(torch.autograd.Function):
    """Training-mode batch norm over (N, H, W), then ReLU if asked; returns y, mean, biased var."""

    @staticmethod
    def forward(ctx, x, weight, bias, eps: float, relu: bool):
        c = x.shape[1]
        rows, k = _rows(x)
        rows = rows.float()  # bf16 converted once, not in every mixed op
        count = rows.numel() // c
        mean = _channel_sums(rows, k, c) / count
        dev = rows - mean.repeat(k)
        var = _channel_sums(dev.mul_(dev), k, c) / count
        invstd = torch.rsqrt(var + eps)
        scale = weight.float() * invstd
        shift = bias.float() - mean * scale  # y = x * scale + shift, as torch computes it
        y = torch.addcmul(shift.repeat(k), rows, scale.repeat(k))
        if relu:
            y.relu_()
        y = y.to(x.dtype)
        ctx.save_for_backward(x, y, mean, invstd, weight)
        ctx.relu, ctx.k = relu, k
        return _image(y, x), mean, var

    @staticmethod
    def backward(ctx, dy, _mean_grad, _var_grad):
        x, y, mean, invstd, weight = ctx.saved_tensors
        c, k = x.shape[1], ctx.k
        rows, _ = _rows(x)
        rows = rows.float()
        grad, _ = _rows(dy.contiguous(memory_format=torch.channels_last))
        count = rows.numel() // c
        if ctx.relu:
            grad = torch.ops.aten.threshold_backward(grad, y, 0)
        grad = grad.float()
        grad_bias = _channel_sums(grad, k, c)
        dev = rows - mean.repeat(k)
        grad_dev = _channel_sums(dev * grad, k, c)  # sum of dy * (x - mean)
        # dx = scale * (dy - mean(dy) - xhat * mean(dy * xhat)), xhat = (x - mean) * invstd
        scale = weight.float() * invstd
        per_dev = scale * invstd.square() * grad_dev / -count
        const = scale * grad_bias / -count
        dx = torch.addcmul(const.repeat(k), dev, per_dev.repeat(k), out=dev)
        dx.addcmul_(grad, scale.repeat(k))
        grad_weight = (grad_dev * invstd).to(weight.dtype)
        return _image(dx.to(x.dtype), x), grad_weight, grad_bias.to(weight.dtype), None, None


SMALL_BN_OP = _BatchNormReLU.__name__  # in the profiler's names of its forward and backward


class SmallChannelBatchNorm(nn.BatchNorm2d):
    """nn.BatchNorm2d (same parameters, buffers and state_dict), optionally with the ReLU after
    it; training on tensors that `folds` runs the wide passes above, anything else torch's."""

    def __init__(self, *args, relu: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise x (and apply ReLU if this module took over the one after it)."""
        if not (self.training and self.track_running_stats and self.affine and folds(x)):
            y = super().forward(x)
            return y.relu_() if self.relu else y
        y, mean, var = _BatchNormReLU.apply(x, self.weight, self.bias, self.eps, self.relu)
        with torch.no_grad():  # what torch's batch norm does to its buffers in training
            self.num_batches_tracked.add_(1)
            momentum = self.momentum
            if momentum is None:  # cumulative moving average
                momentum = 1.0 / float(self.num_batches_tracked)
            count = x.numel() // x.shape[1]
            self.running_mean.lerp_(mean, momentum)
            self.running_var.lerp_(var * (count / max(count - 1, 1)), momentum)
        return y

    def extra_repr(self) -> str:
        """BatchNorm2d's, plus whether the ReLU is fused."""
        return super().extra_repr() + (", relu=True" if self.relu else "")


def use_small_channel_bn(model: nn.Module) -> int:
    """Swap each BatchNorm2d of fewer than FEW_CHANNELS channels in `model`'s nn.Sequentials for
    a SmallChannelBatchNorm with its state, taking over a ReLU right after it (which becomes
    nn.Identity, so the state_dict keys stay). Returns how many were swapped; call it on a
    CPU model before an optimiser holds the parameters."""
    swapped = 0
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        for i, bn in enumerate(seq):
            if type(bn) is not nn.BatchNorm2d or bn.num_features >= FEW_CHANNELS:
                continue
            after = seq[i + 1] if i + 1 < len(seq) else None
            relu = type(after) is nn.ReLU
            new = SmallChannelBatchNorm(bn.num_features, bn.eps, bn.momentum, bn.affine,
                                        bn.track_running_stats, relu=relu)  # fmt: skip
            new.load_state_dict(bn.state_dict())
            new.train(bn.training)
            seq[i] = new
            if relu:
                seq[i + 1] = nn.Identity()
            swapped += 1
    return swapped
