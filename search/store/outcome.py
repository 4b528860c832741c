"""TrialOutcome: what a worker hands back to the store when a trial ends.

The store depends on this type only; a worker adapts its own training result to it
(worker.loop). Every field other than `status` and `val_error` is stored in the
`dse_trials` column of the same name (val_error becomes `error` of a done trial), so
adding a recorded field is: a field here with a default, a column of that name (a
migration in search/store/migrations/versions), nothing in the store.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from search.spec.learning import learned
from search.spec.status import TrialStatus


def finite(x: Any) -> float | None:
    """x as a float, or None when it is missing, not a number, NaN or infinite."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


@dataclass(frozen=True)
class TrialOutcome:
    """How a trial ended: its status, its errors, its speed and, unless done, why."""

    status: TrialStatus
    val_error: float | None = None
    test_error: float | None = None
    seconds: float | None = None
    images_per_s: float | None = None
    reason: str | None = None
    chance_error: float | None = None  # of the validation split
    val_size: int | None = None  # validation images the error was measured on
    recipe: dict | None = None  # the recipe as it ran, every default resolved
    threads: int | None = None  # torch intra-op threads it trained with
    device: str | None = None  # where it trained: "cpu", "cuda:0"

    def __post_init__(self) -> None:
        status = TrialStatus(self.status)
        if not status.finished:
            raise ValueError(f"status: an outcome ends a trial, got {status.value!r}")
        for f in fields(self):
            if f.type == "float | None":  # NaN or inf would poison EDFs and JSON bodies
                object.__setattr__(self, f.name, finite(getattr(self, f.name)))
        if status == TrialStatus.DONE and self.val_error is None:
            # a training that "finished" without a finite validation error diverged
            status = TrialStatus.DIVERGED
            object.__setattr__(self, "reason", self.reason or "training diverged")
        object.__setattr__(self, "status", status)

    def columns(self) -> dict[str, Any]:
        """The dse_trials columns this outcome sets (status, error and every other field)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        val_error = values.pop("val_error")
        values["error"] = val_error if self.status == TrialStatus.DONE else None
        values["status"] = self.status.value
        values["val_size"] = self.val_size or None
        # a done trial not clearly below chance is marked, never dropped
        verdict = (
            learned(self.val_error, self.chance_error, self.val_size)
            if values["error"] is not None
            else None
        )
        values["not_learned"] = None if verdict is None else not verdict
        return values
