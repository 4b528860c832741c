"""SpaceSpec: one design space of a study spec, as a preset plus overrides or a full space.

The study format's override parser (docs/method.md §4): `[lo, hi]` keeps the preset's
distribution kind (and its step or quantum) over the new range, a number fixes a value,
`{"choice": [...]}` lists values, a distribution object is taken as it is, and a list of
those (bare numbers aside) gives one per stage. `stages` changes the stage count (per-stage lists are cut or
padded with their last entry, new stages stride 2). Every error names its field. The JSON
schema (/openapi.json) types exactly these forms (`PerStageOverride`; w0, wa and wm, one
distribution per network, take `OneOverride`: no per-stage list).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    PlainValidator,
    field_validator,
    model_validator,
)

from anynet.rounding import Rounding
from anynet.spaces import (
    FAMILY_PER_STAGE,
    PER_STAGE,
    Choice,
    Constraint,
    DesignSpace,
    Distribution,
    SpaceData,
    get_space,
)
from anynet.spec import (
    MAX_CLASSES,
    MAX_IN_CHANNELS,
    MAX_RESOLUTION,
    MAX_STAGES,
    MAX_WIDTH,
    BlockType,
    StemSpec,
)

DIST_FIELDS = ("depth", "width", "bottleneck_multiplier", "group_width", "groups", "w0", "wa", "wm",
               *FAMILY_PER_STAGE)  # fmt: skip


def _distribution(field: str, value: Any, base) -> Any:
    """Override shorthand → distribution: [lo, hi] keeps the preset's kind; dict; scalar."""
    if isinstance(value, dict):
        if set(value) == {"choice"}:
            return Choice(values=tuple(value["choice"]))
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Choice(values=(value,))
    if isinstance(value, (list, tuple)):
        if len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
            lo, hi = value
            if lo > hi:
                raise ValueError(f"{field}: range [{lo}, {hi}] has lo > hi")
            if base is None:
                raise ValueError(f"{field}: the preset has no {field} whose kind [lo, hi] keeps")
            if isinstance(base, tuple):
                return tuple(b.with_range(lo, hi) for b in base)
            return base.with_range(lo, hi)
        if value and all(isinstance(v, (list, tuple, dict)) for v in value):
            return tuple(_distribution(field, v, _first(base)) for v in value)
    raise ValueError(
        f"{field}: expected [lo, hi], a number, {{'choice': [...]}}, a distribution "
        f"object or a list of those per stage; got {value!r}"
    )


def _first(base):
    return base[0] if isinstance(base, tuple) else base


# --- the override forms as the JSON schema shows them ------------------------------------
# Schema only: a field keeps the value as it was sent and `resolve` reads it with
# `_distribution` above, so these types document exactly the forms it takes and change no
# validation. Not expressible here (the parser still says): lo <= hi, a [lo, hi] needs the
# preset to have the field, one per-stage entry per stage.
class ChoiceShorthand(SpaceData):
    """`{"choice": [...]}`: one of these values, each equally likely."""

    choice: tuple[float, ...] = Field(min_length=1)


class _DistributionObject:
    """A distribution object (anynet.spaces.Distribution): its `kind` is required."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler):
        return handler(Distribution)

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema, handler: GetJsonSchemaHandler):
        schema = handler(core_schema)
        for ref in schema["oneOf"]:  # the discriminator: without `kind` no kind is chosen
            target = handler.resolve_ref_schema(ref)
            target["required"] = ["kind", *(r for r in target.get("required", ()) if r != "kind")]
        return {"title": "Distribution", "description": "a distribution object", **schema}


_VALUE = Annotated[float, Field(title="Value", description="a fixed value")]
_RANGE = Annotated[
    tuple[float, float],
    Field(title="Range", description="[lo, hi]: the preset's distribution kind over this range"),
]
_ONE = _VALUE | _RANGE | ChoiceShorthand | _DistributionObject
_PER_STAGE = Annotated[
    list[_RANGE | ChoiceShorthand | _DistributionObject],
    Field(
        min_length=1, title="PerStage", description="one [lo, hi], choice or distribution per stage"
    ),
]


def _as_sent(value: Any) -> Any:
    return value


# an override of a per-stage field (one form for all stages, or a list, one per stage) and of
# a RegNet parameter (one form)
PerStageOverride = Annotated[
    Any, PlainValidator(_as_sent, json_schema_input_type=_ONE | _PER_STAGE | None)
]
OneOverride = Annotated[Any, PlainValidator(_as_sent, json_schema_input_type=_ONE | None)]


class SpaceSpec(SpaceData):
    """One space of a study: a preset plus overrides, or a full definition (`space`)."""

    preset: str | None = Field(None, max_length=200)
    space: dict | None = None
    name: str | None = Field(None, min_length=1, max_length=200)
    stem: StemSpec | None = None
    block: BlockType | None = None
    se_ratio: float | None = Field(None, ge=0.0, lt=1.0)
    head_width: int | None = Field(None, ge=0, le=MAX_WIDTH)
    stages: int | None = Field(None, ge=1, le=MAX_STAGES)
    strides: tuple[Literal[1, 2], ...] | None = Field(None, max_length=MAX_STAGES)
    depth: PerStageOverride = None
    width: PerStageOverride = None
    bottleneck_multiplier: PerStageOverride = None
    group_width: PerStageOverride = None
    groups: PerStageOverride = None
    w0: OneOverride = None
    wa: OneOverride = None
    wm: OneOverride = None
    kernel: PerStageOverride = None
    expansion: PerStageOverride = None
    branches: PerStageOverride = None
    constraints: tuple[Constraint, ...] | None = None
    rounding: Rounding | None = None
    resolution: int | None = Field(None, ge=1, le=MAX_RESOLUTION)
    num_classes: int | None = Field(None, ge=1, le=MAX_CLASSES)
    in_channels: int | None = Field(None, ge=1, le=MAX_IN_CHANNELS)

    @field_validator("space", mode="before")
    @classmethod
    def _space_as_data(cls, v):
        return v.model_dump(exclude_none=True) if isinstance(v, DesignSpace) else v

    @model_validator(mode="after")
    def _valid(self) -> SpaceSpec:
        if (self.preset is None) == (self.space is None):
            raise ValueError("preset/space: give exactly one of a preset name or a full space")
        if self.preset is not None:
            get_space(self.preset)
        self.resolve()  # every error surfaces at validation, naming its field
        return self

    def resolve(self) -> DesignSpace:
        """The DesignSpace this entry describes."""
        if self.space is not None:
            base = DesignSpace.model_validate({"name": "custom", **self.space})
        else:
            base = get_space(self.preset)
        data = base.model_dump(exclude_none=False)
        data["name"] = self.name or base.name
        for field in ("stem", "block", "se_ratio", "head_width", "rounding"):
            if getattr(self, field) is not None:
                data[field] = getattr(self, field)
        for field in ("resolution", "num_classes", "in_channels", "constraints"):
            if getattr(self, field) is not None:
                data[field] = getattr(self, field)
        if self.stages is not None:
            _restage(base, data, self.stages)
        if self.strides is not None:
            data["strides"] = self.strides
        for field in DIST_FIELDS:
            value = getattr(self, field)
            if value is not None:
                try:
                    data[field] = _distribution(field, value, getattr(base, field))
                except ValueError as e:
                    msg = str(e)
                    raise ValueError(msg if msg.startswith(field) else f"{field}: {msg}") from None
        if base.kind == "anynet":  # giving one of group_width / groups replaces the other
            if self.groups is not None and self.group_width is None:
                data["group_width"] = None
            if self.group_width is not None and self.groups is None:
                data["groups"] = None
        return DesignSpace.model_validate(data)


def _restage(base: DesignSpace, data: dict, k: int) -> None:
    """Change the stage count: strides keep their first entries, new stages stride 2."""
    if base.kind == "regnet":
        kept = [c for c in data["constraints"] if not isinstance(c, dict)]
        data["constraints"] = [*kept, {"num_stages": k}]
    else:
        data["stages"] = k
        for field in (*PER_STAGE, *FAMILY_PER_STAGE):
            v = getattr(base, field)
            if isinstance(v, tuple):  # per-stage lists are cut or padded with their last
                data[field] = tuple((list(v) + [v[-1]] * k)[:k])
    if base.strides is not None:
        data["strides"] = tuple((list(base.strides) + [2] * k)[:k])
