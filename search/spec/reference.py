"""Reference networks of a study: named classic networks, RegNets by parameters or NetSpecs.

A study spec may list `references` (docs/method.md §6, reference markers). Each is trained
with the study's recipe at every fidelity level, `reference_seeds` times, and drawn on every
EDF as a vertical line with its band and its percentile in each space. An item is one of:

- a name of anynet.reference (`"resnet20"`), or {"reference": name, "options": {...}};
- {"regnet": "D,W0,WA,WM,G"} (or five numbers), the `--regnet` parameters of the CLI;
- a NetSpec (as `dse model --json` prints one), or {"net": NetSpec, "name": label}.

Each gets a label (`name`, else the network's name, else `RegNet(d,w0,wa,wm,g)` or `net<i>`)
which names it in the results; labels are unique and differ from the spaces' names.
"""

from __future__ import annotations

from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from anynet.reference import REFERENCES, ReferenceSpec
from anynet.regnet import check_regnet_params, regnet_spec
from anynet.spec import NetSpec

MAX_REFERENCES = 20  # reference networks per study
MAX_REFERENCE_SEEDS = 20  # training repeats per reference and level
DEFAULT_REFERENCE_SEEDS = 3
_KINDS = ("reference", "regnet", "net")
# the `--regnet D,W0,WA,WM,G` string, in order
REGNET_ARGS = ("depth", "w0", "wa", "wm", "group_width")


def stem_for(resolution: int) -> str:
    """The stem for images of this side: no stride-2 stem on small images (NDS's CIFAR nets)."""
    return "cifar" if resolution <= 64 else "simple"


def one_line(e: ValueError) -> str:
    """A ValueError (a pydantic ValidationError too) as one line: its first error's message."""
    if isinstance(e, ValidationError) and e.errors():
        return e.errors()[0]["msg"].removeprefix("Value error, ")
    return " ".join(str(e).split())


class StudyReference(BaseModel):
    """One reference network of a study (exactly one of reference, regnet or net)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str | None = Field(None, min_length=1, max_length=200, description="its label")
    reference: str | None = Field(None, description="a name of `dse model --references`")
    options: dict[str, Any] = Field(default_factory=dict, description="the named network's")
    regnet: tuple[float, float, float, float, float] | None = Field(
        None, description="RegNet parameters D,W0,WA,WM,G (as --regnet takes them)"
    )
    net: dict[str, Any] | None = Field(None, description="a NetSpec")

    @model_validator(mode="before")
    @classmethod
    def _shorthands(cls, data: Any) -> Any:
        """A bare name is a named network; a mapping with none of the kinds is a NetSpec."""
        if isinstance(data, str):
            return {"reference": data}
        if isinstance(data, dict) and not set(data) & {*_KINDS, "name", "options"}:
            return {"net": data}
        return data

    @field_validator("regnet", mode="before")
    @classmethod
    def _regnet_text(cls, value: Any) -> Any:
        """'D,W0,WA,WM,G' or {depth, w0, wa, wm, group_width} → five numbers."""
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(",")]
            if len(parts) != 5:
                raise ValueError(f"expected D,W0,WA,WM,G (5 numbers), got {value!r}")
            try:
                return tuple(float(p) for p in parts)
            except ValueError:
                raise ValueError(f"D,W0,WA,WM,G must be numbers, got {value!r}") from None
        if isinstance(value, dict):
            missing = [k for k in REGNET_ARGS if k not in value]
            if missing or set(value) - set(REGNET_ARGS):
                raise ValueError(f"expected the keys {list(REGNET_ARGS)}, got {sorted(value)}")
            return tuple(value[k] for k in REGNET_ARGS)
        return value

    @model_validator(mode="after")
    def _one_network(self) -> StudyReference:
        given = [k for k in _KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of reference (a name), regnet (D,W0,WA,WM,G) or net "
                f"(a NetSpec), got {given or 'none'}"
            )
        if self.options and self.reference is None:
            raise ValueError("options: only a named reference network takes options")
        if self.name is not None and not self.name.isprintable():
            raise ValueError(f"name: must be printable characters, got {self.name[:40]!r}")
        if self.reference is not None:
            if self.reference not in REFERENCES:
                raise ValueError(
                    f"reference: unknown network {self.reference!r}; known: "
                    f"{', '.join(REFERENCES)} (dse model --references)"
                )
            ReferenceSpec.model_validate({"reference": self.reference, "options": self.options})
        elif self.regnet is not None:
            d, w0, wa, wm, g = self.regnet
            try:
                check_regnet_params(d, w0, wa, wm, g)
            except ValueError as e:
                raise ValueError(f"regnet.{e}") from None
        else:
            try:
                NetSpec.model_validate(self.net)
            except ValidationError as e:
                first = e.errors()[0]
                where = ".".join(str(x) for x in first["loc"])
                raise ValueError(f"net.{where}: {first['msg']}") from None
        return self

    def label(self, index: int) -> str:
        """Its name in the results: `name`, else the network's name or RegNet parameters."""
        if self.name:
            return self.name
        if self.reference is not None:
            return self.reference
        if self.regnet is not None:
            return "RegNet(" + ",".join(f"{v:g}" for v in self.regnet) + ")"
        return f"net{index}"

    def network(self, resolution: int, num_classes: int, in_channels: int = 3):
        """The network for this input: a ReferenceSpec or a NetSpec (anynet.network)."""
        inputs = {"resolution": resolution, "num_classes": num_classes, "in_channels": in_channels}
        if self.reference is not None:
            data = {"reference": self.reference, "options": self.options, **inputs}
            return ReferenceSpec.model_validate(data)
        if self.regnet is not None:
            d, w0, wa, wm, g = self.regnet
            return regnet_spec(int(d), w0, wa, wm, int(g), stem_type=stem_for(resolution),
                               **inputs)  # fmt: skip
        return NetSpec.model_validate({**self.net, **inputs})
