"""Recovery: reap lost workers' trials and retry them, repair crash windows, reap dead creations.

Everything here may run in any number of processes at once (every worker reaps; so does
the server): each state change is an Optuna transition that only one caller wins, a
conditional update, or an insert guarded by the unique key of `dse_trials`.
- Lost workers: Optuna's `fail_stale_trials` fails RUNNING trials without a heartbeat for
  the study's grace period; each is retried as a new WAITING trial (attempt + 1) up to
  `limits.max_attempts`, then left failed with the reason.
- Crash windows: a row still `running` long after its Optuna trial finished is repaired.
- Studies closed early (issue 20) by versions before promotion's locked done transition
  are reopened, their trials stopped or created `cancelled` by the early close retried.
- Dead creations (issue 15 finding 6): a `creating` study whose creation stopped beating is
  failed and its trials removed; WAITING Optuna trials without a `dse_trials` row (a crash
  in older versions, which created the two in separate transactions) are failed.
"""

from __future__ import annotations

import time
import warnings
from datetime import timedelta
from typing import Any

import optuna
from optuna.storages import fail_stale_trials
from optuna.trial import TrialState
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from search.spec.status import StudyStatus, TrialStatus
from search.spec.study import Limits
from search.store import optuna_rdb
from search.store.db import Database
from search.store.models import StudyRow, TrialRow, utcnow
from search.store.promotion import Promotion, copy_values
from search.store.studies import Studies
from search.store.trial_life import OUTCOME_ATTR, TrialLifecycle
from search.store.trial_writer import StudyClosed, TrialWriter

CREATION_GRACE_SECONDS = 60  # a creation that has not beaten for this long is dead
REAP_CREATING_EVERY = 30.0  # seconds between reaps of dead creations (reap_stale)


class Recovery:
    """`reap_stale` (lost workers, crash windows, dead creations) and `reap_creating`."""

    def __init__(
        self,
        db: Database,
        studies: Studies,
        writer: TrialWriter,
        promotion: Promotion,
        lifecycle: TrialLifecycle,
    ) -> None:
        self.db, self.studies, self.writer = db, studies, writer
        self.promotion, self.lifecycle = promotion, lifecycle
        self._last_creating_reap = -REAP_CREATING_EVERY

    def reap_stale(self) -> list[int]:
        """Fail trials whose worker stopped heartbeating; retry each up to max_attempts.

        Also reaps dead creations, at most every REAP_CREATING_EVERY seconds.
        """
        if time.monotonic() - self._last_creating_reap >= REAP_CREATING_EVERY:
            self._last_creating_reap = time.monotonic()
            self.reap_creating()
            self.reopen_closed_early()
        with self.db.read() as session:
            studies = session.execute(
                select(StudyRow.id, StudyRow.optuna_name).where(
                    StudyRow.status == StudyStatus.RUNNING
                )
            ).all()
        lost: list[int] = []
        for study_id, optuna_name in studies:
            limits = self.studies.spec(study_id).limits
            stale: list[int] = []
            view = optuna_rdb.heartbeat_view(
                self.db.optuna, limits.heartbeat_seconds, limits.grace_seconds, stale.append
            )
            with warnings.catch_warnings():  # "experimental" since Optuna 2.9
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                fail_stale_trials(optuna.load_study(study_name=optuna_name, storage=view))
            for trial_id in stale:
                self._retry_lost(trial_id, limits)
            lost += stale
            self._reconcile(study_id, limits)
        return lost

    def reap_creating(self, grace_seconds: float = CREATION_GRACE_SECONDS) -> list[int]:
        """Fail `creating` studies whose creation stopped beating, and fail orphan trials.

        Returns the ids of the studies failed.
        """
        cutoff = utcnow() - timedelta(seconds=grace_seconds)
        with self.db.read() as session:
            stale = session.execute(
                select(StudyRow.id, StudyRow.creation).where(
                    StudyRow.status == StudyStatus.CREATING, StudyRow.updated_at < cutoff
                )
            ).all()
        failed = []
        for study_id, creation in stale:
            done = creation or {}
            reason = (
                f"creation stopped (no progress for {grace_seconds:g} s; the creating "
                f"process was probably killed) after {done.get('sampled', 0)} of "
                f"{done.get('spaces', '?')} spaces sampled and {done.get('stored', 0)} trials "
                "stored; create the study again"
            )
            if self.studies.fail(study_id, reason, stale_before=cutoff):
                failed.append(study_id)
        self._fail_orphans()
        return failed

    def reopen_closed_early(self) -> list[int]:
        """Reopen `done` studies with unfinished or early-cancelled trials; the ids reopened.

        Nothing legitimately leaves a trial waiting, running or cancelled in a done study
        (cancelling a study makes it `cancelled`), so such trials were left by a settler that
        closed the study from a stale read before issue 20's fix: the study runs again, its
        cancelled trials are retried (attempt + 1), and settling promotes what is due.
        """
        closed_early = (
            select(TrialRow.study_id)
            .join(StudyRow, StudyRow.id == TrialRow.study_id)
            .where(
                StudyRow.status == StudyStatus.DONE,
                TrialRow.retried_as.is_(None),
                TrialRow.status.in_((*TrialStatus.unfinished(), TrialStatus.CANCELLED)),
            )
            .distinct()
        )
        with self.db.read() as session:
            ids = session.scalars(closed_early).all()
        reopened = []
        for study_id in ids:
            distributions = self.writer.distributions(study_id)  # outside the transaction
            with self.db.write() as session, session.begin():
                if not self._reopen(session, study_id, distributions):
                    continue
            reopened.append(study_id)
            self.promotion.settle(study_id)
        return reopened

    def _reopen(self, session, study_id: int, distributions) -> bool:
        """done → running under the study row's lock; retry its cancelled trials."""
        status = session.scalar(
            select(StudyRow.status).where(StudyRow.id == study_id).with_for_update()
        )
        if status != StudyStatus.DONE:
            return False
        now = utcnow()
        session.execute(
            update(StudyRow)
            .where(StudyRow.id == study_id)
            .values(status=StudyStatus.RUNNING.value, updated_at=now)
        )
        cancelled = session.scalars(
            select(TrialRow).where(
                TrialRow.study_id == study_id,
                TrialRow.retried_as.is_(None),
                TrialRow.status == TrialStatus.CANCELLED,
            )
        ).all()
        if cancelled:
            retries = [copy_values(r, r.level, r.epochs, r.attempt + 1) for r in cancelled]
            ids = self.writer.add(study_id, retries, session=session, distributions=distributions)
            for row, retry_id in zip(cancelled, ids, strict=True):
                row.retried_as = retry_id
                row.reason = f"{row.reason or 'cancelled'}; the study was closed early: retried"
                row.updated_at = now
        return True

    def _fail_orphans(self) -> None:
        """Fail WAITING Optuna trials of our studies that have no dse_trials row."""
        with self.db.read() as session:
            studies = session.execute(
                select(StudyRow.id, StudyRow.optuna_study_id).where(
                    StudyRow.optuna_study_id.is_not(None),
                    StudyRow.status != StudyStatus.CREATING,  # a live creation commits both
                )
            ).all()
            orphans = [
                trial_id
                for study_id, oid in studies
                for trial_id in optuna_rdb.orphan_trials(
                    session, oid, select(TrialRow.trial_id).where(TrialRow.study_id == study_id)
                )
            ]
        for trial_id in orphans:
            self.db.optuna.set_trial_system_attr(trial_id, "dse_orphan", True)
            self.lifecycle.fail_quietly(trial_id)

    def _reconcile(self, study_id: int, limits: Limits) -> None:
        """Repair rows a crash left behind Optuna (between its transition and our update).

        A row still 'running' without an update for the grace period is compared with its
        Optuna trial: COMPLETE → done with Optuna's value; FAIL with the outcome `finish`
        recorded → that outcome; FAIL without one → lost (retried); WAITING (handed back) →
        waiting again. A live worker updates its row every epoch and is still RUNNING in
        Optuna, so it is left alone.
        """
        cutoff = utcnow() - timedelta(seconds=limits.grace_seconds)
        with self.db.read() as session:
            ids = session.scalars(
                select(TrialRow.trial_id).where(
                    TrialRow.study_id == study_id,
                    TrialRow.status == TrialStatus.RUNNING,
                    TrialRow.updated_at < cutoff,
                )
            ).all()
        for trial_id in ids:
            trial = self.db.optuna.get_trial(trial_id)
            outcome = trial.system_attrs.get(OUTCOME_ATTR)
            values: dict[str, Any] = {"updated_at": utcnow()}
            if trial.state == TrialState.FAIL and outcome is None:
                self._retry_lost(trial_id, limits)  # reaped: the worker was lost
                continue
            if trial.state == TrialState.FAIL:  # a worker died while recording its outcome
                values.update(status=outcome["status"], reason=outcome["reason"])
                values.update(finished_at=utcnow())
            elif trial.state == TrialState.COMPLETE:
                values.update(status=TrialStatus.DONE.value, error=trial.value)
                values.update(finished_at=utcnow())
            elif trial.state == TrialState.WAITING:
                values.update(status=TrialStatus.WAITING.value, worker=None, started_at=None)
            else:
                continue
            with self.db.write() as session, session.begin():
                session.execute(
                    update(TrialRow)
                    .where(TrialRow.trial_id == trial_id, TrialRow.status == TrialStatus.RUNNING)
                    .values(**values)
                )
            self.promotion.settle(study_id)

    def _retry_lost(self, trial_id: int, limits: Limits) -> None:
        """Fail a lost trial; add its retry (attempt + 1) unless max_attempts is reached."""
        with self.db.read() as session:
            row = session.get(TrialRow, trial_id)
        if row is None or row.status not in TrialStatus.unfinished():
            return
        retry_id = None
        if row.attempt < limits.max_attempts:
            reason = f"worker {row.worker} lost (no heartbeat for {limits.grace_seconds} s)"
            retry_id = self._enqueue_retry(row)
        else:
            reason = f"worker lost after {row.attempt} attempts"
        now = utcnow()
        with self.db.write() as session, session.begin():
            session.execute(
                update(TrialRow)
                .where(
                    TrialRow.trial_id == trial_id,
                    TrialRow.status.in_(TrialStatus.unfinished()),
                )
                .values(
                    status=TrialStatus.FAILED.value,
                    reason=reason,
                    retried_as=retry_id,
                    finished_at=now,
                    updated_at=now,
                )
            )
        if retry_id is None:
            self.promotion.settle(row.study_id)

    def _enqueue_retry(self, source: TrialRow) -> int | None:
        """Add the next attempt of `source`; the id of the one another process added first."""
        values = copy_values(source, source.level, source.epochs, source.attempt + 1)
        try:
            return self.writer.add(source.study_id, [values])[0]
        except StudyClosed:
            return None
        except IntegrityError:  # another process enqueued the same (sample, level, attempt)
            with self.db.read() as session:
                return session.scalar(
                    select(TrialRow.trial_id).where(
                        TrialRow.study_id == source.study_id,
                        TrialRow.space == source.space,
                        TrialRow.sample == source.sample,
                        TrialRow.level == source.level,
                        TrialRow.attempt == source.attempt + 1,
                    )
                )
