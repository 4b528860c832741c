"""What a study will cost before it is created: trials per level, images, time on this machine.

How each figure is counted, and why a space is priced by its sampled networks' mean flops,
is docs/method.md §9: trials and images are exact; the time divides each trial's images by
the images/s a network of its flops trains at, from a throughput measured by finished
trials in this store or by a short training on this server's device
(worker.bench.measured_rate). Reference networks train every seed at every level; their
flops are exact.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import statistics
from typing import TYPE_CHECKING

from anynet.network import network_complexity, network_spec, with_input
from anynet.spaces import DesignSpace
from anynet.spaces.sampling import InfeasibleError, sample
from search.spec.datasets import DATASETS
from search.spec.fidelity import promote_count
from search.spec.recipe import resolve_recipe
from search.spec.study import StudySpec
from search.store.creation import space_seed
from search.store.reads import finished_speeds

if TYPE_CHECKING:
    from search.spec.study import DatasetSpec, StudySpec
    from search.store.db import Database


@dataclasses.dataclass(frozen=True)
class DataSizes:
    """The split sizes and input a study's trials train with (None: not known before loading)."""

    train: int | None
    val: int | None
    resolution: int | None
    classes: int | None


def data_sizes(dataset: DatasetSpec) -> DataSizes:
    """Train and validation images, side and classes, as worker.data.load_dataset gives them.

    From the catalogue's splits (search.spec.datasets), as worker.sources reads them and
    worker.data splits them; tests/test_form.py holds them equal to load_dataset's sizes.
    """
    split = DATASETS[dataset.name]
    resolution = dataset.resolution or split.side
    classes = dataset.num_classes or split.classes
    if split.generated:  # generated: train_size + a quarter for validation
        n = dataset.train_size or split.train
        total = n + (dataset.val_size if dataset.val_size is not None else round(n / 4))
    else:
        total = split.train
    if total is None:  # an image folder: only sizes that were given are known
        return DataSizes(dataset.train_size, dataset.val_size, resolution, classes)
    if split.test is None:  # no test split: carved first, from all the data
        total -= (
            dataset.test_size
            if dataset.test_size is not None
            else int(round(split.test_fraction * total))
        )
    val = (
        dataset.val_size if dataset.val_size is not None else int(round(split.val_fraction * total))
    )
    train = max(0, total - val)
    if dataset.train_size is not None:
        train = min(train, dataset.train_size)
    return DataSizes(train, val, resolution, classes)


def level_counts(samples: int, fidelities: list[int], promote: float) -> list[int]:
    """Trials per space at each level: all samples, then promote_count of the level below."""
    counts = [samples]
    for _ in fidelities[1:]:
        counts.append(promote_count(counts[-1], promote))
    return counts


def images_per_trial(train: int, val: int, batch: int, epochs: int) -> tuple[int, int]:
    """(training images, evaluated images) of one trial: full batches, val once per epoch."""
    batch = min(batch, train)
    return epochs * (train // batch) * batch, epochs * val


# --- flops of a space's networks ---------------------------------------------------------
PRICED_NETWORKS = 64  # at most this many of a space's networks are drawn and priced
PRICE_MAX_DRAWS = 200_000  # the draws that pricing may take per space (~0.3 s here)


@dataclasses.dataclass(frozen=True)
class SpaceFlops:
    """The flops the estimate takes for one space's networks, and where they come from."""

    flops: float
    source: str  # "sampled_mean" (older answers: "bounds_midpoint" | "sampled_median")
    note: str


class BoundUnmet(ValueError):
    """No network of a space met a complexity bound within the estimate's draws (a 422)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


def space_flops(spec: StudySpec, index: int, sizes: DataSizes) -> SpaceFlops:
    """Mean flops, at the input they train at, of the first networks creation would sample.

    The sampler runs as search.store.creation runs it (the space's seed stream, bounds, input), for
    min(samples, PRICED_NETWORKS) networks and at most PRICE_MAX_DRAWS draws: the same
    draws, so these are the first networks the study would get. A bound that no draw met
    raises BoundUnmet naming it.
    """
    space = spec.spaces[index].resolve()
    trained_at = sizes.resolution or spec.dataset.resolution or space.resolution
    classes = sizes.classes or spec.dataset.num_classes or space.num_classes
    bounds = tuple(sorted((k, float(lo), float(hi)) for k, (lo, hi) in spec.complexity.items()))
    n = min(spec.samples, PRICED_NETWORKS)
    priced = _priced(
        space.to_json(), n, space_seed(spec.seed, spec.space_names()[index]), bounds,
        spec.dataset.resolution,
        spec.dataset.num_classes, trained_at, classes,
    )  # fmt: skip
    if isinstance(priced[0], str):  # (field, reason): cached like an answer
        raise BoundUnmet(*priced)
    flops, got, draws = priced
    where = " within the complexity bounds" if bounds else ""
    if got == n:
        note = f"mean of the {n} networks creation samples first{where}, at {trained_at} px"
    else:  # rare under the bounds: the ones found in the estimate's draws
        note = (
            f"mean of the {got} networks of {n} found{where} in {draws} draws "
            f"(the estimate's budget), at {trained_at} px"
        )
    return SpaceFlops(flops, "sampled_mean", note)


def reference_flops(spec: StudySpec, sizes: DataSizes) -> dict[str, float]:
    """Flops of each reference network (search.spec.reference) at the input it trains at."""
    if not spec.references:
        return {}
    side = sizes.resolution or spec.dataset.resolution or spec.spaces[0].resolve().resolution
    classes = sizes.classes or spec.dataset.num_classes or 10
    out = {}
    for i, (label, ref) in enumerate(zip(spec.reference_labels(), spec.references, strict=True)):
        try:
            out[label] = float(network_complexity(ref.network(side, classes))["flops"])
        except ValueError as e:
            raise ValueError(f"references.{i} ({label}) at {side} px: {e}") from e
    return out


@functools.lru_cache(maxsize=256)
def _priced(
    space_json: str,
    n: int,
    seed: int,
    bounds: tuple,
    resolution,
    num_classes,
    trained_at: int,
    classes: int,
) -> tuple:
    """(mean flops at the training input, networks priced, draws) of the first n samples,
    or (field, reason) of the bound that no draw met."""
    space = DesignSpace.model_validate_json(space_json)
    limits = {k: (lo, hi) for k, lo, hi in bounds} or None
    kw = dict(seed=seed, bounds=limits, resolution=resolution, num_classes=num_classes,
              in_channels=3, max_draws=PRICE_MAX_DRAWS)  # fmt: skip
    try:
        result = sample(space, n, **kw)
    except InfeasibleError as e:
        if not e.got:
            if e.bound is not None:
                lo, hi = limits[e.bound]
                covers = str(e).partition("; this space covers ")[2]
                return (
                    f"complexity.{e.bound}",
                    f"no network of space {space.name!r} met [{lo:g}, {hi:g}] in "
                    f"{PRICE_MAX_DRAWS} draws (the estimate's budget)"
                    + (f"; this space covers {covers}" if covers else ""),
                )
            raise
        # the same seed draws the same networks: the first e.got fit within the budget
        result = sample(space, e.got, **kw)
    flops = [
        network_complexity(with_input(s.spec, resolution=trained_at, num_classes=classes))["flops"]
        for s in result.samples
    ]
    return float(statistics.fmean(flops)), len(flops), result.draws


# --- how fast this machine trains --------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Rate:
    """Training throughput: forward multiply-adds x images per second, and its source."""

    source: str  # "trials" | "measured"
    flop_per_s: float
    trials: int  # finished trials it is the median of (0 when measured)
    device: str | None
    note: str

    def images_per_s(self, flops: float) -> float:
        """Images/s of a network of `flops` multiply-adds at this throughput."""
        return self.flop_per_s / max(flops, 1.0)


RATE_TRIALS = 100  # the most recent finished trials the store's rate is the median of


def trials_rate(db: Database, most: int = RATE_TRIALS) -> Rate | None:
    """The median throughput of the latest finished trials in the store; None without any.

    A trial records its training images/s; its flops are recomputed at the input it
    trained at (its study's dataset), since the sampler counts them at the space's.
    """
    rows, specs = finished_speeds(db, most)
    inputs = {}
    for study_id, raw in specs.items():  # the input each study's trials trained at
        try:
            inputs[study_id] = data_sizes(StudySpec.model_validate(raw).dataset)
        except ValueError:
            continue  # a spec this version no longer reads: its trials are left out
    rates = []
    for net, images_per_s, study_id in rows:
        if study_id not in inputs:
            continue
        sizes = inputs[study_id]
        try:
            flops = _trained_flops(_freeze(net), sizes.resolution, sizes.classes)
        except ValueError:
            continue  # a network that no longer validates: not a measurement of this machine
        rates.append(images_per_s * flops)
    if not rates:
        return None
    return Rate(
        "trials",
        float(statistics.median(rates)),
        len(rates),
        None,
        f"median over the latest {len(rates)} finished trial(s) in this store "
        "(their images/s x their flops)",
    )


def _freeze(net: dict) -> str:
    return json.dumps(net, sort_keys=True)


@functools.lru_cache(maxsize=4096)
def _trained_flops(net_json: str, resolution, classes) -> float:
    """A stored network's flops at the input its trial trained at."""
    spec = network_spec(json.loads(net_json))
    inputs = {"in_channels": 3}
    if resolution:
        inputs["resolution"] = resolution
    if classes:
        inputs["num_classes"] = classes
    return float(network_complexity(with_input(spec, **inputs))["flops"])


# --- the estimate -----------------------------------------------------------------------
def prices(spec: StudySpec) -> list[SpaceFlops]:
    """Each space's SpaceFlops (space_flops); ValueError naming the space or the bound."""
    sizes = data_sizes(spec.dataset)
    flops = []
    for i in range(len(spec.spaces)):
        try:
            flops.append(space_flops(spec, i, sizes))
        except BoundUnmet:
            raise  # names the bound
        except ValueError as e:  # no network of the space fits (its input, its constraints)
            raise ValueError(f"spaces.{i}: {e}") from e
    return flops


def prices_or_error(spec_json: str) -> dict:
    """In a child (api.http.routes.form): {"prices": [SpaceFlops fields]}, or {"error": message,
    "field", "reason"}: a ValueError comes back as data, and the server answers its 422."""
    try:
        found = prices(StudySpec.model_validate_json(spec_json))
    except ValueError as e:
        field, reason = getattr(e, "field", None), getattr(e, "reason", None)
        return {"error": str(e), "field": field, "reason": reason}
    return {"prices": [dataclasses.asdict(f) for f in found]}


def raise_or_prices(answer: dict) -> list[SpaceFlops]:
    """prices_or_error's answer back as SpaceFlops, or its error raised (BoundUnmet, ValueError)."""
    if "prices" in answer:
        return [SpaceFlops(**f) for f in answer["prices"]]
    if answer.get("field") and answer.get("reason"):
        raise BoundUnmet(answer["field"], answer["reason"])
    raise ValueError(answer["error"])


def estimate(
    spec: StudySpec, rate: Rate | None, workers: int = 1, flops: list[SpaceFlops] | None = None
) -> dict:
    """Trials per level, training and evaluated images, and time of a study (JSON-able).

    `flops`: the spaces' prices when already known (prices(spec), e.g. from a child)."""
    sizes = data_sizes(spec.dataset)
    per_space = level_counts(spec.samples, list(spec.fidelities), spec.promote)
    flops = prices(spec) if flops is None else flops
    known = sizes.train is not None and sizes.val is not None and sizes.train > 0
    recipe = None
    if known:
        first = resolve_recipe(spec.recipe, spec.dataset.name, sizes.train,
                               sizes.resolution or 32, spec.fidelities[0])  # fmt: skip
        recipe = first.model_dump(mode="json")
    refs = reference_flops(spec, sizes)
    levels, space_seconds, ref_seconds = _levels(
        spec, sizes, rate, per_space, flops, refs, known, workers
    )
    timed = known and rate is not None
    names = spec.space_names()
    notes = []
    if not known:
        notes.append(
            f"dataset {spec.dataset.name!r}: its split sizes are known only after loading; "
            "give dataset.train_size and dataset.val_size to estimate images and time"
        )
    return {
        "trials": sum(r["trials"] for r in levels),
        "levels": levels,
        "spaces": [
            {
                "name": names[i],
                "flops": f.flops,
                "flops_source": f.source,
                "flops_note": f.note,
                "seconds": space_seconds[i] / workers if timed else None,
            }  # fmt: skip
            for i, f in enumerate(flops)
        ],
        "references": [
            {
                "name": name,
                "flops": f,
                "trials": spec.reference_seeds * len(levels),
                "seconds": ref_seconds[i] / workers if timed else None,
            }
            for i, (name, f) in enumerate(refs.items())
        ],
        "dataset": {
            "name": spec.dataset.name,
            "train_size": sizes.train,
            "val_size": sizes.val,
            "resolution": sizes.resolution,
            "num_classes": sizes.classes,
        },
        "recipe": recipe,
        "train_images": sum(r["train_images"] for r in levels) if known else None,
        "eval_images": sum(r["eval_images"] for r in levels) if known else None,
        "rate": dataclasses.asdict(rate) if rate is not None else None,
        "workers": workers,
        "seconds": sum(r["seconds"] for r in levels) if timed else None,
        "note": "; ".join(notes) or None,
    }


def _levels(spec, sizes, rate, per_space, flops, refs, known, workers):
    """(one row per level: trials, images, seconds; each space's seconds; each reference's).

    Images only where the split sizes are `known`, seconds only with a `rate` too; a
    level's seconds are shared among `workers`, the per-space sums are not."""
    n_spaces = len(spec.spaces)
    n_refs = len(refs) * spec.reference_seeds  # every seed of every reference, at every level
    levels, space_seconds, ref_seconds = [], [0.0] * n_spaces, [0.0] * len(refs)
    for level, (epochs, n) in enumerate(zip(spec.fidelities, per_space, strict=True)):
        row = {"level": level, "epochs": epochs, "trials_per_space": n,
               "trials": n * n_spaces + n_refs, "reference_trials": n_refs,
               "train_images": None, "eval_images": None, "seconds": None}  # fmt: skip
        if known:
            batch = resolve_recipe(spec.recipe, spec.dataset.name, sizes.train,
                                   sizes.resolution or 32, epochs).batch_size  # fmt: skip
            train, val = images_per_trial(sizes.train, sizes.val, batch, epochs)
            row["train_images"] = (n * n_spaces + n_refs) * train
            row["eval_images"] = (n * n_spaces + n_refs) * val
            if rate is not None:
                seconds = [n * (train + val) / rate.images_per_s(f.flops) for f in flops]
                for i, s in enumerate(seconds):
                    space_seconds[i] += s
                by_ref = [spec.reference_seeds * (train + val) / rate.images_per_s(f)
                          for f in refs.values()]  # fmt: skip
                for i, s in enumerate(by_ref):
                    ref_seconds[i] += s
                row["seconds"] = (sum(seconds) + sum(by_ref)) / workers
        levels.append(row)
    return levels, space_seconds, ref_seconds
