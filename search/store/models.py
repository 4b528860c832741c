"""Our tables, next to Optuna's in the same database: study specs and a queryable trial index.

Optuna's RDB storage is the trial engine (docs/design.md): it owns each trial's state machine
(WAITING → RUNNING → COMPLETE/FAIL), values, intermediate values, heartbeats and attributes.
It keeps attributes as JSON text in `trial_user_attributes.value_json`, which SQL cannot
filter, group or aggregate portably. Progress per space and level, paged trial lists and the
trial frame of a 10 000-trial study must be single GROUP BY / LIMIT queries, so the columns
those reads need (space, sample, level, status, error, complexity, worker, attempts, timings)
are mirrored in `dse_trials`, keyed by Optuna's trial id. Optuna stays the arbiter of state
transitions; `dse_trials` is written right after each transition it won.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from search.spec.status import StudyStatus, TrialStatus
from search.spec.study import DatasetSpec, Limits, Recipe, StudySpec


def utcnow() -> datetime:
    """Now, timezone-aware UTC, with microseconds (versions compare these)."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of the dse tables (alembic's target metadata)."""


class StudyRow(Base):
    """One study: its spec as given (validated JSON) and its life-cycle status."""

    __tablename__ = "dse_studies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    optuna_name: Mapped[str] = mapped_column(String(255), unique=True)
    optuna_study_id: Mapped[int | None] = mapped_column(Integer)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    # per space: draws and acceptance rate of the rejection sampler (docs/design.md: recorded)
    sampling: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default=StudyStatus.CREATING, index=True)
    # why a study failed (its creation failed or was interrupted); None otherwise
    reason: Mapped[str | None] = mapped_column(Text)
    # while creating: how far sampling and storing got (CreationProgress as JSON)
    creation: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # lineage (the refine loop, search.refine): the study this one refines, and the
    # suggestion it tries ({id, text, space, refined}); None for a study made from a spec
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("dse_studies.id", ondelete="SET NULL"), index=True
    )
    suggestion: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class TrialRow(Base):
    """The queryable index of one Optuna trial: one network at one fidelity level, one attempt.

    A retry after a lost worker is a new Optuna trial (a new row, attempt + 1); the lost one
    keeps status failed with `retried_as` set and is left out of progress and results.
    The unique key makes promotion and retries idempotent under concurrent workers.
    """

    __tablename__ = "dse_trials"
    __table_args__ = (
        UniqueConstraint("study_id", "space", "sample", "level", "attempt", name="uq_dse_trial"),
        Index("ix_dse_trials_queue", "status", "study_id", "trial_id"),
        Index("ix_dse_trials_study_space_level", "study_id", "space", "level"),
    )

    trial_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    study_id: Mapped[int] = mapped_column(ForeignKey("dse_studies.id", ondelete="CASCADE"))
    space: Mapped[str] = mapped_column(String(200))
    sample: Mapped[int] = mapped_column(Integer)
    level: Mapped[int] = mapped_column(Integer)
    epochs: Mapped[int] = mapped_column(Integer)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16), default=TrialStatus.WAITING)
    error: Mapped[float | None] = mapped_column(Float)
    test_error: Mapped[float | None] = mapped_column(Float)
    last_val_error: Mapped[float | None] = mapped_column(Float)
    epochs_done: Mapped[int] = mapped_column(Integer, default=0)
    flops: Mapped[int] = mapped_column(BigInteger)
    params: Mapped[int] = mapped_column(BigInteger)
    acts: Mapped[int] = mapped_column(BigInteger)
    depth: Mapped[int] = mapped_column(Integer)
    net: Mapped[dict[str, Any]] = mapped_column(JSON)
    sampled: Mapped[dict[str, Any]] = mapped_column(JSON)
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    worker: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text)
    retried_as: Mapped[int | None] = mapped_column(Integer)
    images_per_s: Mapped[float | None] = mapped_column(Float)
    seconds: Mapped[float | None] = mapped_column(Float)
    # did it learn? (search.spec.learning): the validation split's chance error and size, and
    # whether a done trial's error is not clearly below chance; the recipe as it ran
    chance_error: Mapped[float | None] = mapped_column(Float)
    val_size: Mapped[int | None] = mapped_column(Integer)
    not_learned: Mapped[bool | None] = mapped_column(Boolean)
    recipe: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # what it trained on: torch's intra-op threads and the device ("cpu", "cuda:0"); with the
    # seed and the recipe's precision they fix its result (docs/method.md §5)
    threads: Mapped[int | None] = mapped_column(Integer)
    device: Mapped[str | None] = mapped_column(String(64))
    # the label of the study's reference network this trial trains (search.spec.reference);
    # None for a space's sample. Reference trials never enter a space's statistics.
    reference: Mapped[str | None] = mapped_column(String(200))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


def new_trial_values(
    study_id, space, sample, level, epochs, attempt, net, complexity, reference=None, depth=None
) -> dict:
    """Column values of a new waiting trial row (callers add trial_id and sampled)."""
    stages = net.get("stages", [])
    return {
        "study_id": study_id,
        "space": space,
        "sample": sample,
        "level": level,
        "epochs": epochs,
        "attempt": attempt,
        "status": TrialStatus.WAITING.value,
        "epochs_done": 0,
        "flops": int(complexity["flops"]),
        "params": int(complexity["params"]),
        "acts": int(complexity["acts"]),
        "depth": sum(int(s["depth"]) for s in stages) if depth is None else int(depth),
        "net": net,
        "history": [],
        "reference": reference,
        "updated_at": utcnow(),
    }


# --- what the store hands out ----------------------------------------------------


class CreationProgress(BaseModel):
    """How far a study's creation got: spaces sampled, trials stored."""

    # stored as JSON in dse_studies.creation; the API serves it as it is, every field present
    # (the schema's required list is the one the API has always published)
    model_config = ConfigDict(
        frozen=True,
        json_schema_extra={"required": ["spaces", "sampled", "total", "stored", "budget_seconds"]},
    )

    spaces: int = Field(description="spaces to sample")
    sampled: int = Field(0, description="spaces sampled so far")
    total: int | None = Field(None, description="trials to store (known once all are sampled)")
    stored: int = Field(0, description="trials stored so far")
    budget_seconds: float | None = Field(None, description="the creation's time budget")
    sampling_seconds: float | None = Field(None, description="how long sampling took")
    storing_seconds: float | None = Field(None, description="how long storing took")

    def to_json(self) -> dict[str, Any]:
        """As stored in dse_studies.creation."""
        return self.model_dump()

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> CreationProgress | None:
        """From dse_studies.creation (None stays None; unknown keys are ignored)."""
        return cls.model_validate(data) if data else None


@dataclass(frozen=True)
class StudyRecord:
    """A study as the API and CLI see it."""

    id: int
    name: str
    status: StudyStatus
    spec: StudySpec
    created: datetime
    updated: datetime
    optuna_name: str
    sampling: dict
    reason: str | None = None  # why it failed, when it did
    creation: CreationProgress | None = None  # how far its creation got
    parent_id: int | None = None  # the study it refines (search.refine)
    suggestion: dict | None = None  # the suggestion it tries: {id, text, space, refined}


@dataclass
class Claim:
    """A trial a worker owns: what to train, for how long, and under which limits."""

    trial_id: int
    study_id: int
    worker: str
    space: str
    sample: int
    level: int
    epochs: int
    attempt: int
    net: dict
    dataset: DatasetSpec
    recipe: Recipe
    seed: int
    limits: Limits
    history: list[dict] = field(default_factory=list)
