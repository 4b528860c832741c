"""Did a training learn? Its validation error against the chance error of its validation set.

A network that learned nothing predicts independently of the label, so on a validation set
its accuracy is at most p0, the frequency of the set's most common class (chance error
= 1 - p0), and its number of correct answers out of n is at most Binomial(n, p0). A trial
*learned* when the one-sided exact binomial test rejects that at ALPHA:
P[Binomial(n, p0) >= correct] < ALPHA. A finished trial that does not is `not_learned`; it
keeps its error and stays in every EDF, and is counted and shown (docs/method.md §5).
"""

from __future__ import annotations

from collections.abc import Iterable

from search.spec import recipe as defaults

ALPHA = 0.01
WARN_FRACTION = 0.10  # warn when more than this share of a space's finished trials are at chance
CAUSES = (
    "likely causes: too few epochs (raise the fidelities), a learning rate too high or too "
    f"low for the batch (unset, lr is {defaults.LR_PER_128:g} per 128 images), or a batch too "
    f"large for the training set (unset, batch_size keeps at least "
    f"{defaults.MIN_STEPS_PER_EPOCH} steps per epoch)"
)


def chance_error(labels: Iterable[int]) -> float | None:
    """1 - the frequency of the most common label: the error of always guessing it."""
    counts: dict[int, int] = {}
    for label in labels:
        counts[int(label)] = counts.get(int(label), 0) + 1
    n = sum(counts.values())
    return None if n == 0 else 1.0 - max(counts.values()) / n


def above_chance_p(error: float, chance: float, n: int) -> float:
    """One-sided exact binomial p-value of `error` on n images, given the chance error."""
    from scipy.stats import binom

    correct = round((1.0 - error) * n)
    return float(binom.sf(correct - 1, n, 1.0 - chance))  # P[X >= correct]


def learned(error: float | None, chance: float | None, n: int | None, alpha=ALPHA) -> bool | None:
    """True when `error` is clearly below chance (p < alpha); None when it cannot be told."""
    if error is None or chance is None or not n:
        return None
    return above_chance_p(error, chance, n) < alpha


def not_learned_warning(where: str, n_not_learned: int, n_finished: int) -> str | None:
    """The warning for a space (or level) with more than WARN_FRACTION of trials at chance."""
    if n_finished <= 0 or n_not_learned <= WARN_FRACTION * n_finished:
        return None
    share = n_not_learned / n_finished
    return (
        f"{where}: {n_not_learned} of {n_finished} finished trials ({share:.0%}) did not learn "
        f"(validation error not clearly below chance, binomial test p >= {ALPHA:g}); {CAUSES}"
    )


def space_learning(trials, space: str) -> dict:
    """n_not_learned and the median chance_error of a space's done trials in a trial frame."""
    import pandas as pd

    if not len(trials) or "not_learned" not in trials:
        return {"n_not_learned": 0, "chance_error": None}
    rows = trials[(trials["space"] == space) & (trials["status"] == "done")]
    chance = pd.to_numeric(rows["chance_error"], errors="coerce").dropna()
    return {
        "n_not_learned": int(rows["not_learned"].eq(True).sum()),
        "chance_error": float(chance.median()) if len(chance) else None,
    }


def not_learned_spaces(spaces: dict[str, dict], epochs: int) -> list[dict]:
    """The spaces (results rows) with too many done trials at chance, each with its warning."""
    out = []
    for name, row in spaces.items():
        text = not_learned_warning(f"{name} ({epochs} epochs)", row["n_not_learned"], row["n_done"])
        if text:
            out.append(
                {"space": name, "n": row["n_not_learned"], "of": row["n_done"], "text": text}
            )
    return out
