"""Promotion and the done transition under racing workers: no study ends while work waits.

Issue 20: settlers that read the status grid before a concurrent promotion committed marked
studies done with promoted trials still waiting. Here 40 three-level studies are finished
by 4 settlers at once (threads, then separate processes), on SQLite and PostgreSQL; every
study must end done with each promoted network trained exactly once.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from search.store import Store
from search.store.models import StudyRow, TrialRow
from testkit.settlers import RACE_LEVELS, RACE_SAMPLES, fixed_error, race, race_spec

STUDIES = 40
SETTLERS = 4


def _expected_samples(space: str, level: int) -> list[int]:
    """The networks of `space` that reach `level` (best half of the level below, each time)."""
    samples = list(range(RACE_SAMPLES))
    for below in range(level):
        samples.sort(key=lambda s: (fixed_error(space, s, below), s))
        samples = sorted(samples[: len(samples) // 2])
    return samples


def _check_race(url: str, processes: bool) -> None:
    store = Store(url)
    spec = race_spec()
    ids = [store.create_study(spec) for _ in range(STUDIES)]
    spaces = [s["preset"] for s in spec["spaces"]]
    per_study = len(spaces) * sum(RACE_SAMPLES >> level for level in range(len(RACE_LEVELS)))
    finished = race(url, ids, settlers=SETTLERS, processes=processes)
    ended_early = [i for i in ids if store.count(i, status="waiting")]
    assert not ended_early, f"studies marked done with trials waiting: {ended_early}"
    assert finished == STUDIES * per_study
    for study_id in ids:
        assert store.get_study(study_id).status == "done"
        frame = store.trial_frame(study_id)
        assert len(frame) == per_study  # nothing added twice, nothing cancelled or retried
        assert set(frame.status) == {"done"}
        for space in spaces:
            for level in range(len(RACE_LEVELS)):
                at = frame[(frame.space == space) & (frame.level == level)]
                assert sorted(at["sample"]) == _expected_samples(space, level)
                assert set(at.epochs) == {RACE_LEVELS[level]}
    store.close()


@pytest.mark.slow
@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
def test_racing_settlers_sqlite(sqlite_url, processes):
    _check_race(sqlite_url, processes)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.xdist_group("pg")
@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
def test_racing_settlers_postgres(pg_url, processes):
    _check_race(pg_url, processes)


def _check_failing_race(url: str) -> None:
    store = Store(url)
    ids = [store.create_study(race_spec()) for _ in range(10)]
    race(url, ids, settlers=SETTLERS, fail=True)
    for study_id in ids:
        study = store.get_study(study_id)
        assert study.status == "failed", (study_id, study.status)  # never done
        assert "trials of the lowest level failed, e.g. DatasetError: unreadable" in study.reason
        assert store.count(study_id, level=1) == 0
    store.close()


def test_racing_settlers_fail_a_study_that_learns_nothing_sqlite(sqlite_url):
    _check_failing_race(sqlite_url)


@pytest.mark.postgres
@pytest.mark.xdist_group("pg")
def test_racing_settlers_fail_a_study_that_learns_nothing_postgres(pg_url):
    _check_failing_race(pg_url)


def _finish_waiting(store: Store, study_id: int) -> int:
    """Claim and finish every claimable trial of the study in one thread; how many."""
    from search.store import TrialOutcome

    n = 0
    while (claim := store.claim("w", [study_id])) is not None:
        err = fixed_error(claim.space, claim.sample, claim.level)
        n += store.finish(claim, TrialOutcome("done", err, seconds=0.01))
    return n


def _check_reopen(url: str) -> None:
    from search.store import TrialOutcome

    store = Store(url)
    study_id = store.create_study(race_spec())
    last = len(RACE_LEVELS) - 1
    while (held := store.claim("w", [study_id])).level < last:  # levels 0 and 1 finished
        err = fixed_error(held.space, held.sample, held.level)
        store.finish(held, TrialOutcome("done", err, seconds=0.01))
    # What a stale settler did before the fix: the study closed while the last level's
    # trials waited; the one running stops at its next epoch report, cancelled.
    with store.db.write() as session, session.begin():
        session.execute(update(StudyRow).where(StudyRow.id == study_id).values(status="done"))
    assert not store.report_epoch(held, {"epoch": 1, "val_error": 0.5})
    store.finish(held, TrialOutcome("cancelled", None, reason="stopped after epoch 1"))
    assert store.claim("w", [study_id]) is None  # a done study hands out nothing

    assert store.recovery.reopen_closed_early() == [study_id]
    assert store.get_study(study_id).status == "running"
    assert store.recovery.reopen_closed_early() == []  # once
    assert _finish_waiting(store, study_id)  # the waiting ones, the retry, what they promote
    assert store.get_study(study_id).status == "done"
    frame = store.trial_frame(study_id)
    assert len(frame) == len(race_spec()["spaces"]) * (8 + 4 + 2) and set(frame.status) == {"done"}
    with store.db.read() as session:
        retried = session.scalars(
            select(TrialRow).where(TrialRow.study_id == study_id, TrialRow.retried_as.is_not(None))
        ).all()
    assert [r.trial_id for r in retried] == [held.trial_id]
    assert "closed early" in retried[0].reason
    store.close()


def test_closed_early_study_is_reopened_sqlite(sqlite_url):
    _check_reopen(sqlite_url)


@pytest.mark.postgres
def test_closed_early_study_is_reopened_postgres(pg_url):
    _check_reopen(pg_url)
