"""Promotion: when a space's level is complete, enqueue its best fraction at the next level.

The rule is search/fidelity.py's (level-complete successive halving); this applies it to
the store. Any worker may call `settle` at any time: the new trials of a level are added
in one transaction (search/trial_writer.py), and the unique key of `dse_trials` turns a
concurrent promotion of the same level into a no-op for the loser.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from search import fidelity
from search.db import Database
from search.models import StudyRow, TrialRow, new_trial_values, utcnow
from search.reads import status_grid
from search.spec import StudySpec
from search.status import StudyStatus, TrialStatus
from search.studies import Studies
from search.trial_writer import StudyClosed, TrialWriter


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


class Promotion:
    """`settle(study_id)`: promote every complete level; mark the study done when all is."""

    def __init__(self, db: Database, studies: Studies, writer: TrialWriter) -> None:
        self.db, self.studies, self.writer = db, studies, writer

    def settle(self, study_id: int) -> int:
        """Promote every completed level (idempotent); mark the study done when nothing is left."""
        spec = self.studies.spec(study_id)
        grid = status_grid(self.db, study_id)
        if self.studies.status(study_id) != StudyStatus.RUNNING:
            return 0
        added = 0
        for space in spec.space_names():
            for level in range(len(spec.fidelities) - 1):
                counts = grid.get((space, level), {})
                if not fidelity.level_complete(s for s, n in counts.items() for _ in range(n)):
                    break
                added += self._promote(study_id, space, level, spec)
        unfinished = TrialStatus.unfinished()
        left = sum(n for c in grid.values() for s, n in c.items() if s in unfinished)
        if not added and not left:
            with self.db.write() as session, session.begin():
                session.execute(
                    update(StudyRow)
                    .where(StudyRow.id == study_id, StudyRow.status == StudyStatus.RUNNING)
                    .values(status=StudyStatus.DONE.value, updated_at=utcnow())
                )
        return added

    def _promote(self, study_id: int, space: str, level: int, spec: StudySpec) -> int:
        """Enqueue the chosen networks of (space, level) at level + 1; how many were added."""
        where = (
            TrialRow.study_id == study_id,
            TrialRow.space == space,
            TrialRow.retried_as.is_(None),
        )
        with self.db.read() as session:
            rows = session.scalars(select(TrialRow).where(*where, TrialRow.level == level)).all()
        trials = [fidelity.LevelTrial(r.sample, r.status, r.error) for r in rows]
        chosen = fidelity.select_promoted(trials, spec.promote)
        by_sample = {r.sample: r for r in rows}
        epochs = spec.fidelities[level + 1]
        for _ in range(3):  # a concurrent promoter may win some: re-read and add the rest
            with self.db.read() as session:
                have = set(
                    session.scalars(
                        select(TrialRow.sample).where(*where, TrialRow.level == level + 1)
                    )
                )
            new = [copy_values(by_sample[s], level + 1, epochs, 1) for s in chosen if s not in have]
            if not new:
                return 0
            try:
                self.writer.add(study_id, new)
                return len(new)
            except IntegrityError:
                continue
            except StudyClosed:
                return 0
        return 0
