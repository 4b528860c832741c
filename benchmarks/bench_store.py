"""Store overhead: claim + report + finish time per trial, and trials/hour with 1 and 2 workers.

    .venv/bin/python benchmarks/bench_store.py [--trials 200] [--pg URL | --no-pg] [--train]

Overhead is measured with no training in between (what the database adds to every trial);
the goal is a median <= 50 ms, under 1% of a one-epoch trial. `--train` also runs real
`dse worker` processes on the issue's smoke study (2 spaces x 20 tiny networks, 1 epoch).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from search.store import Store  # noqa: E402

SPEC = {
    "name": "bench",
    "dataset": {
        "name": "synthetic",
        "resolution": 16,
        "num_classes": 4,
        "train_size": 256,
        "val_size": 128,
    },
    "spaces": [
        {
            "preset": "AnyNetX_A",
            "stem": {"type": "cifar", "width": 16},
            "stages": 2,
            "depth": [1, 2],
            "width": [8, 32],
        },
        {
            "preset": "AnyNetX_E",
            "stem": {"type": "cifar", "width": 16},
            "stages": 2,
            "depth": [1, 2],
            "width": [8, 32],
        },
    ],
    "samples": 20,
    "complexity": {"flops": [0, 2e7]},
    "fidelities": [1],
    "recipe": {"batch_size": 64, "lr": 0.1},
    "seed": 0,
}


class Result:
    """What worker.train returns, without training (the store only reads these fields)."""

    status, val_error, test_error, images_per_s, seconds, message = "done", 0.5, None, 1e4, 1.0, ""


def drain(url: str, study_id: int, worker: str, out) -> None:
    """Claim, report one epoch and finish until nothing is left; per-trial seconds to out."""
    store = Store(url)
    times = []
    while True:
        t0 = time.perf_counter()
        claim = store.claim(worker, [study_id])
        if claim is None:
            break
        store.heartbeat(claim)
        store.report_epoch(claim, {"epoch": 1, "val_error": 0.5, "train_loss": 1.2})
        store.finish(claim, Result())
        times.append(time.perf_counter() - t0)
    store.close()
    out.put(times)


def overhead(url: str, trials: int, workers: int) -> dict:
    """Median/p90 per-trial store time and aggregate trials/hour with `workers` processes."""
    spec = dict(SPEC, samples=max(1, trials // 2), name=f"bench-{workers}")
    store = Store(url)
    study_id = store.create_study(spec)
    store.close()
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=drain, args=(url, study_id, f"b{k}", out)) for k in range(workers)]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    times = sorted(t for _ in procs for t in out.get())
    wall = time.perf_counter() - t0  # includes each process's start and Store init
    for p in procs:
        p.join()
    return {
        "workers": workers,
        "trials": len(times),
        "median_ms": round(1000 * statistics.median(times), 1),
        "p90_ms": round(1000 * times[int(0.9 * (len(times) - 1))], 1),
        "trials_per_hour": round(len(times) / wall * 3600),
    }


def training(url: str, workers: int) -> dict:
    """Real `dse worker` processes on the smoke study: trials/hour including training."""
    dse = str(REPO / ".venv" / "bin" / "dse")
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(dict(SPEC, name=f"train-{workers}"), f)
    out = subprocess.run(
        [dse, "study", "create", f.name, "--db", url, "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    study_id = json.loads(out.stdout)["id"]
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(
            [
                dse,
                "worker",
                "--db",
                url,
                "--exit-when-idle",
                "--threads",
                "1",
                "--study",
                str(study_id),
            ],
            stderr=subprocess.DEVNULL,
        )
        for _ in range(workers)
    ]
    for p in procs:
        p.wait()
    wall = time.perf_counter() - t0
    frame = Store(url).trial_frame(study_id)
    done = int((frame.status == "done").sum())
    return {
        "workers": workers,
        "trials": done,
        "seconds": round(wall, 1),
        "trials_per_hour": round(done / wall * 3600),
        "median_trial_s": round(float(frame.seconds.median()), 2),
    }


def postgres_db() -> tuple[str, callable]:
    """A fresh PostgreSQL database on 127.0.0.1:5432 and a function dropping it."""
    import psycopg2
    from psycopg2 import sql

    conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="test")
    conn.autocommit = True
    name = f"dse_bench_{uuid.uuid4().hex[:8]}"
    with conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def drop() -> None:
        """Drop the benchmark database."""
        with conn.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))

    return f"postgresql://postgres@127.0.0.1:5432/{name}", drop


def main() -> None:
    """Run every measurement and print one JSON document."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--no-pg", action="store_true")
    ap.add_argument("--train", action="store_true", help="also time real training workers")
    args = ap.parse_args()
    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        backends = {"sqlite": (f"sqlite:///{tmp}/bench.db", lambda: None)}
        if not args.no_pg:
            backends["postgresql"] = postgres_db()
        for name, (url, drop) in backends.items():
            try:
                report[name] = {"overhead": [overhead(url, args.trials, w) for w in (1, 2)]}
                if args.train:
                    report[name]["training"] = [training(url, w) for w in (1, 2)]
            finally:
                drop()
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
