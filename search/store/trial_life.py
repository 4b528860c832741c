"""The trial life cycle as workers drive it: claim, heartbeat, report each epoch, finish, release.

Every change of a trial's state is an Optuna state transition first
(`set_trial_state_values` locks the trial row, so exactly one caller wins it) and a
conditional update of our `dse_trials` row second:
- claim: WAITING → RUNNING is won by one worker only (Optuna returns False to the others);
- finish: only while our row says RUNNING and owned by this worker, and Optuna refuses to
  complete a trial the reaper already failed, so a result from a lost worker whose trial
  was retried is dropped, never counted twice;
- release: RUNNING → WAITING, the trial handed back untrained.
A crash between the two steps is repaired by search.store.recovery.
"""

from __future__ import annotations

import random
from typing import Any

from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState
from sqlalchemy import func, select, update

from search.spec.status import StudyStatus, TrialStatus
from search.store.db import Database
from search.store.models import Claim, StudyRow, TrialRow, utcnow
from search.store.outcome import TrialOutcome, finite
from search.store.promotion import Promotion
from search.store.studies import Studies

OUTCOME_ATTR = "dse_outcome"  # Optuna trial system attribute: the outcome of a failed trial

# the claim fields copied from the trial row as they are
CLAIM_ROW_FIELDS = ("trial_id", "study_id", "space", "sample", "level", "epochs", "attempt", "net")


class TrialLifecycle:
    """What a worker does with trials: `claim`, `heartbeat`, `report_epoch`, `finish`, `release`."""

    def __init__(self, db: Database, studies: Studies, promotion: Promotion) -> None:
        self.db, self.studies, self.promotion = db, studies, promotion

    def claim(self, worker: str, study_ids: list[int] | None = None) -> Claim | None:
        """Pop one waiting trial of a running study for `worker` (atomic through Optuna)."""
        query = (
            select(TrialRow.trial_id)
            .join(StudyRow, StudyRow.id == TrialRow.study_id)
            .where(StudyRow.status == StudyStatus.RUNNING, TrialRow.status == TrialStatus.WAITING)
            .order_by(TrialRow.trial_id)
            .limit(16)
        )
        if study_ids:
            query = query.where(TrialRow.study_id.in_(study_ids))
        with self.db.read() as session:
            candidates = list(session.scalars(query))
        # Try the oldest first, but not all workers the same one: fewer lost races.
        head = candidates[:4]
        random.shuffle(head)
        for trial_id in head + candidates[4:]:
            # Heartbeat first: a trial handed back earlier has an old one, and must not look
            # stale to a reaper in the instant after it turns RUNNING (only RUNNING is reaped).
            self.db.optuna.record_heartbeat(trial_id)
            try:
                if not self.db.optuna.set_trial_state_values(trial_id, TrialState.RUNNING):
                    continue
            except UpdateFinishedTrialError:
                continue
            now = utcnow()
            with self.db.write() as session, session.begin():
                row = session.scalars(
                    update(TrialRow)
                    .where(TrialRow.trial_id == trial_id, TrialRow.status == TrialStatus.WAITING)
                    .values(
                        status=TrialStatus.RUNNING.value,
                        worker=worker,
                        started_at=now,
                        updated_at=now,
                    )
                    .returning(TrialRow)
                ).one_or_none()
            if row is None:  # cancelled between our read and our transition
                self.fail_quietly(trial_id)
                continue
            return self._claim_of(row, worker)
        return None

    def _claim_of(self, row: TrialRow, worker: str) -> Claim:
        spec = self.studies.spec(row.study_id)
        from_row = {f: getattr(row, f) for f in CLAIM_ROW_FIELDS}
        return Claim(
            **from_row,
            worker=worker,
            dataset=spec.dataset,
            recipe=spec.recipe,
            seed=spec.seed + row.sample,
            limits=spec.limits,
        )

    def fail_quietly(self, trial_id: int) -> None:
        """Fail an Optuna trial unless it has finished already."""
        try:
            self.db.optuna.set_trial_state_values(trial_id, TrialState.FAIL)
        except UpdateFinishedTrialError:
            pass

    def heartbeat(self, claim: Claim) -> None:
        """Record that the worker of `claim` is alive (Optuna's heartbeat table)."""
        self.db.optuna.record_heartbeat(claim.trial_id)

    def report_epoch(self, claim: Claim, metrics: dict) -> bool:
        """Store one epoch's metrics; False when the trial should stop (cancelled or lost)."""
        epoch = int(metrics.get("epoch", len(claim.history) + 1))
        val = finite(metrics.get("val_error"))
        claim.history.append({k: _plain(v) for k, v in metrics.items()})
        if val is not None:
            try:
                self.db.optuna.set_trial_intermediate_value(claim.trial_id, epoch, val)
            except UpdateFinishedTrialError:
                return False
        with self.db.write() as session, session.begin():
            owned = session.execute(
                update(TrialRow)
                .where(*_owned(claim))
                .values(
                    epochs_done=epoch,
                    last_val_error=val,
                    history=list(claim.history),
                    updated_at=utcnow(),
                )
            ).rowcount
            status = session.scalar(select(StudyRow.status).where(StudyRow.id == claim.study_id))
        return bool(owned) and status == StudyStatus.RUNNING

    def finish(self, claim: Claim, outcome: TrialOutcome) -> bool:
        """Record how the trial ended, once: False if the trial is no longer this worker's."""
        if not isinstance(outcome, TrialOutcome):
            raise TypeError(f"outcome: expected a TrialOutcome, got {type(outcome).__name__}")
        with self.db.read() as session:
            owned = session.scalar(select(func.count()).where(*_owned(claim)))
        if not owned:
            return False
        done = outcome.status == TrialStatus.DONE
        try:
            if not done:  # kept for crash repair (Recovery: a FAIL with its outcome)
                recorded = {"status": outcome.status.value, "reason": outcome.reason}
                self.db.optuna.set_trial_system_attr(claim.trial_id, OUTCOME_ATTR, recorded)
            state = TrialState.COMPLETE if done else TrialState.FAIL
            values = [outcome.val_error] if done else None
            self.db.optuna.set_trial_state_values(claim.trial_id, state, values)
        except UpdateFinishedTrialError:
            return False  # reaped and retried meanwhile: the retry's result counts
        now = utcnow()
        with self.db.write() as session, session.begin():
            session.execute(
                update(TrialRow)
                .where(*_owned(claim))
                .values(
                    **outcome.columns(),
                    history=list(claim.history),
                    finished_at=now,
                    updated_at=now,
                )
            )
        self.promotion.settle(claim.study_id)  # also stops a study that learns nothing
        return True

    def release(self, claim: Claim) -> bool:
        """Hand a trial back untrained (worker stopping): it becomes WAITING again."""
        with self.db.read() as session:
            if not session.scalar(select(func.count()).where(*_owned(claim))):
                return False
        try:
            self.db.optuna.set_trial_state_values(claim.trial_id, TrialState.WAITING)
        except UpdateFinishedTrialError:
            return False
        with self.db.write() as session, session.begin():
            session.execute(
                update(TrialRow)
                .where(*_owned(claim))
                .values(
                    status=TrialStatus.WAITING.value,
                    worker=None,
                    started_at=None,
                    epochs_done=0,
                    last_val_error=None,
                    history=[],
                    updated_at=utcnow(),
                )
            )
        return True


def _owned(claim: Claim) -> tuple:
    """WHERE clauses: the trial is still running and still this worker's."""
    return (
        TrialRow.trial_id == claim.trial_id,
        TrialRow.status == TrialStatus.RUNNING,
        TrialRow.worker == claim.worker,
    )


def _plain(v: Any) -> Any:
    """A JSON-able scalar (tensors and numpy numbers to float)."""
    if isinstance(v, str | int | float | bool) or v is None:
        return v
    try:
        return float(v)
    except (TypeError, ValueError):
        return str(v)
