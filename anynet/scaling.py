"""Scaling a network to another flop budget: EfficientNet's compound rule and DDS' RegNet rule.

`efficientnet` (Tan & Le 2019, §3.3) scales depth, width and resolution by α^φ, β^φ, γ^φ,
rounded as EfficientNet's code rounds; `compound` applies given multipliers, e.g. B1's
published (1.0, 1.1, 240). `dds` (DDS §5, Fig. 11) scales a RegNet's w0, wa and g by s and
keeps its depth, wm and b; another network keeps its depths and scales its widths by s.
The rules and their rounding are docs/method.md §8. `scale` searches the rule's one free
variable (φ or s) for the network whose *exact* flops (anynet.complexity) are closest to
the target: rounding makes flops a step function of it, so a geometric grid is refined
around the best point until no new network turns up.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from anynet.complexity import complexity
from anynet.regnet import RegNetParams
from anynet.rounding import group_rule, make_divisible
from anynet.spec import BOTTLENECK_BLOCKS, NetSpec

RULES = ("efficientnet", "dds")
_BUDGET = re.compile(r"^\s*(\d+\.?\d*|\.\d+)(?:e([-+]?\d+))?\s*([kmgt]?|x)\s*$", re.I)
_SI = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}
ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15  # EfficientNet §3.3: depth, width, resolution bases
QUANTUM = 8  # DDS: widths in multiples of 8
GRID = 161  # points of the first grid over the free variable
REFINE = 6  # refinements of the grid around the best point
# The furthest a network is scaled either way: EfficientNet-B0 → B7 is about 100 x, RegNetX
# 200MF → 32GF 160 x (DDS Table 4); past this the widths and depths leave NetSpec's bounds or
# overflow before the search ends.
MAX_SCALE = 1000.0


def parse_budget(text: str) -> tuple[float | None, float | None]:
    """'4x' → (None, 4.0): a factor of the network's flops; '1.6G', '400M', '2e9' → (flops, None)."""
    match = _BUDGET.match(str(text))
    if not match:
        raise ValueError(f"flops: expected a factor like 4x or a budget like 1.6G, got {text!r}")
    value = float(match.group(1) + (f"e{match.group(2)}" if match.group(2) else ""))
    unit = match.group(3).lower()
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"flops: the budget must be a positive finite number, got {text!r}")
    return (None, value) if unit == "x" else (value * _SI[unit], None)


def default_rule(target) -> str:
    """dds for a RegNet (its parameters are what DDS scales), efficientnet for any network."""
    return "dds" if isinstance(target, RegNetParams) else "efficientnet"


@dataclass(frozen=True)
class Scaled:
    """A scaled network: its spec, exact complexity, the rule's factors, and the target."""

    spec: NetSpec
    complexity: dict[str, int]
    rule: str
    target_flops: float
    factors: dict[str, float] = field(default_factory=dict)
    regnet: RegNetParams | None = None

    @property
    def deviation(self) -> float:
        """(flops − target) / target."""
        return self.complexity["flops"] / self.target_flops - 1.0

    def to_dict(self) -> dict:
        """Plain JSON-ready dict."""
        return {
            "rule": self.rule,
            "target_flops": self.target_flops,
            "deviation": self.deviation,
            "factors": dict(self.factors),
            "complexity": dict(self.complexity),
            "spec": self.spec.to_dict(),
            "regnet": self.regnet.model_dump(mode="json") if self.regnet else None,
        }


def _group_rule(spec: dict, block: str) -> None:
    """Make inner widths divisible by the group widths again (pycls rule), in place."""
    if block not in BOTTLENECK_BLOCKS:
        return
    stages = spec["stages"]
    widths, groups, _ = group_rule(
        [st["width"] for st in stages],
        [st["bottleneck_multiplier"] for st in stages],
        [st["group_width"] for st in stages],
        "pycls",
    )
    for st, w, g in zip(stages, widths.tolist(), groups.tolist(), strict=True):
        st["width"], st["group_width"] = w, g


def compound(
    spec: NetSpec, width: float = 1.0, depth: float = 1.0, resolution: int | None = None
) -> NetSpec:
    """`spec` scaled by width and depth multipliers (and a resolution), as EfficientNet rounds.

    Widths of the stem, every stage and the head conv: make_divisible(w·width, 8); depths
    ceil(d·depth) (torchvision's float arithmetic, so B1–B7 come out as torchvision's).
    """
    if not (width > 0 and depth > 0):
        raise ValueError(f"width, depth: multipliers must be > 0, got {width}, {depth}")
    data = spec.to_dict()

    def round_width(w: int) -> int:
        return int(make_divisible(w * width, 8))

    data["stem"]["width"] = round_width(spec.stem.width)
    if spec.head_width:
        data["head_width"] = round_width(spec.head_width)
    for st in data["stages"]:
        st["width"] = round_width(st["width"])
        st["depth"] = int(math.ceil(st["depth"] * depth))
    if resolution is not None:
        data["resolution"] = int(resolution)
    _group_rule(data, spec.block)
    return NetSpec.from_dict(data)


def _quantise_group(g: float) -> int:
    """A scaled group width as the pycls sampler draws it: 2^k below 8, multiples of 8 above."""
    if g < QUANTUM:
        return max(1, 2 ** round(math.log2(max(g, 1.0))))
    return QUANTUM * max(1, round(g / QUANTUM))


def widen(spec: NetSpec, s: float) -> NetSpec:
    """DDS' rule on a network: stage and group widths x s (multiples of 8), depths kept."""
    if not s > 0:
        raise ValueError(f"s: width factor must be > 0, got {s}")
    data = spec.to_dict()
    for st in data["stages"]:
        st["width"] = QUANTUM * max(1, round(st["width"] * s / QUANTUM))
        if spec.block in BOTTLENECK_BLOCKS:
            st["group_width"] = _quantise_group(st["group_width"] * s)
    _group_rule(data, spec.block)
    return NetSpec.from_dict(data)


def widen_regnet(p: RegNetParams, s: float) -> RegNetParams:
    """DDS' rule on a RegNet: w0, wa, g x s (w0 a multiple of 8); d, wm, b, SE kept."""
    if not s > 0:
        raise ValueError(f"s: width factor must be > 0, got {s}")
    return p.model_copy(
        update={
            "w0": QUANTUM * max(1, round(p.w0 * s / QUANTUM)),
            "wa": round(p.wa * s, 3),
            "group_width": _quantise_group(p.group_width * s),
        }
    )


def _search(make, lo: float, hi: float, target: float):
    """(u, result, flops) whose network's exact flops are closest to target, u in [lo, hi].

    make(u) -> (key, result, flops) or None (no network). A grid over u is refined around
    the best point while that finds new networks (flops are a step function of u).
    """
    seen: set = set()
    best = None
    for _ in range(REFINE + 1):
        step = (hi - lo) / (GRID - 1)
        found = 0
        for i in range(GRID):
            u = lo + i * step
            made = make(u)
            if made is None:
                continue
            key, result, flops = made
            if key not in seen:
                seen.add(key)
                found += 1
            if best is None or abs(flops - target) < abs(best[2] - target):
                best = (u, result, flops)
        if best is None or not found:
            break
        lo, hi = best[0] - step, best[0] + step
    if best is None:
        raise ValueError("flops: the rule gives no network near the target")
    return best


def scale(
    target: NetSpec | RegNetParams,
    flops: float | None = None,
    factor: float | None = None,
    rule: str = "efficientnet",
    **spec_kw,
) -> Scaled:
    """The network `rule` makes of `target` whose exact flops are closest to the budget.

    The budget is `flops`, or `factor` times the target's own flops. A RegNetParams target
    takes regnet_spec's keyword arguments (stem_width, resolution, ...) in spec_kw; `dds`
    keeps it a RegNet (Scaled.regnet), `efficientnet` scales its stages as a network.
    """
    if rule not in RULES:
        raise ValueError(f"rule: must be one of {', '.join(RULES)}, got {rule!r}")
    if isinstance(target, RegNetParams):
        regnet, spec = target, target.spec(**spec_kw)
    elif isinstance(target, NetSpec):
        if spec_kw:
            raise ValueError(f"{next(iter(spec_kw))}: a NetSpec takes no spec options")
        regnet, spec = None, target
    else:
        raise ValueError(f"target: expected a NetSpec or RegNetParams, got {type(target).__name__}")
    base = complexity(spec)["flops"]
    if (flops is None) == (factor is None):
        raise ValueError("flops: give exactly one of flops (a budget) or factor (x the network's)")
    goal = float(flops) if flops is not None else float(factor) * base
    if not (math.isfinite(goal) and goal > 0):
        raise ValueError(f"flops: the target must be a positive number, got {goal}")
    ratio = goal / base
    if not 1 / MAX_SCALE <= ratio <= MAX_SCALE:
        raise ValueError(
            f"flops: the target {goal:.4g} is {ratio:.3g} x the network's {base} flops; "
            f"scaling reaches from 1/{MAX_SCALE:g} x to {MAX_SCALE:g} x"
        )

    def counted(net: NetSpec, result):
        try:
            cx = complexity(net)
        except ValueError:  # e.g. a resolution too small for the strides
            return None
        return net, (net, cx, result), cx["flops"]

    if rule == "efficientnet":

        def make(phi: float):
            res = max(1, round(spec.resolution * GAMMA**phi))
            try:
                net = compound(spec, BETA**phi, ALPHA**phi, res)
            except ValueError:
                return None
            return counted(net, {"phi": phi, "depth": ALPHA**phi, "width": BETA**phi,
                                 "resolution": res})  # fmt: skip

        phi0 = math.log2(ratio)  # flops grow about 2^φ
        _, (net, cx, factors), _ = _search(make, phi0 - 3, phi0 + 3, goal)
        return Scaled(net, cx, rule, goal, factors)

    def make_dds(log_s: float):
        s = 2.0**log_s
        try:
            if regnet is not None:
                p = widen_regnet(regnet, s)
                return counted(p.spec(**spec_kw), (p, s))
            return counted(widen(spec, s), (None, s))
        except ValueError:
            return None

    log_s0 = math.log2(ratio) / 2  # flops grow about as width squared
    _, (net, cx, (p, s)), _ = _search(make_dds, log_s0 - 1.5, log_s0 + 1.5, goal)
    return Scaled(net, cx, rule, goal, {"s": s}, p)


def scale_to(target: NetSpec | RegNetParams, budget: str, rule: str | None = None, **spec_kw):
    """`scale` with the budget as text ('4x', '1.6G'); rule None: the target's default_rule."""
    flops, factor = parse_budget(budget)
    return scale(target, flops, factor, rule or default_rule(target), **spec_kw)
