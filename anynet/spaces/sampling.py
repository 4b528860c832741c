"""Joint rejection sampling of whole networks from a design space (DDS §3, docs/method.md §4).

A candidate that breaks a constraint or whose exact complexity falls outside the bounds is
rejected and drawing goes on (never sorting or repairing), so a sample keeps the paper's
distribution conditioned on the constraints; the space's group-compatibility rule is
applied first, so every constraint holds on the network a worker trains. Draws are
vectorised with numpy in fixed-size batches from one seeded Generator, so a seed gives the
same networks and the first k of n samples are the k a smaller request gives.
anynet.spaces.candidates counts each batch by the network descriptions themselves, so
neither module holds a network rule of its own. `Sample.params` holds the values as built
(d1.., w1.., bot_mul1.., g1.. or groups1..; for RegNets also the drawn depth, w0, wa, wm, g,
bot_mul), so the refinement evidence reads what was trained.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from anynet.spaces import DesignSpace
from anynet.spaces.candidates import BOUND_KEYS, REASONS, anynet_batch, count_batches, regnet_batch
from anynet.spec import NetSpec

EARLY = 1_000_000  # draws after which a hopeless default budget is given up
BATCH = 8192  # candidates per vectorised batch (fixed, so a seed reproduces its draws)
AHEAD = 16  # at most this many batches counted together (drawn in order: same networks)


class InfeasibleError(ValueError):
    """No (or too few) networks of the space meet its constraints and bounds.

    `got`: the networks that did; `bound`: the bound that rejected most (None when none did,
    or sampling was interrupted).
    """

    def __init__(self, message: str, got: int = 0, bound: str | None = None) -> None:
        super().__init__(message)
        self.got, self.bound = got, bound


@dataclass(frozen=True)
class Sample:
    """One sampled network: its spec, its exact complexity and its values (as built)."""

    spec: NetSpec
    complexity: dict
    params: dict


@dataclass
class SampleResult:
    """Samples plus the bookkeeping of the rejection sampler."""

    samples: list[Sample]
    draws: int
    acceptance: float
    constraint_rejects: dict[str, int] = field(default_factory=dict)
    bound_rejects: dict[str, int] = field(default_factory=dict)


def check_bounds(bounds) -> dict[str, tuple[float, float]]:
    """Validate complexity bounds {flops|params|acts: [lo, hi]}."""
    out: dict[str, tuple[float, float]] = {}
    for key, value in (bounds or {}).items():
        if key not in BOUND_KEYS:
            raise ValueError(f"bounds: unknown key {key!r}; known: {', '.join(BOUND_KEYS)}")
        try:
            lo, hi = (float(v) for v in value)
        except (TypeError, ValueError):
            raise ValueError(f"bounds.{key}: expected [lo, hi], got {value!r}") from None
        if not (math.isfinite(lo) and lo >= 0 and hi >= lo):
            raise ValueError(f"bounds.{key}: need 0 <= lo <= hi, got [{lo}, {hi}]")
        out[key] = (lo, hi)
    return out


# --- the sampler ------------------------------------------------------------------------
def sample(
    space: DesignSpace,
    n: int,
    seed: int,
    bounds: dict[str, tuple[float, float]] | None = None,
    resolution: int | None = None,
    num_classes: int | None = None,
    in_channels: int | None = None,
    max_draws: int | None = None,
    interrupt: Callable[[], bool] | None = None,
) -> SampleResult:
    """Draw n networks of `space` whose complexity lies in `bounds` (joint rejection).

    `interrupt` is asked before each batch; True stops sampling with InfeasibleError (a
    caller's time budget or a cancel).
    """
    n, limits, max_draws, projected = _checked(space, n, seed, bounds, max_draws)
    net = {
        "stem": space.stem,
        "block": space.block,
        "se_ratio": space.se_ratio,
        "head_width": space.head_width,
        "num_classes": int(num_classes or space.num_classes),
        "in_channels": int(in_channels or space.in_channels),
        "resolution": int(resolution or space.resolution),
    }
    make = anynet_batch if space.kind == "anynet" else regnet_batch
    rng = np.random.default_rng(seed)
    samples: list[Sample] = []
    tally = _Tally()
    draws, ahead, pending, used = 0, 1, [], 0
    while len(samples) < n and draws < max_draws:
        if interrupt is not None and interrupt():
            raise InfeasibleError(
                f"space {space.name!r}: sampling interrupted after {draws} draws "
                f"({len(samples)} of {n} networks)",
                got=len(samples),
            )
        if not pending:  # draw `ahead` batches in order and count them together
            ahead = _ahead(ahead, n - len(samples), len(samples), used) if used else 1
            left = -(-(max_draws - draws) // BATCH)
            pending = [make(space, rng, BATCH, net) for _ in range(min(ahead, left))]
            count_batches(net, pending)
        batch = pending.pop(0)
        used += 1
        draws += _accept(batch, min(BATCH, max_draws - draws), limits, n, samples, tally)
        got = len(samples)
        if projected and got < n and draws >= EARLY and (not got or draws * n / got > max_draws):
            break  # deterministic early stop: at this acceptance the budget cannot suffice
    return _sampled(space, n, samples, draws, limits, tally)


def _checked(space, n, seed, bounds, max_draws) -> tuple[int, dict, int, bool]:
    """The arguments checked: (n, bounds, the draw budget, whether it is the default one)."""
    if not isinstance(space, DesignSpace):
        raise ValueError(f"space: expected a DesignSpace, got {type(space).__name__}")
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"n: need an integer >= 1, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed: need an integer >= 0, got {seed!r}")
    limits = check_bounds(bounds)
    # Default budget: at least pycls' 1e6 attempts, 1e5 per network (DDS' AnyNetX_E in
    # 360-400 MF needs ~3e7 for 500), at most 1e8; without an explicit budget the sampler
    # also stops once 1e6 draws show that the budget cannot be enough (see sample).
    projected = max_draws is None
    n = int(n)
    max_draws = int(max_draws) if max_draws is not None else min(10**8, max(EARLY, 10**5 * n))
    if max_draws < 1:
        raise ValueError(f"max_draws: need >= 1, got {max_draws}")
    return n, limits, max_draws, projected


@dataclass
class _Tally:
    """The rejections so far, by constraint and by bound, and the complexity the space reached."""

    broke: np.ndarray = field(default_factory=lambda: np.zeros(len(REASONS), dtype=np.int64))
    missed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BOUND_KEYS, 0))
    seen: dict[str, list[float]] = field(
        default_factory=lambda: {key: [math.inf, -math.inf] for key in BOUND_KEYS}
    )

    def add(self, codes, values: dict, met: np.ndarray, limits: dict) -> None:
        """Count a batch's draws: constraint `codes`, and the `met` networks' complexity."""
        self.broke += np.bincount(codes, minlength=len(REASONS))
        for key in BOUND_KEYS:
            v = values[key][met]
            if v.size:
                lo, hi = self.seen[key]
                self.seen[key] = [min(lo, float(v.min())), max(hi, float(v.max()))]
            if key in limits:
                lo, hi = limits[key]
                self.missed[key] += int(np.count_nonzero((v < lo) | (v > hi)))


def _accept(batch, take: int, limits: dict, n: int, samples: list, tally: _Tally) -> int:
    """Keep the batch's networks inside `limits` (of its first `take` draws) until there
    are n samples, tally the draws used, and return how many draws that was."""
    inside = batch.rows < take
    rows, values = batch.rows[inside], {k: v[inside] for k, v in batch.counts.items()}
    fit = np.ones(rows.size, bool)
    for key, (lo, hi) in limits.items():
        fit &= (values[key] >= lo) & (values[key] <= hi)
    stop = take
    for at in np.flatnonzero(fit)[: n - len(samples)].tolist():
        spec, params = batch.spec(int(rows[at]))
        cx = {key: int(values[key][at]) for key in BOUND_KEYS}
        samples.append(Sample(spec=spec, complexity=cx, params=params))
        if len(samples) == n:
            stop = int(rows[at]) + 1
    tally.add(batch.codes[:stop], values, rows < stop, limits)
    return stop


def _sampled(space, n: int, samples: list, draws: int, limits: dict, tally: _Tally):
    """The SampleResult, or the InfeasibleError that says why fewer than n networks came."""
    broke_named = {REASONS[i]: int(c) for i, c in enumerate(tally.broke) if i and c}
    missed = tally.missed
    if len(samples) < n:
        worst = max(missed, key=missed.get) if any(missed.values()) else None
        raise InfeasibleError(
            _explain(space, n, len(samples), draws, limits, broke_named, missed, tally.seen),
            got=len(samples),
            bound=worst,
        )
    return SampleResult(
        samples=samples,
        draws=draws,
        acceptance=len(samples) / draws,
        constraint_rejects=broke_named,
        bound_rejects={k: v for k, v in missed.items() if v},
    )


def _ahead(ahead: int, wanted: int, got: int, used: int) -> int:
    """Batches to draw next: what the acceptance so far needs (doubling until a network)."""
    if not got:
        return min(AHEAD, 2 * ahead)
    return int(min(AHEAD, max(1, math.ceil(wanted * used / got))))


def _explain(space, n, got, draws, limits, broke, missed, seen) -> str:
    """The InfeasibleError message: which bound rejected most, what the space covers."""
    n_broke = sum(broke.values())
    met = draws - n_broke
    detail = ", ".join(f"{k} {v}" for k, v in sorted(broke.items(), key=lambda kv: -kv[1]))
    broke_text = f"{n_broke} draws broke constraints ({detail})" if broke else ""
    head = f"space {space.name!r}: "
    if met == 0:
        return head + f"no draw in {draws} met the constraints; {broke_text}"
    key = max(missed, key=missed.get) if any(missed.values()) else None
    bound = f"{key} bound [{limits[key][0]:.4g}, {limits[key][1]:.4g}]" if key else "bounds"
    found = f"only {got} of {n} networks" if got else "no network"
    parts = [head + f"{found} met the bounds in {draws} draws"]
    if key:
        valid = f"{missed[key]} of the {met} draws that met the constraints"
        parts.append(f"the {bound} rejected most ({valid})")
        if len(limits) > 1:
            parts.append("rejected per bound: " + ", ".join(f"{k} {missed[k]}" for k in limits))
    if broke_text:
        parts.append(broke_text)
    cover = ", ".join(f"{k} {seen[k][0]:.3g}–{seen[k][1]:.3g}" for k in BOUND_KEYS)
    parts.append(f"this space covers {cover}")
    if got:  # feasible but rare: say how many draws n would take at this acceptance
        parts.append(f"raise max_draws to about {n * draws / got:.2g} to get {n}")
    return "; ".join(parts)
