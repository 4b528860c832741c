"""The fidelity plan: level-complete promotion of the best ceil(n × fraction) per space."""

from __future__ import annotations

import math
import threading

import pytest

from search.spec import fidelity
from search.spec.fidelity import LevelTrial, level_complete, promote_count, select_promoted


def test_promote_count_rounds_up_robustly():
    assert promote_count(20, 1 / 3) == 7
    assert promote_count(9, 1 / 3) == 3  # 9 × 0.333… must not become 4
    assert promote_count(7, 1 / 3) == 3
    assert promote_count(1, 0.01) == 1
    assert promote_count(0, 0.5) == 0
    for n in range(1, 60):
        for frac in (0.1, 0.25, 1 / 3, 0.5, 2 / 3, 1.0):
            assert promote_count(n, frac) == math.ceil(round(n * frac, 9))


def test_level_complete():
    assert not level_complete([])
    assert not level_complete(["done", "running"])
    assert not level_complete(["waiting"])
    assert level_complete(["done", "diverged", "failed", "cancelled"])


def test_select_best_excludes_diverged_and_failed():
    trials = [
        LevelTrial(0, "done", 0.5),
        LevelTrial(1, "diverged", None),
        LevelTrial(2, "done", 0.1),
        LevelTrial(3, "failed", None),
        LevelTrial(4, "done", 0.3),
        LevelTrial(5, "done", 0.3),
    ]
    # n = 6 → ceil(6/3) = 2; ties broken by sample index
    assert select_promoted(trials, 1 / 3) == [2, 4]
    assert select_promoted(trials, 1.0) == [2, 4, 5, 0]  # never more than the done ones


def test_interleave_round_robin():
    order = fidelity.interleave({"A": ["a0", "a1", "a2"], "B": ["b0"]})
    assert [(s, i) for s, i, _ in order] == [("A", 0), ("B", 0), ("A", 1), ("A", 2)]


def _error_of(space: str, sample: int) -> float | None:
    """A fixed, scrambled error per network; every 5th diverges."""
    if sample % 5 == 4:
        return None
    return ((sample * 7 + len(space)) % 11) / 11 + sample * 1e-4


def _drain_level(store, study_id, threads: int = 4) -> None:
    """Finish every claimable trial with its fixed error, from several threads at once."""
    from search.store import TrialOutcome

    barrier = threading.Barrier(threads)

    def work(k: int) -> None:
        claims = []
        while (claim := store.claim(f"w{k}", [study_id])) is not None:
            claims.append(claim)
        barrier.wait()  # all finish together: the level completes under concurrency
        for claim in claims:
            err = _error_of(claim.space, claim.sample)
            status = "done" if err is not None else "diverged"
            store.finish(claim, TrialOutcome(status, err, seconds=0.1))

    pool = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()


def _check_promotion(url, smoke_spec):
    from search.store import Store

    smoke_spec.update(samples=7, fidelities=[1, 2], promote=1 / 3)
    store = Store(url)
    study_id = store.create_study(smoke_spec)
    _drain_level(store, study_id)
    frame = store.trial_frame(study_id)
    for space in ("AnyNetX_A", "AnyNetX_E"):
        level0 = frame[(frame.space == space) & (frame.level == 0)]
        level1 = frame[(frame.space == space) & (frame.level == 1)]
        assert len(level0) == 7 and set(level0.status) == {"done", "diverged"}
        assert len(level1) == 3  # ceil(7 × 1/3), exactly once each despite 4 racing settlers
        done = level0[level0.status == "done"].sort_values(["error", "sample"])
        assert sorted(level1["sample"]) == sorted(done["sample"][:3])
        assert set(level1.epochs) == {2}
        assert (level1["status"] == "waiting").all()
        for _, row in level1.iterrows():  # same NetSpec as at level 0
            assert row["spec"] == level0[level0["sample"] == row["sample"]].iloc[0]["spec"]
    assert store.get_study(study_id).status == "running"
    _drain_level(store, study_id)
    assert store.get_study(study_id).status == "done"
    assert store.count(study_id) == 2 * (7 + 3)


def test_promotion_sqlite(sqlite_url, smoke_spec):
    _check_promotion(sqlite_url, smoke_spec)


@pytest.mark.postgres
def test_promotion_postgres(pg_url, smoke_spec):
    _check_promotion(pg_url, smoke_spec)
