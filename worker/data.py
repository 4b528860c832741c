"""Datasets as uint8 NCHW tensors kept on the device, from any source of worker.sources.

Every source reads its files into numpy arrays (its official train / test split, native
resolution); `load_dataset` then does the same for all of them: grey → 3 channels, resize once
to the requested resolution, carve validation (and test, where there is none) from train with
a seeded permutation, subsample to the requested sizes and compute per-channel mean / std.
No download happens unless `DatasetSpec.download` is true (docs/design.md: offline first).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F

from search.spec.datasets import GENERATED_DATASETS, listed
from search.spec.learning import chance_error
from search.spec.study import DatasetSpec
from worker.sources import SOURCES, DatasetError

__all__ = ["SOURCES", "Dataset", "DatasetError", "load_dataset"]


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Train / val / test splits as uint8 NCHW images and int64 labels, plus normalisation."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]  # per channel, in [0, 1] units (torchvision convention)
    std: tuple[float, ...]
    in_channels: int = 3

    @property
    def resolution(self) -> int:
        """Side of the (square) images."""
        return int(self.train_x.shape[-1])

    def to(self, device: str | torch.device) -> Dataset:
        """The same dataset with every tensor on `device` (uint8 stays uint8: 4x less memory)."""
        tensors = {
            f: getattr(self, f).to(device)
            for f in ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y")
        }
        return dataclasses.replace(self, **tensors)

    def chance_error(self) -> float | None:
        """The validation error of always guessing the validation split's most common class."""
        return chance_error(self.val_y.tolist())

    def sizes(self) -> dict[str, int]:
        """Number of images in each split."""
        return {"train": len(self.train_y), "val": len(self.val_y), "test": len(self.test_y)}


# --- the shared part ----------------------------------------------------------------------
def load_dataset(spec: DatasetSpec) -> Dataset:
    """Read `spec.name`, resize once, split with `spec.seed`, and normalise (on the CPU)."""
    source = SOURCES.get(spec.name)
    if source is None:
        raise DatasetError(f"name: unknown dataset {spec.name!r}; choose from {sorted(SOURCES)}")
    if spec.num_classes is not None and not source.info.generated:
        only = listed(GENERATED_DATASETS)
        raise DatasetError(f"num_classes: only the {only} dataset takes it, not {spec.name!r}")
    raw = source.read(spec)
    rng = np.random.default_rng(spec.seed)
    x, y = raw.train_x, raw.train_y
    if raw.test_x is None:  # no official test split: carve it first, from all the data
        n_test = _size(spec.test_size, source.test_fraction, len(y), "test_size")
        perm = rng.permutation(len(y))
        (sx, sy), (x, y) = (
            (x[perm[:n_test]], y[perm[:n_test]]),
            (x[perm[n_test:]], y[perm[n_test:]]),
        )
    else:
        sx, sy = raw.test_x, raw.test_y
        if spec.test_size is not None:
            keep = rng.permutation(len(sy))[: min(spec.test_size, len(sy))]
            sx, sy = sx[np.sort(keep)], sy[np.sort(keep)]
    n_val = _size(spec.val_size, source.val_fraction, len(y), "val_size")
    perm = rng.permutation(len(y))
    val, train = perm[:n_val], perm[n_val:]
    if spec.train_size is not None:
        train = train[: spec.train_size]
    if len(train) == 0:
        raise DatasetError(f"train_size: no training images left after carving {n_val} for val")
    res = spec.resolution or source.default_resolution or raw.train_x.shape[1]
    train_x = _to_tensor(x[train], res)
    mean, std = _mean_std(train_x)
    return Dataset(
        name=spec.name,
        train_x=train_x,
        train_y=torch.from_numpy(y[train].astype(np.int64)),
        val_x=_to_tensor(x[val], res),
        val_y=torch.from_numpy(y[val].astype(np.int64)),
        test_x=_to_tensor(sx, res),
        test_y=torch.from_numpy(np.asarray(sy, dtype=np.int64)),
        num_classes=raw.num_classes,
        mean=mean,
        std=std,
    )


def _size(requested: int | None, fraction: float, n: int, field: str) -> int:
    size = int(round(fraction * n)) if requested is None else requested
    if size >= n:
        raise DatasetError(f"{field}: {size} leaves no training images out of {n}")
    return size


def _to_tensor(x: np.ndarray, res: int, chunk: int = 4096) -> torch.Tensor:
    """uint8 NHWC (C = 1 or 3) → uint8 NCHW with 3 channels at res x res (bilinear, once)."""
    t = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2)
    if t.shape[1] == 1:  # grey is repeated to 3 channels (docs/method.md §1)
        t = t.expand(-1, 3, -1, -1)
    if t.shape[-2:] == (res, res):
        return t.contiguous()
    out = torch.empty((len(t), 3, res, res), dtype=torch.uint8)
    for i in range(0, len(t), chunk):  # chunks bound the float copy's memory
        part = t[i : i + chunk].float()
        down = res < part.shape[-1]
        part = F.interpolate(part, size=(res, res), mode="bilinear", align_corners=False,
                             antialias=down)  # fmt: skip
        out[i : i + chunk] = part.round_().clamp_(0, 255).to(torch.uint8)
    return out


def _mean_std(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images, in [0, 1] units."""
    s = torch.zeros(x.shape[1], dtype=torch.float64)
    s2 = torch.zeros_like(s)
    for i in range(0, len(x), 4096):  # chunks: a float64 copy of CIFAR would be 1 GB
        f = x[i : i + 4096].double().div_(255)
        s += f.sum((0, 2, 3))
        s2 += f.square_().sum((0, 2, 3))
    n = x.numel() // x.shape[1]
    mean = s / n
    std = (s2 / n - mean.square()).clamp_min(1e-6).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())
