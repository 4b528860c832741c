"""`dse bench`: how fast the engine trains sampled networks here, against this machine's limits
and the loop most sweep scripts use.

Everything is measured in one run on the same networks, data and batch size, one thread per
process, each training in a fresh subprocess with the worker's settings: the machine, GEMM
and conv-shape peaks per dtype, the engine's images/s, fraction of both peaks and step split
(with and without worker.small_bn), a naive DataLoader loop, and workers per core with and
without a competing process. docs/performance.md lists what each figure is, what was
measured on which CPU, and what was tried and left out.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time

import numpy as np
import torch
from PIL import Image
from torch.profiler import ProfilerActivity, profile
from torch.utils.data import DataLoader
from torchvision import transforms

from anynet.build import build
from anynet.complexity import complexity
from anynet.network import network
from anynet.spaces import get_space
from anynet.spaces.sampling import sample
from anynet.spec import NetSpec
from search.spec.recipe import resolve_recipe
from search.spec.study import DatasetSpec, Recipe
from worker.allocator import MALLOC_ENV, OPT_OUT, applies, malloc_tuned, tuned_env
from worker.augment import BatchAugment, Normalize
from worker.check import best_device, check_network
from worker.cpu import cpu_features, cpu_model, onednn_env
from worker.data import load_dataset
from worker.small_bn import SMALL_BN_OP
from worker.train import Engine, cpu_bf16_gains, set_threads, train

SPACE, BOUNDS, RESOLUTION = "ResNeXt_A", (30e6, 80e6), 32  # NDS CIFAR sweeps (docs/method.md §4)
BATCH_SIZE = 128  # both ways (the CIFAR recipe of NDS and of most sweep scripts)
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "DSE_THREADS")


def median_seconds(fn, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of `fn()` over `repeats` timed calls after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def matmul_peak(dtype: torch.dtype, n: int = 2048, repeats: int = 7) -> dict:
    """FLOP/s of a square matmul in `dtype` (up to n x n; 2 n^3 each): median of `repeats`.

    The size grows from 256 while one product takes under 50 ms, so a dtype the CPU only
    emulates (bf16 without AVX512-BF16/AMX: ~0.3 GFLOP/s here) is measured in seconds too.
    """
    size = 256
    while True:
        a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
        t = time.perf_counter()
        a @ b
        if size >= n or time.perf_counter() - t > 0.05:
            break
        size *= 2
    return {"size": size, "flop_per_s": 2 * size**3 / median_seconds(lambda: a @ b, repeats)}


def machine() -> dict:
    """What this machine is: CPU model, features and torch's kernel level; GPU if any."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count() or 1,
        "features": cpu_features(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "native_bf16": cpu_bf16_gains(),
        "gpu": gpu,
        "torch": torch.__version__,
    }


def networks(n: int, seed: int = 0):
    """n networks sampled from the NDS ResNeXt-A space at CIFAR size (30-80 MF)."""
    result = sample(get_space(SPACE), n, seed, bounds={"flops": BOUNDS},
                    resolution=RESOLUTION, num_classes=10)  # fmt: skip
    return result.samples


def bench_data(train_size: int):
    """CIFAR-shaped synthetic data (32 px, 10 classes), so the bench needs no download."""
    spec = DatasetSpec(name="synthetic", train_size=train_size, val_size=256, test_size=0,
                       resolution=RESOLUTION)  # fmt: skip
    return load_dataset(spec)


# --- convolution peaks: the networks' own shapes, timed alone --------------------------------
def conv_shapes(spec, batch_size: int) -> list[dict]:
    """The distinct convolutions of `spec` at `batch_size`, with how often each occurs."""
    model, seen = build(spec), {}

    def hook(module, inputs, _output):
        key = (tuple(inputs[0].shape), module.out_channels, module.kernel_size, module.stride,
               module.padding, module.dilation, module.groups, module.bias is not None)  # fmt: skip
        seen[key] = seen.get(key, 0) + 1

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, torch.nn.Conv2d)]  # fmt: skip
    with torch.no_grad():
        model(torch.zeros(batch_size, spec.in_channels, spec.resolution, spec.resolution))
    for h in handles:
        h.remove()
    shapes = []
    for (inp, out, k, stride, pad, dil, groups, bias), count in seen.items():
        n, c, h, w = inp
        oh = (h + 2 * pad[0] - dil[0] * (k[0] - 1) - 1) // stride[0] + 1
        ow = (w + 2 * pad[1] - dil[1] * (k[1] - 1) - 1) // stride[1] + 1
        macs = n * out * oh * ow * (c // groups) * k[0] * k[1]
        shapes.append({"input": inp, "out": out, "kernel": k, "stride": stride, "padding": pad,
                       "dilation": dil, "groups": groups, "bias": bias, "count": count,
                       "train_flops": 3 * 2 * macs})  # fmt: skip
    return shapes


def conv_seconds(shape: dict, dtype: torch.dtype | None, channels_last: bool,
                 repeats: int = 3) -> float:  # fmt: skip
    """Median seconds of one convolution's forward + backward (input and weight gradients)."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    conv = torch.nn.Conv2d(shape["input"][1], shape["out"], shape["kernel"], shape["stride"],
                           shape["padding"], shape["dilation"], shape["groups"],
                           shape["bias"]).to(memory_format=fmt)  # fmt: skip
    x = torch.randn(shape["input"]).contiguous(memory_format=fmt).requires_grad_()

    def step():
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            y = conv(x)
        y.backward(torch.ones_like(y))

    return median_seconds(step, repeats)


def conv_peaks(specs, batch_size: int, dtypes: dict, repeats: int = 3) -> dict:
    """FLOP/s of the networks' convolutions timed alone, per dtype and memory format.

    {"fp32": {"channels_last": F, "nchw": F}, ...}: the networks' total conv training flops
    over the summed median seconds (each shape weighted by how often the networks run it).
    """
    shapes: dict = {}
    for spec in specs:
        for s in conv_shapes(spec, batch_size):
            key = json.dumps({k: v for k, v in s.items() if k not in ("count", "train_flops")})
            if key in shapes:
                shapes[key]["count"] += s["count"]
            else:
                shapes[key] = s
    flops = sum(s["count"] * s["train_flops"] for s in shapes.values())
    peaks = {}
    for name, dtype in dtypes.items():
        peaks[name] = {}
        for fmt, cl in (("channels_last", True), ("nchw", False)):
            secs = sum(s["count"] * conv_seconds(s, dtype, cl, repeats) for s in shapes.values())
            peaks[name][fmt] = flops / secs
    return {"shapes": len(shapes), "flop_per_s": peaks}


# --- the engine's step, split ----------------------------------------------------------------
CATEGORIES = ("convolution", "normalisation", "elementwise", "optimizer", "data")


def op_category(name: str) -> str:
    """The share of the step an aten op of forward + backward counts in."""
    low = name.lower()
    if "conv" in low:
        return "convolution"
    if "norm" in low:
        return "normalisation"
    return "elementwise"  # activations, adds, pooling, linear head, loss, copies


def in_small_bn(event) -> bool:
    """Whether a profiler event ran inside worker.small_bn's batch norm (forward or backward),
    whose sums, subtractions and scalings are its normalisation, not elementwise work."""
    while event is not None:
        if SMALL_BN_OP in event.name:
            return True
        event = event.cpu_parent
    return False


def step_split(spec, data, batch_size: int, steps: int = 3, small_bn: bool | None = None) -> dict:
    """Seconds per step of the engine on `spec`, split into CATEGORIES (small_bn: Engine's).

    Data (crop, flip, normalise) and optimiser (step, zero_grad) are timed directly; the
    forward + backward time is split between convolutions, normalisation and elementwise
    ops in proportion to their self time in torch's profiler.
    """
    recipe = resolve_recipe(Recipe(batch_size=batch_size), data.name, len(data.train_y),
                            data.resolution, 2)  # fmt: skip
    engine = Engine(network(spec)[0], recipe, torch.device("cpu"), small_bn)
    normalize = Normalize(data.mean, data.std, "cpu", engine.channels_last)
    augment = BatchAugment(recipe.crop_padding, recipe.flip, normalize,
                           torch.Generator().manual_seed(0))  # fmt: skip
    x, y = data.train_x[:batch_size], data.train_y[:batch_size]
    for group in engine.optimizer.param_groups:
        group["lr"] = 0.01

    def fwd_bwd(inputs):
        with engine.autocast():
            loss = torch.nn.functional.cross_entropy(engine.model(inputs), y)
        loss.backward()

    fwd_bwd(augment(x))  # warm-up: oneDNN primitives, allocator
    engine.optimizer.step()
    totals = dict.fromkeys(("data", "forward_backward", "optimizer"), 0.0)
    for _ in range(steps):
        t0 = time.perf_counter()
        inputs = augment(x)
        t1 = time.perf_counter()
        engine.optimizer.zero_grad(set_to_none=True)
        fwd_bwd(inputs)
        t2 = time.perf_counter()
        engine.optimizer.step()
        t3 = time.perf_counter()
        totals["data"] += t1 - t0
        totals["forward_backward"] += t2 - t1
        totals["optimizer"] += t3 - t2
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fwd_bwd(inputs)
    self_time = dict.fromkeys(CATEGORIES[:3], 0.0)
    for event in prof.events():
        if event.name.startswith("aten::"):
            category = "normalisation" if in_small_bn(event) else op_category(event.name)
            self_time[category] += event.self_cpu_time_total
    profiled = sum(self_time.values()) or 1.0
    per_step = {k: v / steps for k, v in totals.items()}
    split = {k: per_step["forward_backward"] * v / profiled for k, v in self_time.items()}
    split.update(optimizer=per_step["optimizer"], data=per_step["data"])
    return {"seconds": sum(per_step.values()), "split": split, "precision": engine.describe()}


# --- training, each way in a fresh process ---------------------------------------------------
def engine_images_per_s(spec, data, batch_size: int, epochs: int = 2, threads=None,
                        small_bn: bool | None = None) -> float:  # fmt: skip
    """Steady images/s of worker.train: the last epoch (the first pays for warm-up)."""
    result = train(spec, data, Recipe(batch_size=batch_size), epochs=epochs, seed=0,
                   threads=threads, small_bn=small_bn)  # fmt: skip
    if result.status != "done":
        raise RuntimeError(f"bench network failed: {result.status} {result.message}")
    return result.epochs[-1]["images_per_s"]


def baseline_images_per_s(spec, data, batch_size: int, warmup: int, timed: int) -> float:
    """images/s of the usual sweep script: DataLoader, per-sample transforms, fp32, NCHW.

    `warmup` batches untimed (as the engine's first epoch), then `timed` batches timed.
    """

    class ImageDataset(torch.utils.data.Dataset):  # as torchvision's CIFAR10 serves images
        def __init__(self, x, y, transform):
            self.x, self.y, self.transform = x.permute(0, 2, 3, 1).numpy(), y.tolist(), transform

        def __len__(self):
            return len(self.y)

        def __getitem__(self, i):
            return self.transform(Image.fromarray(np.ascontiguousarray(self.x[i]))), self.y[i]

    transform = transforms.Compose([
        transforms.RandomCrop(data.resolution, padding=data.resolution // 8),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize(data.mean, data.std),
    ])  # fmt: skip
    loader = DataLoader(ImageDataset(data.train_x, data.train_y, transform),
                        batch_size=batch_size, shuffle=True, drop_last=True, num_workers=0)  # fmt: skip
    torch.manual_seed(0)
    model = build(spec)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    criterion = torch.nn.CrossEntropyLoss()
    done, start = 0, 0.0
    while True:  # epochs until warmup + timed batches
        for x, y in loader:
            loss = criterion(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            done += 1
            if done == warmup:
                start = time.perf_counter()
            elif done == warmup + timed:
                return timed * batch_size / (time.perf_counter() - start)


def child_main(job: dict) -> dict:
    """Inside a bench subprocess: one way of training (or timing) the networks of `job`."""
    threads = set_threads(job.get("threads"))  # None: the worker's default
    specs = [NetSpec.from_json(s) for s in job["specs"]]
    reply = {"malloc_tuned": malloc_tuned(), "threads": threads}
    if job["way"] == "convs":
        dtypes = {"fp32": None, **({"bf16": torch.bfloat16} if job.get("bf16") else {})}
        return {**reply, **conv_peaks(specs, job["batch_size"], dtypes, job.get("repeats", 3))}
    data = bench_data(job["train_size"])
    if job["way"] == "split":
        splits = [step_split(s, data, job["batch_size"], small_bn=job.get("small_bn"))
                  for s in specs]  # fmt: skip
        return {**reply, "splits": splits}
    if job["way"] == "engine":
        rates = [engine_images_per_s(s, data, job["batch_size"], threads=threads,
                                     small_bn=job.get("small_bn")) for s in specs]  # fmt: skip
    else:
        steps = job["train_size"] // job["batch_size"]  # the engine's epoch: warm-up, timed
        rates = [baseline_images_per_s(s, data, job["batch_size"], steps, steps) for s in specs]
    return {**reply, "images_per_s": rates}


def child_env(job: dict, tuned_malloc: bool) -> dict[str, str]:
    """The environment of a bench subprocess: thread variables only where the job sets them."""
    drop = (*MALLOC_ENV, OPT_OUT, *THREAD_VARS)
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env = onednn_env(tuned_env(env) if tuned_malloc else env)  # off AMX, as workers run
    if job.get("threads") is not None:
        env["OMP_NUM_THREADS"] = str(job["threads"])
    return env


def run_children(job: dict, processes: int, tuned_malloc: bool) -> list[dict]:
    """Run `job` in `processes` concurrent fresh subprocesses; their replies.

    Each starts fresh (glibc reads its malloc settings only at start-up): with the worker's
    settings (worker.allocator) or with glibc's defaults, as a user's own script runs.
    """
    cmd = [sys.executable, "-m", "worker.bench", "--child", json.dumps(job)]
    env = child_env(job, tuned_malloc)
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(processes)]  # fmt: skip
    replies = []
    for p in procs:
        out, _ = p.communicate(timeout=1800)
        if p.returncode != 0:
            raise RuntimeError(f"bench subprocess ({job['way']}) exited with {p.returncode}")
        reply = json.loads(out.strip().splitlines()[-1])
        if reply["malloc_tuned"] != tuned_malloc and applies():
            raise RuntimeError(f"bench subprocess: malloc settings {reply['malloc_tuned']}, "
                               f"expected {tuned_malloc}")  # fmt: skip
        replies.append(reply)
    return replies


def in_processes(job: dict, processes: int, tuned_malloc: bool) -> list[float]:
    """Run a training `job` in `processes` concurrent subprocesses; images/s per network, summed."""
    replies = run_children(job, processes, tuned_malloc)
    return [sum(rates) for rates in zip(*(r["images_per_s"] for r in replies), strict=True)]


class BusyCore:
    """A competing process spinning on one core while the block runs (another user's job)."""

    def __enter__(self) -> BusyCore:
        self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        return self

    def __exit__(self, *exc) -> None:
        self.proc.kill()
        self.proc.wait()


def with_and_without(job: dict, rounds: int, log=print) -> dict[bool, list]:
    """The replies of `job` with the engine's small-channel batch norm (worker.small_bn) and
    without, alternating which runs first in each of `rounds`: {True: [...], False: [...]}."""
    replies: dict[bool, list] = {True: [], False: []}
    for r in range(rounds):
        for small_bn in (True, False) if r % 2 == 0 else (False, True):
            log(f"bench: {job['way']}, {'with' if small_bn else 'without'} the small-channel BN")
            replies[small_bn] += run_children({**job, "small_bn": small_bn}, 1, tuned_malloc=True)
    return replies


def mean_split(splits: list[dict]) -> dict:
    """The mean of several step_split results of one network."""
    return {
        "seconds": statistics.fmean(s["seconds"] for s in splits),
        "split": {k: statistics.fmean(s["split"][k] for s in splits) for k in splits[0]["split"]},
        "precision": splits[0]["precision"],
    }


def harmonic(rates: list[float]) -> float:
    """Images/s over a sweep of the networks: the time per image summed, not the rates."""
    return len(rates) / sum(1 / r for r in rates)


def workers_under_load(job: dict, cores: int, log=print, rounds: int = 1) -> dict:
    """images/s of `cores` workers: default threads, 1 thread each, all cores each; +- load.

    Each of `rounds` runs the layouts in a rotated order and the rates are averaged (other
    users' load drifts between runs); `default_threads` is what the default workers chose.
    """
    layouts = {"default": None, "one_thread": 1, "all_cores": cores}
    result = {}
    for loaded in (False, True):
        key = "with_busy_core" if loaded else "free"
        rates: dict[str, list[float]] = {name: [] for name in layouts}
        for r in range(rounds):
            names = list(layouts)[r % len(layouts) :] + list(layouts)[: r % len(layouts)]
            for name in names:
                threads = layouts[name]
                log(f"bench: {cores} workers, threads {threads or 'default'}"
                    f"{', one core busy with another process' if loaded else ''}")  # fmt: skip
                run = {**job, "threads": threads}
                if loaded:
                    with BusyCore():
                        replies = run_children(run, cores, True)
                else:
                    replies = run_children(run, cores, True)
                if name == "default":
                    result["default_threads"] = sorted({r["threads"] for r in replies})
                per_net = zip(*(r["images_per_s"] for r in replies), strict=True)
                rates[name].append(harmonic([sum(x) for x in per_net]))
        result[key] = {name: statistics.fmean(v) for name, v in rates.items()}
    for key in ("free", "with_busy_core"):
        r = result[key]
        r["default_over_one_thread"] = r["default"] / r["one_thread"]
        r["all_cores_over_one_thread"] = r["all_cores"] / r["one_thread"]
    result["cores"] = cores
    result["rounds"] = rounds
    result["goal"] = 0.8  # default / one thread each, under the competing load
    return result


def _say_machine(info: dict, log) -> None:
    """Log the CPU (its features), the cores, torch's CPU capability and the GPU if any."""
    feats = ", ".join(k for k, v in info["features"].items() if v) or "none of " + ", ".join(
        info["features"]
    )
    log(f"bench: {info['cpu']} ({info['cores']} cores; {feats}; "
        f"torch {info['torch_cpu_capability']})"
        + (f", GPU {info['gpu']}" if info["gpu"] else ""))  # fmt: skip


def _engine_figures(flops, rates: list[float], split: dict, gemm: dict, convs: dict,
                    baseline: list[float]) -> dict:  # fmt: skip
    """The engine's images/s, FLOP/s, fractions of the GEMM and conv-shape peaks of its
    dtype and memory format, speed-up over the naive loop and the step's split."""
    dtype, fmt = (p.strip() for p in split["precision"].split(",")[:2])
    fmt = "nchw" if fmt == "NCHW" else fmt
    conv_peak = convs["flop_per_s"].get(dtype, {}).get(fmt)
    fps = sum(6 * f * e for f, e in zip(flops, rates, strict=True)) / len(flops)
    return {
        "images_per_s": harmonic(rates),
        "flop_per_s": fps,
        "precision": split["precision"],
        "fraction_of_gemm_peak": fps / gemm[dtype]["flop_per_s"],
        "fraction_of_conv_peak": fps / conv_peak if conv_peak else None,
        "speedup": harmonic(rates) / harmonic(baseline),
        "step": {
            "seconds": split["seconds"],
            "split": split["split"],
            "shares": {k: v / split["seconds"] for k, v in split["split"].items()},
        },
    }


def run_bench(quick: bool = False, log=print) -> dict:
    """Measure everything above; a dict of figures (JSON-able)."""
    info = machine()
    cores = info["cores"]
    set_threads(1)  # peaks per core: the service runs one single-threaded worker per core
    train_size, repeats = (256, 3) if quick else (512, 5)
    _say_machine(info, log)
    log("bench: GEMM peak, 1 thread, median of repeated runs")
    gemm = {"fp32": matmul_peak(torch.float32, repeats=repeats),
            "bf16": matmul_peak(torch.bfloat16, repeats=repeats)}  # fmt: skip
    specs = [s.spec for s in networks(1)]
    flops = [complexity(s)["flops"] for s in specs]
    job = {"specs": [s.to_json() for s in specs], "threads": None, "train_size": train_size,
           "batch_size": BATCH_SIZE}  # fmt: skip
    log(f"bench: {len(specs)} network of {SPACE}, {', '.join(f'{f / 1e6:.0f}' for f in flops)} MF")
    log("bench: conv peaks: the network's own conv shapes alone, fwd + bwd"
        + ("" if info["native_bf16"] else " (fp32 only: bf16 is emulated here)"))  # fmt: skip
    convs = run_children({**job, "way": "convs", "threads": 1, "bf16": info["native_bf16"],
                          "repeats": repeats}, 1, tuned_malloc=True)[0]  # fmt: skip
    rounds = 1 if quick else 2
    log("bench: engine, one worker as `dse worker` starts it")
    runs = with_and_without({**job, "way": "engine"}, rounds, log)
    rates = {k: [statistics.fmean(x) for x in zip(*(r["images_per_s"] for r in v), strict=True)]
             for k, v in runs.items()}  # fmt: skip
    log("bench: the engine's step, split")
    splits = with_and_without({**job, "way": "split", "threads": 1}, rounds, log)
    splits = {k: mean_split([r["splits"][0] for r in v]) for k, v in splits.items()}
    engine = rates[True]
    log("bench: naive loop, one thread, glibc's malloc defaults")
    baseline = in_processes({**job, "way": "baseline", "threads": 1}, 1, tuned_malloc=False)
    workers = workers_under_load({**job, "way": "engine", "train_size": train_size // 2}, cores,
                                 log, rounds=1 if quick else 2)  # fmt: skip
    figures = {k: _engine_figures(flops, rates[k], splits[k], gemm, convs, baseline)
               for k in (True, False)}  # fmt: skip
    return {
        "machine": info,
        "peak": {"gemm": gemm, "conv": convs["flop_per_s"], "conv_shapes": convs["shapes"]},
        "networks": [
            {
                "stage_depths": s.stage_depths,
                "stage_widths": s.stage_widths,
                "group_widths": s.group_widths,
                "flops": f,
                "engine_images_per_s": e,
                "baseline_images_per_s": b,
            }
            for s, f, e, b in zip(specs, flops, engine, baseline, strict=True)
        ],  # fmt: skip
        "engine": {k: v for k, v in figures[True].items() if k not in ("step", "speedup")},
        "step": figures[True]["step"],
        # the same engine with torch's batch norm everywhere (worker.small_bn off), same run
        "engine_without_small_bn": figures[False],
        "small_bn_speedup": figures[True]["images_per_s"] / figures[False]["images_per_s"],
        "baseline": {
            "images_per_s": harmonic(baseline),
            "flop_per_s": sum(6 * f * b for f, b in zip(flops, baseline, strict=True)) / len(flops),
        },  # fmt: skip
        "speedup": harmonic(engine) / harmonic(baseline),
        "workers": workers,
        "settings": {
            "space": SPACE,
            "flops_bounds": BOUNDS,
            "resolution": RESOLUTION,
            "train_size": train_size,
            "batch_size": BATCH_SIZE,
            "threads": 1,
            "repeats": repeats,
            "rounds": rounds,
        },  # fmt: skip
    }


# --- does bf16 give fp32's answers? (issue 24: AMX bf16 kernels diverged at random) --------
def precision_agreement(space: str, n: int, data, epochs: int = 2, seed: int = 0,
                        bounds: dict | None = None, precision: str = "bf16",
                        log=lambda s: None) -> dict:  # fmt: skip
    """Train n networks of `space` on `data` in fp32 (seeds s and s+1) and in `precision` (s).

    The rule (docs/method.md §5): `precision` diverges on none that fp32 trains, and its
    paired differences |e(p, s) - e(fp32, s)| are within the seed-to-seed spread
    |e(fp32, s) - e(fp32, s+1)|: their mean exceeds the spread's by at most two standard
    errors of that difference (a one-sided Welch bound; a short training is chaotic, so any
    change of the numerics moves an error about as far as a change of seed does).
    """
    nets = sample(get_space(space), n, seed, bounds=bounds, resolution=data.resolution,
                  num_classes=data.num_classes).samples  # fmt: skip
    rows = []
    for i, net in enumerate(nets):
        s = seed + i
        runs = {
            "fp32": train(net.spec, data, Recipe(precision="fp32"), epochs, seed=s),
            "fp32_next_seed": train(net.spec, data, Recipe(precision="fp32"), epochs, seed=s + 1),
            precision: train(net.spec, data, Recipe(precision=precision), epochs, seed=s),
        }
        row = {k: {"status": r.status, "val_error": r.val_error, "precision": r.precision}
               for k, r in runs.items()}  # fmt: skip
        rows.append(row)
        log(f"precision: {space} #{i}: " + ", ".join(
            f"{k} {r['status']} {r['val_error'] if r['val_error'] is None else round(r['val_error'], 4)}"
            for k, r in row.items()))  # fmt: skip
    trained = [r for r in rows if r["fp32"]["status"] == "done"]
    lost = [r for r in trained if r[precision]["status"] != "done"]
    pairs = [r for r in trained if r[precision]["status"] == "done"
             and r["fp32_next_seed"]["status"] == "done"]  # fmt: skip
    paired = [abs(r[precision]["val_error"] - r["fp32"]["val_error"]) for r in pairs]
    spread = [abs(r["fp32_next_seed"]["val_error"] - r["fp32"]["val_error"]) for r in pairs]
    signed = [r[precision]["val_error"] - r["fp32"]["val_error"] for r in pairs]
    mean = statistics.fmean

    def var_of_mean(xs):
        return statistics.variance(xs) / len(xs) if len(xs) > 1 else 0.0

    se = (var_of_mean(paired) + var_of_mean(spread)) ** 0.5
    return {
        "space": space,
        "precision": precision,
        "networks": rows,
        "fp32_done": len(trained),
        "diverged_where_fp32_trains": len(lost),
        "mean_paired_difference": mean(paired) if paired else None,
        "mean_seed_spread": mean(spread) if spread else None,
        "mean_signed_difference": mean(signed) if signed else None,
        "agree": not lost and bool(pairs) and mean(paired) <= mean(spread) + 2 * se,
    }


# --- a quick measurement for estimates (search/estimate.py, POST /api/studies/estimate) -----
PROBE_RESOLUTION, PROBE_CLASSES, PROBE_IMAGES, PROBE_BATCH = 16, 10, 256, 32
_PROBED: dict[str, dict] = {}
_PROBE_LOCK = threading.Lock()


def measured_rate(device: str | None = None) -> dict:
    """Training throughput of this process's device, measured once and cached.

    RegNetX-200MF (the recipe check's network, worker.check) at 16 px on 256 synthetic
    images, 2 epochs of batch 32 (a few seconds on a CPU): the last epoch's images/s x the
    network's forward flops.
    {"device", "network", "flops", "images_per_s", "flop_per_s", "seconds"}.
    """
    device = device or best_device()
    with _PROBE_LOCK:  # one measurement per device, however many requests ask at once
        if device in _PROBED:
            return _PROBED[device]
        t0 = time.perf_counter()
        spec = check_network(PROBE_RESOLUTION, PROBE_CLASSES)
        data = load_dataset(DatasetSpec(name="synthetic", train_size=PROBE_IMAGES, val_size=64,
                                        test_size=0, resolution=PROBE_RESOLUTION))  # fmt: skip
        result = train(spec, data, Recipe(batch_size=PROBE_BATCH), epochs=2, device=device)
        if result.status != "done" or not result.epochs:
            raise RuntimeError(f"speed probe: {result.status} {result.message}".strip())

        flops = complexity(spec)["flops"]
        rate = result.epochs[-1]["images_per_s"]
        _PROBED[device] = {
            "device": device,
            "network": f"RegNetX-200MF at {PROBE_RESOLUTION} px",
            "flops": flops,
            "images_per_s": rate,
            "flop_per_s": rate * flops,
            "seconds": time.perf_counter() - t0,
        }
        return _PROBED[device]


def format_report(r: dict) -> str:
    """The figures as a few human-readable lines."""
    m, e, w = r["machine"], r["engine"], r["workers"]
    feats = ", ".join(k for k, v in m["features"].items() if v) or "none of the listed"
    gemm = ", ".join(f"{k} {v['flop_per_s'] / 1e9:.1f}" for k, v in r["peak"]["gemm"].items())
    conv = "; ".join(f"{d} " + ", ".join(f"{f} {v / 1e9:.1f}" for f, v in fmts.items())
                     for d, fmts in r["peak"]["conv"].items())  # fmt: skip
    conv_frac = e["fraction_of_conv_peak"]
    shares = ", ".join(f"{k} {100 * v:.0f}%" for k, v in r["step"]["shares"].items())
    lines = [
        f"machine  {m['cpu']}, {m['cores']} cores: {feats} (torch {m['torch_cpu_capability']})"
        + (f"; GPU {m['gpu']}" if m.get("gpu") else ""),
        f"peak     GEMM per core (GFLOP/s, median): {gemm}",
        f"peak     the network's convs alone, fwd+bwd per core (GFLOP/s): {conv}",
        f"engine   {e['images_per_s']:8.0f} images/s {e['flop_per_s'] / 1e9:6.1f} GFLOP/s in "
        f"{e['precision']}: {100 * e['fraction_of_gemm_peak']:.1f}% of the GEMM peak, "
        + (f"{100 * conv_frac:.1f}% of the conv-shape peak" if conv_frac else "conv peak n/a"),
        f"step     {r['step']['seconds'] * 1e3:.0f} ms: {shares}",
    ]
    o = r.get("engine_without_small_bn")
    if o:  # the same run, torch's batch norm everywhere
        o_frac = o["fraction_of_conv_peak"]
        o_shares = ", ".join(f"{k} {100 * v:.0f}%" for k, v in o["step"]["shares"].items())
        lines += [
            f"without  the small-channel batch norm (worker.small_bn): {o['images_per_s']:.0f} "
            f"images/s, {100 * o['fraction_of_gemm_peak']:.1f}% of the GEMM peak, "
            + (f"{100 * o_frac:.1f}% of the conv-shape peak" if o_frac else "conv peak n/a")
            + f"; step {o['step']['seconds'] * 1e3:.0f} ms: {o_shares}",
            f"cut      {r['small_bn_speedup']:.2f}x (engine with / without it, alternating runs)",
        ]
    lines += [
        f"baseline {r['baseline']['images_per_s']:8.0f} images/s (naive DataLoader loop, 1 thread)",
        f"speedup  {r['speedup']:.2f}x (engine / naive loop, same network)"
        + (f"; without the small-channel BN {o['speedup']:.2f}x" if o else ""),
    ]
    for key, label in (("free", "free"), ("with_busy_core", "one core busy")):
        x = w[key]
        lines.append(
            f"workers  {w['cores']} workers, {label}: default {x['default']:.0f}, 1 thread "
            f"{x['one_thread']:.0f}, all cores each {x['all_cores']:.0f} images/s "
            f"(default / 1 thread {x['default_over_one_thread']:.2f}, goal >= {w['goal']}; "
            f"default threads {w.get('default_threads')})"
        )
    return "\n".join(lines)


if __name__ == "__main__":  # the subprocesses of in_processes
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps(child_main(json.loads(sys.argv[2]))))
    else:
        print(json.dumps(run_bench()))
