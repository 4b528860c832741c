"""worker.train: it learns, it repeats itself for a seed, and failures are results."""

from __future__ import annotations

import math

import pytest
import torch

from anynet.regnet import regnet_spec
from search.spec.study import DatasetSpec, Recipe
from worker.data import load_dataset
from worker.train import TrainResult, lr_at, set_threads, train


@pytest.fixture(scope="module")
def digits():
    torch.set_num_threads(1)
    return load_dataset(DatasetSpec(name="digits", resolution=16))


def small_regnet(depth=4, resolution=16):
    """A 3-stage RegNet (widths 16, 40, 96) with the cifar stem: ~0.1 M params."""
    return regnet_spec(depth, 16, 16, 2.5, 8, stem_width=16, stem_type="cifar",
                       resolution=resolution, num_classes=10)  # fmt: skip


def test_lr_schedule_warms_up_linearly_then_follows_half_cosine():
    lrs = [lr_at(s, 100, 10, 0.2) for s in range(100)]
    assert lrs[0] == pytest.approx(0.02) and lrs[9] == pytest.approx(0.2)
    assert lrs[10] == pytest.approx(0.2) and lrs[55] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False)) and lrs[-1] < 1e-3


@pytest.mark.slow
def test_small_regnet_learns_digits_in_five_epochs(digits):
    # Digits are centred and not mirror-symmetric: no crop, no flip for this dataset.
    recipe = Recipe(batch_size=32, lr=0.1, warmup_epochs=1, crop_padding=0, flip=False,
                    precision="fp32")  # fmt: skip
    seen = []
    r = train(small_regnet(), digits, recipe, epochs=5, seed=0, on_epoch=seen.append,
              eval_test=True)  # fmt: skip
    assert r.status == "done", r.message
    assert [e["epoch"] for e in r.epochs] == [1, 2, 3, 4, 5] and len(seen) == 5
    assert r.val_error < 0.05, [e["val_error"] for e in r.epochs]
    assert r.test_error < 0.08
    assert r.epochs[0]["val_error"] > r.val_error  # learning, not a lucky start
    assert r.epochs[-1]["train_loss"] < r.epochs[0]["train_loss"] / 5
    assert r.epochs[-1]["lr"] < 0.01 and r.images_per_s > 0


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["auto", "bf16"])
def test_same_seed_same_val_error(digits, precision):
    recipe = Recipe(batch_size=64, lr=0.1, crop_padding=2, precision=precision)
    small = digits_subset(digits, 256)
    a = train(small_regnet(2), small, recipe, epochs=2, seed=7)
    b = train(small_regnet(2), small, recipe, epochs=2, seed=7)
    assert a.status == b.status == "done"
    assert a.val_error == b.val_error
    assert a.precision == ("bf16, channels_last" if precision == "bf16" else a.precision)
    assert [e["train_loss"] for e in a.epochs] == [e["train_loss"] for e in b.epochs]
    c = train(small_regnet(2), small, recipe, epochs=2, seed=8)
    assert [e["train_loss"] for e in c.epochs] != [e["train_loss"] for e in a.epochs]


def digits_subset(data, n):
    """The first n training images (keeps the slow tests short)."""
    import dataclasses

    return dataclasses.replace(data, train_x=data.train_x[:n], train_y=data.train_y[:n])


def test_huge_lr_diverges_as_a_result_not_an_exception(digits):
    huge = Recipe(batch_size=64).model_copy(update={"lr": 1e4})  # past the spec's lr bound
    r = train(small_regnet(2), digits_subset(digits, 256), huge, epochs=3, seed=0)
    assert isinstance(r, TrainResult)
    assert r.status == "diverged" and r.val_error is None
    # the message names the epoch whose loss went NaN/inf; the epochs before it are kept
    assert f"in epoch {len(r.epochs) + 1} " in r.message and len(r.epochs) < 3


def test_divergence_keeps_the_epochs_before_it(digits, monkeypatch):
    import worker.train as wt

    real = wt.train_step
    calls = {"n": 0}

    def poisoned(engine, augment, x, y, lr):  # epoch 2 onwards produces a NaN loss
        calls["n"] += 1
        loss = real(engine, augment, x, y, lr)
        return loss * math.nan if calls["n"] > 4 else loss

    monkeypatch.setattr(wt, "train_step", poisoned)
    r = train(small_regnet(2), digits_subset(digits, 256), Recipe(batch_size=64), epochs=3)
    assert r.status == "diverged" and "epoch 2" in r.message
    assert [e["epoch"] for e in r.epochs] == [1]


def test_on_epoch_false_cancels(digits):
    r = train(small_regnet(2), digits_subset(digits, 128), Recipe(batch_size=64), epochs=3,
              on_epoch=lambda rec: False)  # fmt: skip
    assert r.status == "cancelled" and len(r.epochs) == 1 and r.val_error is not None


def test_oom_is_reported_with_the_batch_size(digits, monkeypatch):
    import worker.train as wt

    def oom(*a, **k):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(wt, "train_step", oom)
    r = train(small_regnet(2), digits_subset(digits, 128), Recipe(batch_size=64), epochs=2)
    assert r.status == "oom" and "batch size 64" in r.message and r.val_error is None


def test_bad_arguments_name_the_field(digits, monkeypatch):
    with pytest.raises(ValueError, match="epochs"):
        train(small_regnet(2), digits, Recipe(), epochs=0)
    wrong = regnet_spec(2, 16, 16, 2.5, 8, stem_type="cifar", resolution=16, num_classes=7)
    with pytest.raises(ValueError, match="num_classes"):
        train(wrong, digits, Recipe(), epochs=1)
    monkeypatch.setenv("DSE_THREADS", "1")
    assert set_threads() == 1
    with pytest.raises(ValueError, match="threads"):
        set_threads(0)


def test_local_cpu_workers_are_given_the_thread_variable_the_worker_reads():
    from api.cli.serve import worker_plan
    from worker.train import THREADS_ENV

    plan = worker_plan(2, "cpu")
    assert [env.get(THREADS_ENV) for _, env in plan] == ["1", "1"]
    assert all(k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", THREADS_ENV) for _, e in plan for k in e)


@pytest.mark.parametrize("gains", [True, False])
def test_auto_precision_on_cpu_follows_the_measured_bf16_gain(monkeypatch, gains):
    import torch

    from worker import train as train_module

    monkeypatch.setattr(train_module, "cpu_bf16_gains", lambda: gains)
    cpu = torch.device("cpu")
    engine = train_module.Engine(torch.nn.Linear(2, 2), Recipe(), cpu)
    assert engine.describe() == ("bf16, channels_last" if gains else "fp32, channels_last")
    forced = train_module.Engine(
        torch.nn.Linear(2, 2), Recipe(precision="fp32", channels_last=False), cpu
    )
    assert forced.describe() == "fp32, NCHW"


def test_bf16_gain_probe_agrees_with_a_timed_matmul():
    """The cached probe answers as a fresh, larger timing does (bf16 2x faster, or not)."""
    import time

    import torch

    from worker.train import cpu_bf16_gains

    def seconds(dtype):
        a = torch.randn(384, 384, dtype=dtype)
        a @ a
        t = time.perf_counter()
        a @ a
        return time.perf_counter() - t

    ratio = seconds(torch.bfloat16) / seconds(torch.float32)
    if 0.5 < ratio < 2:  # too close to call on a loaded machine
        pytest.skip(f"bf16/fp32 matmul time ratio {ratio:.2f} is not decisive here")
    assert cpu_bf16_gains() == (ratio < 1)


def test_a_training_uses_one_thread_unless_told_otherwise(monkeypatch):
    from worker.train import THREADS_ENV, default_threads

    monkeypatch.delenv(THREADS_ENV, raising=False)
    torch.set_num_threads(2)
    assert default_threads() == 1 and set_threads() == 1  # workers share the cores by default
    monkeypatch.setenv(THREADS_ENV, "2")
    assert set_threads() == 2
    assert set_threads(1) == 1  # an explicit count wins over the variable
    monkeypatch.setenv(THREADS_ENV, "many")
    with pytest.raises(ValueError, match=THREADS_ENV):
        set_threads()
    monkeypatch.delenv(THREADS_ENV)
    set_threads(1)


def test_dse_train_and_dse_worker_say_the_default_is_one_thread():
    from api.cli.parser import build_parser

    parser = build_parser()
    for command in ("train", "worker"):
        sub = parser._subparsers._group_actions[0].choices[command]
        threads = next(a for a in sub._actions if a.dest == "threads")
        assert threads.default is None and "1" in threads.help and "per core" in threads.help
