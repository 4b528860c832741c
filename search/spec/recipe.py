"""Recipe defaults that learn: every unset Recipe field resolved for its dataset, in one place.

The worker (each trial), `dse train` and `dse study create --check` all train through
`resolve_recipe`, and each records the recipe it returns, so what a trial says it trained with is
what it trained with. A field the user set is kept as given; None means "this dataset's
default". The rules and the runs that chose them are in docs/method.md §5 ("Recipe defaults").
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel

from search.spec.datasets import DATASETS, listed

# search.spec.study's Recipe, which takes its field descriptions from here (so not imported)
Recipe = TypeVar("Recipe", bound=BaseModel)

# DDS §5's sweeps train at lr 0.05 per batch of 128, and lr scales linearly with the batch
# (Goyal et al., as DDS §5 does for its final models). 0.1 per 128 fails on digits in short
# schedules (docs/method.md §5).
LR_PER_128 = 0.05
BATCH_MAX = 128  # DDS §5's batch
BATCH_MIN = 16  # smaller batches make BatchNorm's statistics too noisy to learn from
MIN_STEPS_PER_EPOCH = 32  # a 1-epoch fidelity still takes this many SGD steps
WARMUP_EPOCHS = 1.0  # linear warm-up, capped at a fifth of the schedule
WARMUP_MAX_FRACTION = 0.2

# (flip, crop padding as a fraction of the side) per dataset: the catalogue's (its reasons are
# there, search.spec.datasets)
AUGMENT: dict[str, tuple[bool, float]] = {n: (d.flip, d.crop) for n, d in DATASETS.items()}
DEFAULT_AUGMENT = (True, 1 / 8)  # any other dataset

# The text every interface shows for the defaults (CLI help, schema descriptions, README).
BATCH_RULE = (
    f"the largest power of two in [{BATCH_MIN}, {BATCH_MAX}] that leaves at least "
    f"{MIN_STEPS_PER_EPOCH} steps per epoch (digits: 32; CIFAR, MNIST: 128)"
)
LR_RULE = f"{LR_PER_128} per 128 images of the batch (DDS sweeps; batch 32: {LR_PER_128 / 4:g})"
WARMUP_RULE = (
    f"{WARMUP_EPOCHS:g} epoch, at most {WARMUP_MAX_FRACTION:g} of the schedule (1 epoch: 0.2)"
)


def _crop_rule() -> str:
    """'0 for digits; resolution // 16 for mnist, fashion-mnist; resolution // 8 otherwise'."""
    crops: dict[float, list[str]] = {}
    for name, (_, crop) in AUGMENT.items():
        if crop != DEFAULT_AUGMENT[1]:
            crops.setdefault(crop, []).append(name)
    rules = [f"{_padding(c)} for {', '.join(names)}" for c, names in crops.items()]
    return "; ".join([*rules, f"{_padding(DEFAULT_AUGMENT[1])} otherwise"])


def _padding(fraction: float) -> str:
    return "0" if fraction == 0 else f"resolution // {round(1 / fraction)}"


def _flip_rule() -> str:
    """'off for digits, mnist, fashion-mnist and svhn; on otherwise' (or the other way round)."""
    other = [name for name, (flip, _) in AUGMENT.items() if flip != DEFAULT_AUGMENT[0]]
    theirs, default = ("off", "on") if DEFAULT_AUGMENT[0] else ("on", "off")
    return f"{theirs} for {listed(other, 'and')}; {default} otherwise"


CROP_RULE = _crop_rule()
FLIP_RULE = _flip_rule()


def default_batch_size(train_size: int | None) -> int:
    """The default batch for a training set of this size (unknown size: DDS's 128)."""
    if train_size is None:
        return BATCH_MAX
    batch = BATCH_MAX
    while batch > BATCH_MIN and train_size // batch < MIN_STEPS_PER_EPOCH:
        batch //= 2
    return batch


def default_lr(batch_size: int) -> float:
    """The default peak learning rate for a batch: LR_PER_128 scaled linearly."""
    return round(LR_PER_128 * batch_size / 128, 10)


def default_warmup_epochs(epochs: int) -> float:
    """The default warm-up of a schedule of `epochs` epochs."""
    return min(WARMUP_EPOCHS, WARMUP_MAX_FRACTION * epochs)


def default_augment(dataset: str, resolution: int) -> tuple[bool, int]:
    """(flip, crop padding in pixels) for a dataset at a resolution."""
    flip, fraction = AUGMENT.get(dataset, DEFAULT_AUGMENT)
    return flip, int(resolution * fraction)


def resolve_recipe(
    recipe: Recipe, dataset: str, train_size: int | None, resolution: int, epochs: int
) -> Recipe:
    """The recipe with every unset field given its default for this dataset and schedule."""
    batch = recipe.batch_size or default_batch_size(train_size)
    if train_size is not None:
        batch = min(batch, train_size)  # a batch never exceeds the data (train drops the rest)
    flip, padding = default_augment(dataset, resolution)
    chosen = {
        "batch_size": batch,
        "lr": recipe.lr if recipe.lr is not None else default_lr(batch),
        "warmup_epochs": (
            recipe.warmup_epochs
            if recipe.warmup_epochs is not None
            else default_warmup_epochs(epochs)
        ),
        "crop_padding": recipe.crop_padding if recipe.crop_padding is not None else padding,
        "flip": recipe.flip if recipe.flip is not None else flip,
    }
    return recipe.model_copy(update=chosen)
