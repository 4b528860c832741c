"""The datasets a study can train on, in one table (issue 22: one place per fact).

Every fact about a dataset that more than one module reads lives here, once: its name (the
study spec's enum, search.spec.study), its split sizes, side and classes (the estimate,
search.estimate, and the server's limits, api.http.limits), whether it is read from files
under a root and whether torchvision can download it, and its default augmentation
(search.spec.recipe). worker.sources keeps how each dataset's files are read and takes the
rest from here. Adding a dataset means a row here and its Source in worker.sources. Pure:
no torch, no numpy.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DatasetInfo:
    """One dataset: its splits as worker.sources reads them and worker.data splits them."""

    name: str
    train: int | None  # images of the official train split (generated: the default size)
    test: int | None  # of the official test split; None: carved from train (test_fraction)
    side: int | None  # the side a study gets without a resolution; None: the images' own
    classes: int | None  # None: the folders say
    channels: int  # as stored (worker.data repeats grey to 3)
    files: bool  # read from files under dataset.root, which a study must then give
    download: bool  # torchvision can download it into root (dataset.download)
    flip: bool  # default random horizontal flip (search.spec.recipe)
    crop: float  # default random-crop padding, a fraction of the side
    val_fraction: float = 0.1  # carved from train when val_size is not given
    test_fraction: float = 0.0  # carved from all data when there is no test split
    # generated from the seed (not read): train_size, test_size and num_classes set its
    # sizes, and it generates a quarter of train_size more for validation (val_fraction 0.2)
    generated: bool = False


# The catalogue, in the order the spec's enum lists the names. digits: scikit-learn's 1,797
# 8x8 images, read at 16 px, no test split; CIFAR-10/100: 50,000 + 10,000; (Fashion-)MNIST
# 60,000 + 10,000 at 28 px; SVHN 73,257 + 26,032 (without `extra`). Augmentation
# (docs/method.md §5): digits are centred and not mirror-symmetric, so no flips and at most a
# small crop; scikit-learn's digits are 8x8 originals, where 1 px at 16 px is half a digit
# pixel and slowed 5-epoch trainings in 6 of 7 paired runs, so none; CIFAR's standard 4 px
# at 32 (1/8) and flips; SVHN is digits too (no flips); an image folder gets the CIFAR
# treatment, scaled to its resolution.
DATASETS: dict[str, DatasetInfo] = {
    d.name: d
    for d in (
        DatasetInfo("digits", 1797, None, 16, 10, 1, files=False, download=False,
                    flip=False, crop=0.0, val_fraction=0.2, test_fraction=0.2),
        DatasetInfo("synthetic", 2000, 500, 32, 10, 3, files=False, download=False,
                    flip=True, crop=1 / 8, val_fraction=0.2, generated=True),
        DatasetInfo("cifar10", 50_000, 10_000, 32, 10, 3, files=True, download=True,
                    flip=True, crop=1 / 8),
        DatasetInfo("cifar100", 50_000, 10_000, 32, 100, 3, files=True, download=True,
                    flip=True, crop=1 / 8),
        DatasetInfo("mnist", 60_000, 10_000, 28, 10, 1, files=True, download=True,
                    flip=False, crop=1 / 16),
        DatasetInfo("fashion-mnist", 60_000, 10_000, 28, 10, 1, files=True, download=True,
                    flip=False, crop=1 / 16),
        DatasetInfo("svhn", 73_257, 26_032, 32, 10, 3, files=True, download=True,
                    flip=False, crop=1 / 8),
        DatasetInfo("imagefolder", None, None, None, None, 3, files=True, download=False,
                    flip=True, crop=1 / 8, test_fraction=0.2),
    )
}  # fmt: skip
DATASET_NAMES = tuple(DATASETS)
# Datasets read from files: a study of one must say where they are (worker.sources).
FILE_DATASETS = frozenset(n for n, d in DATASETS.items() if d.files)
GENERATED_DATASETS = tuple(n for n, d in DATASETS.items() if d.generated)


def listed(names, last: str = "or") -> str:
    """'a, b or c': names as a sentence lists them."""
    names = list(names)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} {last} {names[-1]}"
