"""The fidelity plan: every sample at the lowest level, the best fraction promoted upwards.

Levels are complete short schedules (e.g. 1, 3, 9 epochs, each with its own full cosine
schedule), so a promoted network is retrained from scratch at the next level with the same
NetSpec. Promotion is level-complete successive halving, not ASHA, so that each level's EDF
is a well-defined sample of its space (the rule and why: docs/method.md §5). It is decided
per space: once every trial of a level has finished, the best ceil(n × fraction) done
trials (ties broken by sample index, so the choice is deterministic; diverged and failed
never) are enqueued at the next level, n the samples at the level. Any worker may compute
this at any time; the store's unique key (study, space, sample, level, attempt) makes
concurrent promotions of the same level idempotent.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from search.spec.status import TrialStatus


@dataclass(frozen=True)
class LevelTrial:
    """What promotion needs of one trial at one level."""

    sample: int
    status: str
    error: float | None


def promote_count(n: int, fraction: float) -> int:
    """ceil(n × fraction), robust to float noise (20 × 1/3 → 7, 9 × 1/3 → 3), at least 1."""
    if n <= 0:
        return 0
    return max(1, math.ceil(round(n * fraction, 9)))


def level_complete(statuses: Iterable[str]) -> bool:
    """True when no trial of the level is still waiting or running (and there is one)."""
    statuses = list(statuses)
    return bool(statuses) and all(TrialStatus(s).finished for s in statuses)


def select_promoted(trials: Iterable[LevelTrial], fraction: float) -> list[int]:
    """Sample indices to train at the next level: the best ceil(n × fraction) done trials."""
    trials = list(trials)
    done = [t for t in trials if t.status == TrialStatus.DONE and t.error is not None]
    done.sort(key=lambda t: (t.error, t.sample))
    return [t.sample for t in done[: promote_count(len(trials), fraction)]]


def interleave(per_space: dict[str, list]) -> list[tuple[str, int, object]]:
    """(space, index, item) in round-robin order A0, B0, A1, B1, … so spaces fill evenly."""
    out: list[tuple[str, int, object]] = []
    longest = max((len(items) for items in per_space.values()), default=0)
    for i in range(longest):
        for space, items in per_space.items():
            if i < len(items):
                out.append((space, i, items[i]))
    return out
