"""The study spec: one pydantic model used by the API, the CLI, the store and the workers.

Recipe and DatasetSpec live here because they are part of the study a worker is handed;
worker.train and worker.data take them as they are.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from anynet.spaces import SpaceSpec, complexity_preset


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Recipe(_Strict):
    """How one network is trained at one fidelity (DDS §5 defaults scaled to short runs)."""

    lr: float = Field(0.1, gt=0, description="peak learning rate (after warm-up)")
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = False
    weight_decay: float = Field(5e-4, ge=0)
    batch_size: int = Field(128, ge=1, le=65536)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    warmup_epochs: float = Field(0.0, ge=0, description="linear warm-up, then half-period cosine")
    crop_padding: int | None = Field(
        None, ge=0, description="random-crop padding in pixels; None = resolution // 8"
    )
    flip: bool = Field(True, description="random horizontal flip")
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    channels_last: bool | None = Field(None, description="None = where the device gains from it")
    eval_batch_size: int = Field(512, ge=1)


class DatasetSpec(_Strict):
    """Which data a study trains on, at which resolution and split sizes."""

    name: str = Field(
        "digits",
        description="digits, synthetic, cifar10, cifar100, mnist, "
        "fashion-mnist, svhn or imagefolder",
    )
    root: str | None = Field(
        None, description="local directory of the files (torchvision datasets, imagefolder)"
    )
    resolution: int | None = Field(None, ge=4, le=1024, description="None = native")
    num_classes: int | None = Field(None, ge=2, description="synthetic only")
    train_size: int | None = Field(None, ge=1)
    val_size: int | None = Field(None, ge=1)
    test_size: int | None = Field(None, ge=0)
    difficulty: float = Field(0.5, ge=0, le=1, description="synthetic only")
    download: bool = Field(False, description="allow torchvision to download into root")
    seed: int = Field(0, description="seed of the fixed train/val/test split")


# --- the study ---------------------------------------------------------------------------

ComplexityKey = Literal["flops", "params", "acts"]


class Limits(_Strict):
    """How crashed workers are detected and how often a lost trial is retried."""

    max_attempts: int = Field(3, ge=1, le=100, description="attempts per trial before failing it")
    heartbeat_seconds: int = Field(10, ge=1, le=3600, description="a running trial's heartbeat")
    grace_seconds: int = Field(
        60, ge=1, le=86400, description="no heartbeat for this long → the worker is lost"
    )

    @model_validator(mode="after")
    def _grace_covers_heartbeats(self) -> Limits:
        if self.grace_seconds <= self.heartbeat_seconds:
            raise ValueError(
                f"limits.grace_seconds ({self.grace_seconds}) must exceed "
                f"limits.heartbeat_seconds ({self.heartbeat_seconds})"
            )
        return self


class StudySpec(_Strict):
    """A study: design spaces compared on one dataset under one recipe and fidelity plan."""

    name: str = Field(min_length=1, max_length=200)
    dataset: DatasetSpec = DatasetSpec()
    spaces: list[SpaceSpec] = Field(min_length=1, description="design spaces to compare")
    samples: int = Field(ge=1, le=100_000, description="networks sampled per space")
    complexity: dict[ComplexityKey, tuple[float, float]] = Field(
        default_factory=dict,
        description="bounds [lo, hi] on flops, params or acts, or a preset name: "
        "'nds_r56' (NDS §4: at most ResNet-56's 0.856 M params and 0.129 GF)",
    )
    fidelities: list[int] = Field(
        default_factory=lambda: [1], min_length=1, description="epochs per level"
    )
    promote: float = Field(1 / 3, gt=0, le=1, description="fraction promoted to the next level")
    recipe: Recipe = Recipe()
    seed: int = 0
    limits: Limits = Limits()

    @field_validator("complexity", mode="before")
    @classmethod
    def _named_bounds(cls, value):
        return complexity_preset(value) if isinstance(value, str) else value

    @field_validator("complexity")
    @classmethod
    def _ordered_bounds(cls, value: dict[str, tuple[float, float]]) -> dict:
        for key, (lo, hi) in value.items():
            if not 0 <= lo <= hi:
                raise ValueError(f"complexity.{key}: need 0 <= lo <= hi, got [{lo}, {hi}]")
        return value

    @field_validator("fidelities")
    @classmethod
    def _increasing(cls, value: list[int]) -> list[int]:
        if any(e < 1 for e in value):
            raise ValueError(f"fidelities: epochs must be >= 1, got {value}")
        if any(b <= a for a, b in zip(value, value[1:], strict=False)):
            raise ValueError(f"fidelities: epochs must be strictly increasing, got {value}")
        return value

    @model_validator(mode="after")
    def _unique_space_names(self) -> StudySpec:
        names = self.space_names()
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(
                f"spaces: names must be unique, {dupes} repeated (set 'name' on each space)"
            )
        return self

    def space_names(self) -> list[str]:
        """The label of every space, in spec order (`name`, else the preset's name)."""
        return [space_label(s, i) for i, s in enumerate(self.spaces)]

    def bounds(self) -> dict[str, tuple[float, float]] | None:
        """Complexity bounds as the sampler takes them (None = unbounded)."""
        return {k: (float(lo), float(hi)) for k, (lo, hi) in self.complexity.items()} or None

    @classmethod
    def from_text(cls, text: str, fmt: Literal["json", "yaml", "auto"] = "auto") -> StudySpec:
        """Parse a spec from JSON or YAML text (YAML is a superset; auto tries JSON first)."""
        if fmt in ("json", "auto"):
            try:
                return cls.model_validate(json.loads(text))
            except json.JSONDecodeError:
                if fmt == "json":
                    raise ValueError("spec: not valid JSON") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ValueError(f"spec: not valid YAML or JSON ({' '.join(str(e).split())})") from e
        if not isinstance(data, dict):
            raise ValueError("spec: must be a mapping with name, spaces, samples, ...")
        return cls.model_validate(data)

    @classmethod
    def from_file(cls, path: str | Path) -> StudySpec:
        """Read a spec from a .json, .yaml or .yml file."""
        path = Path(path)
        fmt = "yaml" if path.suffix.lower() in (".yaml", ".yml") else "auto"
        return cls.from_text(path.read_text(), fmt)


def space_label(space: SpaceSpec, index: int = 0) -> str:
    """A space's name in results: its `name`, else its preset's, else `space<index>`."""
    full = getattr(space, "space", None) or {}
    return (
        getattr(space, "name", None)
        or getattr(space, "preset", None)
        or full.get("name")
        or f"space{index}"
    )
