"""Benchmark: study_results for 5 spaces × 1,000 trials (issue 5 goal: under 1 s).

Run: .venv/bin/python benchmarks/bench_analysis.py [--spaces 5] [--trials 1000] [--repeat 3]
Prints the cold time (RegNet fits and every network's e_fit not yet memoised), the warm time
(memoised, as when a running study is re-analysed), normalised (NDS, 10 bins: the
stratified permutation KS tests), e_fit of all 5,000 networks alone (DDS Fig. 8, issue 11),
and a 10⁴-rep bootstrap over 1,000 models.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from search.analysis import statistics as A
from search.analysis.fits import clear_cache, efits
from search.analysis.results import study_results
from search.spec.study import StudySpec

SPACES = ("AnyNetX_A", "AnyNetX_B", "AnyNetX_C", "AnyNetX_D", "AnyNetX_E")
STATUSES = ("done", "diverged", "failed")


def synthetic_frame(spaces, trials: int, fidelities=(1, 3), seed: int = 0) -> pd.DataFrame:
    """A trial frame as the store gives it: AnyNetX-like networks with a known error law."""
    rng = np.random.default_rng(seed)
    rows, tid = [], 0
    for s_i, space in enumerate(spaces):
        k = 4
        d = rng.integers(1, 17, (trials, k))
        w = rng.integers(1, 129, (trials, k)) * 8
        b = rng.choice([1.0, 0.5], (trials, k))
        g = rng.choice([1, 2, 4], (trials, k))
        if s_i >= 1:
            b[:] = b[:, :1]
        if s_i >= 2:
            g[:] = g[:, :1]
        if s_i >= 3:
            w = np.sort(w, axis=1)
        if s_i >= 4:
            d = np.sort(d, axis=1)
        depth = d.sum(1)
        flops = (d * w.astype(float) ** 2 * b).sum(1) * 50
        err = 0.3 + 0.0002 * (depth - 20) ** 2 - 0.01 * s_i + rng.normal(0, 0.03, trials)
        status = rng.choice(STATUSES, trials, p=[0.97, 0.02, 0.01])
        for i in range(trials):
            net = {
                "stem": {"type": "simple", "width": 32},
                "block": "res_bottleneck",
                "stages": [
                    {
                        "depth": int(d[i, j]),
                        "width": int(w[i, j]),
                        "stride": 2,
                        "bottleneck_multiplier": float(b[i, j]),
                        "group_width": int(g[i, j]),
                    }
                    for j in range(k)
                ],
                "se_ratio": 0.0,
                "head_width": 0,
                "num_classes": 10,
                "in_channels": 3,
                "resolution": 32,
            }
            p = {f"p_d{j + 1}": int(d[i, j]) for j in range(k)}
            p |= {f"p_w{j + 1}": int(w[i, j]) for j in range(k)}
            p |= {f"p_bot_mul{j + 1}": float(b[i, j]) for j in range(k)}
            p |= {f"p_g{j + 1}": int(g[i, j]) for j in range(k)}
            for level, epochs in enumerate(fidelities):
                if level and i % 3:  # the best third is promoted (here: every third)
                    continue
                e = err[i] - 0.02 * level + rng.normal(0, 0.01)
                st = status[i]
                rows.append(
                    {
                        "trial_id": tid,
                        "space": space,
                        "sample": i,
                        "level": level,
                        "epochs": epochs,
                        "status": st,
                        "error": e if st == "done" else np.nan,
                        "flops": int(flops[i]),
                        "params": int(flops[i] // 40),
                        "acts": int(w[i].sum() * 100),
                        "depth": int(depth[i]),
                        "spec": net,
                        **p,
                    }
                )
                tid += 1
    return pd.DataFrame(rows)


def study_spec(spaces, trials: int, fidelities=(1, 3)) -> StudySpec:
    """A StudySpec naming the spaces of synthetic_frame."""
    return StudySpec(
        name="bench",
        spaces=[{"preset": s} for s in spaces],
        samples=trials,
        fidelities=list(fidelities),
    )


def main() -> None:
    """Time study_results on a synthetic study and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--spaces", type=int, default=5)
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    spaces = SPACES[: args.spaces]
    frame = synthetic_frame(spaces, args.trials)
    spec = study_spec(spaces, args.trials)
    print(f"{len(spaces)} spaces × {args.trials} trials ({len(frame)} rows incl. level 1)")

    cold = []
    for _ in range(args.repeat):
        clear_cache()  # RegNet fits and e_fit are memoised by widths; start without them
        t = time.perf_counter()
        study_results(frame, spec)
        cold.append(time.perf_counter() - t)
    print(
        f"study_results cold (RegNet fits computed): best {min(cold):.3f} s, "
        f"median {sorted(cold)[len(cold) // 2]:.3f} s of {args.repeat}"
    )
    for normalize in (None, "flops"):
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            study_results(frame, spec, normalize=normalize, bins=10)
            times.append(time.perf_counter() - t)
        print(
            f"study_results warm, normalize={normalize}: best {min(times):.3f} s of {args.repeat}"
        )

    specs = frame[frame["level"] == 0]["spec"].tolist()
    times = []
    for _ in range(args.repeat):
        clear_cache()
        t, cpu = time.perf_counter(), time.process_time()
        efits(specs)
        times.append((time.perf_counter() - t, time.process_time() - cpu))
    wall, cpu = min(times)
    print(f"e_fit of {len(specs)} networks (DDS Fig. 8), cold: {wall:.3f} s ({cpu:.3f} s cpu)")

    rng = np.random.default_rng(0)
    x, e = rng.integers(4, 60, 1000), rng.random(1000)
    t = time.perf_counter()
    A.bootstrap_best_range(x, e, reps=10_000)
    print(f"bootstrap_best_range, 10^4 reps over 1,000 models: {time.perf_counter() - t:.4f} s")


if __name__ == "__main__":
    main()
