"""The study spec: one pydantic model used by the API, the CLI, the store and the workers.

Recipe and DatasetSpec live here because they are part of the study a worker is handed;
worker.train and worker.data take them as they are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from anynet.spaces import complexity_preset
from anynet.spec import MAX_CLASSES, MAX_RESOLUTION
from search.spec import recipe as defaults
from search.spec.datasets import (
    DATASET_NAMES,
    DATASETS,
    FILE_DATASETS,
    GENERATED_DATASETS,
    listed,
)
from search.spec.reference import (
    DEFAULT_REFERENCE_SEEDS,
    MAX_REFERENCE_SEEDS,
    MAX_REFERENCES,
    StudyReference,
    one_line,
)
from search.spec.space import SpaceSpec
from search.spec.text import load_text

# Hard bounds of a study (a server sets tighter limits of its own, the operator's settings):
# seeds fit every RNG that takes them (numpy, torch, Python) with room for seed + sample.
MAX_SEED = 2**31 - 1
MAX_EPOCHS = 10_000
MAX_IMAGES = 10_000_000  # per split; ImageNet-1k has 1.28 M training images
MAX_BATCH = 65536
# Recipe numbers past which no network trains (a reason each in Recipe's validators).
MAX_LR = 10.0
MAX_WEIGHT_DECAY = 0.1
MAX_SPACES = 100
MAX_FIDELITIES = 20
# keys the results use next to the space names (the pooled RegNet fit, the pooled rank
# correlation): a space may not take them
RESERVED_SPACE_NAMES = ("overall", "all")
# the datasets of search.spec.datasets (a JSON-schema enum of the same names, in its order)
DatasetName = Literal[DATASET_NAMES]  # type: ignore[valid-type]


class _Strict(BaseModel):
    # finite floats only: JSON has no Infinity/NaN, so a spec must round-trip without them
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Recipe(_Strict):
    """How one network is trained at one fidelity; unset fields get their dataset's defaults."""

    # None = the default for the dataset, resolved in one place: search.spec.recipe

    lr: float | None = Field(
        None, gt=0, description=f"peak learning rate (after warm-up); default {defaults.LR_RULE}"
    )
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = False
    weight_decay: float = Field(5e-4, ge=0)
    batch_size: int | None = Field(
        None, ge=1, le=MAX_BATCH, description=f"default: {defaults.BATCH_RULE}"
    )
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    warmup_epochs: float | None = Field(
        None,
        ge=0,
        le=MAX_EPOCHS,
        description=f"linear warm-up, then half-period cosine; default {defaults.WARMUP_RULE}",
    )
    crop_padding: int | None = Field(
        None,
        ge=0,
        le=MAX_RESOLUTION,
        description=f"random-crop padding in pixels; default {defaults.CROP_RULE}",
    )
    flip: bool | None = Field(
        None, description=f"random horizontal flip; default {defaults.FLIP_RULE}"
    )
    precision: Literal["auto", "bf16", "fp16", "fp32"] = Field(
        "auto", description="auto = bf16 where the device gains from it (CUDA, native-bf16 CPUs)"
    )
    channels_last: bool | None = Field(None, description="None = where the device gains from it")
    eval_batch_size: int = Field(512, ge=1, le=MAX_BATCH)

    @field_validator("lr")
    @classmethod
    def _lr_that_can_train(cls, value: float | None) -> float | None:
        if value is not None and value > MAX_LR:
            raise ValueError(
                f"at most {MAX_LR:g}, got {value:g}: SGD diverges far below it (Goyal et al. "
                f"train batches of 8192 at 3.2; the default is {defaults.LR_RULE})"
            )
        return value

    @field_validator("weight_decay")
    @classmethod
    def _decay_that_leaves_weights(cls, value: float) -> float:
        if value > MAX_WEIGHT_DECAY:
            raise ValueError(
                f"at most {MAX_WEIGHT_DECAY:g}, got {value:g}: each step shrinks the weights by "
                "lr x weight_decay, past this to nothing (the default is 5e-4)"
            )
        return value


class DatasetSpec(_Strict):
    """Which data a study trains on, at which resolution and split sizes."""

    name: DatasetName = Field("digits", description=listed(DATASET_NAMES))
    root: str | None = Field(
        None,
        min_length=1,
        max_length=4096,
        description="local directory of the files (torchvision datasets, imagefolder)",
    )
    resolution: int | None = Field(None, ge=4, le=MAX_RESOLUTION, description="None = native")
    num_classes: int | None = Field(None, ge=2, le=MAX_CLASSES, description="synthetic only")
    train_size: int | None = Field(None, ge=1, le=MAX_IMAGES)
    val_size: int | None = Field(None, ge=1, le=MAX_IMAGES)
    test_size: int | None = Field(None, ge=0, le=MAX_IMAGES)
    difficulty: float = Field(0.5, ge=0, le=1, description="synthetic only")
    download: bool = Field(False, description="allow torchvision to download into root")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="seed of the fixed train/val/test split")

    @model_validator(mode="after")
    def _classes_of_synthetic_only(self) -> DatasetSpec:
        # the other datasets have their own classes (worker.data refuses it at load time)
        if self.num_classes is not None and not DATASETS[self.name].generated:
            raise ValueError(
                f"num_classes: only the {listed(GENERATED_DATASETS)} dataset takes it, "
                f"not {self.name!r}"
            )
        return self


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
    spaces: list[SpaceSpec] = Field(
        min_length=1, max_length=MAX_SPACES, description="design spaces to compare"
    )
    samples: int = Field(ge=1, le=100_000, description="networks sampled per space")
    complexity: dict[ComplexityKey, tuple[float, float]] = Field(
        default_factory=dict,
        description="bounds [lo, hi] on flops, params or acts, or a preset name: "
        "'nds_r56' (NDS §4: at most ResNet-56's 0.856 M params and 0.129 GF)",
    )
    fidelities: list[Annotated[int, Field(ge=1, le=MAX_EPOCHS)]] = Field(
        default_factory=lambda: [1],
        min_length=1,
        max_length=MAX_FIDELITIES,
        description="epochs per level",
    )
    promote: float = Field(1 / 3, gt=0, le=1, description="fraction promoted to the next level")
    recipe: Recipe = Recipe()
    seed: int = Field(0, ge=0, le=MAX_SEED)
    limits: Limits = Limits()
    references: list[StudyReference] = Field(
        default_factory=list,
        max_length=MAX_REFERENCES,
        description="reference networks drawn on every EDF: names of `dse model --references`, "
        "{'regnet': 'D,W0,WA,WM,G'} or NetSpecs (search/spec/reference.py)",
    )
    reference_seeds: int = Field(
        DEFAULT_REFERENCE_SEEDS,
        ge=1,
        le=MAX_REFERENCE_SEEDS,
        validation_alias=AliasChoices("reference_seeds", "seeds"),
        description="training repeats of each reference network at each level",
    )

    @field_validator("name")
    @classmethod
    def _printable_name(cls, value: str) -> str:
        if not printable(value):
            raise ValueError(f"must be printable characters, got {value[:40]!r}")
        return value

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
        if any(b <= a for a, b in zip(value, value[1:], strict=False)):
            raise ValueError(f"fidelities: epochs must be strictly increasing, got {value}")
        return value

    @model_validator(mode="after")
    def _usable_space_names(self) -> StudySpec:
        names = self.space_names()
        for i, name in enumerate(names):
            if name in RESERVED_SPACE_NAMES:
                raise ValueError(
                    f"spaces.{i}.name: {name!r} is reserved (the results use it for all spaces "
                    "pooled); choose another name"
                )
            if not printable(name):
                raise ValueError(
                    f"spaces.{i}.name: must be 1 to 200 printable characters, got {name[:40]!r}"
                )
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(
                f"spaces: names must be unique, {dupes} repeated (set 'name' on each space)"
            )
        labels = self.reference_labels()
        for i, label in enumerate(labels):
            if label in names or label in RESERVED_SPACE_NAMES:
                raise ValueError(
                    f"references.{i}: the label {label!r} is taken by a space or reserved; "
                    "set 'name' on the reference"
                )
            if labels.index(label) != i:
                raise ValueError(
                    f"references.{i}: {label!r} is listed twice; give each a distinct 'name'"
                )
        side = self.dataset.resolution
        for i, ref in enumerate(self.references if side else ()):  # e.g. too small for its strides
            try:
                ref.network(side, self.dataset.num_classes or 10)
            except ValueError as e:
                raise ValueError(
                    f"references.{i} ({labels[i]}) at {side} px: {one_line(e)}"
                ) from None
        return self

    def reference_labels(self) -> list[str]:
        """The label of every reference network, in spec order."""
        return [r.label(i) for i, r in enumerate(self.references)]

    def space_names(self) -> list[str]:
        """The label of every space, in spec order (`name`, else the preset's name)."""
        return [space_label(s, i) for i, s in enumerate(self.spaces)]

    def bounds(self) -> dict[str, tuple[float, float]] | None:
        """Complexity bounds as the sampler takes them (None = unbounded)."""
        return {k: (float(lo), float(hi)) for k, (lo, hi) in self.complexity.items()} or None

    @classmethod
    def from_text(cls, text: str, fmt: Literal["json", "yaml", "auto"] = "auto") -> StudySpec:
        """Parse a spec from JSON or YAML text (YAML is a superset; auto tries JSON first)."""
        data = load_text(text, fmt, "spec")
        if not isinstance(data, dict):
            raise ValueError("spec: must be a mapping with name, spaces, samples, ...")
        return cls.model_validate(data)

    @classmethod
    def from_file(cls, path: str | Path) -> StudySpec:
        """Read a spec from a .json, .yaml or .yml file."""
        path = Path(path)
        fmt = "yaml" if path.suffix.lower() in (".yaml", ".yml") else "auto"
        return cls.from_text(path.read_text(), fmt)


# Unicode's bidirectional controls (LRM, RLM, ALM, the embeddings and overrides U+202A–E,
# the isolates U+2066–9): a name holding one reads differently from what it is (U+202E
# turns "exe.txt" around), in a table, a CSV cell or a legend.
BIDI_CONTROLS = frozenset(
    "\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


def printable(name: str, most: int = 200) -> bool:
    """Whether a name is 1..most characters with no control character (C0, DEL, C1, bidi)."""
    # names are table keys, CSV cells and legend labels; PostgreSQL text cannot hold NUL
    return 0 < len(name) <= most and not any(
        ord(c) < 32 or 127 <= ord(c) < 160 or c in BIDI_CONTROLS for c in name
    )


def check_dataset_root(spec: StudySpec) -> None:
    """ValueError naming dataset.root when the study's dataset is read from files and the
    spec says not where (else every trial would fail in the workers)."""
    d = spec.dataset
    if d.name in FILE_DATASETS and d.root is None:
        how = (
            " (with download: true, the folder to download into)"
            if DATASETS[d.name].download
            else ""
        )
        raise ValueError(
            f"dataset.root: {d.name} is read from files; give root, the folder that holds them{how}"
        )


def space_label(space: SpaceSpec, index: int = 0) -> str:
    """A space's name in results: its `name`, else its preset's, else `space<index>`."""
    full = getattr(space, "space", None) or {}
    return (
        getattr(space, "name", None)
        or getattr(space, "preset", None)
        or full.get("name")
        or f"space{index}"
    )
