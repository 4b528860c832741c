"""worker.data and worker.augment: real file formats written here, loaded by the real code."""

from __future__ import annotations

import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from search.spec.study import DatasetSpec
from worker.augment import BatchAugment, Normalize, random_crop, random_flip
from worker.data import SOURCES, DatasetError, load_dataset


def _images(n, h=32, c=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, h, c), dtype=np.uint8)


# --- digits and synthetic -----------------------------------------------------------------
def test_digits_splits_are_fixed_by_the_seed_and_disjoint():
    a = load_dataset(DatasetSpec(name="digits", resolution=16, seed=3))
    b = load_dataset(DatasetSpec(name="digits", resolution=16, seed=3))
    c = load_dataset(DatasetSpec(name="digits", resolution=16, seed=4))
    assert a.train_x.dtype == torch.uint8 and a.train_x.shape[1:] == (3, 16, 16)
    assert a.train_y.dtype == torch.int64 and a.num_classes == 10 and a.resolution == 16
    assert sum(a.sizes().values()) == 1797
    assert torch.equal(a.val_x, b.val_x) and not torch.equal(a.val_y, c.val_y)
    # no image of val or test is also in train (digits has a few exact duplicates: compare sets)
    train = {bytes(x.numpy()) for x in a.train_x}
    assert sum(bytes(x.numpy()) in train for x in a.val_x) < 5
    assert len(a.mean) == 3 and all(0 < s < 1 for s in a.std)
    f = a.train_x.double() / 255
    assert a.mean[0] == pytest.approx(f[:, 0].mean().item(), rel=1e-6)
    assert a.std[0] == pytest.approx(f[:, 0].std().item(), rel=1e-3)


def test_sizes_are_honoured_and_too_large_val_is_an_error():
    d = load_dataset(DatasetSpec(name="digits", train_size=100, val_size=50, test_size=30))
    assert d.sizes() == {"train": 100, "val": 50, "test": 30}
    with pytest.raises(DatasetError, match="val_size"):
        load_dataset(DatasetSpec(name="digits", val_size=5000))


def test_synthetic_is_seeded_and_class_dependent():
    spec = DatasetSpec(name="synthetic", num_classes=4, train_size=200, resolution=12, seed=1)
    a, b = load_dataset(spec), load_dataset(spec)
    assert torch.equal(a.train_x, b.train_x) and a.num_classes == 4
    assert a.sizes() == {"train": 200, "val": 50, "test": 500}
    other = load_dataset(spec.model_copy(update={"seed": 2}))
    assert not torch.equal(a.train_x, other.train_x)
    # the class means differ by more than the noise of a mean of ~50 images
    means = torch.stack([a.train_x[a.train_y == k].float().mean(0) for k in range(4)])
    assert (means[0] - means[1]).abs().mean() > 5


def test_unknown_name_and_num_classes_misuse_name_the_field():
    # the study spec refuses both (search.spec.study); a spec built without validation meets the
    # loader's own check
    with pytest.raises(ValueError, match="name"):
        DatasetSpec(name="nope")
    with pytest.raises(ValueError, match="num_classes: only the synthetic dataset"):
        DatasetSpec(name="digits", num_classes=3)
    with pytest.raises(DatasetError, match="name: unknown dataset 'nope'"):
        load_dataset(DatasetSpec.model_construct(name="nope"))
    with pytest.raises(DatasetError, match="num_classes"):
        load_dataset(DatasetSpec.model_construct(name="digits", num_classes=3))


# --- torchvision layouts --------------------------------------------------------------------
def _write_cifar(root, n=4):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    files = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, name in enumerate(files):
        x = _images(n, seed=i).transpose(0, 3, 1, 2).reshape(n, 3072)
        batch = {b"data": x, b"labels": [int(v) for v in (np.arange(n) + i) % 10]}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)


def test_cifar10_pickles_load_pixel_exact(tmp_path):
    _write_cifar(tmp_path)
    d = load_dataset(DatasetSpec(name="cifar10", root=str(tmp_path), val_size=2))
    assert d.sizes() == {"train": 18, "val": 2, "test": 4} and d.num_classes == 10
    # the test split is the test batch, in order, pixel for pixel (CHW rows of 1024 per channel)
    assert torch.equal(d.test_x, torch.from_numpy(_images(4, seed=5)).permute(0, 3, 1, 2))
    assert d.test_y.tolist() == [5, 6, 7, 8]


def test_cifar100_uses_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for name in ("train", "test"):
        x = _images(6).transpose(0, 3, 1, 2).reshape(6, 3072)
        d = {b"data": x, b"fine_labels": [99, 1, 2, 3, 4, 5], b"coarse_labels": [0] * 6}
        (folder / name).write_bytes(pickle.dumps(d))
    d = load_dataset(DatasetSpec(name="cifar100", root=str(tmp_path), val_size=1))
    assert d.num_classes == 100 and d.test_y.tolist()[0] == 99


def test_cifar_pickles_of_every_protocol_and_numpy_1_names_load(tmp_path):
    """Real CIFAR files are Python 2 pickles naming numpy.core (numpy 1); later ones _core."""
    _write_cifar(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    x = _images(4, seed=9).transpose(0, 3, 1, 2).reshape(4, 3072)
    batch = {b"data": x, b"labels": [1, 2, 3, 4], b"batch_label": b"testing batch 1 of 1"}
    protocol2 = pickle.dumps(batch, protocol=2)  # GLOBAL opcodes: module names as text lines
    # the numpy 1 module name, as in the files torchvision downloads
    for raw in (protocol2.replace(b"numpy._core", b"numpy.core"), pickle.dumps(batch, protocol=5)):
        (folder / "test_batch").write_bytes(raw)
        d = load_dataset(DatasetSpec(name="cifar10", root=str(tmp_path), val_size=2))
        assert d.test_y.tolist() == [1, 2, 3, 4]
        assert torch.equal(d.test_x, torch.from_numpy(_images(4, seed=9)).permute(0, 3, 1, 2))


class _Payload:
    """What a malicious pickle carries: a call made while it is being loaded."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_calls_anything_but_numpy_is_refused_unrun(tmp_path):
    _write_cifar(tmp_path)
    marker = tmp_path / "pwned"
    evil = {b"data": _Payload(marker), b"labels": [0]}
    (tmp_path / "cifar-10-batches-py" / "data_batch_2").write_bytes(pickle.dumps(evil))
    with pytest.raises(
        DatasetError, match=r"data_batch_2 is refused \(not a CIFAR batch: it calls"
    ):
        load_dataset(DatasetSpec(name="cifar10", root=str(tmp_path)))
    assert not marker.exists()  # refused before the call, not after


def test_corrupt_and_missing_cifar_name_path_and_layout(tmp_path):
    _write_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(DatasetError, match="data_batch_3 is corrupt"):
        load_dataset(DatasetSpec(name="cifar10", root=str(tmp_path)))
    with pytest.raises(DatasetError, match=r"nowhere.*expected ROOT/cifar-10-batches-py/"):
        load_dataset(DatasetSpec(name="cifar10", root=str(tmp_path / "nowhere")))
    with pytest.raises(DatasetError, match="root is required"):
        load_dataset(DatasetSpec(name="cifar10"))


def _idx(arr: np.ndarray) -> bytes:
    header = b"\x00\x00\x08" + bytes([arr.ndim]) + b"".join(struct.pack(">I", s) for s in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


@pytest.mark.parametrize(("name", "folder", "gz"), [("mnist", "MNIST", True),
                                                    ("fashion-mnist", "FashionMNIST", False)])  # fmt: skip
def test_mnist_idx_files_gz_and_raw(tmp_path, name, folder, gz):
    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    tx, sx = _images(20, 28, 1)[..., 0], _images(5, 28, 1, seed=1)[..., 0]
    files = {
        "train-images-idx3-ubyte": tx, "train-labels-idx1-ubyte": np.arange(20) % 10,
        "t10k-images-idx3-ubyte": sx, "t10k-labels-idx1-ubyte": np.arange(5),
    }  # fmt: skip
    for fname, arr in files.items():
        data = _idx(np.asarray(arr))
        if gz:
            (raw / (fname + ".gz")).write_bytes(gzip.compress(data))
        else:
            (raw / fname).write_bytes(data)
    d = load_dataset(DatasetSpec(name=name, root=str(tmp_path), val_size=4))
    assert d.sizes() == {"train": 16, "val": 4, "test": 5} and d.resolution == 28
    assert torch.equal(d.test_x[:, 0], torch.from_numpy(sx)) and torch.equal(
        d.test_x[:, 0], d.test_x[:, 2]
    )  # grey repeated to 3 channels
    d32 = load_dataset(DatasetSpec(name=name, root=str(tmp_path), val_size=4, resolution=32))
    assert d32.train_x.shape[1:] == (3, 32, 32)
    (raw / ("t10k-labels-idx1-ubyte" + (".gz" if gz else ""))).write_bytes(b"\x01\x02")
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte is corrupt"):
        load_dataset(DatasetSpec(name=name, root=str(tmp_path)))


def test_svhn_mat_maps_label_10_to_0(tmp_path):
    from scipy.io import savemat

    for split, n in (("train", 10), ("test", 3)):
        x = _images(n, seed=n).transpose(1, 2, 3, 0)  # SVHN stores H x W x C x N
        y = (np.arange(n) % 10 + 1).reshape(n, 1)  # labels 1..10, 10 meaning 0
        savemat(tmp_path / f"{split}_32x32.mat", {"X": x, "y": y})
    d = load_dataset(DatasetSpec(name="svhn", root=str(tmp_path), val_size=2))
    assert d.test_y.tolist() == [1, 2, 3] and d.sizes()["train"] == 8
    assert torch.equal(d.test_x, torch.from_numpy(_images(3, seed=3)).permute(0, 3, 1, 2))
    full = load_dataset(DatasetSpec(name="svhn", root=str(tmp_path), val_size=1, train_size=9))
    assert 0 in torch.cat([full.train_y, full.val_y]).tolist()


def test_imagefolder_pngs_resized_once(tmp_path):
    from PIL import Image

    for c, colour in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
        (tmp_path / c).mkdir()
        for i in range(5):
            Image.new("RGB", (20 + i, 24), colour).save(tmp_path / c / f"{i}.png")
    (tmp_path / "cat" / "notes.txt").write_text("ignored")
    d = load_dataset(DatasetSpec(name="imagefolder", root=str(tmp_path), resolution=8, val_size=2))
    assert d.num_classes == 2 and sum(d.sizes().values()) == 10
    assert d.train_x.shape[1:] == (3, 8, 8)
    red = d.train_x[d.train_y == 0]
    assert (red[:, 0] == 255).all() and (red[:, 2] == 0).all()
    (tmp_path / "dog" / "bad.png").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match="bad.png is not a readable image"):
        load_dataset(DatasetSpec(name="imagefolder", root=str(tmp_path)))


def test_every_registered_source_states_its_layout():
    assert set(SOURCES) == {"digits", "synthetic", "cifar10", "cifar100", "mnist",
                            "fashion-mnist", "svhn", "imagefolder"}  # fmt: skip
    assert all(s.layout for s in SOURCES.values())


def test_the_catalogue_and_the_sources_have_the_same_datasets():
    """search.spec.datasets names every dataset worker.sources can load, and no other; each
    source reads its row (a file dataset needs a root; the others load as the row says)."""
    from typing import get_args

    from search.spec.datasets import DATASETS
    from search.spec.study import DatasetName

    assert set(DATASETS) == set(SOURCES) and tuple(DATASETS) == get_args(DatasetName)
    for name, info in DATASETS.items():
        source = SOURCES[name]
        assert source.name == name and source.info is info
        if info.files:
            with pytest.raises(DatasetError, match=f"dataset {name!r}: root is required"):
                source.read(DatasetSpec(name=name))
            continue
        raw = source.read(DatasetSpec(name=name))
        generated = round(info.train / 4) if info.generated else 0  # validation images
        assert len(raw.train_y) == info.train + generated, name
        assert (None if raw.test_y is None else len(raw.test_y)) == info.test, name
        assert (raw.num_classes, raw.train_x.shape[-1]) == (info.classes, info.channels), name
        assert load_dataset(DatasetSpec(name=name)).resolution == info.side, name


# --- augmentation ---------------------------------------------------------------------------
def test_random_crop_is_a_window_of_the_zero_padded_image():
    x = torch.randint(1, 256, (16, 3, 6, 6), dtype=torch.uint8)
    out = random_crop(x, 2, torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    shifts = set()
    for i in range(16):
        match = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if torch.equal(out[i], padded[i, :, dy : dy + 6, dx : dx + 6])
        ]
        assert match, f"image {i} is not a crop"
        shifts.add(match[0])
    assert len(shifts) > 3  # offsets differ between images


def test_flip_mirrors_about_half_and_normalize_matches_the_formula():
    x = torch.randint(0, 256, (200, 3, 4, 4), dtype=torch.uint8)
    out = random_flip(x, torch.Generator().manual_seed(0))
    flipped = [
        torch.equal(out[i], x[i].flip(2)) and not torch.equal(out[i], x[i]) for i in range(200)
    ]
    assert 60 < sum(flipped) < 140
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 0.2)
    norm = Normalize(mean, std, "cpu", channels_last=True)
    y = norm(x)
    ref = (x.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(
        1, 3, 1, 1
    )
    assert torch.allclose(y, ref, atol=1e-5) and y.is_contiguous(memory_format=torch.channels_last)
    aug = BatchAugment(0, False, norm, torch.Generator())
    assert torch.allclose(aug(x), ref, atol=1e-5)
