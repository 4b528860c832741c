"""Recovery and promotion: reap lost workers' trials, retry them, promote finished levels.

A mixin of search.store.Store (it uses the store's sessions and Optuna storage). Everything
here may run in any number of workers at once: each state change is an Optuna transition
that only one caller wins, or an insert guarded by the unique key of `dse_trials`.
"""

from __future__ import annotations

import warnings
from datetime import timedelta
from typing import Any

import optuna
from optuna.storages import RDBStorage, fail_stale_trials
from optuna.trial import TrialState
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from search import fidelity
from search.models import StudyRow, TrialRow, new_trial_values, utcnow
from search.spec import Limits, StudySpec


class Recovery:
    """Reaping, retries, crash repair and level promotion (mixed into Store)."""

    def reap_stale(self) -> list[int]:
        """Fail trials whose worker stopped heartbeating; retry each up to max_attempts."""
        with self._read() as session:
            studies = session.execute(
                select(StudyRow.id, StudyRow.optuna_name).where(StudyRow.status == "running")
            ).all()
        lost: list[int] = []
        for study_id, optuna_name in studies:
            limits = self._spec_of(study_id).limits
            stale: list[int] = []
            view = _heartbeat_view(self.optuna, limits, stale)
            with warnings.catch_warnings():  # "experimental" since Optuna 2.9
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                fail_stale_trials(optuna.load_study(study_name=optuna_name, storage=view))
            for trial_id in stale:
                self._retry_lost(trial_id, limits)
            lost += stale
            self._reconcile(study_id, limits)
        return lost

    def _reconcile(self, study_id: int, limits: Limits) -> None:
        """Repair rows a crash left behind Optuna (between its transition and our update).

        A row still 'running' without an update for the grace period is compared with its
        Optuna trial: COMPLETE → done with Optuna's value; FAIL with the outcome `finish`
        recorded → that outcome; FAIL without one → lost (retried); WAITING (handed back) →
        waiting again. A live worker updates its row every epoch and is
        still RUNNING in Optuna, so it is left alone.
        """
        cutoff = utcnow() - timedelta(seconds=limits.grace_seconds)
        with self._read() as session:
            ids = session.scalars(
                select(TrialRow.trial_id).where(
                    TrialRow.study_id == study_id,
                    TrialRow.status == "running",
                    TrialRow.updated_at < cutoff,
                )
            ).all()
        for trial_id in ids:
            trial = self.optuna.get_trial(trial_id)
            outcome = trial.system_attrs.get("dse_outcome")
            values: dict[str, Any] = {"updated_at": utcnow()}
            if trial.state == TrialState.FAIL and outcome is None:
                self._retry_lost(trial_id, limits)  # reaped: the worker was lost
                continue
            if trial.state == TrialState.FAIL:  # a worker died while recording its outcome
                values.update(status=outcome["status"], reason=outcome["reason"])
                values.update(finished_at=utcnow())
            elif trial.state == TrialState.COMPLETE:
                values.update(status="done", error=trial.value, finished_at=utcnow())
            elif trial.state == TrialState.WAITING:
                values.update(status="waiting", worker=None, started_at=None)
            else:
                continue
            with self._write() as session, session.begin():
                session.execute(
                    update(TrialRow)
                    .where(TrialRow.trial_id == trial_id, TrialRow.status == "running")
                    .values(**values)
                )
            self.settle(study_id)

    def _retry_lost(self, trial_id: int, limits: Limits) -> None:
        with self._read() as session:
            row = session.get(TrialRow, trial_id)
        if row is None or row.status not in ("waiting", "running"):
            return
        retry_id = None
        if row.attempt < limits.max_attempts:
            reason = f"worker {row.worker} lost (no heartbeat for {limits.grace_seconds} s)"
            retry_id = self._enqueue(row, row.level, row.epochs, row.attempt + 1)
        else:
            reason = f"worker lost after {row.attempt} attempts"
        now = utcnow()
        with self._write() as session, session.begin():
            session.execute(
                update(TrialRow)
                .where(TrialRow.trial_id == trial_id, TrialRow.status.in_(("waiting", "running")))
                .values(
                    status="failed",
                    reason=reason,
                    retried_as=retry_id,
                    finished_at=now,
                    updated_at=now,
                )
            )
        if retry_id is None:
            self.settle(row.study_id)

    def _enqueue(self, source: TrialRow, level: int, epochs: int, attempt: int) -> int:
        """Add one WAITING trial for source's network; an existing twin's id if one won."""
        values = new_trial_values(
            source.study_id,
            source.space,
            source.sample,
            level,
            epochs,
            attempt,
            source.net,
            {"flops": source.flops, "params": source.params, "acts": source.acts},
        )
        values["sampled"] = source.sampled
        with self._read() as session:
            oid = session.scalar(
                select(StudyRow.optuna_study_id).where(StudyRow.id == source.study_id)
            )
        values["trial_id"] = self._new_optuna_trial(oid, values)
        try:
            with self._write() as session, session.begin():
                session.execute(insert(TrialRow), [values])
            return values["trial_id"]
        except IntegrityError:  # another worker enqueued the same (sample, level, attempt)
            self.optuna.set_trial_system_attr(values["trial_id"], "dse_duplicate", True)
            self._fail_quietly(values["trial_id"])
            with self._read() as session:
                return session.scalar(
                    select(TrialRow.trial_id).where(
                        TrialRow.study_id == source.study_id,
                        TrialRow.space == source.space,
                        TrialRow.sample == source.sample,
                        TrialRow.level == level,
                        TrialRow.attempt == attempt,
                    )
                )

    def settle(self, study_id: int) -> int:
        """Promote every completed level (idempotent); mark the study done when nothing is left."""
        spec = self._spec_of(study_id)
        grid = self._status_grid(study_id)
        with self._read() as session:
            if session.scalar(select(StudyRow.status).where(StudyRow.id == study_id)) != "running":
                return 0
        added = 0
        for space in spec.space_names():
            for level in range(len(spec.fidelities) - 1):
                counts = grid.get((space, level), {})
                if not fidelity.level_complete(s for s, n in counts.items() for _ in range(n)):
                    break
                added += self._promote(study_id, space, level, spec)
        unfinished = sum(n for c in grid.values() for s, n in c.items() if s in fidelity.UNFINISHED)
        if not added and not unfinished:
            with self._write() as session, session.begin():
                session.execute(
                    update(StudyRow)
                    .where(StudyRow.id == study_id, StudyRow.status == "running")
                    .values(status="done", updated_at=utcnow())
                )
        return added

    def _promote(self, study_id: int, space: str, level: int, spec: StudySpec) -> int:
        where = (
            TrialRow.study_id == study_id,
            TrialRow.space == space,
            TrialRow.retried_as.is_(None),
        )
        with self._read() as session:
            rows = session.scalars(select(TrialRow).where(*where, TrialRow.level == level)).all()
            have = set(
                session.scalars(select(TrialRow.sample).where(*where, TrialRow.level == level + 1))
            )
        trials = [fidelity.LevelTrial(r.sample, r.status, r.error) for r in rows]
        chosen = fidelity.select_promoted(trials, spec.promote)
        by_sample = {r.sample: r for r in rows}
        added = 0
        for sample_index in chosen:
            if sample_index not in have:
                self._enqueue(by_sample[sample_index], level + 1, spec.fidelities[level + 1], 1)
                added += 1
        return added


def _heartbeat_view(storage: RDBStorage, limits: Limits, stale: list[int]) -> RDBStorage:
    """The same storage (same engine and sessions) with a study's heartbeat limits.

    Optuna reads the grace period from the storage object; studies differ in theirs, so each
    gets a shallow view instead of one global setting. The callback collects what was failed.
    """
    view = RDBStorage.__new__(RDBStorage)
    view.__dict__.update(storage.__dict__)
    view.heartbeat_interval = limits.heartbeat_seconds
    view.grace_period = limits.grace_seconds
    view.heartbeat_stale_trial_callback = lambda _study, trial: stale.append(trial._trial_id)
    view.failed_trial_callback = view.heartbeat_stale_trial_callback
    return view
