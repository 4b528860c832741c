"""Design spaces as data: distributions, constraints, presets and the study-spec format.

A `DesignSpace` is plain JSON (DDS §3, NDS §3): per-stage distributions of depth, width,
bottleneck multiplier and group width (or, for RegNet spaces, of d, w0, wa, wm), a list of
constraints, and the fixed parts of every network (stem, block, SE, strides, input,
classes, group-compatibility rule). PRESETS is docs/method.md §4's presets as data (their
ranges, distributions and sources are there; the family presets' data are
anynet.spaces.families); search.spec.space.SpaceSpec is a preset plus overrides, as a
study spec writes it. Our `bottleneck_multiplier` is the inverse of the paper's ratio b.

Past 400 lines on purpose: distributions, constraints, the DesignSpace model and the preset
table are one vocabulary that study specs write.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from anynet.rounding import Rounding
from anynet.spaces.families import FAMILY_PRESETS
from anynet.spec import (
    MAX_BOTTLENECK_MULTIPLIER,
    MAX_CLASSES,
    MAX_IN_CHANNELS,
    MAX_KERNEL,
    MAX_RESOLUTION,
    MAX_STAGE_DEPTH,
    MAX_STAGES,
    MAX_WIDTH,
    BlockType,
    StemSpec,
)
from anynet.traits import FAMILY_FIELDS, FAMILY_PER_STAGE, no_se_message, traits


class SpaceData(BaseModel):
    """A design space's data, and a study's space spec: strict, frozen, finite numbers only
    (JSON has no Infinity/NaN, so a space must round-trip without them)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# --- distributions ---------------------------------------------------------------------
class _Range(SpaceData):
    """A distribution over [lo, hi]; `with_range` keeps its kind and quantum."""

    @model_validator(mode="after")
    def _ordered(self):
        if self.hi < self.lo:
            raise ValueError(f"{self.kind}: hi {self.hi} < lo {self.lo}")
        return self

    def with_range(self, lo: float, hi: float):
        """The same kind (and step or quantum) over [lo, hi]."""
        return type(self).model_validate({**self.model_dump(), "lo": lo, "hi": hi})


class UniformInt(_Range):
    """Integers lo, lo+step, …, hi, each equally likely."""

    kind: Literal["uniform_int"] = "uniform_int"
    lo: int
    hi: int
    step: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _steps(self) -> UniformInt:
        if (self.hi - self.lo) % self.step:
            raise ValueError(f"uniform_int: hi - lo must be a multiple of step {self.step}")
        return self

    def draw(self, rng: np.random.Generator, size) -> np.ndarray:
        """Vectorised draws."""
        n = (self.hi - self.lo) // self.step + 1
        return self.lo + self.step * rng.integers(0, n, size=size)

    def with_range(self, lo: float, hi: float) -> UniformInt:
        """The values of this grid (same step and offset) that lie in [lo, hi]."""
        first = self.lo + math.ceil((lo - self.lo) / self.step) * self.step
        last = self.lo + math.floor((hi - self.lo) / self.step) * self.step
        if first > last:
            raise ValueError(f"uniform_int: no multiple of step {self.step} in [{lo}, {hi}]")
        return UniformInt(lo=first, hi=last, step=self.step)


class LogUniform(_Range):
    """pycls log-uniform: exp(U[log(lo − min(q, lo/2)), log hi]) rounded up to q (§4)."""

    kind: Literal["log_uniform"] = "log_uniform"
    lo: float = Field(gt=0)
    hi: float = Field(gt=0)
    quantum: float = Field(gt=0)

    def draw(self, rng: np.random.Generator, size) -> np.ndarray:
        """Vectorised draws (pycls sweep/random.py log_uniform semantics)."""
        q = self.quantum
        lo = np.log(self.lo - min(q, self.lo / 2))
        f = np.exp(rng.uniform(lo, np.log(self.hi), size=size))
        # Quantise up to q, then round away float noise (pycls uses Decimal for that).
        v = np.round(np.ceil(f / q) * q, 9)
        if float(q).is_integer() and float(self.lo).is_integer():
            return v.astype(np.int64)
        return v

    def with_range(self, lo: float, hi: float) -> LogUniform:
        """The same quantum over [lo, hi] snapped inwards to multiples of it (pycls rule)."""
        q = self.quantum
        first, last = (
            round(math.ceil(lo / q - 1e-9) * q, 9),
            round(math.floor(hi / q + 1e-9) * q, 9),
        )
        if not 0 < first <= last:
            raise ValueError(f"log_uniform: no multiple of quantum {q} in [{lo}, {hi}]")
        return LogUniform(lo=first, hi=last, quantum=q)


class Choice(SpaceData):
    """One of `values`, each equally likely."""

    kind: Literal["choice"] = "choice"
    values: tuple[int | float, ...] = Field(min_length=1)

    def draw(self, rng: np.random.Generator, size) -> np.ndarray:
        """Vectorised draws."""
        vals = np.asarray(self.values)
        if np.all(vals == np.round(vals)):
            vals = vals.astype(np.int64)
        return vals[rng.integers(0, len(vals), size=size)]

    def with_range(self, lo: float, hi: float) -> Choice:
        """The preset's values that lie in [lo, hi]."""
        kept = tuple(v for v in self.values if lo <= v <= hi)
        if not kept:
            raise ValueError(f"choice: no value of {list(self.values)} lies in [{lo}, {hi}]")
        return Choice(values=kept)


def _power_of_two(dist, names) -> None:
    for name in names:
        if not float(np.log2(getattr(dist, name))).is_integer():
            raise ValueError(f"{dist.kind}: {name} {getattr(dist, name)} is not 2^k")


class PowerOfTwo(_Range):
    """Powers of two in [lo, hi], each equally likely (pycls power2_uniform)."""

    kind: Literal["power_of_two"] = "power_of_two"
    lo: float = Field(gt=0)
    hi: float = Field(gt=0)

    @model_validator(mode="after")
    def _powers(self) -> PowerOfTwo:
        _power_of_two(self, ("lo", "hi"))
        return self

    def draw(self, rng: np.random.Generator, size) -> np.ndarray:
        """Vectorised draws."""
        e = rng.integers(int(np.log2(self.lo)), int(np.log2(self.hi)) + 1, size=size)
        v = np.power(2.0, e)
        return v.astype(np.int64) if self.lo >= 1 else v


class PowerOfTwoOrLogUniform(_Range):
    """pycls power2_or_log_uniform: 2^k below `quantum`, log-uniform multiples of it above.

    pycls sweep/random.py: draw a power of two in [lo, hi]; if it is ≥ q, redraw
    log-uniformly in [max(lo, q), hi] with quantum min(hi, q). RegNet group widths use
    (8, 128, 8) (pycls sweep config REGNET_SAMPLER.GROUP_W).
    """

    kind: Literal["power2_or_log_uniform"] = "power2_or_log_uniform"
    lo: int = Field(ge=1)
    hi: int = Field(ge=1)
    quantum: int = Field(ge=1)

    @model_validator(mode="after")
    def _powers(self) -> PowerOfTwoOrLogUniform:
        _power_of_two(self, ("lo", "hi", "quantum"))  # as pycls validate_rand requires
        return self

    def draw(self, rng: np.random.Generator, size) -> np.ndarray:
        """Vectorised draws."""
        p2 = PowerOfTwo(lo=self.lo, hi=self.hi).draw(rng, size)
        q = min(self.hi, self.quantum)
        big = LogUniform(lo=max(self.lo, self.quantum), hi=self.hi, quantum=q)
        return np.where(p2 >= self.quantum, big.draw(rng, size), p2).astype(np.int64)


Distribution = Annotated[
    UniformInt | LogUniform | Choice | PowerOfTwo | PowerOfTwoOrLogUniform,
    Field(discriminator="kind"),
]
PerStage = Distribution | tuple[Distribution, ...]


def support(dist) -> tuple[float, float]:
    """Smallest and largest value a distribution can give."""
    if isinstance(dist, Choice):
        return min(dist.values), max(dist.values)
    return dist.lo, dist.hi


# --- constraints ---------------------------------------------------------------------
# Named as in DDS §3.1: AnyNetX_B shares b, _C also g, _D has w_{i+1} ≥ w_i, _E d_{i+1} ≥ d_i.
FLAG_CONSTRAINTS = (
    "shared_bottleneck",
    "shared_group_width",
    "increasing_width",
    "increasing_depth",
)
Constraint = str | dict[str, int]


def _check_constraints(items) -> None:
    for c in items:
        if isinstance(c, str):
            if c not in FLAG_CONSTRAINTS:
                known = ", ".join([*FLAG_CONSTRAINTS, "{num_stages: k}"])
                raise ValueError(f"constraints: unknown constraint {c!r}; known: {known}")
        elif set(c) != {"num_stages"} or not 1 <= int(c["num_stages"]) <= MAX_STAGES:
            raise ValueError(
                f"constraints: {c!r} is not {{'num_stages': k}} with 1 <= k <= {MAX_STAGES}"
            )


# the largest value each distribution may reach (the hard bounds of anynet.spec)
_MAX_VALUE = {
    "depth": MAX_STAGE_DEPTH,
    "width": MAX_WIDTH,
    "bottleneck_multiplier": MAX_BOTTLENECK_MULTIPLIER,
    "group_width": MAX_WIDTH,
    "groups": MAX_WIDTH,
    "w0": MAX_WIDTH,
    "wa": MAX_WIDTH,
    "wm": MAX_WIDTH,
    "kernel": MAX_KERNEL,
    "expansion": MAX_BOTTLENECK_MULTIPLIER,
    "branches": MAX_WIDTH,
}
PER_STAGE = ("depth", "width", "bottleneck_multiplier", "group_width", "groups")
# FAMILY_PER_STAGE (anynet.traits): per-stage values only some families draw; `branches` is
# drawn four times per stage, one weight per inception branch
# fields each kind needs; the other kind's own fields are errors (regnet: set the stage
# count with the {"num_stages": k} constraint, not `stages`)
_NEEDS = {"anynet": ("stages", "width"), "regnet": ("w0", "wa", "wm", "group_width")}
_OWN = {"anynet": ("stages", "width", "groups", *FAMILY_PER_STAGE), "regnet": ("w0", "wa", "wm")}


class DesignSpace(SpaceData):
    """One design space, entirely as data (DDS §3; docs/method.md §4)."""

    name: str = Field(max_length=200)
    kind: Literal["anynet", "regnet"] = "anynet"
    stem: StemSpec = StemSpec()
    block: BlockType = "res_bottleneck"
    se_ratio: float = Field(0.0, ge=0.0, lt=1.0)
    head_width: int = Field(0, ge=0, le=MAX_WIDTH)
    # anynet: number of stages; regnet: the stage count comes from (d, w0, wa, wm).
    stages: int | None = Field(None, ge=1, le=MAX_STAGES)
    strides: tuple[Literal[1, 2], ...] | None = Field(None, max_length=MAX_STAGES)
    # Per-stage distributions (one for all stages, or a tuple with one per stage).
    depth: PerStage = UniformInt(lo=1, hi=16)
    width: PerStage | None = None
    bottleneck_multiplier: PerStage = Choice(values=(1.0,))
    group_width: PerStage | None = None
    groups: PerStage | None = None  # NDS ResNeXt samples the number of groups instead
    # mbconv: depthwise kernel k and expansion ratio t; inception: each branch's weight
    kernel: PerStage | None = None
    expansion: PerStage | None = None
    branches: PerStage | None = None
    # RegNet parameters (kind == "regnet"); `depth` is then the total depth.
    w0: Distribution | None = None
    wa: Distribution | None = None
    wm: Distribution | None = None
    constraints: tuple[Constraint, ...] = ()
    rounding: Rounding = Rounding.PYCLS
    resolution: int = Field(224, ge=1, le=MAX_RESOLUTION)
    num_classes: int = Field(1000, ge=1, le=MAX_CLASSES)
    in_channels: int = Field(3, ge=1, le=MAX_IN_CHANNELS)

    @model_validator(mode="after")
    def _consistent(self) -> DesignSpace:
        _check_constraints(self.constraints)
        regnet = self.kind == "regnet"
        for field in _NEEDS[self.kind]:
            if getattr(self, field) is None:
                raise ValueError(f"{field}: a {self.kind} space needs {field}")
        other = "anynet" if regnet else "regnet"
        for field in _OWN[other]:
            if getattr(self, field) is not None:
                raise ValueError(f"{field}: only {other} spaces have {field}")
        n = self.num_stages if regnet else self.stages
        for field in (*PER_STAGE, *FAMILY_PER_STAGE):
            v = getattr(self, field)
            if isinstance(v, tuple) and (regnet or len(v) != n):
                raise ValueError(f"{field}: {len(v)} per-stage distributions for {n} stages")
        flags = [c for c in self.constraints if isinstance(c, str)]
        if regnet and flags:  # RegNet widths and depths are shared / increasing by design
            raise ValueError(f"constraints: {flags[0]} is for anynet spaces; regnet spaces "
                             "take only {'num_stages': k}")  # fmt: skip
        if len(self.constraints) - len(flags) > 1:
            raise ValueError("constraints: give {'num_stages': k} at most once")
        if regnet and self.rounding == "clamp":
            raise ValueError("rounding: regnet spaces use 'pycls' or 'torchvision'")
        if not regnet and self.group_width is not None and self.groups is not None:
            raise ValueError("group_width/groups: give one of the two, not both")
        if traits(self.block).bottleneck and self.group_width is self.groups is None:
            raise ValueError(f"group_width: the {self.block} block needs group widths")
        if not regnet and self.num_stages not in (None, self.stages):
            raise ValueError(f"constraints: num_stages {self.num_stages} != stages {n}")
        if self.strides is not None and n is None:
            raise ValueError("strides: a regnet space without num_stages takes no strides")
        if self.strides is not None and len(self.strides) != n:
            raise ValueError(f"strides: {len(self.strides)} strides for {n} stages")
        for field in (*PER_STAGE, *FAMILY_PER_STAGE):
            for d in _as_tuple(getattr(self, field)):
                if support(d)[0] < (
                    1 if field not in ("bottleneck_multiplier", "expansion") else 1e-9
                ):
                    raise ValueError(f"{field}: values must be positive, got range {support(d)}")
        for field, most in _MAX_VALUE.items():
            for d in _as_tuple(getattr(self, field)):
                if support(d)[1] > most:
                    raise ValueError(f"{field}: values must be at most {most}, got {support(d)[1]}")
        _check_family(self)
        return self

    def has(self, constraint: str) -> bool:
        """Whether a flag constraint applies."""
        return constraint in self.constraints

    @property
    def num_stages(self) -> int | None:
        """The num_stages constraint's value, if any."""
        for c in self.constraints:
            if isinstance(c, dict):
                return int(c["num_stages"])
        return None

    def stage_strides(self, n: int) -> list[int]:
        """Strides of n stages: the space's, or 2 everywhere (DDS)."""
        return list(self.strides) if self.strides is not None else [2] * n

    def per_stage(self, field: str) -> list:
        """The field's distribution for each stage (anynet spaces)."""
        v = getattr(self, field)
        return list(v) if isinstance(v, tuple) else [v] * int(self.stages)

    def to_json(self, **kw) -> str:
        """JSON text of the space."""
        return self.model_dump_json(exclude_none=True, **kw)


def _values(dist) -> list:
    """Every value a Choice or UniformInt can give (others: their range's ends)."""
    if isinstance(dist, Choice):
        return list(dist.values)
    if isinstance(dist, UniformInt):
        return list(range(dist.lo, dist.hi + 1, dist.step))
    return [dist.lo, dist.hi]


def _check_family(space: DesignSpace) -> None:
    """The per-stage fields, SE and b of the space's block family (its row of anynet.traits)."""
    family = traits(space.block)
    for name, owner in FAMILY_FIELDS.items():
        if getattr(space, name) is not None and name not in family.stage_fields:
            raise ValueError(f"{name}: only the {owner} block draws {name}, not {space.block}")
    if not family.se and space.se_ratio:
        raise ValueError(no_se_message(space.block))
    for d in _as_tuple(space.kernel):
        if any(int(k) != k or k % 2 == 0 for k in _values(d)):
            raise ValueError(f"kernel: kernel sizes must be odd integers, got {_values(d)}")
    if family.whole_multiplier:
        for d in _as_tuple(space.bottleneck_multiplier):
            if any(b != int(b) for b in _values(d)) or not isinstance(d, Choice | UniformInt):
                raise ValueError(
                    f"bottleneck_multiplier: {space.block} bottlenecks are whole multiples of "
                    f"the growth rate (bn_size); got {d.kind} over {support(d)}"
                )


def _as_tuple(v) -> tuple:
    if v is None:
        return ()
    return v if isinstance(v, tuple) else (v,)


# --- presets: one base per family plus constraints (docs/design.md "presets are data") -------
_B_MULTIPLIERS = {"kind": "choice", "values": [1.0, 0.5, 0.25]}  # b ∈ {1, 2, 4} (multiplier 1/b)
_ANYNET_G = {"kind": "choice", "values": [1, 2, 4, 8, 16, 32]}
_ANYNET_X_A = {
    # DDS §3.2: "log-uniform sampling of d_i ≤ 16, w_i ≤ 1024 and divisible by 8, b_i ∈
    # {1, 2, 4}, and g_i ∈ {1, 2, …, 32}" (pycls log_uniform quanta 1 and 8); simple stem 32.
    "kind": "anynet",
    "stem": {"type": "simple", "width": 32},
    "block": "res_bottleneck",
    "stages": 4,
    "depth": {"kind": "log_uniform", "lo": 1, "hi": 16, "quantum": 1},
    "width": {"kind": "log_uniform", "lo": 8, "hi": 1024, "quantum": 8},
    "bottleneck_multiplier": _B_MULTIPLIERS,
    "group_width": _ANYNET_G,
    "resolution": 224,
    "num_classes": 1000,
}
_REGNET_X = {
    # DDS §3.3 (Fig. 9): d < 64, w0, wa < 256, 1.5 ≤ wm ≤ 3, b and g as AnyNetX (one of
    # each per network); kinds and quanta of pycls sweep/samplers.py regnet_sampler; 4 stages
    # with no skipped exponent (pycls check_regnet_constraints, docs/method.md §3).
    "kind": "regnet",
    "stem": {"type": "simple", "width": 32},
    "block": "res_bottleneck",
    "depth": {"kind": "uniform_int", "lo": 1, "hi": 63},
    "w0": {"kind": "log_uniform", "lo": 8, "hi": 248, "quantum": 8},
    "wa": {"kind": "log_uniform", "lo": 8.0, "hi": 255.9, "quantum": 0.1},
    "wm": {"kind": "log_uniform", "lo": 1.5, "hi": 3.0, "quantum": 0.001},
    "group_width": _ANYNET_G,
    "bottleneck_multiplier": _B_MULTIPLIERS,
    "constraints": [{"num_stages": 4}],
    "resolution": 224,
    "num_classes": 1000,
}
_REGNET_X_PYCLS = {
    # pycls sweep/config.py REGNET_SAMPLER defaults (DDS §4's restricted space): d uniform
    # [12, 28]; w0 log-uniform [8, 256] q 8; wa log-uniform [8, 256] q 0.1; wm log-uniform
    # [2, 3] q 0.001; group width power2_or_log_uniform [8, 128] q 8; b = 1; 4 stages.
    **_REGNET_X,
    "depth": {"kind": "uniform_int", "lo": 12, "hi": 28},
    "w0": {"kind": "log_uniform", "lo": 8, "hi": 256, "quantum": 8},
    "wa": {"kind": "log_uniform", "lo": 8.0, "hi": 256.0, "quantum": 0.1},
    "wm": {"kind": "log_uniform", "lo": 2.0, "hi": 3.0, "quantum": 0.001},
    "group_width": {"kind": "power2_or_log_uniform", "lo": 8, "hi": 128, "quantum": 8},
    "bottleneck_multiplier": {"kind": "choice", "values": [1.0]},
}
_NDS_CIFAR = {
    # NDS §3 value sets (module docstring): each value uniform over its set.
    "kind": "anynet",
    "stem": {"type": "cifar", "width": 16},
    "stages": 3,
    "strides": [1, 2, 2],
    "depth": {"kind": "choice", "values": [1, 2, 3, 4, 6, 8, 12, 16, 24]},
    "width": {
        "kind": "choice",
        "values": [16, 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256],
    },
    "resolution": 32,
    "num_classes": 10,
}
_RESNEXT = {
    "block": "res_bottleneck",
    "depth": {"kind": "choice", "values": [1, 2, 4, 8, 16]},
    "bottleneck_multiplier": _B_MULTIPLIERS,
    "group_width": None,
}
_DDS_STEPS = {  # DDS §3.2: each step adds one constraint to the previous space
    "A": [],
    "B": ["shared_bottleneck"],
    "C": ["shared_bottleneck", "shared_group_width"],
    "D": ["shared_bottleneck", "shared_group_width", "increasing_width"],
    "E": ["shared_bottleneck", "shared_group_width", "increasing_width", "increasing_depth"],
}
_TABLE: dict[str, dict] = {
    **{f"AnyNetX_{k}": {**_ANYNET_X_A, "constraints": c} for k, c in _DDS_STEPS.items()},
    # AnyNetY: the same spaces with SE, ratio 1/4 (DDS §5).
    **{
        f"AnyNetY_{k}": {**_ANYNET_X_A, "constraints": c, "se_ratio": 0.25}
        for k, c in _DDS_STEPS.items()
    },
    "RegNetX": _REGNET_X,
    "RegNetY": {**_REGNET_X, "se_ratio": 0.25},
    "RegNetX_pycls": _REGNET_X_PYCLS,
    "RegNetY_pycls": {**_REGNET_X_PYCLS, "se_ratio": 0.25},
    "Vanilla": {**_NDS_CIFAR, "block": "vanilla"},
    "ResNet": {**_NDS_CIFAR, "block": "res_basic"},
    "ResNeXt_A": {
        **_NDS_CIFAR,
        **_RESNEXT,
        "width": {"kind": "choice", "values": [16, 32, 64, 128, 256]},
        "groups": {"kind": "choice", "values": [1, 2, 4]},
    },
    "ResNeXt_B": {
        **_NDS_CIFAR,
        **_RESNEXT,
        "width": {"kind": "choice", "values": [64, 128, 256, 512, 1024]},
        "groups": {"kind": "choice", "values": [1, 2, 4, 8, 16]},
    },
    # EfficientNet, DenseNet, Inception, VGG: anynet.spaces.families says what they follow
    **FAMILY_PRESETS,
}
# NDS §4 compares spaces under a cap at the size of ResNet-56 (0.856 M params, 0.129 GF);
# a study spec's "complexity" (or `dse sample --complexity`) may name one of these.
COMPLEXITY_PRESETS: dict[str, dict[str, tuple[float, float]]] = {
    "nds_r56": {"params": (0.0, 0.856e6), "flops": (0.0, 0.129e9)},
}
PRESETS: dict[str, DesignSpace] = {
    name: DesignSpace.model_validate({"name": name, **data}) for name, data in _TABLE.items()
}


def get_space(name: str) -> DesignSpace:
    """The preset design space called `name`."""
    if name not in PRESETS:
        raise ValueError(f"space: unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name]


def complexity_preset(name: str) -> dict[str, tuple[float, float]]:
    """The complexity bounds a preset name stands for (e.g. "nds_r56", NDS §4)."""
    if name not in COMPLEXITY_PRESETS:
        known = ", ".join(COMPLEXITY_PRESETS)
        raise ValueError(f"complexity: unknown preset {name!r}; known: {known}")
    return dict(COMPLEXITY_PRESETS[name])
