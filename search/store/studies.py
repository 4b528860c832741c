"""Studies: the dse_studies rows and their life cycle (creating → running → done, cancelled,
failed), each study paired with one Optuna study holding its trials.

Creating a study is two steps so that nobody waits for sampling: `begin` stores the spec
with status `creating` (fast, validated), and search.store.creation samples and stores the
trials, reporting progress here (`report_creation`) and finally `mark_running`. A creation
that fails ends `failed` with the reason (`fail`), its trials removed; never silently gone.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

import optuna
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from search.spec.status import StudyStatus, TrialStatus
from search.spec.study import StudySpec, check_dataset_root
from search.store import optuna_rdb
from search.store.db import Database
from search.store.models import CreationProgress, StudyRecord, StudyRow, TrialRow, utcnow

# failed trials of the lowest level, none ended otherwise, that fail the study before the rest
FAIL_FAST = 10


class StudyNotFound(LookupError):
    """No study with this id."""


class ChildExists(LookupError):
    """A child of this parent already tries this suggestion: `study_id` is that child."""

    def __init__(self, study_id: int) -> None:
        super().__init__(f"study {study_id} already tries this suggestion")
        self.study_id = study_id


class Studies:
    """Create, read, cancel and fail studies; the spec of each, parsed once."""

    def __init__(self, db: Database) -> None:
        self.db = db
        # study id → (its Optuna study's name, spec); the name tells a discarded study from
        # a new one that reused its id (SQLite reuses the largest id after a delete)
        self._specs: dict[int, tuple[str | None, StudySpec]] = {}

    # --- creation ---------------------------------------------------------------------

    def begin(
        self, spec: StudySpec | dict, parent_id: int | None = None, suggestion: dict | None = None
    ) -> int:
        """Store a validated spec as a `creating` study with an empty Optuna study; its id.

        A child of the refine loop (search.refine) also records its parent and suggestion.
        """
        if not isinstance(spec, StudySpec):
            spec = StudySpec.model_validate(spec)
        check_dataset_root(spec)  # else every trial fails in the workers
        unique = uuid.uuid4().hex
        progress = CreationProgress(spaces=len(spec.spaces))
        with self.db.write() as session, session.begin():
            if parent_id is not None and (suggestion or {}).get("id"):
                self._refuse_second_child(session, parent_id, suggestion["id"])
            row = StudyRow(
                name=spec.name,
                optuna_name=f"dse-{unique}",
                spec=spec.model_dump(mode="json"),
                sampling={},
                status=StudyStatus.CREATING.value,
                creation=progress.to_json(),
                parent_id=parent_id,
                suggestion=suggestion,
            )
            session.add(row)
            session.flush()  # the id, for the readable name
            optuna_name = row.optuna_name = optuna_study_name(row.id, spec.name, unique)
        try:
            oid = self.db.optuna.create_new_study(
                [optuna.study.StudyDirection.MINIMIZE], optuna_name
            )
            self.db.optuna.set_study_user_attr(oid, "dse_study_id", row.id)
            with self.db.write() as session, session.begin():
                session.execute(
                    update(StudyRow).where(StudyRow.id == row.id).values(optuna_study_id=oid)
                )
        except BaseException:
            self.discard(row.id)
            raise
        self._specs[row.id] = (optuna_name, spec)
        return row.id

    def _refuse_second_child(self, session, parent_id: int, suggestion_id: str) -> None:
        """ChildExists if a child of the parent already tries this suggestion (not failed).

        Checked under the parent row's lock, in the transaction that inserts the child, so
        two refine requests racing for one suggestion create one child, not two.
        """
        session.execute(select(StudyRow.id).where(StudyRow.id == parent_id).with_for_update())
        siblings = session.execute(
            select(StudyRow.id, StudyRow.suggestion)
            .where(StudyRow.parent_id == parent_id, StudyRow.status != StudyStatus.FAILED)
            .order_by(StudyRow.id.desc())
        ).all()
        for sibling_id, record in siblings:
            if (record or {}).get("id") == suggestion_id:
                raise ChildExists(sibling_id)

    def report_creation(
        self, study_id: int, progress: CreationProgress, sampling: dict | None = None, session=None
    ) -> bool:
        """Record creation progress (also the creation's heartbeat); False unless creating."""
        values: dict = {"creation": progress.to_json(), "updated_at": utcnow()}
        if sampling is not None:
            values["sampling"] = sampling
        query = (
            update(StudyRow)
            .where(StudyRow.id == study_id, StudyRow.status == StudyStatus.CREATING)
            .values(**values)
        )
        if session is not None:
            return bool(session.execute(query).rowcount)
        with self.db.write() as session, session.begin():
            return bool(session.execute(query).rowcount)

    def mark_running(self, study_id: int) -> bool:
        """creating → running (its trials are all stored); False if it was cancelled meanwhile."""
        with self.db.write() as session, session.begin():
            return bool(
                session.execute(
                    update(StudyRow)
                    .where(StudyRow.id == study_id, StudyRow.status == StudyStatus.CREATING)
                    .values(status=StudyStatus.RUNNING.value, updated_at=utcnow())
                ).rowcount
            )

    def fail(self, study_id: int, reason: str, stale_before: datetime | None = None) -> bool:
        """Fail a `creating` study with the reason and remove its trials; False if not creating.

        With `stale_before`, only if its creation has not reported since then.
        """
        where = [StudyRow.id == study_id, StudyRow.status == StudyStatus.CREATING]
        if stale_before is not None:
            where.append(StudyRow.updated_at < stale_before)
        with self.db.write() as session, session.begin():
            failed = session.execute(
                update(StudyRow)
                .where(*where)
                .values(status=StudyStatus.FAILED.value, reason=reason[:2000], updated_at=utcnow())
                .returning(StudyRow.optuna_name)
            ).one_or_none()
        if failed is None:
            return False
        self._drop_trials(study_id, failed[0])
        return True

    def discard(self, study_id: int) -> None:
        """Remove a study entirely (a creation that failed while its caller waited)."""
        with self.db.read() as session:
            optuna_name = session.scalar(
                select(StudyRow.optuna_name).where(StudyRow.id == study_id)
            )
        self._drop_trials(study_id, optuna_name)
        with self.db.write() as session, session.begin():
            session.execute(delete(StudyRow).where(StudyRow.id == study_id))
        self._specs.pop(study_id, None)

    def _drop_trials(self, study_id: int, optuna_name: str | None) -> None:
        """Delete the study's dse_trials rows and its Optuna study (trials and all)."""
        try:
            oid = (
                None if optuna_name is None else self.db.optuna.get_study_id_from_name(optuna_name)
            )
        except KeyError:
            oid = None
        with self.db.write() as session, session.begin():
            session.execute(delete(TrialRow).where(TrialRow.study_id == study_id))
            session.execute(
                update(StudyRow).where(StudyRow.id == study_id).values(optuna_study_id=None)
            )
            if oid is not None:
                optuna_rdb.delete_study(session, oid)

    # --- reads --------------------------------------------------------------------------

    def list(self) -> list[StudyRecord]:
        """Every study, newest first."""
        with self.db.read() as session:
            rows = session.scalars(select(StudyRow).order_by(StudyRow.id.desc())).all()
        return [self._record(r) for r in rows]

    def count(self) -> int:
        """How many studies there are (one indexed count: cheap enough for a health probe)."""
        with self.db.read() as session:
            return int(session.scalar(select(func.count()).select_from(StudyRow)))

    def get(self, study_id: int) -> StudyRecord:
        """One study; StudyNotFound if there is none with this id."""
        with self.db.read() as session:
            row = session.get(StudyRow, study_id)
        if row is None:
            raise StudyNotFound(f"study {study_id}: no such study")
        return self._record(row)

    def lineage(self, study_id: int) -> list[dict]:
        """The study's ancestors, root first ([{id, name}]; A → B → C for C is [A, B])."""
        out: list[dict] = []
        seen = {study_id}
        with self.db.read() as session:
            parent = session.scalar(select(StudyRow.parent_id).where(StudyRow.id == study_id))
            while parent is not None and parent not in seen:  # a cycle cannot be made; stay safe
                seen.add(parent)
                row = session.execute(
                    select(StudyRow.id, StudyRow.name, StudyRow.parent_id).where(
                        StudyRow.id == parent
                    )
                ).one_or_none()
                if row is None:
                    break
                out.append({"id": row.id, "name": row.name})
                parent = row.parent_id
        return out[::-1]

    def children(self, study_id: int) -> list[dict]:
        """The studies that refine this one, oldest first ([{id, name, status, suggestion}])."""
        with self.db.read() as session:
            rows = session.execute(
                select(StudyRow.id, StudyRow.name, StudyRow.status, StudyRow.suggestion)
                .where(StudyRow.parent_id == study_id)
                .order_by(StudyRow.id)
            ).all()
        return [
            {
                "id": r.id,
                "name": r.name,
                "status": r.status,
                "suggestion": (r.suggestion or {}).get("id"),
            }
            for r in rows
        ]

    def child_trying(self, study_id: int, suggestion_id: str) -> int | None:
        """The newest child of the study that tries this suggestion and did not fail, if any."""
        for child in reversed(self.children(study_id)):
            if child["suggestion"] == suggestion_id and child["status"] != StudyStatus.FAILED:
                return child["id"]
        return None

    def status(self, study_id: int) -> StudyStatus:
        """The study's status; StudyNotFound if there is none."""
        with self.db.read() as session:
            status = session.scalar(select(StudyRow.status).where(StudyRow.id == study_id))
        if status is None:
            raise StudyNotFound(f"study {study_id}: no such study")
        return StudyStatus(status)

    def spec(self, study_id: int, row: StudyRow | None = None) -> StudySpec:
        """The study's spec (parsed once per process; `row`, if read already, is used)."""
        cached = self._specs.get(study_id)
        if cached is not None and (row is None or cached[0] == row.optuna_name):
            return cached[1]
        if row is None:
            with self.db.read() as session:
                row = session.get(StudyRow, study_id)
            if row is None:
                raise StudyNotFound(f"study {study_id}: no such study")
        spec = StudySpec.model_validate(row.spec)
        self._specs[study_id] = (row.optuna_name, spec)
        return spec

    def _record(self, row: StudyRow) -> StudyRecord:
        return StudyRecord(
            id=row.id,
            name=row.name,
            status=StudyStatus(row.status),
            spec=self.spec(row.id, row),
            created=aware(row.created_at),
            updated=aware(row.updated_at),
            optuna_name=row.optuna_name,
            sampling=row.sampling or {},
            reason=row.reason,
            creation=CreationProgress.from_json(row.creation),
            parent_id=row.parent_id,
            suggestion=row.suggestion,
        )

    # --- cancelling ---------------------------------------------------------------------

    def cancel(self, study_id: int) -> bool:
        """Cancel a study: waiting trials are cancelled, running ones stop at their next epoch.

        One transaction: the study row (the lock TrialWriter takes, so trials added later
        are created cancelled), our waiting rows and their Optuna trials (failed in bulk).
        """
        self.get(study_id)
        return self._stop(study_id, StudyStatus.CANCELLED, None, "study cancelled")

    def _stop(
        self,
        study_id: int,
        status: StudyStatus,
        reason: str | None,
        why: str,
        session: Session | None = None,
    ) -> bool:
        """A creating or running study to `status` (with `reason`); its waiting trials are
        cancelled (`why`), running ones stop at their next epoch report. False if finished.

        In the caller's transaction if `session` is given, else in one of its own."""
        if session is None:
            with self.db.write() as session, session.begin():
                return self._stop(study_id, status, reason, why, session)
        now = utcnow()
        reason_value = {} if reason is None else {"reason": reason[:2000]}
        changed = session.execute(
            update(StudyRow)
            .where(
                StudyRow.id == study_id,
                StudyRow.status.in_((StudyStatus.CREATING, StudyStatus.RUNNING)),
            )
            .values(status=status.value, updated_at=now, **reason_value)
        ).rowcount
        if not changed:
            return False
        ids = session.scalars(
            update(TrialRow)
            .where(TrialRow.study_id == study_id, TrialRow.status == TrialStatus.WAITING)
            .values(
                status=TrialStatus.CANCELLED.value,
                reason=why[:2000],
                finished_at=now,
                updated_at=now,
            )
            .returning(TrialRow.trial_id)
        ).all()
        # a claimer that won WAITING → RUNNING meanwhile finds our row cancelled and
        # fails its trial itself; these are failed whether WAITING or RUNNING
        optuna_rdb.fail_trials(session, ids)
        return True

    # --- a study whose trials all fail --------------------------------------------------

    def fail_if_all_failed(self, study_id: int, session: Session) -> bool:
        """Fail a running study, keeping its trials, when its lowest level learned nothing
        (`learned_nothing`: a spec every network fails on, e.g. a dataset a worker cannot
        read). The reason names the commonest failure; True if the study was failed now.

        Called by promotion's settle in its transaction, under the study row's lock, so a
        racing settle cannot call the study done first."""
        counts = dict(
            session.execute(
                select(TrialRow.status, func.count())
                .where(
                    TrialRow.study_id == study_id,
                    TrialRow.level == 0,
                    TrialRow.retried_as.is_(None),
                )
                .group_by(TrialRow.status)
            ).all()
        )
        if not learned_nothing(counts):
            return False
        failures = self.failures(study_id, level=0, session=session)
        failed = counts[TrialStatus.FAILED]
        top = failures[0]
        left = sum(counts.get(s, 0) for s in TrialStatus.unfinished())
        which = f"all {sum(counts.values())}" if not left else f"the first {failed}"
        reason = (
            f"{which} trials of the lowest level failed, e.g. {top['reason']} "
            f"({top['trials']} of {failed}); fix the spec and create the study again"
        )
        why = "study failed: " + reason
        return self._stop(study_id, StudyStatus.FAILED, reason, why, session)

    def failures(
        self, study_id: int, level: int | None = None, most: int = 5, session: Session | None = None
    ) -> list[dict]:
        """The reasons of the study's failed trials, commonest first: [{reason, trials}]
        (trials retried after a lost worker are not counted; at most `most` reasons)."""
        where = [
            TrialRow.study_id == study_id,
            TrialRow.status == TrialStatus.FAILED,
            TrialRow.retried_as.is_(None),
        ]
        if level is not None:
            where.append(TrialRow.level == level)
        query = (
            select(TrialRow.reason, func.count().label("n"))
            .where(*where)
            .group_by(TrialRow.reason)
            .order_by(func.count().desc(), TrialRow.reason)
        )
        if session is None:
            with self.db.read() as session:
                rows = session.execute(query).all()
        else:
            rows = session.execute(query).all()
        out = [{"reason": r or "no reason recorded", "trials": int(n)} for r, n in rows[:most]]
        if len(rows) > most:
            out.append({"reason": "other reasons", "trials": int(sum(n for _, n in rows[most:]))})
        return out


def learned_nothing(level0: Mapping[str, int]) -> bool:
    """From level 0's trial counts by status: every trial failed, or the first FAIL_FAST did
    and none ended any other way (the study should stop and say why)."""
    failed = level0.get(TrialStatus.FAILED, 0)
    left = sum(level0.get(s, 0) for s in TrialStatus.unfinished())
    ended_otherwise = sum(level0.values()) - failed - left
    return failed > 0 and not ended_otherwise and (not left or failed >= FAIL_FAST)


def optuna_study_name(study_id: int, name: str, unique: str) -> str:
    """The Optuna study's name, readable in optuna-dashboard: `dse-<id>-<name>-<8 hex>`.

    The name keeps letters, digits, '.', '_' and '-' (others become '-', at most 60); the
    hex suffix keeps it unique where a database reuses the id of a discarded study."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-")[:60] or "study"
    return f"dse-{study_id}-{slug}-{unique[:8]}"


def aware(t: datetime) -> datetime:
    """SQLite hands timestamps back naive; they were written in UTC."""
    return t.replace(tzinfo=UTC) if t is not None and t.tzinfo is None else t
