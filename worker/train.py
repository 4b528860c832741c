"""Train one network for one budget: a complete short schedule on data kept on the device.

The whole step is `train_step` (augment, forward under autocast, loss, backward, optimiser);
its speed choices (bf16 autocast where the device gains, channels_last, small-channel batch
norm, uint8 data on the device, one fused SGD, one thread) are made once in `Engine`;
docs/performance.md says why each and what it gained. Each call is a full schedule: linear
warm-up then half-period cosine, per step (docs/method.md §5). Unset recipe fields get their
dataset's defaults (search.spec.recipe.resolve_recipe); the result carries the recipe as it
ran, with the chance error and size of the validation split (search.spec.learning). Weight
decay applies to every parameter, BN and biases included, as pycls does by default.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from anynet.network import NetworkSpec, network
from search.spec.environ import env_number
from search.spec.recipe import resolve_recipe
from search.spec.study import Recipe
from worker import cpu
from worker.augment import BatchAugment, Normalize
from worker.data import Dataset
from worker.small_bn import use_small_channel_bn

THREADS_ENV = "DSE_THREADS"  # torch intra-op threads of a training process
DEFAULT_THREADS = 1  # one worker per core, each single-threaded (README: how many workers)


@dataclasses.dataclass
class TrainResult:
    """Outcome of one training: status, errors, per-epoch metrics, speed."""

    status: str  # done | diverged | oom | cancelled
    val_error: float | None
    test_error: float | None
    epochs: list[dict]
    images_per_s: float
    seconds: float
    message: str = ""
    precision: str = ""  # what ran: e.g. "fp32, channels_last" (auto picks per device)
    recipe: dict | None = None  # every field resolved, precision as it ran
    chance_error: float | None = None  # of the validation split (search.spec.learning)
    val_size: int = 0
    threads: int = 0  # torch intra-op threads it trained with (0: it never started)
    device: str = ""  # where it trained: "cpu", "cuda:0"


def default_threads() -> int:
    """Torch threads of a training process not told otherwise: $DSE_THREADS, else 1."""
    return env_number(THREADS_ENV, int, "a number of threads", DEFAULT_THREADS)


def set_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads from the argument, $DSE_THREADS or 1; return the count."""
    if threads is None:
        threads = default_threads()
    if threads < 1:
        raise ValueError(f"threads: must be >= 1, got {threads}")
    torch.set_num_threads(threads)
    return torch.get_num_threads()


def lr_at(step: int, total: int, warmup: int, peak: float) -> float:
    """Linear warm-up to `peak` over `warmup` steps, then half-period cosine to 0."""
    if step < warmup:
        return peak * (step + 1) / warmup
    return 0.5 * peak * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


@functools.cache
def cpu_bf16_gains(size: int = 256, repeats: int = 5) -> bool:
    """Whether bf16 matmuls beat fp32 on this CPU (native bf16: AVX512-BF16/AMX), timed once.

    Without native bf16 (AVX2-only CPUs) oneDNN emulates it and bf16 autocast trains
    ~10x slower than fp32 (measured on an AVX2-only AMD EPYC: 0.3 vs 174 GFLOP/s on a matmul);
    with it, bf16 + channels_last trains 2-3x faster. Six 256x256 products tell them apart
    in well under a second (~0.15 s on that machine).
    """
    a = torch.randn(size, size)
    b = torch.randn(size, size)

    def best(x, y) -> float:
        x @ y  # warm-up
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            x @ y
            times.append(time.perf_counter() - t)
        return min(times)

    fp32 = best(a, b)
    bf16 = best(a.bfloat16(), b.bfloat16())
    return bf16 < 0.8 * fp32


def auto_precision(device: torch.device) -> str:
    """The training precision for `device` when the recipe says auto."""
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "cpu":  # AMX: fp32 until bf16 is shown to give its answers (worker.cpu)
        return "bf16" if not cpu.has_amx() and cpu_bf16_gains() else "fp32"
    return "fp32"  # mps and others: no autocast gain we have measured


def keep_onednn_off_amx() -> str:
    """For a low-precision CPU run: "" without AMX; else cap oneDNN below it, name the ISA.

    The `dse` training commands start with the cap (worker.allocator); a library caller gets
    it set here, which oneDNN honours if it has not dispatched a kernel yet in this process.
    """
    if not cpu.has_amx():
        return ""
    if not cpu.amx_capped():
        os.environ[cpu.ONEDNN_ISA_ENV] = cpu.AMX_CAP
    isa = os.environ.get(cpu.ONEDNN_ISA_ENV, "")
    return f"oneDNN {isa}" if cpu.amx_capped() else "oneDNN AMX"


class Engine:
    """Device-dependent choices for one run: precision, memory format, optimiser, scaler."""

    def __init__(self, model, recipe: Recipe, device: torch.device, small_bn: bool | None = None):
        cuda = device.type == "cuda"
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}[
            auto_precision(device) if recipe.precision == "auto" else recipe.precision
        ]
        self.channels_last = (
            recipe.channels_last
            if recipe.channels_last is not None
            else device.type == "cpu" or self.dtype is not None
        )
        if cuda:
            torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest kernels once
        self.isa_note = ""
        if device.type == "cpu" and self.dtype is not None:
            self.isa_note = keep_onednn_off_amx()
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        auto_small_bn = device.type == "cpu" and self.channels_last
        self.small_bn = auto_small_bn if small_bn is None else small_bn
        if self.small_bn:  # `dse bench` times the step with and without
            use_small_channel_bn(model)
        self.model = model.to(device=device, memory_format=fmt)
        self.device = device
        self.optimizer = torch.optim.SGD(
            self.model.parameters(),
            lr=0.0,  # train_step sets each step's rate from the schedule
            momentum=recipe.momentum,
            nesterov=recipe.nesterov and recipe.momentum > 0,
            weight_decay=recipe.weight_decay,
            fused=device.type in ("cpu", "cuda"),
        )
        self.scaler = torch.amp.GradScaler(device.type) if self.dtype == torch.float16 else None
        self.label_smoothing = recipe.label_smoothing

    @property
    def precision(self) -> str:
        """The precision in use: bf16, fp16 or fp32."""
        return {torch.bfloat16: "bf16", torch.float16: "fp16", None: "fp32"}[self.dtype]

    def describe(self) -> str:
        """The precision and memory format in use, e.g. "bf16, channels_last"."""
        return f"{self.precision}, {'channels_last' if self.channels_last else 'NCHW'}" + (
            f", {self.isa_note}" if self.isa_note else ""
        )

    def autocast(self):
        """The autocast context of this run (a no-op context for fp32)."""
        return torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None)


def train_step(engine: Engine, augment, x: torch.Tensor, y: torch.Tensor, lr: float):
    """One SGD step on a uint8 batch; returns the (detached, on-device) loss."""
    for group in engine.optimizer.param_groups:
        group["lr"] = lr
    inputs = augment(x)
    with engine.autocast():
        loss = F.cross_entropy(engine.model(inputs), y, label_smoothing=engine.label_smoothing)
    engine.optimizer.zero_grad(set_to_none=True)
    if engine.scaler is None:
        loss.backward()
        engine.optimizer.step()
    else:  # fp16: scale the loss so small gradients survive, skip steps that overflow
        engine.scaler.scale(loss).backward()
        engine.scaler.step(engine.optimizer)
        engine.scaler.update()
    return loss.detach()


@torch.inference_mode()
def evaluate(engine: Engine, normalize: Normalize, x, y, batch_size: int) -> float | None:
    """Top-1 error on (x, y), no augmentation; None for an empty split."""
    if len(y) == 0:
        return None
    engine.model.eval()
    wrong = torch.zeros((), dtype=torch.int64, device=engine.device)
    for i in range(0, len(y), batch_size):
        with engine.autocast():
            logits = engine.model(normalize(x[i : i + batch_size]))
        wrong += (logits.argmax(1) != y[i : i + batch_size]).sum()
    engine.model.train()
    return wrong.item() / len(y)


def train(
    spec: NetworkSpec,
    data: Dataset,
    recipe: Recipe,
    epochs: int,
    device: str | torch.device = "cpu",
    seed: int = 0,
    on_epoch: Callable[[dict], bool | None] | None = None,
    eval_test: bool = False,
    threads: int | None = None,
    small_bn: bool | None = None,
) -> TrainResult:
    """Train `spec` (a NetSpec or a reference network) on `data` for `epochs` with `recipe`;
    failures come back as a status. small_bn: Engine's (None: on CPUs in channels_last)."""
    if epochs < 1:
        raise ValueError(f"epochs: must be >= 1, got {epochs}")
    if spec.num_classes != data.num_classes:
        raise ValueError(
            f"num_classes: the network has {spec.num_classes}, dataset "
            f"{data.name!r} has {data.num_classes}"
        )
    threads = set_threads(threads)
    device = torch.device(device)
    data = data.to(device)
    torch.manual_seed(seed)  # the initial weights
    gen = torch.Generator(device=device).manual_seed(seed)  # order, crops, flips
    recipe = resolve_recipe(recipe, data.name, len(data.train_y), data.resolution, epochs)
    run = _Run(data, recipe, threads, str(device))
    try:
        engine = Engine(network(spec)[0], recipe, device, small_bn)
        run.precision = engine.describe()
        run.recipe.update(precision=engine.precision, channels_last=engine.channels_last)
        return _train_epochs(engine, data, recipe, epochs, gen, run, on_epoch, eval_test)
    except torch.OutOfMemoryError as e:
        if device.type == "cuda":
            torch.cuda.empty_cache()
        first = str(e).splitlines()[0] if str(e) else "out of memory"
        return run.result(
            "oom", f"out of memory at batch size {recipe.batch_size} on {device}: {first}"
        )


class _Run:
    """What one training has done so far (epochs, time, precision) and its TrainResult."""

    def __init__(self, data: Dataset, recipe: Recipe, threads: int, device: str) -> None:
        self.data = data
        self.threads, self.device = threads, device  # what it trains with
        self.records: list[dict] = []  # per epoch, with the images it trained on
        self.start = time.perf_counter()
        self.train_seconds = 0.0
        self.precision = ""  # what ran, once the engine has chosen
        self.recipe = recipe.model_dump(mode="json")  # every field, precision as it ran

    def result(self, status: str, message: str = "", val=None, test=None) -> TrainResult:
        """The run so far as a TrainResult that ends with `status`."""
        images = sum(r["images"] for r in self.records)
        return TrainResult(
            status=status,
            val_error=val,
            test_error=test,
            epochs=[{k: v for k, v in r.items() if k != "images"} for r in self.records],
            images_per_s=images / self.train_seconds if self.train_seconds else 0.0,
            seconds=time.perf_counter() - self.start,
            message=message,
            precision=self.precision,
            recipe=self.recipe,
            chance_error=self.data.chance_error(),
            val_size=len(self.data.val_y),
            threads=self.threads,
            device=self.device,
        )


@dataclasses.dataclass(frozen=True)
class _Schedule:
    """A run's steps: whole batches per epoch, linear warm-up, then half-period cosine."""

    batch_size: int
    steps_per_epoch: int
    total: int
    warmup: int
    peak: float

    @classmethod
    def of(cls, recipe: Recipe, n: int, epochs: int) -> _Schedule:
        """The schedule of `epochs` over `n` training images with `recipe`."""
        steps_per_epoch = (
            n // recipe.batch_size
        )  # drop the ragged last batch: fixed shapes, no tiny BN
        total = epochs * steps_per_epoch
        warmup = min(total, round(recipe.warmup_epochs * steps_per_epoch))
        return cls(recipe.batch_size, steps_per_epoch, total, warmup, recipe.lr)

    def lr(self, step: int) -> float:
        """The learning rate of step `step` (counted from 0 over the whole run)."""
        return lr_at(step, self.total, self.warmup, self.peak)


def _train_epochs(engine, data, recipe, epochs, gen, run: _Run, on_epoch, eval_test):
    """Every epoch trained then validated; a NaN loss or on_epoch's False ends the run early."""
    normalize = Normalize(data.mean, data.std, engine.device, engine.channels_last)
    augment = BatchAugment(recipe.crop_padding, recipe.flip, normalize, gen)
    schedule = _Schedule.of(recipe, len(data.train_y), epochs)
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        train_loss, lr = _train_epoch(engine, augment, data, gen, schedule, epoch)
        seconds = time.perf_counter() - t0
        run.train_seconds += seconds
        images = schedule.steps_per_epoch * schedule.batch_size
        if not math.isfinite(train_loss):
            return run.result("diverged", f"loss became {train_loss} in epoch {epoch} (lr {lr:g})")
        val_error = evaluate(engine, normalize, data.val_x, data.val_y, recipe.eval_batch_size)
        record = {
            "epoch": epoch,
            "train_loss": train_loss,
            "val_error": val_error,
            "seconds": seconds,
            "images_per_s": images / seconds,
            "lr": lr,
            "images": images,
        }
        run.records.append(record)
        if (
            on_epoch is not None
            and on_epoch({k: v for k, v in record.items() if k != "images"}) is False
        ):
            return run.result("cancelled", f"stopped after epoch {epoch}", val=val_error)
    test_error = None
    if eval_test:
        test_error = evaluate(engine, normalize, data.test_x, data.test_y, recipe.eval_batch_size)
    return run.result("done", val=run.records[-1]["val_error"], test=test_error)


def _train_epoch(engine, augment, data, gen, schedule: _Schedule, epoch: int):
    """One pass over the shuffled training set: (its mean loss, the last step's rate)."""
    n = len(data.train_y)
    order = torch.randperm(n, device=engine.device, generator=gen)
    loss_sum = torch.zeros((), device=engine.device)
    step = (epoch - 1) * schedule.steps_per_epoch
    batch_size = schedule.batch_size
    for i in range(schedule.steps_per_epoch):
        idx = order[i * batch_size : (i + 1) * batch_size]
        lr = schedule.lr(step)
        loss_sum += train_step(engine, augment, data.train_x[idx], data.train_y[idx], lr)
        step += 1
    return loss_sum.item() / schedule.steps_per_epoch, lr  # the epoch's one host sync
