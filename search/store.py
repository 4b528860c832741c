"""The study store: Optuna's RDB storage is the trial engine; our tables index it for queries.

One database URL (`--db` / $DSE_DB, default sqlite:///dse.db) holds both. Every change of a
trial's state is an Optuna state transition first (`set_trial_state_values` locks the trial
row, so exactly one caller wins it) and a conditional update of our `dse_trials` row second:

- claim: WAITING → RUNNING is won by one worker only (Optuna returns False to the others);
- finish: only while our row says RUNNING and owned by this worker, and Optuna refuses to
  complete a trial the reaper already failed, so a result from a lost worker whose trial was
  retried is dropped, never counted twice;
- reap: Optuna's `fail_stale_trials` fails RUNNING trials without a heartbeat for the grace
  period; each is retried as a new WAITING trial (attempt + 1) up to `limits.max_attempts`,
  then left failed with the reason.

SQLite: WAL, a busy timeout and `BEGIN IMMEDIATE` on the writing engine (a deferred
transaction that reads and then writes fails at once with "database is locked" when another
process wrote in between; an immediate one waits its turn), and a separate plain engine for
reads, which WAL never blocks.
"""

from __future__ import annotations

import logging
import math
import os
import random
import uuid
import warnings
from datetime import UTC, datetime
from typing import Any

import optuna
from optuna.exceptions import StorageInternalError, UpdateFinishedTrialError
from optuna.storages import RDBStorage
from optuna.trial import TrialState, create_trial
from sqlalchemy import Engine, create_engine, delete, event, func, insert, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import sessionmaker

from search import fidelity, migrations
from search.learning import learned
from search.models import Claim, StudyRecord, StudyRow, TrialRow, new_trial_values, utcnow
from search.spec import StudySpec
from search.store_reads import Reads, StudyNotFound
from search.store_recovery import Recovery

DEFAULT_URL = "sqlite:///dse.db"
DB_ENV = "DSE_DB"
# Errors that mean "the database is unreachable or busy now": retry, don't crash.
TRANSIENT_ERRORS = (OperationalError, InterfaceError, StorageInternalError, TimeoutError)
SQLITE_BUSY_MS = 60_000
log = logging.getLogger("dse.store")


def default_url() -> str:
    """$DSE_DB, else sqlite:///dse.db."""
    return os.environ.get(DB_ENV) or DEFAULT_URL


def normalize_url(url: str) -> str:
    """The URL with a PostgreSQL driver that is installed (psycopg 3, else psycopg2)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        try:
            import psycopg  # noqa: F401  (SQLAlchemy 2.1's default driver)
        except ImportError:
            return parsed.set(drivername="postgresql+psycopg2").render_as_string(
                hide_password=False
            )
    return url


def _sqlite_connect(dbapi_connection, _record) -> None:
    dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_MS}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _sqlite_begin_immediate(connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_begin_deferred(connection) -> None:
    connection.exec_driver_sql("BEGIN")


class Store(Reads, Recovery):
    """Studies and trials in one database: Optuna's storage plus the dse tables."""

    def __init__(self, url: str | None = None, heartbeat_interval: int = 10) -> None:
        self.url = normalize_url(url or default_url())
        backend = make_url(self.url).get_backend_name()
        self.sqlite = backend == "sqlite"
        if self.sqlite and make_url(self.url).database in (None, "", ":memory:"):
            raise ValueError("db: in-memory SQLite cannot be shared by workers; use a file URL")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
        if self.sqlite:
            engine_kwargs = {"connect_args": {"timeout": SQLITE_BUSY_MS / 1000}}
        with migrations.schema_lock(self.url), warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.optuna = RDBStorage(
                self.url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_interval
            )
            engine = self.optuna.engine
            if self.sqlite:  # from now on every connection gets the pragmas and BEGIN IMMEDIATE
                engine.dispose()
                event.listen(engine, "connect", _sqlite_connect)
                event.listen(engine, "begin", _sqlite_begin_immediate)
            migrations.upgrade(engine)
        self._write = sessionmaker(engine, expire_on_commit=False)
        self._read = sessionmaker(self._read_engine(engine), expire_on_commit=False)
        self._specs: dict[int, StudySpec] = {}

    def _read_engine(self, engine: Engine) -> Engine:
        if not self.sqlite:
            return engine
        reader = create_engine(self.url, connect_args={"timeout": SQLITE_BUSY_MS / 1000})
        event.listen(reader, "connect", _sqlite_connect)
        event.listen(reader, "begin", _sqlite_begin_deferred)
        return reader

    def close(self) -> None:
        """Release every pooled connection."""
        self.optuna.remove_session()
        self.optuna.engine.dispose()
        self._read.kw["bind"].dispose()

    # --- studies ----------------------------------------------------------------------

    def create_study(self, spec: StudySpec | dict) -> int:
        """Sample every network of every space, store the study, enqueue level 0; its id."""
        from anynet.sampling import sample  # the sampler is only needed here

        if not isinstance(spec, StudySpec):
            spec = StudySpec.model_validate(spec)
        per_space: dict[str, list] = {}
        sampling: dict[str, dict] = {}
        for i, (label, space_spec) in enumerate(zip(spec.space_names(), spec.spaces, strict=True)):
            try:
                result = sample(
                    space_spec.resolve(),
                    spec.samples,
                    seed=spec.seed,
                    bounds=spec.bounds(),
                    resolution=spec.dataset.resolution,
                    num_classes=spec.dataset.num_classes,
                    in_channels=3,
                )
            except ValueError as e:
                raise ValueError(f"spaces[{i}] ({label}): {e}") from e
            per_space[label] = result.samples
            sampling[label] = {"draws": result.draws, "acceptance": result.acceptance}
        optuna_name = f"dse-{uuid.uuid4().hex}"
        with self._write() as session, session.begin():
            row = StudyRow(
                name=spec.name,
                optuna_name=optuna_name,
                spec=spec.model_dump(mode="json"),
                sampling=sampling,
                status="creating",
            )
            session.add(row)
        try:
            oid = self.optuna.create_new_study([optuna.study.StudyDirection.MINIMIZE], optuna_name)
            self.optuna.set_study_user_attr(oid, "dse_study_id", row.id)
            rows = []
            for space, index, s in fidelity.interleave(per_space):
                net, cx = s.spec.to_dict(), dict(s.complexity)
                values = new_trial_values(row.id, space, index, 0, spec.fidelities[0], 1, net, cx)
                values["sampled"] = dict(s.params)
                values["trial_id"] = self._new_optuna_trial(oid, values)
                rows.append(values)
            with self._write() as session, session.begin():
                session.execute(insert(TrialRow), rows)
                session.execute(
                    update(StudyRow)  # not if it was cancelled while being created
                    .where(StudyRow.id == row.id, StudyRow.status == "creating")
                    .values(status="running", optuna_study_id=oid, updated_at=utcnow())
                )
        except BaseException:
            self._drop_study(row.id, optuna_name)
            raise
        return row.id

    def _drop_study(self, study_id: int, optuna_name: str) -> None:
        try:
            oid = self.optuna.get_study_id_from_name(optuna_name)
            self.optuna.delete_study(oid)
        except KeyError:
            pass
        with self._write() as session, session.begin():
            session.execute(delete(TrialRow).where(TrialRow.study_id == study_id))
            session.execute(delete(StudyRow).where(StudyRow.id == study_id))

    def _new_optuna_trial(self, optuna_study_id: int, values: dict) -> int:
        attrs = {k: values[k] for k in ("space", "sample", "level", "epochs", "attempt")}
        attrs.update(
            dse_study_id=values["study_id"],
            net=values["net"],
            sampled=values.get("sampled", {}),
            complexity={k: values[k] for k in ("flops", "params", "acts")},
        )
        template = create_trial(state=TrialState.WAITING, user_attrs=attrs)
        return self.optuna.create_new_trial(optuna_study_id, template_trial=template)

    def list_studies(self) -> list[StudyRecord]:
        """Every study, newest first."""
        with self._read() as session:
            rows = session.scalars(select(StudyRow).order_by(StudyRow.id.desc())).all()
        return [self._record(r) for r in rows]

    def get_study(self, study_id: int) -> StudyRecord:
        """One study; StudyNotFound if there is none with this id."""
        with self._read() as session:
            row = session.get(StudyRow, study_id)
        if row is None:
            raise StudyNotFound(f"study {study_id}: no such study")
        return self._record(row)

    def _record(self, row: StudyRow) -> StudyRecord:
        return StudyRecord(
            id=row.id,
            name=row.name,
            status=row.status,
            spec=self._spec_of(row.id, row.spec),
            created=_aware(row.created_at),
            updated=_aware(row.updated_at),
            optuna_name=row.optuna_name,
            sampling=row.sampling or {},
        )

    def _spec_of(self, study_id: int, data: dict | None = None) -> StudySpec:
        if study_id not in self._specs:
            if data is None:
                with self._read() as session:
                    data = session.scalar(select(StudyRow.spec).where(StudyRow.id == study_id))
                if data is None:
                    raise StudyNotFound(f"study {study_id}: no such study")
            self._specs[study_id] = StudySpec.model_validate(data)
        return self._specs[study_id]

    def cancel_study(self, study_id: int) -> bool:
        """Cancel a study: waiting trials are cancelled, running ones stop at their next epoch."""
        self.get_study(study_id)
        now = utcnow()
        with self._write() as session, session.begin():
            changed = session.execute(
                update(StudyRow)
                .where(StudyRow.id == study_id, StudyRow.status.in_(("creating", "running")))
                .values(status="cancelled", updated_at=now)
            ).rowcount
            ids = session.scalars(
                update(TrialRow)
                .where(TrialRow.study_id == study_id, TrialRow.status == "waiting")
                .values(
                    status="cancelled", reason="study cancelled", finished_at=now, updated_at=now
                )
                .returning(TrialRow.trial_id)
            ).all()
        for trial_id in ids:  # a claimer that won WAITING → RUNNING meanwhile fails it too
            self._fail_quietly(trial_id)
        return bool(changed)

    def _fail_quietly(self, trial_id: int) -> None:
        try:
            self.optuna.set_trial_state_values(trial_id, TrialState.FAIL)
        except UpdateFinishedTrialError:
            pass

    # --- the trial life cycle (workers) -----------------------------------------------

    def claim(self, worker: str, study_ids: list[int] | None = None) -> Claim | None:
        """Pop one waiting trial of a running study for `worker` (atomic through Optuna)."""
        query = (
            select(TrialRow.trial_id)
            .join(StudyRow, StudyRow.id == TrialRow.study_id)
            .where(StudyRow.status == "running", TrialRow.status == "waiting")
            .order_by(TrialRow.trial_id)
            .limit(16)
        )
        if study_ids:
            query = query.where(TrialRow.study_id.in_(study_ids))
        with self._read() as session:
            candidates = list(session.scalars(query))
        # Try the oldest first, but not all workers the same one: fewer lost races.
        head = candidates[:4]
        random.shuffle(head)
        for trial_id in head + candidates[4:]:
            # Heartbeat first: a trial handed back earlier has an old one, and must not look
            # stale to a reaper in the instant after it turns RUNNING (only RUNNING is reaped).
            self.optuna.record_heartbeat(trial_id)
            try:
                if not self.optuna.set_trial_state_values(trial_id, TrialState.RUNNING):
                    continue
            except UpdateFinishedTrialError:
                continue
            now = utcnow()
            with self._write() as session, session.begin():
                row = session.scalars(
                    update(TrialRow)
                    .where(TrialRow.trial_id == trial_id, TrialRow.status == "waiting")
                    .values(status="running", worker=worker, started_at=now, updated_at=now)
                    .returning(TrialRow)
                ).one_or_none()
            if row is None:  # cancelled between our read and our transition
                self._fail_quietly(trial_id)
                continue
            return self._claim_of(row, worker)
        return None

    def _claim_of(self, row: TrialRow, worker: str) -> Claim:
        spec = self._spec_of(row.study_id)
        return Claim(
            trial_id=row.trial_id,
            study_id=row.study_id,
            worker=worker,
            space=row.space,
            sample=row.sample,
            level=row.level,
            epochs=row.epochs,
            attempt=row.attempt,
            net=row.net,
            dataset=spec.dataset,
            recipe=spec.recipe,
            seed=spec.seed + row.sample,
            limits=spec.limits,
        )

    def heartbeat(self, claim: Claim) -> None:
        """Record that the worker of `claim` is alive (Optuna's heartbeat table)."""
        self.optuna.record_heartbeat(claim.trial_id)

    def report_epoch(self, claim: Claim, metrics: dict) -> bool:
        """Store one epoch's metrics; False when the trial should stop (cancelled or lost)."""
        epoch = int(metrics.get("epoch", len(claim.history) + 1))
        val = metrics.get("val_error")
        val = float(val) if val is not None and math.isfinite(float(val)) else None
        claim.history.append({k: _plain(v) for k, v in metrics.items()})
        if val is not None:
            try:
                self.optuna.set_trial_intermediate_value(claim.trial_id, epoch, val)
            except UpdateFinishedTrialError:
                return False
        with self._write() as session, session.begin():
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
        return bool(owned) and status == "running"

    def finish(self, claim: Claim, result: Any) -> bool:
        """Record a TrainResult, once: False if the trial is no longer this worker's."""
        status, state, values, reason = _outcome(result)
        with self._read() as session:
            owned = session.scalar(select(func.count()).where(*_owned(claim)))
        if not owned:
            return False
        try:
            if state == TrialState.FAIL:  # kept for crash repair (Recovery._reconcile)
                outcome = {"status": status, "reason": reason}
                self.optuna.set_trial_system_attr(claim.trial_id, "dse_outcome", outcome)
            self.optuna.set_trial_state_values(claim.trial_id, state, values)
        except UpdateFinishedTrialError:
            return False  # reaped and retried meanwhile: the retry's result counts
        now = utcnow()
        chance = _finite(getattr(result, "chance_error", None))
        val_size = getattr(result, "val_size", None) or None
        verdict = learned(values[0], chance, val_size) if values else None
        with self._write() as session, session.begin():
            session.execute(
                update(TrialRow)
                .where(*_owned(claim))
                .values(
                    status=status,
                    error=values[0] if values else None,
                    test_error=_finite(getattr(result, "test_error", None)),
                    reason=reason,
                    seconds=_finite(getattr(result, "seconds", None)),
                    images_per_s=_finite(getattr(result, "images_per_s", None)),
                    chance_error=chance,
                    val_size=val_size,
                    not_learned=None if verdict is None else not verdict,
                    recipe=getattr(result, "recipe", None),
                    history=list(claim.history),
                    finished_at=now,
                    updated_at=now,
                )
            )
        self.settle(claim.study_id)
        return True

    def release(self, claim: Claim) -> bool:
        """Hand a trial back untrained (worker stopping): it becomes WAITING again."""
        with self._read() as session:
            if not session.scalar(select(func.count()).where(*_owned(claim))):
                return False
        try:
            self.optuna.set_trial_state_values(claim.trial_id, TrialState.WAITING)
        except UpdateFinishedTrialError:
            return False
        with self._write() as session, session.begin():
            session.execute(
                update(TrialRow)
                .where(*_owned(claim))
                .values(
                    status="waiting",
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
        TrialRow.status == "running",
        TrialRow.worker == claim.worker,
    )


def _outcome(result: Any) -> tuple[str, TrialState, list[float] | None, str | None]:
    """(our status, Optuna state, values, reason) of a TrainResult."""
    status = getattr(result, "status", "failed")
    message = getattr(result, "message", "") or ""
    val = _finite(getattr(result, "val_error", None))
    if status == "done" and val is not None:
        return "done", TrialState.COMPLETE, [val], None
    if status in ("done", "diverged"):
        return "diverged", TrialState.FAIL, None, message or "training diverged"
    if status == "cancelled":
        return "cancelled", TrialState.FAIL, None, message or "study cancelled"
    if status == "oom":
        return "failed", TrialState.FAIL, None, f"out of memory: {message}".rstrip(": ")
    return "failed", TrialState.FAIL, None, message or f"training ended with status {status}"


def _finite(x: Any) -> float | None:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _plain(v: Any) -> Any:
    """A JSON-able scalar (tensors and numpy numbers to float)."""
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    try:
        return float(v)
    except (TypeError, ValueError):
        return str(v)


def _aware(t: datetime) -> datetime:
    """SQLite hands timestamps back naive; they were written in UTC."""
    return t.replace(tzinfo=UTC) if t is not None and t.tzinfo is None else t
