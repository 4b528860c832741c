"""NDS normalisation of a study's spaces over one complexity range (NDS §4, docs/method.md §6).

NDS compares design spaces at equal complexity: a fixed number of equal bins (40 in its main
figures) over a fixed range, every bin weighing the same within each space, networks outside
the range left out. The range defaults to the overlap of the spaces' complexity (largest
per-space minimum to smallest per-space maximum), where every space has networks; a bin some
space does not reach is an error that names the bin and the space, since that space's
normalised EDF would not exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from search.analysis import bin_index

DEFAULT_BINS = 40  # NDS Figs. 1 and 3 (20 in Figs. 9-11)


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


def normalise(groups: dict[str, np.ndarray], key: str, bins=DEFAULT_BINS, c_range=None):
    """NDS weights of every space's networks over one range with `bins` equal bins (§6).

    groups[name] holds each network's complexity (`key`: flops, params or acts). Spaces with
    no network yet are skipped. Raises ValueError naming `bins` or `range` on bad input, on
    spaces that do not overlap, and on a bin that a space has no network in.
    """
    bins = check_bins(bins)
    c_range = check_range(c_range)
    present = {n: np.asarray(c, dtype=np.float64).ravel() for n, c in groups.items()}
    if not any(c.size for c in present.values()):
        return None
    lo, hi = c_range if c_range is not None else overlap(present, key)
    if lo == hi:  # every space at one complexity: one bin holds them all
        bins = 1
    out = Normalisation(key=key, bins=bins, c_range=(lo, hi))
    for name, c in present.items():
        inside = (c >= lo) & (c <= hi)
        out.inside[name], out.outside[name] = inside, int(c.size - inside.sum())
        if not c.size:
            out.bin_of[name], out.weights[name] = np.zeros(0, np.int64), np.zeros(0)
            continue
        k = bin_index(c[inside], lo, hi, bins)
        counts = np.bincount(k, minlength=bins)
        empty = np.flatnonzero(counts == 0)
        if empty.size:
            j, step = int(empty[0]), (hi - lo) / bins
            raise ValueError(
                f"bins: space {name} has no network in bin {j + 1} of {bins} ({key}"
                f" [{_number(lo + j * step)}, {_number(lo + (j + 1) * step)}); {empty.size}"
                f" empty bins, {int(inside.sum())} of its {c.size} networks in the range"
                f" [{_number(lo)}, {_number(hi)}]); use fewer bins or a narrower range"
            )
        out.bin_of[name] = k
        out.weights[name] = 1.0 / (bins * counts[k])
    return out
