"""NetSpec: a typed, JSON-serialisable description of one AnyNet (docs/method.md §1).

stem → stages of blocks → head. One NetSpec is exactly one network: `build` turns it into a
module and `complexity` counts it, both from the same layer description (anynet.families
walks it into the layers of anynet.layers).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from anynet.rounding import groups_of, inner_width, split_width
from anynet.traits import (  # the views stay importable from here (re-exported)
    BLOCK_NAMES,
    BOTTLENECK_BLOCKS,  # noqa: F401
    FAMILY_FIELDS,
    NO_SE_BLOCKS,  # noqa: F401
    SE_BLOCKS,  # noqa: F401
    BlockTraits,
    no_se_message,
    traits,
)

StemType = Literal["cifar", "simple", "resnet", "convnext"]
# the block families of anynet.traits (a JSON-schema enum of the same names, in its order)
BlockType = Literal[BLOCK_NAMES]  # type: ignore[valid-type]

# Hard bounds on every size that multiplies a network's memory or time: far above any CNN a
# design space describes (AnyNet d_i <= 16, w_i <= 1024, DDS §3.1; RegNet d < 64, DDS §3.3),
# low enough that no value can exhaust memory or overflow a 64-bit count before it is refused.
# A server sets tighter limits of its own (the operator's settings).
MAX_STAGES = 16
MAX_STAGE_DEPTH = 1024
MAX_WIDTH = 65536
MAX_CLASSES = 100_000
MAX_RESOLUTION = 1024
MAX_IN_CHANNELS = 1024
MAX_BOTTLENECK_MULTIPLIER = 64.0
MAX_KERNEL = 31


class _Frozen(BaseModel):
    # finite floats only: JSON has no Infinity/NaN, so a spec must round-trip without them
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class StemSpec(_Frozen):
    """The stem: `type` picks the layers (docs/method.md §1), `width` its output channels."""

    type: StemType = "simple"
    width: int = Field(32, ge=1, le=MAX_WIDTH)


class StageSpec(_Frozen):
    """One stage: `depth` blocks of output `width`; `stride` applies in its first block."""

    depth: int = Field(ge=1, le=MAX_STAGE_DEPTH)
    width: int = Field(ge=1, le=MAX_WIDTH)
    stride: Literal[1, 2] = 2
    # pycls BOT_MUL / torchvision bottleneck_multiplier: inner width = width x multiplier.
    bottleneck_multiplier: float = Field(1.0, gt=0, le=MAX_BOTTLENECK_MULTIPLIER)
    group_width: int = Field(1, ge=1, le=MAX_WIDTH)
    # mbconv: the depthwise conv's k x k and the expansion ratio t (expanded width
    # make_divisible(w_in·t, 8), EfficientNet); None: 3 and 1.
    kernel: int | None = Field(None, ge=1, le=MAX_KERNEL)
    expansion: float | None = Field(None, gt=0, le=MAX_BOTTLENECK_MULTIPLIER)
    # inception: integer weights of the 1x1, 3x3, 5x5 and pool branches' shares of the width.
    branches: tuple[int, int, int, int] | None = None

    @model_validator(mode="after")
    def _family_values(self) -> StageSpec:
        if self.kernel is not None and self.kernel % 2 == 0:
            raise ValueError(f"kernel: must be odd (same padding), got {self.kernel}")
        if self.branches is not None and not all(1 <= a <= MAX_WIDTH for a in self.branches):
            raise ValueError(
                f"branches: weights must lie in [1, {MAX_WIDTH}], got {list(self.branches)}"
            )
        return self

    @property
    def inner_width(self) -> int:
        """Width of the block's middle convs: int(round(w x multiplier)) (pycls)."""
        return inner_width(self.width, self.bottleneck_multiplier)

    @property
    def groups(self) -> int:
        """Number of groups of the 3x3 conv: inner width // group width (pycls)."""
        return groups_of(self.inner_width, self.group_width)


def _per_stage(field: str, doc: str) -> property:
    """A read-only view of one StageSpec field across the stages, as a list."""
    return property(lambda self: [getattr(s, field) for s in self.stages], doc=doc)


class NetSpec(_Frozen):
    """One AnyNet, exactly: stem, block family, stages, SE ratio, head, input and classes."""

    stem: StemSpec = StemSpec()
    block: BlockType = "res_bottleneck"
    stages: tuple[StageSpec, ...] = Field(min_length=1, max_length=MAX_STAGES)
    se_ratio: float = Field(0.0, ge=0.0, lt=1.0)
    head_width: int = Field(0, ge=0, le=MAX_WIDTH)
    num_classes: int = Field(10, ge=1, le=MAX_CLASSES)
    in_channels: int = Field(3, ge=1, le=MAX_IN_CHANNELS)
    resolution: int = Field(32, ge=1, le=MAX_RESOLUTION)

    @model_validator(mode="after")
    def _buildable(self) -> NetSpec:
        family = traits(self.block)
        for i, st in enumerate(self.stages):
            if st.inner_width > MAX_WIDTH:
                raise ValueError(
                    f"stages[{i}]: inner width round({st.width} x {st.bottleneck_multiplier}) "
                    f"exceeds {MAX_WIDTH}"
                )
        if family.bottleneck:
            for i, st in enumerate(self.stages):
                wb = st.inner_width
                if wb < 1:
                    raise ValueError(
                        f"stages[{i}]: inner width round({st.width} x "
                        f"{st.bottleneck_multiplier}) is 0"
                    )
                if wb % st.groups:
                    raise ValueError(
                        f"stages[{i}]: inner width {wb} is not divisible into "
                        f"{st.groups} groups of width {st.group_width}"
                    )
        if not family.se and self.se_ratio:
            raise ValueError(no_se_message(self.block))
        foreign = [name for name in FAMILY_FIELDS if name not in family.stage_fields]
        w_in = self.stem.width
        for i, st in enumerate(self.stages):
            expanded = max(w_in, st.width) * (st.expansion or 1)
            if "expansion" in family.stage_fields and expanded > MAX_WIDTH:
                raise ValueError(
                    f"stages[{i}].expansion: expanded width {max(w_in, st.width)} x "
                    f"{st.expansion} exceeds {MAX_WIDTH}"
                )
            w_in = st.width
            for name in foreign:
                if getattr(st, name) is not None:
                    raise ValueError(
                        f"stages[{i}].{name}: only the {FAMILY_FIELDS[name]} block has {name}, "
                        f"not {self.block}"
                    )
            _family_widths(family, i, st)
        return self

    # --- convenient views, named as in the papers -------------------------------------
    stage_depths = _per_stage("depth", "Blocks per stage.")
    stage_widths = _per_stage("width", "Output width of each stage.")
    group_widths = _per_stage("group_width", "Group width of each stage.")
    bottleneck_multipliers = _per_stage(
        "bottleneck_multiplier", "Bottleneck multiplier (inner width / width) of each stage."
    )

    @property
    def depth(self) -> int:
        """Total number of blocks."""
        return sum(self.stage_depths)

    @property
    def block_widths(self) -> list[int]:
        """Output width of every block, in order (what fit_regnet takes)."""
        return [s.width for s in self.stages for _ in range(s.depth)]

    # --- JSON -----------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Plain JSON-ready dict with the contract keys (family fields only where set)."""
        return self.model_dump(mode="json", exclude_none=True)

    def to_json(self, **kw) -> str:
        """JSON text of the spec."""
        return json.dumps(self.to_dict(), **kw)

    @classmethod
    def from_dict(cls, data: dict) -> NetSpec:
        """Validate a dict (e.g. parsed JSON) into a NetSpec; raises pydantic.ValidationError."""
        return cls.model_validate(data)

    @classmethod
    def from_json(cls, text: str) -> NetSpec:
        """Parse JSON text into a NetSpec."""
        return cls.model_validate_json(text)

    @classmethod
    def from_file(cls, path: str | Path) -> NetSpec:
        """Read a NetSpec from a JSON (or YAML) file."""
        p = Path(path)
        text = p.read_text()
        if p.suffix in (".yaml", ".yml"):
            import yaml

            return cls.model_validate(yaml.safe_load(text))
        return cls.model_validate_json(text)


def _family_widths(family: BlockTraits, i: int, st: StageSpec) -> None:
    """Refuse a stage whose dense bottleneck or inception branch widths vanish."""
    b = st.bottleneck_multiplier
    if family.whole_multiplier and (b != int(b) or st.inner_width < 1):
        # DenseNet's bottleneck is bn_size x growth rate, bn_size a whole number (4 in -BC)
        raise ValueError(
            f"stages[{i}].bottleneck_multiplier: {family.name} needs a whole number, got {b}"
        )
    if "branches" in family.stage_fields:
        weights = st.branches or (1, 1, 1, 1)
        c1, c3, c5, cp = split_width(st.width, weights)
        _, r3, r5, _ = split_width(st.inner_width, weights)
        if min(c1, c3, c5, cp, r3, r5) < 1:
            raise ValueError(
                f"stages[{i}]: {family.name} branch widths {[c1, c3, c5, cp]} (reductions "
                f"{[r3, r5]}) of width {st.width} x {b} must all be >= 1"
            )
