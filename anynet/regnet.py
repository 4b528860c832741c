"""RegNet: from (d, w0, wa, wm, g, b, se) to stages and both rounding rules (fits: regnet_fit).

docs/method.md §3. Widths are generated in float64 with numpy's round-half-to-even; stages are the
runs of equal quantised widths; then a group-compatibility rule (pycls or torchvision) makes
every inner width divisible by its group width.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from anynet.rounding import REGNET_ROUNDINGS, Rounding, group_rule
from anynet.spec import NetSpec, StageSpec, StemSpec

ROUNDINGS = REGNET_ROUNDINGS  # the RegNet rules; clamp is for design spaces only
QUANTUM = 8  # DDS: per-block widths are quantised to multiples of 8


def check_regnet_params(
    depth: int, w0: float, wa: float, wm: float, group_width: int = 1, rounding: str = "pycls"
) -> None:
    """Raise ValueError naming the RegNet parameter that is invalid and why (docs/method.md §3)."""
    if int(depth) != depth or depth < 1:
        raise ValueError(f"depth: must be an integer >= 1, got {depth}")
    if not w0 > 0:
        raise ValueError(f"w0: initial width must be > 0, got {w0}")
    if float(w0) % QUANTUM:
        raise ValueError(f"w0: initial width must be a multiple of {QUANTUM}, got {w0}")
    if not wa >= 0:
        raise ValueError(f"wa: width slope must be >= 0, got {wa}")
    if not wm > 1:
        raise ValueError(f"wm: width multiplier must be > 1, got {wm}")
    if int(group_width) != group_width or group_width < 1:
        raise ValueError(f"group_width: must be an integer >= 1, got {group_width}")
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding: must be one of {', '.join(ROUNDINGS)}, got {rounding!r}")


def quantized_widths(depth, w0, wa, wm) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-block widths of RegNets given as arrays: (widths, exponents, present), each (n, d).

    docs/method.md §3: u_j = w0 + wa·j, s_j = round(log(u_j / w0) / log wm),
    w_j = round(w0·wm^s_j / 8)·8 in float64, half to even; d = max(depth), and `present`
    marks j < depth. Invalid parameters give NaN or garbage rows (the caller rejects them).
    """
    depth = np.atleast_1d(np.asarray(depth, np.int64))
    w0 = np.atleast_1d(np.asarray(w0, np.float64))[:, None]
    wa = np.atleast_1d(np.asarray(wa, np.float64))[:, None]
    wm = np.atleast_1d(np.asarray(wm, np.float64))[:, None]
    j = np.arange(int(depth.max()), dtype=np.float64)[None, :]
    with np.errstate(all="ignore"):
        u = w0 + wa * j
        s = np.round(np.log(u / w0) / np.log(wm))
        w = np.round(w0 * np.power(wm, s) / QUANTUM) * QUANTUM
    return w, s, j < depth[:, None]


def quantized_block_widths(depth: int, w0: float, wa: float, wm: float) -> list[int]:
    """Per-block widths before the group rule: w_j = round(w0·wm^s_j / 8)·8 (docs/method.md §3)."""
    check_regnet_params(depth, w0, wa, wm)
    w, _, _ = quantized_widths(depth, w0, wa, wm)
    return [int(x) for x in w[0]]


def stages_of(block_widths: list[int]) -> tuple[list[int], list[int]]:
    """Runs of equal per-block widths → (stage_depths, stage_widths) (docs/method.md §3)."""
    depths: list[int] = []
    widths: list[int] = []
    for w in block_widths:
        if widths and widths[-1] == w:
            depths[-1] += 1
        else:
            widths.append(w)
            depths.append(1)
    return depths, widths


def adjust_widths_groups(
    widths: list[int], bottleneck_multipliers: list[float], group_widths: list[int], rounding: str
) -> tuple[list[int], list[int]]:
    """Group compatibility: make each inner width w·b divisible by its group width (§3)."""
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding: must be one of {', '.join(ROUNDINGS)}, got {rounding!r}")
    if not len(widths) == len(bottleneck_multipliers) == len(group_widths):
        raise ValueError("widths, bottleneck_multipliers and group_widths differ in length")
    for i, (w, b, g) in enumerate(zip(widths, bottleneck_multipliers, group_widths, strict=True)):
        if w < 1:
            raise ValueError(f"widths[{i}]: must be >= 1, got {w}")
        if not b > 0:
            raise ValueError(f"bottleneck_multipliers[{i}]: must be > 0, got {b}")
        if g < 1:
            raise ValueError(f"group_widths[{i}]: must be >= 1, got {g}")
    out_w, out_g, ok = group_rule(widths, bottleneck_multipliers, group_widths, rounding)
    for w, b, fine in zip(widths, bottleneck_multipliers, ok.tolist(), strict=True):
        if not fine:  # the torchvision rule refuses an inner width of 0
            raise ValueError(f"bottleneck_multiplier: inner width int({w} x {b}) is 0")
    return out_w.tolist(), out_g.tolist()


def regnet_widths(
    depth: int,
    w0: float,
    wa: float,
    wm: float,
    group_width: int,
    bottleneck_multiplier: float = 1.0,
    rounding: str = "pycls",
) -> tuple[list[int], list[int], list[int]]:
    """RegNet parameters → (stage_depths, stage_widths, stage_group_widths) (docs/method.md §3)."""
    check_regnet_params(depth, w0, wa, wm, group_width, rounding)
    if not bottleneck_multiplier > 0:
        raise ValueError(f"bottleneck_multiplier: must be > 0, got {bottleneck_multiplier}")
    depths, widths = stages_of(quantized_block_widths(depth, w0, wa, wm))
    n = len(widths)
    widths, groups = adjust_widths_groups(
        widths, [bottleneck_multiplier] * n, [int(group_width)] * n, rounding
    )
    return depths, widths, groups


def regnet_spec(
    depth: int,
    w0: float,
    wa: float,
    wm: float,
    group_width: int,
    bottleneck_multiplier: float = 1.0,
    se_ratio: float = 0.0,
    rounding: str = "pycls",
    stem_width: int = 32,
    resolution: int = 224,
    num_classes: int = 1000,
    stem_type: str = "simple",
    in_channels: int = 3,
) -> NetSpec:
    """The NetSpec of a RegNet: res_bottleneck blocks, every stage stride 2 (DDS §3)."""
    depths, widths, groups = regnet_widths(
        depth, w0, wa, wm, group_width, bottleneck_multiplier, rounding
    )
    stages = tuple(
        StageSpec(
            depth=d, width=w, stride=2, bottleneck_multiplier=bottleneck_multiplier, group_width=g
        )
        for d, w, g in zip(depths, widths, groups, strict=True)
    )
    return NetSpec(
        stem=StemSpec(type=stem_type, width=stem_width),
        block="res_bottleneck",
        stages=stages,
        se_ratio=se_ratio,
        num_classes=num_classes,
        in_channels=in_channels,
        resolution=resolution,
    )


class RegNetParams(BaseModel):
    """One RegNet as its generating parameters plus the rounding rule that makes it exact."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    depth: int = Field(ge=1)
    w0: int
    wa: float
    wm: float
    group_width: int = Field(ge=1)
    bottleneck_multiplier: float = Field(1.0, gt=0)
    se_ratio: float = Field(0.0, ge=0.0, lt=1.0)
    rounding: Rounding = Rounding.PYCLS

    @model_validator(mode="after")
    def _valid(self) -> RegNetParams:
        check_regnet_params(self.depth, self.w0, self.wa, self.wm, self.group_width, self.rounding)
        return self

    def widths(self) -> tuple[list[int], list[int], list[int]]:
        """(stage_depths, stage_widths, stage_group_widths) under this RegNet's rule."""
        return regnet_widths(
            self.depth,
            self.w0,
            self.wa,
            self.wm,
            self.group_width,
            self.bottleneck_multiplier,
            self.rounding,
        )

    def spec(self, **kw) -> NetSpec:
        """The NetSpec (kw: stem_width, resolution, num_classes, stem_type, in_channels)."""
        return regnet_spec(
            self.depth,
            self.w0,
            self.wa,
            self.wm,
            self.group_width,
            self.bottleneck_multiplier,
            self.se_ratio,
            self.rounding,
            **kw,
        )
