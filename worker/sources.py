"""The dataset sources: how each dataset's files are read (or generated) into numpy arrays.

A registry of small objects of one shape (`Source.read(spec) -> Raw`); `worker.data` turns
any of them into device tensors the same way. Each source states the layout it expects, so a
missing or corrupt file is an error naming the path and the layout. What a dataset is (its
sizes, side, classes, splits, whether it can be downloaded) is its row of the catalogue,
search.spec.datasets, which each source reads: the sources say only how to read the files.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import pickle
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from search.spec.datasets import DATASETS, DatasetInfo
from search.spec.study import DatasetSpec


class DatasetError(ValueError):
    """A dataset is missing, corrupt or asked for in a way it cannot be given."""


@dataclasses.dataclass
class Raw:
    """What a source reads: images as uint8 NHWC (C = 1 or 3), labels; test may be absent."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray | None
    test_y: np.ndarray | None
    num_classes: int


DATA_DIRS_ENV = "DSE_DATA_DIRS"


def allowed_root(root: Path, env: dict[str, str] | None = None) -> Path:
    """The root resolved (symlinks and '..' followed), refused with DatasetError when the
    process's DSE_DATA_DIRS is set and the resolved root lies outside every directory in it.

    The server checks a root when the study is posted (api.http.limits); this is the check where
    the files are opened, so a directory replaced later by a symlink outward is not read.
    The worker reads the resolved path, not the link."""
    return allowed_path(root, f"dataset root {root}", env)


def allowed_path(path: Path, what: str, env: dict[str, str] | None = None) -> Path:
    """`path` resolved, refused with DatasetError ("<what> resolves to …, outside …") when
    DSE_DATA_DIRS is set in `env` (default: the process's) and it resolves outside all of them."""
    env = os.environ if env is None else env
    dirs = [d for d in env.get(DATA_DIRS_ENV, "").split(os.pathsep) if d.strip()]
    resolved = path.resolve()
    if not dirs:
        return resolved
    for allowed in dirs:
        base = Path(allowed).expanduser().resolve()
        if resolved == base or base in resolved.parents:
            return resolved
    raise DatasetError(
        f"{what} resolves to {resolved}, outside the allowed data directories ({DATA_DIRS_ENV})"
    )


# --- sources ------------------------------------------------------------------------------
class Source:
    """One dataset: how to read it and what layout it expects on disk; the rest is its row
    of the catalogue (search.spec.datasets), `info`."""

    name = ""  # its name in the catalogue
    layout = ""  # printed in DatasetError so the user can fix their folder

    @property
    def info(self) -> DatasetInfo:
        """The dataset's row of the catalogue."""
        return DATASETS[self.name]

    @property
    def default_resolution(self) -> int | None:
        """The side without a resolution: the catalogue's for data not read from files
        (digits are read at 16 px, synthetic images generated at 32); None = the files'."""
        return None if self.info.files else self.info.side

    @property
    def val_fraction(self) -> float:
        """Carved from train when val_size is not given."""
        return self.info.val_fraction

    @property
    def test_fraction(self) -> float:
        """Carved from all data when the dataset has no test split."""
        return self.info.test_fraction

    @property
    def download_supported(self) -> bool:
        """Whether torchvision can download it into the root."""
        return self.info.download

    def read(self, spec: DatasetSpec) -> Raw:
        """Read the files (or generate) into a Raw."""
        raise NotImplementedError

    def root(self, spec: DatasetSpec) -> Path:
        """The spec's root, which must be given for file-backed datasets, resolved and
        re-checked against DSE_DATA_DIRS where this process has it (allowed_root)."""
        if spec.root is None:
            raise DatasetError(f"dataset {self.name!r}: root is required; expected {self.layout}")
        return allowed_root(Path(spec.root).expanduser())

    def allowed(self, path: Path) -> Path:
        """A path under the checked root, resolved and refused (DatasetError naming it) when a
        symlink inside the root leads it outside DSE_DATA_DIRS: each file or folder read is
        checked where it is opened, not only the root."""
        return allowed_path(path, f"dataset {self.name!r}: {path}")

    def missing(self, path: Path, why: str = "missing") -> DatasetError:
        """The error for a missing or unreadable file."""
        hint = " (or set download to true)" if self.download_supported else ""
        return DatasetError(f"dataset {self.name!r}: {path} is {why}; expected {self.layout}{hint}")


class Digits(Source):
    """scikit-learn's 8x8 digits (1797 real images, ships with the package)."""

    name = "digits"
    layout = "nothing (embedded in scikit-learn)"

    def read(self, spec: DatasetSpec) -> Raw:
        """Load the embedded digits, 0..16 grey levels scaled to 0..255."""
        from sklearn.datasets import load_digits

        d = load_digits()
        x = np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
        return Raw(x, d.target.astype(np.int64), None, None, self.info.classes)


class Synthetic(Source):
    """Seeded, learnable images: one smooth colour pattern per class, shifted, plus noise."""

    name = "synthetic"
    layout = "nothing (generated from the seed)"

    def read(self, spec: DatasetSpec) -> Raw:
        """Generate train and test sets from spec.seed, num_classes, sizes and difficulty.

        The catalogue's sizes and classes unless the spec gives them; val_fraction 0.2 =
        the train_size / 4 extra images generated for validation.
        """
        k = spec.num_classes or self.info.classes
        res = spec.resolution or self.default_resolution
        n_train = spec.train_size or self.info.train
        n_train += spec.val_size if spec.val_size is not None else round(n_train / 4)
        n_test = spec.test_size if spec.test_size is not None else self.info.test
        g = torch.Generator().manual_seed(spec.seed)
        # Class prototypes: a 4x4 random colour grid upsampled = low-frequency patterns that
        # survive crops and flips; difficulty mixes in a shared pattern and adds noise.
        protos = F.interpolate(
            torch.randn(k, 3, 4, 4, generator=g),
            size=(res, res),
            mode="bicubic",
            align_corners=False,
        )
        shared = protos.mean(0, keepdim=True)
        protos = (1 - 0.7 * spec.difficulty) * protos + 0.7 * spec.difficulty * shared

        def make(n: int) -> tuple[np.ndarray, np.ndarray]:
            y = torch.randint(0, k, (n,), generator=g)
            noise = torch.randn(n, 3, res, res, generator=g) * (0.3 + 1.2 * spec.difficulty)
            x = (128 + 48 * (protos[y] + noise)).clamp(0, 255).round().to(torch.uint8)
            return x.permute(0, 2, 3, 1).numpy(), y.numpy()

        tx, ty = make(n_train)
        sx, sy = make(n_test)
        return Raw(tx, ty, sx, sy, k)


class Cifar(Source):
    """CIFAR-10/100 in the python-pickle layout torchvision downloads."""

    def __init__(self, name: str, folder: str, train: list[str], label_key: bytes):
        self.name, self.folder, self.train_files = name, folder, train
        self.label_key, self.k = label_key, self.info.classes
        test = "test_batch" if self.k == 10 else "test"
        self.layout = f"ROOT/{folder}/{{{','.join(train)},{test}}} (python pickles)"
        self.test_file = test

    def read(self, spec: DatasetSpec) -> Raw:
        """Unpickle the train batches and the test batch."""
        root = self.root(spec)
        if spec.download:
            from torchvision import datasets

            cls = datasets.CIFAR10 if self.k == 10 else datasets.CIFAR100
            cls(str(root), train=True, download=True)
        tx, ty = zip(*(self._batch(root / self.folder / f) for f in self.train_files), strict=True)
        sx, sy = self._batch(root / self.folder / self.test_file)
        return Raw(np.concatenate(tx), np.concatenate(ty), sx, sy, self.k)

    def _batch(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        if not path.is_file():
            raise self.missing(path)
        read = self.allowed(path)
        try:
            with open(read, "rb") as f:
                d = CifarUnpickler(f, encoding="bytes").load()
            x = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
            y = np.asarray(d[self.label_key], dtype=np.int64)
        except RefusedPickle as e:
            raise self.missing(path, f"refused ({e})") from None
        except Exception as e:
            raise self.missing(path, f"corrupt ({type(e).__name__}: {e})") from None
        if len(x) != len(y):
            raise self.missing(path, f"corrupt ({len(x)} images but {len(y)} labels)")
        return x.transpose(0, 2, 3, 1), y


class RefusedPickle(pickle.UnpicklingError):
    """A pickle names a callable that the file's format never contains."""


class CifarUnpickler(pickle.Unpickler):
    """Unpickles only what CIFAR batches hold: dicts, lists, bytes, ints and uint8 arrays.

    A pickle may name any callable and have it called while it loads, and a file in a data
    directory is not trusted: every global but numpy's array reconstruction is refused.
    """

    # what CIFAR batches (and the same dicts pickled by Python 3) refer to; numpy 2 moved
    # numpy.core to numpy._core
    ALLOWED = frozenset({
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),  # pickle protocol 5
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),  # bytes in a protocol-2 pickle written by Python 3
    })  # fmt: skip

    def find_class(self, module: str, name: str):
        """An allowed numpy constructor; anything else is refused before it can be called."""
        if (module, name) not in self.ALLOWED:
            raise RefusedPickle(
                f"not a CIFAR batch: it calls {module}.{name}, which CIFAR files never contain"
            )
        if module.startswith("numpy.core.") and hasattr(np, "_core"):
            module = "numpy._core." + module.removeprefix("numpy.core.")
        return super().find_class(module, name)


class Mnist(Source):
    """MNIST / Fashion-MNIST idx files (raw or .gz) in torchvision's ROOT/<Name>/raw/."""

    FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")  # fmt: skip

    def __init__(self, name: str, folder: str, tv_class: str):
        self.name, self.folder, self.tv_class = name, folder, tv_class
        self.layout = f"ROOT/{folder}/raw/{{{','.join(self.FILES)}}}[.gz] (idx format)"

    def read(self, spec: DatasetSpec) -> Raw:
        """Parse the four idx files."""
        root = self.root(spec)
        if spec.download:
            from torchvision import datasets

            getattr(datasets, self.tv_class)(str(root), train=True, download=True)
        raw = root / self.folder / "raw"
        tx, ty, sx, sy = (self._idx(raw / f) for f in self.FILES)
        for x, y, f in ((tx, ty, self.FILES[0]), (sx, sy, self.FILES[2])):
            if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
                raise self.missing(raw / f, f"corrupt (images {x.shape}, labels {y.shape})")
        k = self.info.classes
        return Raw(tx[..., None], ty.astype(np.int64), sx[..., None], sy.astype(np.int64), k)

    def _idx(self, path: Path) -> np.ndarray:
        gz = path.with_name(path.name + ".gz")
        if not path.is_file() and not gz.is_file():
            raise self.missing(path)
        gzipped = not path.is_file()
        read = self.allowed(gz if gzipped else path)
        try:
            data = gzip.decompress(read.read_bytes()) if gzipped else read.read_bytes()
            # idx header: two zero bytes, type code 0x08 (uint8), number of dims, then dims.
            if data[:3] != b"\x00\x00\x08":
                raise ValueError(f"bad magic {data[:4].hex()}")
            ndim = data[3]
            dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
            body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
            return body.reshape(dims).copy()  # frombuffer is read-only
        except Exception as e:
            raise self.missing(path, f"corrupt ({type(e).__name__}: {e})") from None


class Svhn(Source):
    """SVHN cropped digits: torchvision's ROOT/{train,test}_32x32.mat (X: HxWxCxN, y: Nx1)."""

    name = "svhn"
    layout = "ROOT/{train_32x32.mat,test_32x32.mat} (MATLAB, X 32x32x3xN uint8, y Nx1)"

    def read(self, spec: DatasetSpec) -> Raw:
        """Load both .mat files; label 10 means digit 0 (as torchvision maps it)."""
        root = self.root(spec)
        if spec.download:
            from torchvision import datasets

            for split in ("train", "test"):
                datasets.SVHN(str(root), split=split, download=True)
        tx, ty = self._mat(root / "train_32x32.mat")
        sx, sy = self._mat(root / "test_32x32.mat")
        return Raw(tx, ty, sx, sy, self.info.classes)

    def _mat(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        if not path.is_file():
            raise self.missing(path)
        read = self.allowed(path)
        try:
            from scipy.io import loadmat

            m = loadmat(str(read))
            x = np.ascontiguousarray(np.asarray(m["X"], dtype=np.uint8).transpose(3, 0, 1, 2))
            y = np.asarray(m["y"], dtype=np.int64).reshape(-1) % 10
        except Exception as e:
            raise self.missing(path, f"corrupt ({type(e).__name__}: {e})") from None
        if len(x) != len(y):
            raise self.missing(path, f"corrupt ({len(x)} images but {len(y)} labels)")
        return x, y


class ImageFolder(Source):
    """A folder of class sub-folders of images (or train/ and test/ folders of them)."""

    name = "imagefolder"
    layout = "ROOT/<class>/<image>.png|jpg|... or ROOT/train/<class>/... and ROOT/test/<class>/..."
    EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}

    def read(self, spec: DatasetSpec) -> Raw:
        """Read every image once, resized with PIL to the requested (or first image's) size."""
        root = self.root(spec)
        if not root.is_dir():
            raise self.missing(root)
        if (root / "train").is_dir():
            train = self.allowed(root / "train")
            classes = self._classes(train)
            tx, ty = self._images(train, classes, spec.resolution)
            res = tx.shape[1]
            if (root / "test").is_dir():
                sx, sy = self._images(self.allowed(root / "test"), classes, res)
                return Raw(tx, ty, sx, sy, len(classes))
            return Raw(tx, ty, None, None, len(classes))
        classes = self._classes(root)
        tx, ty = self._images(root, classes, spec.resolution)
        return Raw(tx, ty, None, None, len(classes))

    def _classes(self, folder: Path) -> list[str]:
        classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
        if len(classes) < 2:
            raise self.missing(folder, f"not a dataset ({len(classes)} class folders)")
        return classes

    def _files(self, folder: Path) -> list[Path]:
        """The image files of a class folder, in name order, each as it will be opened: the
        folder and every symlink among its entries checked (self.allowed); a plain entry of
        a checked folder is inside it, so only links cost a resolve."""
        folder = self.allowed(folder)
        if not folder.is_dir():  # a test/ without one of train/'s classes
            raise self.missing(folder)
        with os.scandir(folder) as entries:
            found = [(e.name, e.is_symlink()) for e in entries]
        return [
            self.allowed(folder / name) if link else folder / name
            for name, link in sorted(found)
            if Path(name).suffix.lower() in self.EXTS
        ]

    def _images(self, folder: Path, classes: list[str], res: int | None):
        xs, ys = [], []
        for label, c in enumerate(classes):
            for p in self._files(folder / c):
                try:
                    with Image.open(p) as im:
                        im = im.convert("RGB")
                        res = res or im.size[0]
                        if im.size != (res, res):
                            im = im.resize((res, res), Image.BILINEAR)
                        xs.append(np.asarray(im, dtype=np.uint8))
                except (UnidentifiedImageError, OSError) as e:
                    raise self.missing(p, f"not a readable image ({e})") from None
                ys.append(label)
        if not xs:
            raise self.missing(folder, "empty (no images in the class folders)")
        return np.stack(xs), np.asarray(ys, dtype=np.int64)


SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Digits(),
        Synthetic(),
        Cifar("cifar10", "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)],
              b"labels"),
        Cifar("cifar100", "cifar-100-python", ["train"], b"fine_labels"),
        Mnist("mnist", "MNIST", "MNIST"),
        Mnist("fashion-mnist", "FashionMNIST", "FashionMNIST"),
        Svhn(),
        ImageFolder(),
    )
}  # fmt: skip
