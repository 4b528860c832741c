"""How fast the engine trains sampled networks here, against the loop most sweep scripts use.

Everything is measured in one run on the same networks and data: the engine
(worker.train: data on the device, batch augmentation, bf16 where the CPU has it natively,
channels_last),
a naive baseline (DataLoader over PIL images with per-sample torchvision transforms, fp32,
NCHW), this machine's matmul peak (bf16 and fp32), and one worker with all cores against
one worker per core (subprocesses, aggregate images/s).
Effective training FLOP/s = 3 x forward multiply-adds x 2 x images/s (forward + 2x backward).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import torch

# glibc keeps freed activations mapped instead of returning them to the OS on every step
# (measured +8-21% on this machine); it must be set before the process starts.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}
SPACE, BOUNDS, RESOLUTION = "ResNeXt_A", (30e6, 80e6), 32  # NDS CIFAR sweeps (REFERENCE §4)


def matmul_peak(dtype: torch.dtype, n: int = 2048, seconds: float = 1.5) -> float:
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


def baseline_images_per_s(spec, data, batch_size: int, max_batches: int) -> float:
    """images/s of the usual sweep script: DataLoader, per-sample transforms, fp32, NCHW."""
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
    images, start = 0, None
    for i, (x, y) in enumerate(loader):
        if i == 1:  # the first batch pays for allocation; time from the second
            start = time.perf_counter()
        loss = criterion(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        images += len(y) if i >= 1 else 0
        if i >= max_batches:
            break
    return images / (time.perf_counter() - start)


def worker_child(spec_json: str, threads: int, train_size: int, batch_size: int) -> float:
    """Run inside a worker subprocess: steady engine images/s with `threads` torch threads."""
    from anynet.spec import NetSpec

    torch.set_num_threads(threads)
    return engine_images_per_s(NetSpec.from_json(spec_json), bench_data(train_size), batch_size)


def workers_images_per_s(spec, processes: int, threads: int, train_size: int, batch_size: int):
    """Aggregate steady images/s of `processes` concurrent workers of `threads` threads each."""
    env = {**os.environ, **MALLOC_ENV, "OMP_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-m", "worker.bench", "--child", spec.to_json(), str(threads),
           str(train_size), str(batch_size)]  # fmt: skip
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(processes)]  # fmt: skip
    rates = []
    for p in procs:
        out, _ = p.communicate(timeout=600)
        if p.returncode != 0:
            raise RuntimeError(f"bench worker exited with {p.returncode}")
        rates.append(float(out.strip().splitlines()[-1]))
    return sum(rates)


def run_bench(quick: bool = False, log=print) -> dict:
    """Measure everything above; a dict of figures (JSON-able)."""
    from anynet.complexity import complexity
    from worker.train import auto_precision

    cores = os.cpu_count() or 1
    torch.set_num_threads(cores)
    n_nets, train_size, batch_size = (1, 1024, 256) if quick else (3, 2048, 256)
    data = bench_data(train_size)
    log(f"bench: peak matmul with {cores} threads")
    peak = {
        "bf16_flop_per_s": matmul_peak(torch.bfloat16),
        "fp32_flop_per_s": matmul_peak(torch.float32),
    }
    rows = []
    for s in networks(n_nets):
        flops = complexity(s.spec)["flops"]
        log(f"bench: {s.spec.stage_depths} x {s.spec.stage_widths}, {flops / 1e6:.1f} MF")
        eng = engine_images_per_s(s.spec, data, batch_size)
        base = baseline_images_per_s(s.spec, data, 128, max_batches=6 if quick else 10)
        rows.append({"stage_depths": s.spec.stage_depths, "stage_widths": s.spec.stage_widths,
                     "group_widths": s.spec.group_widths, "flops": flops,
                     "engine_images_per_s": eng, "baseline_images_per_s": base,
                     "speedup": eng / base, "engine_flop_per_s": 6 * flops * eng})  # fmt: skip
        log(f"bench:   engine {eng:.0f} img/s, baseline {base:.0f} img/s, {eng / base:.2f}x")
    # Totals over the same networks: time per image summed, i.e. a sweep's throughput.
    precision = auto_precision(torch.device("cpu"))
    peak_used = peak["bf16_flop_per_s" if precision == "bf16" else "fp32_flop_per_s"]
    eng_total = len(rows) / sum(1 / r["engine_images_per_s"] for r in rows)
    base_total = len(rows) / sum(1 / r["baseline_images_per_s"] for r in rows)
    mean_flops = sum(r["flops"] for r in rows) / len(rows)
    engine_fps = sum(r["engine_flop_per_s"] for r in rows) / len(rows)
    log(f"bench: 1 worker x {cores} threads vs {cores} workers x 1 thread")
    spec0 = networks(1)[0].spec
    all_cores = workers_images_per_s(spec0, 1, cores, train_size // 2, batch_size)
    per_core = workers_images_per_s(spec0, cores, 1, train_size // 2, batch_size)
    return {
        "networks": rows,
        "engine": {"images_per_s": eng_total, "flop_per_s": engine_fps},
        "baseline": {"images_per_s": base_total, "flop_per_s": 6 * mean_flops * base_total},
        "speedup": eng_total / base_total,
        "peak": peak,
        "engine_precision": precision,
        "engine_fraction_of_peak": engine_fps / peak_used,  # of the precision it trains in
        "engine_fraction_of_bf16_peak": engine_fps / peak["bf16_flop_per_s"],
        "engine_fraction_of_fp32_peak": engine_fps / peak["fp32_flop_per_s"],
        "workers": {
            "cores": cores,
            "one_worker_all_cores": all_cores,
            "one_worker_per_core": per_core,
            "default": "one_worker_per_core" if per_core >= all_cores else "one_worker_all_cores",
        },
        "settings": {
            "space": SPACE,
            "flops_bounds": BOUNDS,
            "resolution": RESOLUTION,
            "train_size": train_size,
            "engine_batch_size": batch_size,
            "baseline_batch_size": 128,
            "torch_threads": cores,
        },  # fmt: skip
    }


def format_report(r: dict) -> str:
    """The figures as a few human-readable lines."""
    w = r["workers"]
    lines = [
        f"engine   {r['engine']['images_per_s']:8.0f} images/s   "
        f"{r['engine']['flop_per_s'] / 1e9:6.1f} GFLOP/s effective",
        f"baseline {r['baseline']['images_per_s']:8.0f} images/s   "
        f"{r['baseline']['flop_per_s'] / 1e9:6.1f} GFLOP/s effective",
        f"speedup  {r['speedup']:.2f}x (engine / naive DataLoader loop, same networks)",
        f"peak     bf16 matmul {r['peak']['bf16_flop_per_s'] / 1e9:.0f} GFLOP/s, "
        f"fp32 {r['peak']['fp32_flop_per_s'] / 1e9:.0f} GFLOP/s; engine trains in "
        f"{r['engine_precision']} at {100 * r['engine_fraction_of_peak']:.1f}% of that peak "
        f"({100 * r['engine_fraction_of_bf16_peak']:.1f}% of bf16 peak)",
        f"workers  1 x {w['cores']} threads: {w['one_worker_all_cores']:.0f} images/s; "
        f"{w['cores']} x 1 thread: {w['one_worker_per_core']:.0f} images/s "
        f"-> default {w['default']}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":  # the worker subprocess of workers_images_per_s
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        print(worker_child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])))
    else:
        print(json.dumps(run_bench()))
