"""The operator's limits on what one posted study may ask for, and where its data may live.

The study spec's own bounds (search.spec.study, anynet.spec) are hard: sizes no CNN study needs
and no server could serve. These are the server's, tighter by default and set by the
operator (DSE_MAX_* environment variables or create_app(limits=...)), for every size that
multiplies the memory or time a study costs: samples, spaces, fidelity levels and epochs,
stages, blocks, widths, classes, resolution and the dataset's images. The CLI's
`dse study create` is the operator's own and is not limited by them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from anynet.spaces import support
from search.spec.datasets import DATASETS


class SpecLimitError(ValueError):
    """A study spec exceeds a limit of this server; names the field and the limit."""

    def __init__(self, field_name: str, reason: str):
        super().__init__(f"{field_name}: {reason}")
        self.field = field_name
        self.reason = reason


@dataclass(frozen=True)
class SpecLimits:
    """What one posted study may ask for, and where its data may live."""

    max_samples: int = 500
    max_epochs: int = 100
    max_spaces: int = 12
    max_fidelities: int = 5
    max_references: int = 8  # reference networks of a study (each trained at every level)
    max_reference_seeds: int = 5  # repeats of each reference at each level
    max_stages: int = 8
    max_depth: int = 128  # blocks of one network (DDS AnyNet: 4 x 16, RegNet: d < 64)
    max_width: int = 4096  # channels of a stage, the stem, the head
    max_classes: int = 1000
    max_resolution: int = 256
    max_images: int = 200_000  # per split
    max_dataset_mb: int = 2048  # the dataset's images as uint8 tensors at the study's size
    allow_download: bool = False
    data_dirs: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> SpecLimits:
        """SpecLimits from DSE_MAX_* (e.g. DSE_MAX_SAMPLES), DSE_ALLOW_DOWNLOAD, DSE_DATA_DIRS."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            if not f.name.startswith("max_"):
                continue
            name = f"DSE_{f.name.upper()}"
            raw = env.get(name)
            if raw in (None, ""):
                continue
            try:
                values[f.name] = int(raw)
            except ValueError:
                raise ValueError(f"{name}: expected an integer, got {raw!r}") from None
            if values[f.name] < 1:
                raise ValueError(f"{name}: must be at least 1, got {values[f.name]}")
        download = env.get("DSE_ALLOW_DOWNLOAD", "").strip().lower()
        if download not in ("", "0", "1", "true", "false", "yes", "no"):
            raise ValueError(f"DSE_ALLOW_DOWNLOAD: expected 1 or 0, got {download!r}")
        values["allow_download"] = download in ("1", "true", "yes")
        dirs = env.get("DSE_DATA_DIRS", "").split(os.pathsep)
        values["data_dirs"] = tuple(d for d in dirs if d.strip())
        return cls(**values)

    def check(self, spec: Any) -> None:
        """Raise SpecLimitError naming the field if the study spec exceeds a limit."""
        _most("samples", spec.samples, self.max_samples, "DSE_MAX_SAMPLES")
        _most("spaces", len(spec.spaces), self.max_spaces, "DSE_MAX_SPACES", "spaces")
        fidelities = list(spec.fidelities)
        _most("fidelities", len(fidelities), self.max_fidelities, "DSE_MAX_FIDELITIES", "levels")
        for i, epochs in enumerate(fidelities):
            _most(f"fidelities.{i}", epochs, self.max_epochs, "DSE_MAX_EPOCHS", "epochs")
        for i, space in enumerate(spec.spaces):
            self.check_space(space.resolve(), spec.dataset, f"spaces.{i}")
        self.check_references(spec)
        self.check_dataset(spec.dataset)

    def check_references(self, spec: Any) -> None:
        """How many references and seeds; the depth and widths of inline ones (RegNet, NetSpec)."""
        refs = list(getattr(spec, "references", []))
        if not refs:
            return
        _most("references", len(refs), self.max_references, "DSE_MAX_REFERENCES", "networks")
        _most("reference_seeds", spec.reference_seeds, self.max_reference_seeds,
              "DSE_MAX_REFERENCE_SEEDS", "seeds")  # fmt: skip
        for i, ref in enumerate(refs):
            if ref.reference is not None:  # a named classic network: its size is fixed
                continue
            net = ref.network(spec.dataset.resolution or 32, spec.dataset.num_classes or 10)
            where = f"references.{i}"
            depth = sum(st.depth for st in net.stages)
            _most(f"{where}.depth", depth, self.max_depth, "DSE_MAX_DEPTH", "blocks")
            _most(f"{where}.stages", len(net.stages), self.max_stages, "DSE_MAX_STAGES", "stages")
            widest = max([net.stem.width, net.head_width, *(st.width for st in net.stages)])
            _most(f"{where}.width", widest, self.max_width, "DSE_MAX_WIDTH", "channels")

    def check_space(self, space, dataset, where: str) -> None:
        """The sizes of one design space's networks, as the study's dataset sets them."""
        regnet = space.kind == "regnet"
        stages = space.num_stages if regnet else space.stages
        if stages is not None:
            _most(f"{where}.stages", stages, self.max_stages, "DSE_MAX_STAGES", "stages")
        if regnet:  # `depth` is the network's; widths grow from w0 by wa per block
            depth = support(space.depth)[1]
            widths = {"w0": support(space.w0)[1], "wa": support(space.wa)[1]}
        else:
            depth = sum(support(d)[1] for d in space.per_stage("depth"))
            widths = {"width": max(support(d)[1] for d in space.per_stage("width"))}
        _most(f"{where}.depth", depth, self.max_depth, "DSE_MAX_DEPTH", "blocks")
        # group widths are not here: a group never spans more than its block's width
        widths["stem"] = space.stem.width
        widths["head_width"] = space.head_width
        for name, most in widths.items():
            _most(f"{where}.{name}", most, self.max_width, "DSE_MAX_WIDTH", "channels")
        if dataset.num_classes is None:
            _most(f"{where}.num_classes", space.num_classes, self.max_classes, "DSE_MAX_CLASSES")
        if dataset.resolution is None:
            _most(f"{where}.resolution", space.resolution, self.max_resolution,
                  "DSE_MAX_RESOLUTION", "pixels")  # fmt: skip

    def check_dataset(self, dataset) -> None:
        """Classes, resolution, split sizes and memory of the dataset; download; its root."""
        if dataset.num_classes is not None:
            _most("dataset.num_classes", dataset.num_classes, self.max_classes, "DSE_MAX_CLASSES")
        if dataset.resolution is not None:
            _most("dataset.resolution", dataset.resolution, self.max_resolution,
                  "DSE_MAX_RESOLUTION", "pixels")  # fmt: skip
        for split in ("train_size", "val_size", "test_size"):
            size = getattr(dataset, split)
            if size is not None:
                _most(f"dataset.{split}", size, self.max_images, "DSE_MAX_IMAGES", "images")
        megabytes = dataset_megabytes(dataset)
        if megabytes is not None and megabytes > self.max_dataset_mb:
            raise SpecLimitError(
                "dataset",
                f"its images take about {megabytes:,.0f} MB as tensors, more than this "
                f"server's limit of {self.max_dataset_mb} MB (DSE_MAX_DATASET_MB); "
                "lower the resolution or the split sizes",
            )
        if dataset.download and not self.allow_download:
            raise SpecLimitError(
                "dataset.download",
                "this server does not download datasets (the operator sets DSE_ALLOW_DOWNLOAD=1)",
            )
        self.check_root(dataset.root)

    def check_root(self, root: str | None) -> None:
        """A dataset root: absolute, inside a configured data directory, existing now."""
        if root is None:
            return
        if not self.data_dirs:
            raise SpecLimitError(
                "dataset.root",
                "this server allows no dataset roots (the operator sets DSE_DATA_DIRS)",
            )
        if not Path(root).is_absolute():  # workers elsewhere read it: no cwd or ~ to resolve
            raise SpecLimitError("dataset.root", f"{root!r} is not an absolute path")
        # resolve() follows symlinks and '..', so a root cannot climb out of its directory
        path = Path(root).resolve()
        inside = False
        for allowed in self.data_dirs:
            base = Path(allowed).expanduser().resolve()
            inside |= path == base or base in path.parents
        if not inside:
            raise SpecLimitError(
                "dataset.root", f"{root!r} is not inside an allowed data directory (DSE_DATA_DIRS)"
            )
        if not path.is_dir():
            raise SpecLimitError("dataset.root", f"{root!r} is not a directory on this server")


def dataset_megabytes(dataset) -> float | None:
    """About how many MB a dataset's images take as uint8 tensors (None: not known here).

    The catalogue's sizes (search.spec.datasets): a dataset of a fixed size ships its train
    and test splits (digits: 1,797 8x8 images, read at 16 px); a generated one its default
    sizes (+ a quarter of train for validation), or those the spec gives.
    """
    info = DATASETS[dataset.name]
    if info.generated:
        train = dataset.train_size or info.train
        val = dataset.val_size if dataset.val_size is not None else round(train / 4)
        test = dataset.test_size
        images = train + val + (info.test if test is None else test)
        side = dataset.resolution or info.side
    elif info.train is not None:
        images, side = info.train + (info.test or 0), dataset.resolution or info.side
    else:  # imagefolder: its folders decide; only sizes that were given can be counted
        sizes = (dataset.train_size, dataset.val_size, dataset.test_size)
        if dataset.resolution is None or any(s is None for s in sizes):
            return None
        images, side = sum(sizes), dataset.resolution
    return images * 3 * side * side / 2**20


def _most(name: str, value, most: int, env: str, unit: str = "") -> None:
    if value > most:
        shown = f"{value:g}" if isinstance(value, float) else str(value)
        raise SpecLimitError(
            name,
            f"{shown}{' ' + unit if unit else ''} is above this server's limit of {most} ({env})",
        )
