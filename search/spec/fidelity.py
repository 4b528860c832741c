"""The fidelity plan: every sample at the lowest level, the best fraction promoted upwards.

Levels are complete short schedules (docs/design.md: e.g. 1, 3, 9 epochs, each with its own full
cosine schedule), so a promoted network is retrained from scratch at the next level with the
same NetSpec; nothing is resumed.

Why level-complete (synchronous successive halving) and not ASHA:
- The EDFs compared across spaces must be unbiased samples of each space (DDS §3, NDS §4).
  Level 0 trains every sample, so its EDF is. A higher level's EDF is "the top fraction of
  level 0", which is only well defined once level 0 is complete; ASHA promotes whatever is
  best among the results that happen to have arrived, so which networks reach level 1
  depends on worker timing, not on the space, and the level-1 EDFs of two spaces would not
  be comparable (nor reproducible run to run).
- The cost ASHA saves is idle workers at the level boundary. Here a level of a space is
  hundreds of short trials and spaces of one study (and other studies) keep workers busy
  while one space waits for its stragglers, so that idle time is small.
- Rank correlation between levels (does a short training predict a long one?) needs the same
  well-defined subset at both levels.

Promotion is decided per space: when every trial of space S at level L has finished (done,
diverged, failed or cancelled), the best ceil(n × fraction) done trials (lowest val error;
ties broken by sample index, so the choice is deterministic) are enqueued at level L + 1,
where n is the number of samples at level L. Diverged and failed trials are never promoted.
Any worker may compute this at any time; the store's unique key (study, space, sample,
level, attempt) makes concurrent promotions of the same level idempotent.
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
