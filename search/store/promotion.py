"""Promotion: when a space's level is complete, enqueue its best fraction at the next level.

The rule is search.spec.fidelity's (level-complete successive halving); this applies it to
the store. Any worker may call `settle` at any time, and every decision is taken inside
one transaction that holds the study row's lock (the lock TrialWriter and cancelling
take): it reads the study's trials with a statement issued after the lock was granted,
enqueues the missing promotions in that same transaction, and marks the study done only
when that read shows no unfinished trial and no complete level still to promote (or
failed, when its lowest level learned nothing: search.store.studies). Settlers
racing on PostgreSQL (read committed: each statement sees what was committed before it
began) or SQLite (BEGIN IMMEDIATE: one writer at a time) are thereby serialised, so no
study is closed from a stale read while promoted trials wait (issue 20).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from search.spec import fidelity
from search.spec.status import StudyStatus, TrialStatus
from search.spec.study import StudySpec
from search.store.db import Database
from search.store.models import StudyRow, TrialRow, new_trial_values, utcnow
from search.store.reads import status_grid
from search.store.studies import Studies, learned_nothing
from search.store.trial_writer import StudyClosed, TrialWriter


def copy_values(source: TrialRow, level: int, epochs: int, attempt: int) -> dict:
    """dse_trials values of a new trial of `source`'s network (another level or attempt)."""
    values = new_trial_values(
        source.study_id,
        source.space,
        source.sample,
        level,
        epochs,
        attempt,
        source.net,
        {"flops": source.flops, "params": source.params, "acts": source.acts},
        reference=source.reference,
        depth=source.depth,
    )
    values["sampled"] = source.sampled
    return values


def promotions_due(
    rows: Iterable[tuple[str, int, int, str, float | None]], spec: StudySpec
) -> dict[tuple[str, int], list[int]]:
    """{(space, level + 1): samples to enqueue there}: complete levels not yet promoted.

    `rows` are (space, sample, level, status, error) of the study's space trials (retried
    attempts left out). A level counts once it is complete; samples already present at the
    next level are not enqueued again.
    """
    by_level: dict[tuple[str, int], list[tuple[int, str, float | None]]] = defaultdict(list)
    for space, sample, level, status, error in rows:
        by_level[(space, level)].append((sample, status, error))
    due: dict[tuple[str, int], list[int]] = {}
    for space in spec.space_names():
        for level in range(len(spec.fidelities) - 1):
            trials = by_level.get((space, level), [])
            if not fidelity.level_complete(status for _, status, _ in trials):
                break  # a level above an incomplete one has nothing to promote yet
            chosen = fidelity.select_promoted(
                (fidelity.LevelTrial(*t) for t in trials), spec.promote
            )
            present = {sample for sample, _, _ in by_level.get((space, level + 1), [])}
            missing = [s for s in chosen if s not in present]
            if missing:
                due[(space, level + 1)] = missing
    return due


def _may_need_settling(grid: dict[tuple[str, int], dict[str, int]], spec: StudySpec) -> bool:
    """From an unlocked status grid: could this study have a promotion due or be finished?

    A grid read after this caller's own finish committed sees every finish committed before
    it, so the last finisher of a level (or of the study) always answers True; a False is
    only ever given while some trial is unfinished and every complete level has its
    promotions already (they are enqueued all at once), i.e. when there is nothing to do.
    """
    unfinished = TrialStatus.unfinished()
    if not any(s in unfinished for counts in grid.values() for s in counts):
        return True
    level0: dict[str, int] = defaultdict(int)
    for (_, level), counts in grid.items():
        if level == 0:
            for status, n in counts.items():
                level0[status] += n
    if learned_nothing(level0):
        return True
    for space in spec.space_names():
        for level in range(len(spec.fidelities) - 1):
            counts = grid.get((space, level), {})
            if not fidelity.level_complete(s for s, n in counts.items() for _ in range(n)):
                break
            if not grid.get((space, level + 1)):
                return True
    return False


class Promotion:
    """`settle(study_id)`: promote every complete level; mark the study done when all is."""

    def __init__(self, db: Database, studies: Studies, writer: TrialWriter) -> None:
        self.db, self.studies, self.writer = db, studies, writer

    def settle(self, study_id: int) -> int:
        """Promote every completed level (idempotent); mark the study done when nothing is left.

        Returns how many trials were enqueued.
        """
        spec = self.studies.spec(study_id)
        grid = status_grid(self.db, study_id)
        if self.studies.status(study_id) != StudyStatus.RUNNING:
            return 0
        if not _may_need_settling(grid, spec):
            return 0
        # read outside the write transaction: Optuna's storage opens its own connection,
        # which on SQLite would wait for ours
        distributions = self.writer.distributions(study_id)
        try:
            with self.db.write() as session, session.begin():
                return self._settle_locked(session, study_id, spec, distributions)
        except StudyClosed:
            return 0

    def _settle_locked(self, session: Session, study_id: int, spec: StudySpec, distributions):
        """The decision under the study row's lock: enqueue what is due, else maybe close."""
        status = session.scalar(
            select(StudyRow.status).where(StudyRow.id == study_id).with_for_update()
        )
        if status != StudyStatus.RUNNING:
            return 0
        if self.studies.fail_if_all_failed(study_id, session):
            return 0
        # a new statement after the lock was granted: it sees every settle committed before
        live = (TrialRow.study_id == study_id, TrialRow.retried_as.is_(None))
        rows = session.execute(
            select(
                TrialRow.space,
                TrialRow.sample,
                TrialRow.level,
                TrialRow.status,
                TrialRow.error,
                TrialRow.reference,
            ).where(*live)
        ).all()
        due = promotions_due(((r[0], r[1], r[2], r[3], r[4]) for r in rows if r[5] is None), spec)
        if due:
            new = []
            for (space, level), samples in sorted(due.items()):
                sources = session.scalars(
                    select(TrialRow)
                    .where(
                        *live,
                        TrialRow.space == space,
                        TrialRow.level == level - 1,
                        TrialRow.sample.in_(samples),
                    )
                    .order_by(TrialRow.sample)
                ).all()
                epochs = spec.fidelities[level]
                new += [copy_values(source, level, epochs, 1) for source in sources]
            self.writer.add(study_id, new, session=session, distributions=distributions)
            return len(new)
        unfinished = set(TrialStatus.unfinished())
        if any(r[3] in unfinished for r in rows):
            return 0
        session.execute(
            update(StudyRow)
            .where(StudyRow.id == study_id, StudyRow.status == StudyStatus.RUNNING)
            .values(status=StudyStatus.DONE.value, updated_at=utcnow())
        )
        return 0
