"""RegNet: from (d, w0, wa, wm, g, b, se) to stages and both rounding rules (fits: regnet_fit).

docs/method.md §3. Widths are generated in float64 with numpy's round-half-to-even; stages are the
runs of equal quantised widths; then a group-compatibility rule (pycls or torchvision) makes
every inner width divisible by its group width.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from anynet.spec import NetSpec, StageSpec, StemSpec

Rounding = Literal["pycls", "torchvision"]
ROUNDINGS: tuple[str, ...] = Rounding.__args__
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


def quantized_block_widths(depth: int, w0: float, wa: float, wm: float) -> list[int]:
    """Per-block widths before the group rule: w_j = round(w0·wm^s_j / 8)·8 (docs/method.md §3)."""
    check_regnet_params(depth, w0, wa, wm)
    u = np.arange(int(depth), dtype=np.float64) * float(wa) + float(w0)
    s = np.round(np.log(u / float(w0)) / np.log(float(wm)))
    w = np.round(float(w0) * np.power(float(wm), s) / QUANTUM) * QUANTUM
    return [int(x) for x in w]


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


def _pycls_rule(w: int, b: float, g: int) -> tuple[int, int]:
    # pycls adjust_block_compatibility: v = int(w·b); g = min(g, v); m = lcm(g, b) if b > 1;
    # v = max(m, round(v/m)·m) with round half to even; w = int(v/b). (docs/method.md §3)
    v = int(max(1, w * b))
    g = int(min(g, v))
    m = math.lcm(g, int(b)) if b > 1 and float(b).is_integer() else g
    v = max(m, int(round(v / m) * m))
    return int(v / b), g


def _torchvision_rule(w: int, b: float, g: int) -> tuple[int, int]:
    # torchvision _make_divisible(v, g): v' = max(g, int(v + g/2)//g·g); +g if v' < 0.9·v.
    v = int(w * b)
    g = int(min(g, v))
    if g < 1:
        raise ValueError(f"bottleneck_multiplier: inner width int({w} x {b}) is 0")
    nv = max(g, int(v + g / 2) // g * g)
    if nv < 0.9 * v:
        nv += g
    return int(nv / b), g


_RULES = {"pycls": _pycls_rule, "torchvision": _torchvision_rule}


def adjust_widths_groups(
    widths: list[int], bottleneck_multipliers: list[float], group_widths: list[int], rounding: str
) -> tuple[list[int], list[int]]:
    """Group compatibility: make each inner width w·b divisible by its group width (§3)."""
    if rounding not in _RULES:
        raise ValueError(f"rounding: must be one of {', '.join(ROUNDINGS)}, got {rounding!r}")
    if not len(widths) == len(bottleneck_multipliers) == len(group_widths):
        raise ValueError("widths, bottleneck_multipliers and group_widths differ in length")
    out_w: list[int] = []
    out_g: list[int] = []
    for i, (w, b, g) in enumerate(zip(widths, bottleneck_multipliers, group_widths, strict=True)):
        if w < 1:
            raise ValueError(f"widths[{i}]: must be >= 1, got {w}")
        if not b > 0:
            raise ValueError(f"bottleneck_multipliers[{i}]: must be > 0, got {b}")
        if g < 1:
            raise ValueError(f"group_widths[{i}]: must be >= 1, got {g}")
        nw, ng = _RULES[rounding](int(w), float(b), int(g))
        out_w.append(nw)
        out_g.append(ng)
    return out_w, out_g


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
    rounding: Rounding = "pycls"

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
