"""What a trial's result depends on besides its network and seed: its thread count and precision.

On a CPU the same seed gives the same error only with the same torch thread count, precision
and kernels (docs/method.md §5: 0.139 with one thread, 0.205 with two). Trials record the
thread count and device (dse_trials) and the precision (their recipe as it ran); a study or a
level whose done trials mix them says so, in one line per setting.
"""

from __future__ import annotations


def _and(items: list) -> str:
    """'1', '1 and 2', '1, 2 and 4'."""
    words = [str(x) for x in items]
    return " and ".join([", ".join(words[:-1]), words[-1]] if len(words) > 1 else words)


def mixed_setting(counts: dict, setting: str, who: str = "trials") -> str | None:
    """One line when done trials ran with more than one thread count or precision (`setting`:
    "threads" or "precision"), from their counts ({1: 12, 2: 3}); None when they agree."""
    if len(counts) < 2:
        return None
    values = sorted(counts)
    ran = f"with {_and(values)} threads" if setting == "threads" else f"in {_and(values)}"
    what = "the thread count" if setting == "threads" else "the precision"
    return (
        f"{setting}: {who} ran {ran} ({_and([counts[v] for v in values])} done); "
        f"results can differ with {what} (docs/method.md §5)"
    )


def ran_with_notes(ran_with: dict[str, dict]) -> list[str]:
    """The lines of a study whose done trials mix thread counts or precisions
    (Reads.ran_with's counts); none when each is one."""
    notes = (mixed_setting(ran_with.get(s, {}), s) for s in ("threads", "precision"))
    return [n for n in notes if n]
