"""How fast the engine trains sampled networks here, against the loop most sweep scripts use.

Everything is measured in one run on the same networks, data and batch size, each way in a
fresh subprocess: the engine as a worker runs it (worker.train: data on the device, batch
augmentation, bf16 where the CPU has it natively, channels_last, the worker's malloc
settings), a naive baseline as a user's script runs (DataLoader over PIL images with
per-sample torchvision transforms, fp32, NCHW, glibc's defaults), the baseline again with the
worker's malloc settings (to attribute the gap), this machine's matmul peak (bf16 and fp32),
and the service's layout: one single-threaded worker per core, images/s summed.
Speedups: `speedup` is one process against one process, both with all cores;
`service_speedup` is what the service gets from the machine (a worker per core) against one
sweep script using all cores. Totals over networks add the time per image (a sweep's view).
Effective training FLOP/s = 3 x forward multiply-adds x 2 x images/s (forward + 2x backward).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import torch

from worker.allocator import MALLOC_ENV, OPT_OUT, applies, tuned_env

SPACE, BOUNDS, RESOLUTION = "ResNeXt_A", (30e6, 80e6), 32  # NDS CIFAR sweeps (docs/method.md §4)
BATCH_SIZE = 128  # both ways (the CIFAR recipe of NDS and of most sweep scripts)


def matmul_peak(dtype: torch.dtype, n: int = 2048, seconds: float = 3.0) -> float:
    """Best FLOP/s of a square matmul in `dtype` (up to n x n) over ~`seconds` (2 n^3 each).

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
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        a @ b
        best = max(best, 2 * size**3 / (time.perf_counter() - t))
    return best


def networks(n: int, seed: int = 0):
    """n networks sampled from the NDS ResNeXt-A space at CIFAR size (30-80 MF)."""
    from anynet.sampling import sample
    from anynet.spaces import get_space

    result = sample(get_space(SPACE), n, seed, bounds={"flops": BOUNDS},
                    resolution=RESOLUTION, num_classes=10)  # fmt: skip
    return result.samples


def bench_data(train_size: int):
    """CIFAR-shaped synthetic data (32 px, 10 classes), so the bench needs no download."""
    from search.spec import DatasetSpec
    from worker.data import load_dataset

    spec = DatasetSpec(name="synthetic", train_size=train_size, val_size=256, test_size=0,
                       resolution=RESOLUTION)  # fmt: skip
    return load_dataset(spec)


def engine_images_per_s(spec, data, batch_size: int, epochs: int = 2) -> float:
    """Steady images/s of worker.train: the last epoch (the first pays for warm-up)."""
    from search.spec import Recipe
    from worker.train import train

    result = train(spec, data, Recipe(batch_size=batch_size), epochs=epochs, seed=0)
    if result.status != "done":
        raise RuntimeError(f"bench network failed: {result.status} {result.message}")
    return result.epochs[-1]["images_per_s"]


def baseline_images_per_s(spec, data, batch_size: int, warmup: int, timed: int) -> float:
    """images/s of the usual sweep script: DataLoader, per-sample transforms, fp32, NCHW.

    `warmup` batches untimed (as the engine's first epoch), then `timed` batches timed.
    """
    import numpy as np
    from PIL import Image
    from torch.utils.data import DataLoader
    from torchvision import transforms

    from anynet.build import build

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
    """Inside a bench subprocess: images/s of each network of `job` in one way of training."""
    from anynet.spec import NetSpec
    from worker.allocator import malloc_tuned

    torch.set_num_threads(job["threads"])
    data = bench_data(job["train_size"])
    specs = [NetSpec.from_json(s) for s in job["specs"]]
    if job["way"] == "engine":
        rates = [engine_images_per_s(s, data, job["batch_size"]) for s in specs]
    else:
        steps = job["train_size"] // job["batch_size"]  # the engine's epoch: warm-up, timed
        rates = [baseline_images_per_s(s, data, job["batch_size"], steps, steps) for s in specs]
    return {"images_per_s": rates, "malloc_tuned": malloc_tuned()}


def in_processes(job: dict, processes: int, tuned_malloc: bool) -> list[float]:
    """Run `job` in `processes` concurrent subprocesses; aggregate images/s per network.

    Each starts fresh (glibc reads its malloc settings only at start-up): with the worker's
    settings (worker.allocator) or with glibc's defaults, as a user's own script runs.
    """
    env = {k: v for k, v in os.environ.items() if k not in MALLOC_ENV and k != OPT_OUT}
    env = {**(tuned_env(env) if tuned_malloc else env), "OMP_NUM_THREADS": str(job["threads"])}
    cmd = [sys.executable, "-m", "worker.bench", "--child", json.dumps(job)]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(processes)]  # fmt: skip
    totals = None
    for p in procs:
        out, _ = p.communicate(timeout=1800)
        if p.returncode != 0:
            raise RuntimeError(f"bench subprocess ({job['way']}) exited with {p.returncode}")
        reply = json.loads(out.strip().splitlines()[-1])
        if reply["malloc_tuned"] != tuned_malloc and applies():
            raise RuntimeError(f"bench subprocess: malloc settings {reply['malloc_tuned']}, "
                               f"expected {tuned_malloc}")  # fmt: skip
        rates = reply["images_per_s"]
        totals = rates if totals is None else [a + b for a, b in zip(totals, rates, strict=True)]
    return totals


def harmonic(rates: list[float]) -> float:
    """Images/s over a sweep of the networks: the time per image summed, not the rates."""
    return len(rates) / sum(1 / r for r in rates)


def run_bench(quick: bool = False, log=print) -> dict:
    """Measure everything above; a dict of figures (JSON-able)."""
    from anynet.complexity import complexity
    from worker.train import auto_precision

    cores = os.cpu_count() or 1
    torch.set_num_threads(cores)
    n_nets, train_size = (1, 512) if quick else (3, 1536)
    log(f"bench: peak matmul with {cores} threads")
    peak = {
        "bf16_flop_per_s": matmul_peak(torch.bfloat16),
        "fp32_flop_per_s": matmul_peak(torch.float32),
    }
    specs = [s.spec for s in networks(n_nets)]
    flops = [complexity(s)["flops"] for s in specs]
    job = {"specs": [s.to_json() for s in specs], "threads": cores, "train_size": train_size,
           "batch_size": BATCH_SIZE}  # fmt: skip
    log(f"bench: {n_nets} networks of {SPACE}, {', '.join(f'{f / 1e6:.0f}' for f in flops)} MF")
    log("bench: engine, one worker with all cores")
    engine = in_processes({**job, "way": "engine"}, 1, tuned_malloc=True)
    log("bench: naive loop, one process with all cores, glibc's malloc defaults")
    baseline = in_processes({**job, "way": "baseline"}, 1, tuned_malloc=False)
    log("bench: naive loop with the worker's malloc settings (how much of the gap they are)")
    baseline_tuned = in_processes({**job, "way": "baseline"}, 1, tuned_malloc=True)
    log(f"bench: engine, {cores} workers x 1 thread (how the service runs)")
    per_core = in_processes({**job, "way": "engine", "threads": 1}, cores, tuned_malloc=True)
    log("bench: peak matmul again (a shared machine's speed drifts: the best of both counts)")
    peak["fp32_flop_per_s"] = max(peak["fp32_flop_per_s"], matmul_peak(torch.float32))
    if auto_precision(torch.device("cpu")) == "bf16":
        peak["bf16_flop_per_s"] = max(peak["bf16_flop_per_s"], matmul_peak(torch.bfloat16))
    rows = [{"stage_depths": s.stage_depths, "stage_widths": s.stage_widths,
             "group_widths": s.group_widths, "flops": f,
             "engine_images_per_s": e, "baseline_images_per_s": b,
             "baseline_tuned_malloc_images_per_s": bt, "per_core_images_per_s": pc,
             "speedup": e / b, "service_speedup": pc / b, "engine_flop_per_s": 6 * f * e}
            for s, f, e, b, bt, pc in zip(specs, flops, engine, baseline, baseline_tuned,
                                          per_core, strict=True)]  # fmt: skip
    for r in rows:
        log(f"bench:   {r['flops'] / 1e6:.0f} MF: engine {r['engine_images_per_s']:.0f}, "
            f"baseline {r['baseline_images_per_s']:.0f} img/s ({r['speedup']:.2f}x); "
            f"{cores} workers {r['per_core_images_per_s']:.0f} img/s")  # fmt: skip
    precision = auto_precision(torch.device("cpu"))
    peak_used = peak["bf16_flop_per_s" if precision == "bf16" else "fp32_flop_per_s"]
    # effective FLOP/s: each network's own multiply-adds at its own rate, averaged
    engine_fps = sum(r["engine_flop_per_s"] for r in rows) / len(rows)
    per_core_fps = sum(6 * r["flops"] * r["per_core_images_per_s"] for r in rows) / len(rows)
    base_total = harmonic(baseline)
    return {
        "networks": rows,
        "engine": {"images_per_s": harmonic(engine), "flop_per_s": engine_fps},
        "baseline": {
            "images_per_s": base_total,
            "flop_per_s": sum(6 * f * b for f, b in zip(flops, baseline, strict=True)) / len(rows),
            "tuned_malloc_images_per_s": harmonic(baseline_tuned),
        },
        "speedup": harmonic(engine) / base_total,
        "service": {"images_per_s": harmonic(per_core), "flop_per_s": per_core_fps},
        "service_speedup": harmonic(per_core) / base_total,
        "peak": peak,
        "engine_precision": precision,
        "engine_fraction_of_peak": engine_fps / peak_used,  # of the precision it trains in
        "service_fraction_of_peak": per_core_fps / peak_used,
        "engine_fraction_of_bf16_peak": engine_fps / peak["bf16_flop_per_s"],
        "engine_fraction_of_fp32_peak": engine_fps / peak["fp32_flop_per_s"],
        "workers": {
            "cores": cores,
            "one_worker_all_cores": harmonic(engine),
            "one_worker_per_core": harmonic(per_core),
            "default": "one_worker_per_core"
            if harmonic(per_core) >= harmonic(engine)
            else "one_worker_all_cores",
        },
        "settings": {
            "space": SPACE,
            "flops_bounds": BOUNDS,
            "resolution": RESOLUTION,
            "train_size": train_size,
            "batch_size": BATCH_SIZE,
            "torch_threads": cores,
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
    import statistics

    from anynet.sampling import sample
    from anynet.spaces import get_space
    from search.spec import Recipe
    from worker.train import train

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
    from search.spec import DatasetSpec, Recipe
    from worker.check import best_device, check_network
    from worker.data import load_dataset
    from worker.train import train

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
        from anynet.complexity import complexity

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
    w, b = r["workers"], r["baseline"]
    lines = [
        f"engine   {r['engine']['images_per_s']:8.0f} images/s   "
        f"{r['engine']['flop_per_s'] / 1e9:6.1f} GFLOP/s effective (one worker, all cores)",
        f"baseline {b['images_per_s']:8.0f} images/s   "
        f"{b['flop_per_s'] / 1e9:6.1f} GFLOP/s effective "
        f"({b['tuned_malloc_images_per_s']:.0f} images/s with the worker's malloc settings)",
        f"speedup  {r['speedup']:.2f}x (engine / naive DataLoader loop, same networks)",
        f"service  {r['service']['images_per_s']:8.0f} images/s with {w['cores']} workers x 1 "
        f"thread: {r['service_speedup']:.2f}x the naive loop",
        f"peak     bf16 matmul {r['peak']['bf16_flop_per_s'] / 1e9:.0f} GFLOP/s, "
        f"fp32 {r['peak']['fp32_flop_per_s'] / 1e9:.0f} GFLOP/s; engine trains in "
        f"{r['engine_precision']} at {100 * r['engine_fraction_of_peak']:.1f}% of that peak "
        f"({100 * r['service_fraction_of_peak']:.1f}% as the service; "
        f"{100 * r['engine_fraction_of_bf16_peak']:.1f}% of bf16 peak)",
        f"workers  1 x {w['cores']} threads: {w['one_worker_all_cores']:.0f} images/s; "
        f"{w['cores']} x 1 thread: {w['one_worker_per_core']:.0f} images/s "
        f"-> default {w['default']}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":  # the subprocesses of in_processes
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps(child_main(json.loads(sys.argv[2]))))
    else:
        print(json.dumps(run_bench()))
