"""Sampler speed: candidate draws per second with exact complexity, and the DDS setting.

    .venv/bin/python benchmarks/bench_sampler.py [--json] [--repeat N] [--families]

Rates are per CPU second (the machine is shared; wall seconds are printed too).
Figures (issue 2 goals: ≥ 5,000 draws/s; 500 AnyNetX_A networks in 360–400 MF at 224 px
in under 10 s on a 2-core machine):
- exact: unbounded sampling, so every candidate that meets the constraints is a sample:
  counted exactly over its batch (anynet.spaces.candidates, the layer descriptions over arrays)
  and built as a NetSpec: draws/s and counted/s (samples per second);
- window: 500 networks in the DDS window (docs/method.md §4), draws, acceptance, seconds,
  candidate draws per second (every candidate is counted exactly over its batch; only the
  accepted ones are built as NetSpecs);
- families (issue 16 goal: ≥ 5,000 draws/s per family): the EfficientNet, DenseNet,
  Inception and VGG presets, unbounded (exact) and 500 networks within ±1% of the preset's
  median flops at 224 px (the DDS window does not suit them all: VGG starts above 400 MF).
  --families runs only these rows.
"""

from __future__ import annotations

import argparse
import json
import time

from anynet.spaces import get_space
from anynet.spaces.sampling import sample

WINDOW = {"flops": (360e6, 400e6)}
MAX_DRAWS = 100_000_000  # AnyNetX_E needs ~3e7 draws for 500 in the window


def _timed(fn):
    """(result, wall seconds, CPU seconds): CPU time is the fairer figure on a shared box."""
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t, time.process_time() - c


def bench_exact(name: str, n: int, seed: int) -> dict:
    """Unbounded: every draw that meets the constraints is counted exactly."""
    res, sec, cpu = _timed(lambda: sample(get_space(name), n, seed))
    counted = res.draws - sum(res.constraint_rejects.values())
    return {"space": name, "n": n, "draws": res.draws, "counted": counted,
            "seconds": round(sec, 3), "cpu_seconds": round(cpu, 3),
            "draws_per_s": round(res.draws / cpu), "counted_per_s": round(counted / cpu)}  # fmt: skip


def bench_window(name: str, n: int, seed: int) -> dict:
    """n networks in 360–400 MF at 224 px (DDS §3)."""
    space = get_space(name)
    res, sec, cpu = _timed(
        lambda: sample(space, n, seed, bounds=WINDOW, resolution=224, max_draws=MAX_DRAWS)
    )
    return {"space": name, "n": n, "draws": res.draws, "acceptance": res.acceptance,
            "seconds": round(sec, 3), "cpu_seconds": round(cpu, 3),
            "draws_per_s": round(res.draws / cpu)}  # fmt: skip


FAMILIES = ("EfficientNet", "DenseNet", "Inception", "VGG")


def bench_family_window(name: str, n: int, seed: int) -> dict:
    """n networks within ±1% of the preset's median flops (of 200 unbounded samples) at 224 px."""
    space = get_space(name)
    flops = sorted(s.complexity["flops"] for s in sample(space, 200, 10_000 + seed).samples)
    mid = flops[len(flops) // 2]
    bounds = {"flops": (0.99 * mid, 1.01 * mid)}
    res, sec, cpu = _timed(lambda: sample(space, n, seed, bounds=bounds, max_draws=MAX_DRAWS))
    return {"space": name, "n": n, "window": [round(b) for b in bounds["flops"]],
            "draws": res.draws, "acceptance": res.acceptance, "seconds": round(sec, 3),
            "cpu_seconds": round(cpu, 3), "draws_per_s": round(res.draws / cpu)}  # fmt: skip


def main(argv=None) -> int:
    """Run the benchmarks; print a table or one JSON document."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    ap.add_argument("--repeat", type=int, default=1, help="seeds per figure (best kept)")
    ap.add_argument("--families", action="store_true", help="only the family presets' rows")
    args = ap.parse_args(argv)
    rows = {"exact": [], "window": [], "family_window": []}
    sample(get_space("AnyNetX_A"), 50, 10_000)  # warm-up: imports, numpy, stem/head caches
    exact = () if args.families else ("AnyNetX_A", "AnyNetX_E", "RegNetX", "ResNeXt_B")
    for name in (*exact, *FAMILIES):
        runs = [bench_exact(name, 5000, s) for s in range(args.repeat)]
        rows["exact"].append(max(runs, key=lambda r: r["draws_per_s"]))
    for name in () if args.families else ("AnyNetX_A", "AnyNetX_E", "RegNetX", "RegNetY"):
        runs = [bench_window(name, 500, s) for s in range(args.repeat)]
        rows["window"].append(min(runs, key=lambda r: r["seconds"]))
    for name in FAMILIES:
        runs = [bench_family_window(name, 500, s) for s in range(args.repeat)]
        rows["family_window"].append(min(runs, key=lambda r: r["seconds"]))
    if args.json:
        print(json.dumps(rows))
        return 0
    print("exact complexity for every candidate (unbounded):")
    for r in rows["exact"]:
        print(f"  {r['space']:<12} {r['draws']:>8} draws {r['seconds']:>6.2f} s wall "
              f"{r['cpu_seconds']:>6.2f} s cpu {r['draws_per_s']:>8} draws/s "
              f"{r['counted_per_s']:>6} counted/s")  # fmt: skip
    print("500 networks in 360-400 MF at 224 px:")
    for r in rows["window"]:
        print(f"  {r['space']:<10} {r['draws']:>8} draws  acceptance {r['acceptance']:.2e} "
              f"{r['seconds']:>6.2f} s wall {r['cpu_seconds']:>6.2f} s cpu "
              f"{r['draws_per_s']:>8} draws/s")  # fmt: skip
    print("500 networks within ±1% of each family preset's median flops at 224 px:")
    for r in rows["family_window"]:
        print(f"  {r['space']:<12} {r['draws']:>8} draws  acceptance {r['acceptance']:.2e} "
              f"{r['seconds']:>6.2f} s wall {r['cpu_seconds']:>6.2f} s cpu "
              f"{r['draws_per_s']:>8} draws/s")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
