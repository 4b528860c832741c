"""Workers started by `dse launch ray` against plain `dse worker` processes, same study.

    .venv/bin/python benchmarks/bench_launch.py [--trials 24] [--workers 2] [--rounds 1]

(dse installed in the virtualenv with the `ray` extra; PostgreSQL on 127.0.0.1:5432, a
scratch database per run, dropped after.)

Each round trains the same study (the smoke spec: two tiny AnyNet spaces on synthetic
16 px data, 1 epoch, `--trials` trials) twice on fresh databases: with `--workers` plain
`dse worker --exit-when-idle --threads 1` processes, then with `dse launch ray --workers N
--exit-when-idle` (a local Ray runtime started by the command). Reported per way:
- trials per minute while training: trials / (last finish - first claim), from the store's
  own timestamps, so start-up is left out of it;
- wall seconds of the whole command, start-up included;
and for Ray its start-up: the runtime's (the "Ray ready in" line) and until the first claim.
Goal (issue 20): Ray's trials per minute >= 0.9 x the plain workers'. The load average is
printed with the figures: on a shared machine they move with it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime

from search.store import Store
from testkit.pg import PgServer
from testkit.specs import smoke_spec


def study_spec(trials: int) -> dict:
    """The smoke spec with trials / 2 networks in each of its two spaces, one level."""
    return smoke_spec(name=f"bench-launch-{trials}", samples=trials // 2, fidelities=[1])


def _env(url: str) -> dict[str, str]:
    env = {**os.environ, "DSE_DB": url, "OMP_NUM_THREADS": "1"}
    env.setdefault("RAY_AUTH_MODE", "disabled")
    return env


def _dse(*args: str) -> list[str]:
    return [sys.executable, "-m", "api.cli", *args]


def _rate(store: Store, study_id: int) -> dict:
    """Trials per minute between the first claim and the last finish (store timestamps)."""
    rows = store.trials(study_id, limit=10_000)
    assert all(r["status"] == "done" for r in rows), [(r["trial_id"], r["status"]) for r in rows]
    start = min(datetime.fromisoformat(r["started"]) for r in rows)
    end = max(datetime.fromisoformat(r["finished"]) for r in rows)
    seconds = (end - start).total_seconds()
    return {
        "trials": len(rows),
        "train_seconds": round(seconds, 1),
        "trials_per_min": round(60 * len(rows) / seconds, 2),
        "first_claim": start.timestamp(),
    }


def plain(url: str, workers: int) -> dict:
    """`workers` plain `dse worker` processes until the study is done."""
    t0 = time.time()
    procs = [
        subprocess.Popen(
            _dse("worker", "--device", "cpu", "--threads", "1", "--exit-when-idle"),
            env=_env(url),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(workers)
    ]
    errs = [p.communicate()[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errs
    return {"wall_seconds": round(time.time() - t0, 1), "t0": t0}


def ray(url: str, workers: int) -> dict:
    """`dse launch ray --workers N --exit-when-idle` (its own local Ray runtime)."""
    t0 = time.time()
    out = subprocess.run(
        _dse("launch", "ray", "--workers", str(workers), "--exit-when-idle", "--interval", "5"),
        env=_env(url),
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    ready = re.search(r"Ray ready in ([0-9.]+) s", out.stderr)
    return {
        "wall_seconds": round(time.time() - t0, 1),
        "t0": t0,
        "ray_init_seconds": float(ready.group(1)) if ready else None,
    }


def run_once(server: PgServer, how, trials: int, workers: int) -> dict:
    """One way on a fresh database: its figures."""
    url = server.create()
    store = Store(url)
    try:
        study_id = store.create_study(study_spec(trials))
        figures = how(url, workers)
        figures |= _rate(store, study_id)
        figures["seconds_to_first_claim"] = round(figures.pop("first_claim") - figures.pop("t0"), 1)
        return figures
    finally:
        store.close()


def main() -> None:
    """Run the rounds and print one JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    server = PgServer()
    report: dict = {"cpus": os.cpu_count(), "rounds": []}
    try:
        for _ in range(args.rounds):
            load = os.getloadavg()
            a = run_once(server, plain, args.trials, args.workers)
            b = run_once(server, ray, args.trials, args.workers)
            ratio = round(b["trials_per_min"] / a["trials_per_min"], 3)
            report["rounds"].append(
                {
                    "load_average_before": [round(x, 2) for x in load],
                    "load_average_after": [round(x, 2) for x in os.getloadavg()],
                    "plain_dse_worker": a,
                    "dse_launch_ray": b,
                    "ray_over_plain_trials_per_min": ratio,
                    "goal_met": ratio >= 0.9,
                }
            )
            print(json.dumps(report["rounds"][-1]), file=sys.stderr, flush=True)
    finally:
        server.drop_all()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
