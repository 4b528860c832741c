"""The status vocabulary of trials and studies: one StrEnum each, used by every layer.

Members compare equal to their plain strings ("done" == TrialStatus.DONE), so database
columns, JSON bodies and pandas frames hold the plain words. Trial members are listed in
the order progress tables show them.
"""

from __future__ import annotations

from enum import StrEnum


class TrialStatus(StrEnum):
    """Where one trial (one network, one fidelity level, one attempt) stands."""

    WAITING = "waiting"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    DIVERGED = "diverged"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        """True once nothing will change it: done, failed, diverged or cancelled."""
        return self not in (TrialStatus.WAITING, TrialStatus.RUNNING)

    @classmethod
    def unfinished(cls) -> tuple[TrialStatus, ...]:
        """Waiting and running: what keeps a level (and a study) open."""
        return tuple(s for s in cls if not s.finished)

    @classmethod
    def ended(cls) -> tuple[TrialStatus, ...]:
        """Done, failed, diverged and cancelled: the statuses a worker's outcome may have."""
        return tuple(s for s in cls if s.finished)


class StudyStatus(StrEnum):
    """Where a study stands: being created, running, or finished one way or another."""

    CREATING = "creating"  # sampling and storing its trials (docs/design.md: creation)
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"  # its creation failed or was interrupted; `reason` says why

    @property
    def finished(self) -> bool:
        """True for done, cancelled and failed."""
        return self in (StudyStatus.DONE, StudyStatus.CANCELLED, StudyStatus.FAILED)
