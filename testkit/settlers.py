"""Racing settlers: several workers finish each fidelity level of many studies at once.

Used by tests/test_promotion.py (and usable from a benchmark): each settler is a thread or a
process with its own Store, as real workers are; for every study and level they all claim a
share of the level's trials, wait for each other, and finish them together, so the last
finishes of a level (and the settles they trigger) race. Errors are fixed per network, so
which networks are promoted is known in advance. `in_threads` starts the thread settlers
(and benchmarks/bench_hostile_reads.py's clients) all at once.
"""

from __future__ import annotations

import math
import multiprocessing
import threading

RACE_SAMPLES = 8  # a space: 8 → 4 → 2 trials over three levels at promote 0.5
RACE_LEVELS = (1, 2, 3)
BARRIER_TIMEOUT = 300  # seconds: a settler stuck this long fails the race instead of hanging


def race_spec() -> dict:
    """The smoke spec with three levels and halving promotion (DDS-style short schedules)."""
    from testkit.specs import smoke_spec

    return smoke_spec(samples=RACE_SAMPLES, fidelities=list(RACE_LEVELS), promote=0.5)


def fixed_error(space: str, sample: int, level: int) -> float:
    """A distinct, scrambled error per network and level (no ties, none diverged)."""
    return ((sample * 7 + len(space) * 3) % 13) / 13 + sample * 1e-4 + level * 1e-6


def settle_levels(
    url: str, study_ids: list[int], k: int, settlers: int, barrier, fail: bool = False
) -> int:
    """Settler k of `settlers`: for each study and level, claim a share, then finish together.

    Every trial ends done with its fixed error, or failed (`fail`: a study that learns
    nothing). Returns how many trials this settler finished.
    """
    from search.store import Store, TrialOutcome

    store = Store(url)
    finished = 0
    try:
        for study_id in study_ids:
            for level in range(len(RACE_LEVELS)):
                trials = store.count(study_id, level=level)  # all still waiting here
                share = math.ceil(trials / settlers)
                claims = []
                while len(claims) < share:
                    claim = store.claim(f"settler-{k}", [study_id])
                    if claim is None:
                        break
                    claims.append(claim)
                barrier.wait(BARRIER_TIMEOUT)  # all have claimed: the level ends in a race
                for claim in claims:
                    err = fixed_error(claim.space, claim.sample, claim.level)
                    outcome = TrialOutcome("done", err, seconds=0.01)
                    if fail:
                        outcome = TrialOutcome("failed", None, reason="DatasetError: unreadable")
                    finished += store.finish(claim, outcome)
                barrier.wait(BARRIER_TIMEOUT)  # all settled: the next level is enqueued
    finally:
        store.close()
    return finished


def in_threads(target, n: int) -> None:
    """Call target(k) for k in range(n), each in its own thread, all at once; wait for all."""
    threads = [threading.Thread(target=target, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _settle_in_process(url, study_ids, k, settlers, barrier, results, fail) -> None:
    try:
        results.put((k, settle_levels(url, study_ids, k, settlers, barrier, fail)))
    except BaseException as e:  # noqa: BLE001 - reported to the parent, the others released
        barrier.abort()
        results.put((k, f"{type(e).__name__}: {e}"))


def race(
    url: str, study_ids: list[int], settlers: int = 4, processes: bool = False, fail: bool = False
) -> int:
    """Run `settlers` racing settlers (threads or spawned processes); trials finished in all."""
    if not processes:
        barrier = threading.Barrier(settlers)
        counts = [0] * settlers
        errors: list[BaseException] = []

        def run(k: int) -> None:
            try:
                counts[k] = settle_levels(url, study_ids, k, settlers, barrier, fail)
            except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
                errors.append(e)
                barrier.abort()

        in_threads(run, settlers)
        if errors:
            raise errors[0]
        return sum(counts)
    ctx = multiprocessing.get_context("spawn")  # real worker processes share nothing
    barrier, results = ctx.Barrier(settlers), ctx.Queue()
    pool = [
        ctx.Process(
            target=_settle_in_process, args=(url, study_ids, k, settlers, barrier, results, fail)
        )
        for k in range(settlers)
    ]
    for p in pool:
        p.start()
    counts = {}
    try:
        for _ in pool:
            k, n = results.get(timeout=BARRIER_TIMEOUT * len(study_ids))
            if isinstance(n, str):
                raise RuntimeError(f"settler {k} failed: {n}")
            counts[k] = n
    finally:
        for p in pool:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
    if any(p.exitcode for p in pool):
        raise RuntimeError(f"a settler process failed: exit codes {[p.exitcode for p in pool]}")
    return sum(counts.values())
