"""Reads for the API, the CLI and the analysis, aggregated and paged in the database.

Nothing here writes. Counts are GROUP BY queries and pages are LIMIT/OFFSET over
`dse_trials` (see search.store.models for why that index exists next to Optuna's tables);
retried attempts are left out unless asked for, so each network counts once per level.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from sqlalchemy import func, select

from search.spec.status import StudyStatus, TrialStatus
from search.store.db import Database
from search.store.models import StudyRow, TrialRow
from search.store.studies import Studies, StudyNotFound

FRAME_COLUMNS = (
    "trial_id",
    "space",
    "sample",
    "level",
    "epochs",
    "status",
    "error",
    "flops",
    "params",
    "acts",
    "depth",
    "attempt",
    "worker",
    "test_error",
    "seconds",
    "images_per_s",
    "reason",
    "chance_error",
    "val_size",
    "not_learned",
    "reference",
    "threads",
    "device",
)


def status_grid(db: Database, study_id: int) -> dict[tuple[str, int], dict[str, int]]:
    """Trial counts by (space, level) and status, retried attempts left out."""
    query = (
        select(TrialRow.space, TrialRow.level, TrialRow.status, func.count())
        .where(TrialRow.study_id == study_id, TrialRow.retried_as.is_(None))
        .group_by(TrialRow.space, TrialRow.level, TrialRow.status)
    )
    grid: dict[tuple[str, int], dict[str, int]] = {}
    with db.read() as session:
        for space, level, status, n in session.execute(query):
            grid.setdefault((space, level), {})[status] = n
    return grid


def finished_speeds(db: Database, most: int) -> tuple[list[tuple], dict[int, dict]]:
    """The latest `most` done trials' (net, images/s, study id), newest first; their specs."""
    query = (
        select(TrialRow.net, TrialRow.images_per_s, TrialRow.study_id)
        .where(TrialRow.status == TrialStatus.DONE, TrialRow.images_per_s > 0)
        .order_by(TrialRow.trial_id.desc())  # the latest by the primary key's index
        .limit(most)
    )
    with db.read() as session:
        rows = [tuple(r) for r in session.execute(query)]
        ids = {study_id for _, _, study_id in rows}
        specs = dict(
            session.execute(select(StudyRow.id, StudyRow.spec).where(StudyRow.id.in_(ids))).all()
        )
    return rows, specs


class Reads:
    """Progress, pages, counts, the trial frame, the version token, `has_unfinished` and the
    finished trials' speeds (search.estimate prices with them)."""

    def __init__(self, db: Database, studies: Studies) -> None:
        self.db, self.studies = db, studies

    def _not_learned_grid(self, study_id: int) -> dict[tuple[str, int], int]:
        query = (
            select(TrialRow.space, TrialRow.level, func.count())
            .where(
                TrialRow.study_id == study_id,
                TrialRow.retried_as.is_(None),
                TrialRow.not_learned.is_(True),
            )
            .group_by(TrialRow.space, TrialRow.level)
        )
        with self.db.read() as session:
            return {(space, level): n for space, level, n in session.execute(query)}

    def ran_with(self, study_id: int) -> dict[str, dict]:
        """How many done trials (retried attempts left out) ran with each thread count,
        precision and device: {"threads": {1: 12}, "precision": {"fp32": 12}, "device": …}."""
        settings = {
            "threads": TrialRow.threads,
            "precision": TrialRow.recipe["precision"].as_string(),  # as it ran
            "device": TrialRow.device,
        }
        done = (
            TrialRow.study_id == study_id,
            TrialRow.retried_as.is_(None),
            TrialRow.status == TrialStatus.DONE,
        )
        out: dict[str, dict] = {}
        with self.db.read() as session:
            for name, column in settings.items():
                query = select(column, func.count()).where(*done, column.is_not(None))
                out[name] = dict(session.execute(query.group_by(column)).all())
        return out

    def progress(self, study_id: int) -> dict:
        """Trial counts per space and fidelity level (waiting, running, done, failed, …).

        `not_learned` counts the done trials whose error is not clearly below chance
        (search.spec.learning); they are among `done`, not apart from it.
        """
        study = self.studies.get(study_id)
        grid = status_grid(self.db, study_id)
        at_chance = self._not_learned_grid(study_id)
        totals = dict.fromkeys(TrialStatus, 0)

        def levels(name: str) -> list[dict]:
            out = []
            for level, epochs in enumerate(study.spec.fidelities):
                counts = grid.get((name, level), {})
                entry = {"level": level, "epochs": epochs}
                entry.update({s.value: counts.get(s, 0) for s in TrialStatus})
                entry["total"] = sum(counts.values())
                entry["not_learned"] = at_chance.get((name, level), 0)
                for s in TrialStatus:
                    totals[s] += entry[s]
                out.append(entry)
            return out

        spaces = {space: levels(space) for space in study.spec.space_names()}
        # the references get their own rows: never a space's
        references = {label: levels(label) for label in study.spec.reference_labels()}
        body = {s.value: n for s, n in totals.items()}
        body["total"] = sum(totals.values())
        body["not_learned"] = sum(at_chance.values())
        return {
            "study_id": study_id,
            "status": study.status.value,
            "reason": study.reason,
            "spaces": spaces,
            "references": references,
            "totals": body,
            "failures": self.studies.failures(study_id),
            "ran_with": self.ran_with(study_id),
        }

    def _filtered(self, study_id: int, space, level, status, include_retried: bool):
        conds = [TrialRow.study_id == study_id]
        if not include_retried:
            conds.append(TrialRow.retried_as.is_(None))
        if space is not None:
            conds.append(TrialRow.space == space)
        if level is not None:
            conds.append(TrialRow.level == level)
        if status is not None:
            conds.append(TrialRow.status == status)
        return conds

    def trials(
        self,
        study_id: int,
        offset: int = 0,
        limit: int = 100,
        space: str | None = None,
        level: int | None = None,
        status: str | None = None,
        include_retried: bool = False,
    ) -> list[dict]:
        """One page of trials in enqueue order, as JSON-able dicts."""
        conds = self._filtered(study_id, space, level, status, include_retried)
        query = select(TrialRow).where(*conds).order_by(TrialRow.trial_id)
        with self.db.read() as session:
            rows = session.scalars(query.offset(max(0, offset)).limit(max(0, limit))).all()
        return [_trial_dict(r) for r in rows]

    def count(
        self,
        study_id: int,
        space: str | None = None,
        level: int | None = None,
        status: str | None = None,
        include_retried: bool = False,
    ) -> int:
        """How many trials match (the same filters as `trials`)."""
        conds = self._filtered(study_id, space, level, status, include_retried)
        with self.db.read() as session:
            return int(session.scalar(select(func.count()).select_from(TrialRow).where(*conds)))

    def trial_frame(self, study_id: int) -> pd.DataFrame:
        """One row per trial (retried attempts left out): what the analysis reads."""
        self.studies.get(study_id)
        columns = [getattr(TrialRow, c) for c in FRAME_COLUMNS]
        query = (
            select(*columns, TrialRow.recipe, TrialRow.net, TrialRow.sampled)
            .where(TrialRow.study_id == study_id, TrialRow.retried_as.is_(None))
            .order_by(TrialRow.trial_id)
        )
        with self.db.read() as session:
            rows = session.execute(query).all()
        frame = pd.DataFrame([r[: len(FRAME_COLUMNS)] for r in rows], columns=list(FRAME_COLUMNS))
        frame["error"] = pd.to_numeric(frame["error"], errors="coerce").astype(float)
        frame["spec"] = [r[-2] for r in rows]
        frame["precision"] = [(r[-3] or {}).get("precision") for r in rows]  # as it ran
        sampled = pd.DataFrame([r[-1] or {} for r in rows], index=frame.index)
        for name in sampled.columns:
            frame[f"p_{name}"] = sampled[name]
        return frame

    def version(self, study_id: int) -> str:
        """A token that changes whenever any trial (or the study) changes; a refine child's
        also when its parent's trials do (its results test against the parent's space)."""
        with self.db.read() as session:
            found = session.execute(
                select(StudyRow.updated_at, StudyRow.parent_id).where(StudyRow.id == study_id)
            ).one_or_none()
            if found is None:
                raise StudyNotFound(f"study {study_id}: no such study")
            updated, parent = found
            ids = [study_id] if parent is None else [study_id, parent]
            n, last = session.execute(
                select(func.count(), func.max(TrialRow.updated_at)).where(
                    TrialRow.study_id.in_(ids)
                )
            ).one()
        return f"{n}-{_stamp(last)}-{_stamp(updated)}"

    def finished_speeds(self, most: int) -> tuple[list[tuple], dict[int, dict]]:
        """The latest `most` done trials' (net, images/s, study id), newest first; their specs."""
        return finished_speeds(self.db, most)

    def has_unfinished(self, study_ids: list[int] | None = None) -> bool:
        """True when a running study (of `study_ids`, if given) has a waiting or running trial."""
        unfinished = (
            select(func.count())
            .select_from(TrialRow)
            .join(StudyRow, StudyRow.id == TrialRow.study_id)
            .where(
                StudyRow.status == StudyStatus.RUNNING,
                TrialRow.status.in_(TrialStatus.unfinished()),
            )
        )
        if study_ids:
            unfinished = unfinished.where(TrialRow.study_id.in_(study_ids))
        with self.db.read() as session:
            return bool(session.scalar(unfinished))

    def running_studies(self, study_ids: list[int] | None = None) -> list[int]:
        """Ids of running studies (of `study_ids`, if given)."""
        query = select(StudyRow.id).where(StudyRow.status == StudyStatus.RUNNING)
        if study_ids:
            query = query.where(StudyRow.id.in_(study_ids))
        with self.db.read() as session:
            return list(session.scalars(query))


# a trial's dict beyond the frame: its key → the row's column
DICT_COLUMNS = {
    "spec": "net",
    "params_sampled": "sampled",
    **{c: c for c in ("epochs_done", "last_val_error", "retried_as", "recipe", "history")},
}


def _trial_dict(row: TrialRow) -> dict:
    out = {c: getattr(row, c) for c in FRAME_COLUMNS}
    out.update({key: getattr(row, column) for key, column in DICT_COLUMNS.items()})
    out.update(started=_stamp(row.started_at), finished=_stamp(row.finished_at))
    return out


def _stamp(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat()
