"""Benchmark: the RegNet fits against the exhaustive reference, old against new (issue 21).

Run: PYTHONPATH=. .venv/bin/python benchmarks/bench_fit.py [--n 150] [--wm-step 0.005]
     [--old cc594e0] [--grid c341310] [--regnets 200] [--tol 0.004] [--many-only]
     [--seeds 0-21 --judge-tol 0.0005]
On n AnyNetX_A and n AnyNetX_E networks (seeded) it prints, for the old fits (anynet/
regnet_fit.py at git revision --old, loaded from git) and the current ones: the largest
amount and the share of networks by which each fit is worse than testkit.fit_reference
(every w0, every wa piece, wm every --wm-step inside DDS §3.3's ranges), and the time per
network, with the new/old ratio measured in this one run. fit_many is timed in CPU time
(the machine is shared), three times in turn, against the old fits (--old: the grid, then
a descent, before the branch and bound became the default) and against the grid alone
(--grid, DDS's search); then fit_many with --tol. The first fit of the process, which
loads or compiles the branch and bound (numba), is timed apart. Then e_fit of the
quantised widths of --regnets RegNetX and RegNetY samples, which is 0 for each.
With --seeds A-B (networks of every seed from A to B) and --judge-tol, fit_many is held,
network by network, to the old revision's fit_many with that tol (its branch and bound,
within tol of the optimum) instead of to the reference, which takes too long for
thousands of networks (docs/method.md §3: seeds 0-21, tol 0.0005).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np

from anynet import regnet_fit as new
from anynet.regnet import quantized_block_widths
from anynet.spaces import get_space
from anynet.spaces.sampling import sample
from testkit.fit_reference import reference_fit

ROOT = Path(__file__).resolve().parents[1]


def old_module(rev: str) -> types.ModuleType:
    """anynet/regnet_fit.py as it was at git revision `rev`, as a module."""
    text = subprocess.run(
        ["git", "show", f"{rev}:anynet/regnet_fit.py"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    mod = types.ModuleType(f"regnet_fit_{rev}")
    sys.modules[mod.__name__] = mod
    exec(compile(text, f"{rev}:anynet/regnet_fit.py", "exec"), mod.__dict__)
    return mod


def timed(fn, *args):
    """(result, seconds) of fn(*args)."""
    t = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t


def report(name: str, e: np.ndarray, ref: np.ndarray) -> None:
    """Largest gap to the reference and the share of networks worse than it by more than
    0.001, 0.005 and 0.01."""
    gap = e - ref
    print(
        f"  {name:<18} max gap {gap.max():+.4f}   worse by > 0.001: {(gap > 1e-3).mean():6.1%}"
        f"   > 0.005: {(gap > 5e-3).mean():6.1%}   > 0.01: {(gap > 0.01).mean():6.1%}"
    )


def judge(args) -> None:
    """fit_many on the networks of seeds A-B against --old's fit_many(tol=--judge-tol)."""
    if not args.seeds or args.judge_tol is None:
        raise SystemExit("bench_fit: --seeds and --judge-tol go together")
    first, last = (int(x) for x in args.seeds.split("-"))
    every = [
        x.spec.block_widths
        for seed in range(first, last + 1)
        for s in ("AnyNetX_A", "AnyNetX_E")
        for x in sample(get_space(s), args.n, seed).samples
    ]
    new.fit_many(every[:5])  # the compiled search loaded (or compiled) before the clock
    t = time.process_time()
    e_new = np.array([f[3] for f in new.fit_many(every)])
    t_new = time.process_time() - t
    t = time.process_time()
    e_old = np.array([f[3] for f in old_module(args.old).fit_many(every, args.judge_tol)])
    t_old = time.process_time() - t
    gap = e_new - e_old
    print(f"{len(every)} networks (seeds {first}-{last}): fit_many {1e3 * t_new / len(every):.2f}"
          f" CPU ms a network; the judge ({args.old}, tol {args.judge_tol:g}) "
          f"{1e3 * t_old / len(every):.2f}")  # fmt: skip
    print(f"  above the judge by > 1e-6: {(gap > 1e-6).sum()} (largest {gap.max():+.2e}); "
          f"below it by > 1e-6: {(gap < -1e-6).sum()} (largest {-gap.min():.2e}, "
          f"within its tol: {bool(-gap.min() <= args.judge_tol)})")  # fmt: skip


def main() -> None:
    """Run the comparison and print it."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=150, help="networks per space")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--wm-step", type=float, default=0.005, help="the reference's wm grid")
    ap.add_argument("--old", default="cc594e0", help="git revision of the old fits")
    ap.add_argument("--grid", default="c341310", help="git revision of fit_many's grid alone")
    ap.add_argument("--regnets", type=int, default=200, help="RegNet samples per space")
    ap.add_argument("--tol", type=float, default=0.004, help="fit_many's tol")
    ap.add_argument("--many-only", action="store_true", help="only fit_many's time")
    ap.add_argument("--seeds", help="A-B: the networks of seeds A to B (with --judge-tol)")
    ap.add_argument("--judge-tol", type=float, help="hold fit_many to --old's fit_many(tol)")
    args = ap.parse_args()
    if args.seeds or args.judge_tol is not None:
        judge(args)
        return
    old = old_module(args.old)
    grid = old_module(args.grid)
    ranges = new.REGNET_RANGES
    spaces = ("AnyNetX_A", "AnyNetX_E")
    nets = {s: [x.spec.block_widths for x in sample(get_space(s), args.n, args.seed).samples]
            for s in spaces}  # fmt: skip
    every = [w for s in spaces for w in nets[s]]

    # the first fit of a process loads the compiled branch and bound (compiles it, the first
    # time on a machine): once, not a network's cost
    t = time.perf_counter()
    new.fit_regnet(every[0], None, ranges)
    print(f"first fit of the process (numba load or compile): {time.perf_counter() - t:.2f} s")
    # fit_many: the same networks, old, grid alone and new in turn three times, CPU time
    fits = {"old": old.fit_many, "grid": grid.fit_many, "new": new.fit_many}
    cpu = dict.fromkeys(fits, 0.0)
    many = {}
    for _ in range(3):
        for name, fit in fits.items():
            t = time.process_time()
            many[name] = fit(every)
            cpu[name] += time.process_time() - t
    ms = {k: 1e3 * v / 3 / len(every) for k, v in cpu.items()}
    print(f"fit_many, CPU ms a network: old {ms['old']:.2f}, grid alone {ms['grid']:.2f}, "
          f"new {ms['new']:.2f} (new/grid {cpu['new'] / cpu['grid']:.2f}, "
          f"new/old {cpu['new'] / cpu['old']:.2f})")  # fmt: skip
    many_old, many_grid, many_new = many["old"], many["grid"], many["new"]
    t = time.process_time()
    many_tol = new.fit_many(every, args.tol)
    t_tol = time.process_time() - t
    print(f"fit_many tol={args.tol:g}: {1e3 * t_tol / len(every):.2f} CPU ms a network, "
          f"{1e3 * t_tol / len(every) / ms['new']:.1f}x the default")  # fmt: skip
    if args.many_only:
        return

    t = {"old": 0.0, "new": 0.0, "ref": 0.0}
    rows = []
    for w in every:
        a, dt = timed(old.fit_regnet, w, None, ranges)
        t["old"] += dt
        b, dt = timed(new.fit_regnet, w, None, ranges)
        t["new"] += dt
        r, dt = timed(reference_fit, w, ranges, args.wm_step)
        t["ref"] += dt
        rows.append((a[3], b[3], r[3]))
    e = np.asarray(rows)
    m_old = np.array([f[3] for f in many_old])
    m_grid = np.array([f[3] for f in many_grid])
    m_new = np.array([f[3] for f in many_new])
    m_tol = np.array([f[3] for f in many_tol])
    n = len(every)
    print(f"fit_regnet: {1e3 * t['old'] / n:.0f} ms a network old, {1e3 * t['new'] / n:.0f} new "
          f"(new/old {t['new'] / t['old']:.2f}); reference {t['ref'] / n:.2f} s a network "
          f"(wm step {args.wm_step})")  # fmt: skip
    for k, s in enumerate(spaces):
        sl = slice(k * args.n, (k + 1) * args.n)
        print(f"{s} ({args.n} networks), against the reference:")
        report("fit_regnet old", e[sl, 0], e[sl, 2])
        report("fit_regnet new", e[sl, 1], e[sl, 2])
        report("fit_many old", m_old[sl], e[sl, 2])
        report("fit_many grid", m_grid[sl], e[sl, 2])
        report("fit_many new", m_new[sl], e[sl, 2])
        report("fit_many new*", m_new[sl], e[sl, 1])
        report(f"fit_many tol={args.tol:g}", m_tol[sl], e[sl, 2])
        report(f"fit_many tol={args.tol:g}*", m_tol[sl], e[sl, 1])
    print("  (* against the new fit_regnet, the global optimum, instead of the reference)")

    for s in ("RegNetX", "RegNetY"):
        params = [x.params for x in sample(get_space(s), args.regnets, args.seed).samples]
        widths = [quantized_block_widths(p["depth"], p["w0"], p["wa"], p["wm"]) for p in params]
        for name, fit in (("old", old.fit_many), ("grid", grid.fit_many), ("new", new.fit_many)):
            e_fit = np.array([f[3] for f in fit(widths)])
            print(f"{s} ({len(widths)} samples), fit_many {name}: e_fit > 0 on {(e_fit > 0).sum()}, "
                  f"median {np.median(e_fit):.4f}, max {e_fit.max():.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
