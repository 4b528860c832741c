"""The Optuna internals dse relies on, in one place, each with the reason it is needed.

1. `insert_trials`: bulk trial creation, the rows `create_new_trial` writes, one INSERT per
   table (one trial at a time took 14 ms: 70 s for a 5,000-trial study, issue 15).
2. `fail_trials`: bulk FAIL of waiting trials when a study is cancelled, one UPDATE.
3. `delete_study`: bulk delete (Optuna's cascade took over four minutes for 5,000 trials).
4. `heartbeat_view`: one study's heartbeat limits on a shallow copy of the storage.
Optuna stores datetimes as naive UTC (optuna.storages._rdb.models); so do we here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    check_distribution_compatibility,
    distribution_to_json,
    json_to_distribution,
)
from optuna.storages import RDBStorage
from optuna.storages._rdb import models as optuna_models
from optuna.trial import TrialState
from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.orm import Session

from search.store.db import bulk_insert, bulk_insert_values

TRIALS = optuna_models.TrialModel.__table__
PARAMS = optuna_models.TrialParamModel.__table__
USER_ATTRS = optuna_models.TrialUserAttributeModel.__table__
SYSTEM_ATTRS = optuna_models.TrialSystemAttributeModel.__table__
STUDIES = optuna_models.StudyModel.__table__


@dataclass(frozen=True)
class NewTrial:
    """An Optuna trial to create: WAITING (or FAIL), its params and its attributes."""

    state: TrialState = TrialState.WAITING
    params: dict[str, Any] = field(default_factory=dict)
    distributions: dict[str, BaseDistribution] = field(default_factory=dict)
    user_attrs: dict[str, Any] = field(default_factory=dict)
    system_attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PreparedTrials:
    """New trials checked and serialised ahead of the transaction that inserts them.

    The rows of Optuna's param and attribute tables start with the trial's index in
    `trials`, replaced by its id when inserted (once: inserting consumes them).
    """

    trials: Sequence[NewTrial]
    distributions: dict[str, BaseDistribution]  # every param's, by name
    params: list[list[Any]]  # [index, name, internal value, distribution JSON]
    user_attrs: list[list[Any]]  # [index, key, JSON]
    system_attrs: list[list[Any]]


def prepare(trials: Sequence[NewTrial]) -> PreparedTrials:
    """Check the trials' params (create_trial's validation) and serialise every row.

    Pure work, no database: a caller may do it for the next batch while the database
    stores the last (search.store.creation).
    """
    seen: dict = {}
    as_json: dict[tuple[str, int], str] = {}  # a study's trials share distribution objects
    distributions: dict[str, BaseDistribution] = {}
    params: list[list[Any]] = []
    for k, t in enumerate(trials):
        for name, internal, dist in _checked_params(t, seen):
            text = as_json.get((name, id(dist)))
            if text is None:
                if name in distributions:  # one distribution per name, as in a study
                    check_distribution_compatibility(distributions[name], dist)
                distributions[name] = dist
                text = as_json[name, id(dist)] = distribution_to_json(dist)
            params.append([k, name, internal, text])
    dumps = json.dumps
    return PreparedTrials(
        trials=trials,
        distributions=distributions,
        params=params,
        user_attrs=[
            [k, key, dumps(v)] for k, t in enumerate(trials) for key, v in t.user_attrs.items()
        ],
        system_attrs=[
            [k, key, dumps(v)] for k, t in enumerate(trials) for key, v in t.system_attrs.items()
        ],
    )


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _checked_params(trial: NewTrial, seen: dict) -> list[tuple[str, float, BaseDistribution]]:
    """(name, internal value, distribution) per param: create_trial's validation.

    `seen` memoises (name, distribution) → {value: internal value}: a study's trials share
    their distribution objects and most values repeat.
    """
    if trial.params.keys() != trial.distributions.keys():
        raise ValueError(
            f"params: {sorted(trial.params)} and distributions {sorted(trial.distributions)} "
            "must name the same parameters"
        )
    out = []
    for name, value in trial.params.items():
        dist = trial.distributions[name]
        known = seen.setdefault((name, id(dist)), {})
        internal = known.get(value)
        if internal is None:
            internal = dist.to_internal_repr(value)
            if not dist._contains(internal):  # FrozenTrial._validate's check
                raise ValueError(f"params.{name}: {value!r} is not in its distribution {dist}")
            known[value] = internal
        out.append((name, internal, dist))
    return out


def _earlier_distributions(session: Session, study_id: int) -> dict[str, BaseDistribution]:
    """One stored distribution per param name of the study (what Optuna checks against)."""
    first = (
        select(func.min(PARAMS.c.param_id))
        .join(TRIALS, TRIALS.c.trial_id == PARAMS.c.trial_id)
        .where(TRIALS.c.study_id == study_id)
        .group_by(PARAMS.c.param_name)
    )
    rows = session.execute(
        select(PARAMS.c.param_name, PARAMS.c.distribution_json).where(PARAMS.c.param_id.in_(first))
    )
    return {name: json_to_distribution(text) for name, text in rows}


def insert_trials(
    session: Session,
    study_id: int,
    trials: Sequence[NewTrial] | PreparedTrials,
    stored: dict[str, BaseDistribution] | None = None,
) -> list[int]:
    """Create `trials` in Optuna study `study_id` in the session's transaction; their ids.

    The rows are those `RDBStorage.create_new_trial(study_id, template_trial)` writes for a
    template made by `optuna.trial.create_trial(state=..., params=..., ...)`. That call
    creates one trial: it locks the study row, inserts the trial, then each param (after a
    query for the study's earlier distribution of that name) and each attribute one
    statement at a time, and counts the earlier trials for the number: about 14 ms a trial.
    Here the same rows go through Optuna's own ORM models and value encodings with one
    multi-row INSERT per table, inside the caller's transaction (a trial and its
    `dse_trials` row commit together), under the same study lock, numbering and checks
    (`create_trial`'s validation, `check_distribution_compatibility`); a test reads a
    bulk-created study back through Optuna's API against one created trial by trial
    (tests/test_optuna_rdb.py). `stored`, if
    given, is the caller's record of the distributions the study already holds, kept up to
    date here: the study is asked only for names not in it (the query scans its params).
    """
    prepared = trials if isinstance(trials, PreparedTrials) else prepare(trials)
    trials = prepared.trials
    if not trials:
        return []
    # create_new_trial's lock: the numbers below are only right while nobody else adds
    session.execute(
        select(STUDIES.c.study_id).where(STUDIES.c.study_id == study_id).with_for_update()
    )
    earlier = stored if stored is not None else {}
    if stored is None or not prepared.distributions.keys() <= stored.keys():
        earlier.update(_earlier_distributions(session, study_id))
    for name, dist in prepared.distributions.items():  # Optuna's check against the study
        if name in earlier:
            check_distribution_compatibility(earlier[name], dist)
        else:
            earlier[name] = dist
    first = session.scalar(select(func.count()).where(TRIALS.c.study_id == study_id))
    now = _utcnow()
    rows = []
    for k, t in enumerate(trials):
        finished = t.state.is_finished()  # create_trial: a finished trial starts and ends now
        start = None if t.state == TrialState.WAITING else now
        rows.append(
            {
                "number": first + k,
                "study_id": study_id,
                "state": t.state,
                "datetime_start": start,
                "datetime_complete": now if finished else None,
            }
        )
    bulk_insert(session, TRIALS, rows)
    numbered = session.execute(  # ids by number: numbers are unique while we hold the lock
        select(TRIALS.c.number, TRIALS.c.trial_id).where(
            TRIALS.c.study_id == study_id, TRIALS.c.number >= first
        )
    )
    by_number = dict(numbered.all())
    ids = [by_number[first + k] for k in range(len(trials))]
    for table_rows in (prepared.params, prepared.user_attrs, prepared.system_attrs):
        for row in table_rows:
            row[0] = ids[row[0]]
    params, user, system = prepared.params, prepared.user_attrs, prepared.system_attrs
    param_columns = ("trial_id", "param_name", "param_value", "distribution_json")
    bulk_insert_values(session, PARAMS, param_columns, params)
    for table, values in ((USER_ATTRS, user), (SYSTEM_ATTRS, system)):
        bulk_insert_values(session, table, ("trial_id", "key", "value_json"), values)
    return ids


def fail_trials(session: Session, trial_ids: Sequence[int]) -> None:
    """Fail these trials in Optuna unless finished already (set_trial_state_values(FAIL)).

    One UPDATE with the columns that call sets (state FAIL, datetime_complete now), where
    one call per trial took the same 14 ms each.
    """
    now = _utcnow()
    for start in range(0, len(trial_ids), 1000):  # bounded IN lists
        chunk = list(trial_ids[start : start + 1000])
        session.execute(
            update(TRIALS)
            .where(
                TRIALS.c.trial_id.in_(chunk),
                TRIALS.c.state.in_((TrialState.WAITING, TrialState.RUNNING)),
            )
            .values(state=TrialState.FAIL, datetime_complete=now)
        )


# a trial's rows, then the trials, then the study's own rows (children before parents)
TRIAL_TABLES = [
    getattr(optuna_models, m).__table__
    for m in (
        "TrialParamModel",
        "TrialValueModel",
        "TrialIntermediateValueModel",
        "TrialUserAttributeModel",
        "TrialSystemAttributeModel",
        "TrialHeartbeatModel",
    )
]
STUDY_TABLES = [
    getattr(optuna_models, m).__table__
    for m in ("StudyDirectionModel", "StudyUserAttributeModel", "StudySystemAttributeModel")
]


def delete_study(session: Session, study_id: int) -> None:
    """Delete an Optuna study with all its trials (RDBStorage.delete_study, in bulk).

    Optuna's delete goes through the ORM's cascade, loading and deleting every trial, param
    and attribute object one by one (over four minutes for a 5,000-trial study); here one
    DELETE per table.
    """
    trial_ids = select(TRIALS.c.trial_id).where(TRIALS.c.study_id == study_id)
    for table in TRIAL_TABLES:
        session.execute(delete(table).where(table.c.trial_id.in_(trial_ids)))
    session.execute(delete(TRIALS).where(TRIALS.c.study_id == study_id))
    for table in STUDY_TABLES:
        session.execute(delete(table).where(table.c.study_id == study_id))
    session.execute(delete(STUDIES).where(STUDIES.c.study_id == study_id))


def orphan_trials(session: Session, study_id: int, indexed: Select) -> list[int]:
    """WAITING trials of Optuna study `study_id` whose id is not among `indexed`."""
    query = select(TRIALS.c.trial_id).where(
        TRIALS.c.study_id == study_id,
        TRIALS.c.state == TrialState.WAITING,
        TRIALS.c.trial_id.not_in(indexed),
    )
    return list(session.scalars(query))


def heartbeat_view(
    storage: RDBStorage,
    heartbeat_seconds: int,
    grace_seconds: int,
    on_stale: Callable[[int], None],
) -> RDBStorage:
    """The same storage (same engine and sessions) with one study's heartbeat limits.

    `fail_stale_trials` reads the interval and grace period from the storage object, but
    studies differ in theirs; each trial it fails is handed to `on_stale` (its trial id).
    """
    view = RDBStorage.__new__(RDBStorage)
    view.__dict__.update(storage.__dict__)
    view.heartbeat_interval = heartbeat_seconds
    view.grace_period = grace_seconds
    view.heartbeat_stale_trial_callback = lambda _study, trial: on_stale(trial._trial_id)
    view.failed_trial_callback = view.heartbeat_stale_trial_callback
    return view
