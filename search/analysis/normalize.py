"""NDS normalisation of a study's spaces over one complexity range (NDS §4, docs/method.md §6).

Equal bins over one range, every bin weighing the same within each space, networks outside
the range left out. The range defaults to the overlap of the spaces' complexity; a bin some
space does not reach is an error naming the bin and the space, since that space's
normalised EDF would not exist. `choose_bins` picks the default bin count (the most, up to
NDS' 40, that leave every space MIN_PER_BIN networks a bin); `ks_refusal` says why a pair
of spaces cannot be tested under a given bin count; the weights stay NDS' either way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from search.analysis.statistics import bin_index, filled_bins

DEFAULT_BINS = 40  # NDS Figs. 1 and 3 (20 in Figs. 9-11): the most bins chosen from the data
MIN_PER_BIN = 3  # networks of each space a bin needs for the within-bin KS test (§6 table)


@dataclass
class Normalisation:
    """Per space: which networks lie in the range, their bin and NDS weight."""

    key: str
    bins: int
    c_range: tuple[float, float]
    inside: dict[str, np.ndarray] = field(default_factory=dict)  # bool mask over the space
    bin_of: dict[str, np.ndarray] = field(default_factory=dict)  # bin of each inside network
    weights: dict[str, np.ndarray] = field(default_factory=dict)  # NDS weight, inside networks
    outside: dict[str, int] = field(default_factory=dict)  # networks left out
    auto: bool = False  # the bin count was chosen from the data (choose_bins)
    complexity: dict[str, np.ndarray] = field(default_factory=dict)  # of the inside networks


def _number(v: float) -> str:
    return f"{v:.4g}"


def check_bins(bins) -> int:
    """A bin count as an int >= 1, or ValueError naming `bins`."""
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"bins: need a whole number >= 1, got {bins!r}")
    return int(bins)


def check_range(c_range) -> tuple[float, float] | None:
    """A complexity range (lo, hi) with lo < hi (None: the default overlap), or ValueError."""
    if c_range is None:
        return None
    try:
        lo, hi = (float(v) for v in c_range)
    except (TypeError, ValueError):
        raise ValueError(f"range: expected [lo, hi], got {c_range!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"range: need finite lo < hi, got [{_number(lo)}, {_number(hi)}]")
    return lo, hi


def overlap(groups: dict[str, np.ndarray], key: str) -> tuple[float, float]:
    """The largest per-space minimum to the smallest per-space maximum (NDS), or ValueError."""
    present = {n: c for n, c in groups.items() if c.size}
    lo_name = max(present, key=lambda n: present[n].min())
    hi_name = min(present, key=lambda n: present[n].max())
    lo, hi = float(present[lo_name].min()), float(present[hi_name].max())
    if lo > hi:
        raise ValueError(
            f"range: the spaces' {key} do not overlap ({lo_name} starts at {_number(lo)}, above"
            f" the end of {hi_name} at {_number(hi)}); give a range to normalise over"
        )
    return lo, hi


def _fewest(inside: dict[str, np.ndarray], lo: float, hi: float, bins: int) -> np.ndarray:
    """Per bin, the fewest networks any space has in it."""
    counts = [np.bincount(bin_index(c, lo, hi, bins), minlength=bins) for c in inside.values()]
    return np.min(counts, axis=0) if counts else np.zeros(bins, np.int64)


def choose_bins(inside: dict[str, np.ndarray], lo: float, hi: float, most=DEFAULT_BINS):
    """The largest bin count <= `most` leaving every space MIN_PER_BIN networks a bin, or None.

    inside[name] holds the complexities of a space's networks inside [lo, hi]. None when not
    even one bin holds MIN_PER_BIN networks of every space.
    """
    for bins in range(check_bins(most), 0, -1):
        if _fewest(inside, lo, hi, bins).min() >= MIN_PER_BIN:
            return bins
    return None


def _honest_advice(inside: dict[str, np.ndarray], lo: float, hi: float) -> str:
    """What bin count keeps the within-bin test calibrated here, or why none does."""
    best = choose_bins(inside, lo, hi)
    if best is None:
        fewest = min((int(c.size) for c in inside.values()), default=0)
        return (
            f"no bin count leaves every space {MIN_PER_BIN} networks a bin in this range (the"
            f" fewest: {fewest}); wait for more networks or give a wider range"
        )
    return (
        f"{best} bins leave every space at least {MIN_PER_BIN} networks a bin (leave bins out"
        " and they are chosen so)"
    )


def ks_refusal(norm: Normalisation, a: str, b: str) -> str | None:
    """Why the normalised KS test of spaces a and b is not calibrated under `norm`, or None."""
    lo, hi = norm.c_range
    if a not in norm.complexity or b not in norm.complexity:
        return None  # a space with no network yet: the test gives no p anyway
    inside = {n: norm.complexity[n] for n in (a, b)}
    fewest = _fewest(inside, lo, hi, norm.bins)
    if fewest.min() >= MIN_PER_BIN:
        return None
    j = int(np.argmin(fewest))
    who = min(inside, key=lambda n: np.sum(bin_index(inside[n], lo, hi, norm.bins) == j))
    step = (hi - lo) / norm.bins
    return (
        f"space {who} has {int(fewest[j])} network{'s' if fewest[j] != 1 else ''} in bin {j + 1}"
        f" of {norm.bins} ({norm.key} [{_number(lo + j * step)}, {_number(lo + (j + 1) * step)}));"
        f" the within-bin KS test needs {MIN_PER_BIN} of each space in every bin to be"
        f" calibrated (docs/method.md §6): {_honest_advice(norm.complexity, lo, hi)}"
    )


def normalise(groups: dict[str, np.ndarray], key: str, bins=None, c_range=None):
    """NDS weights of every space's networks over one range with `bins` equal bins (§6).

    groups[name] holds each network's complexity (`key`: flops, params or acts). Spaces with
    no network yet are skipped. `bins` None chooses the count from the data (choose_bins;
    1 when no count leaves MIN_PER_BIN networks a bin, and ks_refusal says so). Raises
    ValueError naming `bins` or `range` on bad input, on spaces that do not overlap, and on
    a bin that a space has no network in.
    """
    auto = bins is None
    bins = DEFAULT_BINS if auto else check_bins(bins)
    c_range = check_range(c_range)
    present = {n: np.asarray(c, dtype=np.float64).ravel() for n, c in groups.items()}
    if not any(c.size for c in present.values()):
        return None
    lo, hi = c_range if c_range is not None else overlap(present, key)
    within = {n: c[(c >= lo) & (c <= hi)] for n, c in present.items() if c.size}
    if lo == hi:  # every space at one complexity: one bin holds them all
        bins = 1
    elif auto:
        bins = choose_bins(within, lo, hi) or 1
    out = Normalisation(key=key, bins=bins, c_range=(lo, hi), auto=auto)
    out.complexity = within
    for name, c in present.items():
        inside = (c >= lo) & (c <= hi)
        out.inside[name], out.outside[name] = inside, int(c.size - inside.sum())
        if not c.size:
            out.bin_of[name], out.weights[name] = np.zeros(0, np.int64), np.zeros(0)
            continue
        k, counts = filled_bins(
            c[inside], lo, hi, bins,
            lambda number, a, b, n_empty, name=name, c=c, inside=inside: (
                f"bins: space {name} has no network in bin {number} of {bins} ({key}"
                f" [{_number(a)}, {_number(b)}); {n_empty} empty bins, {int(inside.sum())} of"
                f" its {c.size} networks in the range [{_number(lo)}, {_number(hi)}]);"
                f" {_honest_advice(within, lo, hi)}"
            ),
        )  # fmt: skip
        out.bin_of[name] = k
        out.weights[name] = 1.0 / (bins * counts[k])
    return out
