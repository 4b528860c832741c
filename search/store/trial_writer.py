"""TrialWriter: adds trials to a study, an Optuna trial and its dse_trials row in one transaction.

Every trial dse creates goes through here: a new study's networks, a promotion to the next
fidelity level, a retry after a lost worker. One transaction holds the study row's lock,
reads the study's status, inserts the Optuna trials (search.store.optuna_rdb: as Optuna's
`create_new_trial` would) and their `dse_trials` rows, so there is never an Optuna trial
without its row, and a trial added after its study was cancelled is created cancelled
(Optuna FAIL, ours `cancelled`): cancelling takes the same lock (issue 15 finding 6).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.trial import TrialState
from sqlalchemy import select
from sqlalchemy.orm import Session

from search.spec.status import StudyStatus, TrialStatus
from search.store import optuna_rdb, trial_params
from search.store.db import Database, bind_values, bulk_insert, bulk_insert_values
from search.store.models import StudyRow, TrialRow, utcnow
from search.store.optuna_rdb import PreparedTrials

# space and epochs are params; the dse study id is an attribute of the Optuna study
USER_ATTRS = ("sample", "level", "attempt", "net")
CANCELLED_REASON = "study cancelled"


@dataclass(frozen=True)
class PreparedRows:
    """Trials made ready outside their transaction: Optuna's rows and our dse_trials values."""

    optuna: PreparedTrials
    names: list[str]  # dse_trials columns, trial_id first (filled in when inserted)
    values: list[list[Any]]  # bound already (db.bind_values)


class StudyClosed(LookupError):
    """The study is gone or failed: no trial may be added to it."""


class TrialWriter:
    """Creates trials: `add(study_id, rows)`; rows are dse_trials values (models.new_trial_values)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        # keyed by the Optuna study's name (unique: ids of deleted studies are reused)
        self._distributions: dict[str, dict[str, BaseDistribution]] = {}
        self._stored: dict[str, dict[str, BaseDistribution]] = {}

    def distributions(self, study_id: int) -> dict[str, BaseDistribution]:
        """The study's param distributions (search.store.trial_params), read once per study.

        Read outside any write transaction: Optuna's storage opens its own connection,
        which on SQLite would wait for ours.
        """
        with self.db.read() as session:
            found = session.execute(
                select(StudyRow.optuna_study_id, StudyRow.optuna_name).where(
                    StudyRow.id == study_id
                )
            ).one_or_none()
        if found is None or found[0] is None:
            return {}
        oid, name = found
        if name not in self._distributions:
            attrs = self.db.optuna.get_study_system_attrs(oid)
            known = trial_params.from_json(attrs.get(trial_params.STUDY_ATTR))
            if not known:  # older studies have none; a study being created not yet
                return {}
            self._distributions[name] = known
        return self._distributions[name]

    def prepare(self, rows: Sequence[dict[str, Any]], distributions) -> PreparedRows:
        """`rows` and their Optuna trials checked and serialised, to `add` as waiting trials."""
        optuna = optuna_rdb.prepare([self._optuna_trial(r, distributions, False) for r in rows])
        names = ["trial_id", *rows[0]] if rows else ["trial_id"]
        values = [[None, *map(row.__getitem__, names[1:])] for row in rows]
        bind_values(self.db.optuna.engine.dialect, TrialRow.__table__, names, values)
        return PreparedRows(optuna, names, values)

    def add(
        self,
        study_id: int,
        rows: Sequence[dict[str, Any]],
        session: Session | None = None,
        distributions: dict[str, BaseDistribution] | None = None,
        prepared: PreparedRows | None = None,
    ) -> list[int]:
        """Create these trials (waiting, or cancelled if the study was); their trial ids.

        In the caller's transaction if `session` is given (then with `distributions`),
        else in one of its own; `prepared` (from `prepare`) saves that work here.
        Raises StudyClosed if the study is gone or failed, and IntegrityError (nothing
        added) if one exists already (the unique key: study, space, sample, level, attempt).
        """
        if distributions is None:
            if session is not None:
                raise ValueError("distributions: give them when adding inside a transaction")
            distributions = self.distributions(study_id)
        if session is None:
            with self.db.write() as session, session.begin():
                return self._add(session, study_id, rows, distributions, prepared)
        return self._add(session, study_id, rows, distributions, prepared)

    def _add(self, session: Session, study_id: int, rows, distributions, prepared) -> list[int]:
        found = session.execute(
            select(StudyRow.status, StudyRow.optuna_study_id, StudyRow.optuna_name)
            .where(StudyRow.id == study_id)
            .with_for_update()  # cancel_study takes this lock too (SQLite: BEGIN IMMEDIATE)
        ).one_or_none()
        if found is None or found[1] is None or found[0] == StudyStatus.FAILED:
            raise StudyClosed(f"study {study_id}: gone or failed; no trials are added")
        status, optuna_study_id, optuna_name = found
        cancelled = status in (StudyStatus.CANCELLED, StudyStatus.DONE)
        stored = self._stored.setdefault(optuna_name, {})
        if prepared is not None and not cancelled:  # prepared rows are waiting ones
            ids = optuna_rdb.insert_trials(session, optuna_study_id, prepared.optuna, stored)
            for trial_id, values in zip(ids, prepared.values, strict=True):
                values[0] = trial_id
            table = TrialRow.__table__
            bulk_insert_values(session, table, prepared.names, prepared.values, bound=True)
            return ids
        trials = [self._optuna_trial(row, distributions, cancelled) for row in rows]
        ids = optuna_rdb.insert_trials(session, optuna_study_id, trials, stored)
        values = []
        now = utcnow()
        for trial_id, row in zip(ids, rows, strict=True):
            value = {**row, "trial_id": trial_id}
            if cancelled:
                value.update(
                    status=TrialStatus.CANCELLED.value,
                    reason=CANCELLED_REASON,
                    finished_at=now,
                    updated_at=now,
                )
            values.append(value)
        bulk_insert(session, TrialRow.__table__, values)
        return ids

    def _optuna_trial(self, row: dict, distributions: dict, cancelled: bool):
        """The Optuna trial of one dse_trials row: its network's params and attributes."""
        attrs = {k: row[k] for k in USER_ATTRS}
        if row.get("reference") is not None:
            # a reference network is no draw of a space: it records its label and fidelity
            # only (its complexity may lie outside the spaces' ranges)
            attrs["reference"] = row["reference"]
            params = trial_params.restricted(
                {trial_params.EPOCHS: int(row["epochs"])}, distributions
            )
        else:
            complexity = {k: row[k] for k in trial_params.COMPLEXITY}
            sampled = row.get("sampled") or {}
            params = trial_params.trial_params(row["space"], sampled, complexity, row["epochs"])
            params = trial_params.restricted(params, distributions)
        return optuna_rdb.NewTrial(
            state=TrialState.FAIL if cancelled else TrialState.WAITING,
            params=params,
            distributions={k: distributions[k] for k in params},
            user_attrs=attrs,
        )
