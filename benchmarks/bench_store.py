"""Store speed: bulk creation of 5,000 trials, and the per-trial overhead of the worker calls.

    .venv/bin/python benchmarks/bench_store.py [--create 5000] [--trials 200] [--no-pg] [--train]

(dse installed in the virtualenv, `make install`; no path set-up in the script.)

- create: a study of `--create` trials (AnyNetX_A…E, 32 px, no bounds) created through the
  store, on SQLite and PostgreSQL. Reported: sampling and storing seconds (wall, from the
  study's creation record), the client's CPU seconds, and on PostgreSQL the server
  backends' CPU seconds (read from /proc: the server runs on this machine), so figures
  taken on a busy machine can be read against its load. Goal (issue 15 finding 12):
  storing 5,000 trials in <= 5 s. For comparison in the same run: Optuna's own
  `create_new_trial` with the same params and attributes, trial by trial, on
  `--one-by-one` trials (ms per trial, and 5,000 extrapolated).
- overhead: claim + heartbeat + report + finish per trial with no training in between
  (what the database adds to every trial; goal: median <= 50 ms), with 1 and 2 workers.
- `--train` also runs real `dse worker` processes on a smoke study (2 spaces x 20 tiny
  networks, 1 epoch).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from search.store import Store, TrialOutcome
from testkit.pg import PgServer, PgUnavailable
from testkit.specs import smoke_spec

SPEC = smoke_spec(name="bench")
DONE = TrialOutcome("done", 0.5, seconds=1.0, images_per_s=1e4)


def create_spec(trials: int) -> dict:
    """AnyNetX_A…E (4 stages, DDS §3) at 32 px, trials / 5 networks each, unbounded."""
    spaces = [{"preset": f"AnyNetX_{x}", "resolution": 32, "num_classes": 10} for x in "ABCDE"]
    return {
        "name": f"bench-create-{trials}",
        "dataset": {"name": "synthetic", "resolution": 32, "num_classes": 10},
        "spaces": spaces,
        "samples": trials // len(spaces),
    }


def _server_cpu(store: Store) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend serving this database (from /proc)."""
    from sqlalchemy import text

    with store.db.read() as session:
        pids = session.execute(
            text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        ).scalars()
        pids = list(pids)
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the server is elsewhere, or the backend just ended
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return out


def creation(url: str, trials: int, one_by_one: int) -> dict:
    """Create a `trials`-trial study; the creation's split, CPU, and Optuna's own path."""
    import optuna
    from optuna.trial import create_trial

    store = Store(url)
    pg = store.db.optuna.engine.dialect.name == "postgresql"
    before = _server_cpu(store) if pg else {}
    cpu, wall = time.process_time(), time.perf_counter()
    study_id = store.create_study(create_spec(trials))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    record = store.get_study(study_id).creation
    out = {
        "trials": store.count(study_id),
        "sampling_s": record.sampling_seconds,
        "storing_s": record.storing_seconds,
        "total_s": round(wall, 2),
        "client_cpu_s": round(cpu, 2),
    }
    if pg:
        after = _server_cpu(store)
        out["server_cpu_s"] = round(sum(v - before.get(p, 0.0) for p, v in after.items()), 2)
    # the same trials through Optuna's public API, one create_new_trial each
    study = optuna.load_study(
        study_name=store.get_study(study_id).optuna_name, storage=store.optuna
    )
    sources = study.get_trials(deepcopy=False)[:one_by_one]
    target = store.optuna.create_new_study([optuna.study.StudyDirection.MINIMIZE], "one-by-one")
    t0 = time.perf_counter()
    for t in sources:
        template = create_trial(
            state=t.state, params=t.params, distributions=t.distributions, user_attrs=t.user_attrs
        )
        store.optuna.create_new_trial(target, template_trial=template)
    per_trial = (time.perf_counter() - t0) / max(1, len(sources))
    out["optuna_one_by_one_ms_per_trial"] = round(1000 * per_trial, 2)
    out["optuna_one_by_one_s_for_all"] = round(per_trial * trials, 1)
    out["bulk_ms_per_trial"] = round(1000 * record.storing_seconds / max(1, trials), 3)
    out["speedup"] = round(per_trial * trials / max(1e-9, record.storing_seconds), 1)
    store.close()
    return out


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
        store.finish(claim, DONE)
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
    dse = str(Path(sys.executable).with_name("dse"))
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
            [dse, "worker", "--db", url, "--exit-when-idle", "--threads", "1"]
            + ["--study", str(study_id)],
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


def main() -> None:
    """Run every measurement and print one JSON document."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--create", type=int, default=5000, help="trials of the created study")
    ap.add_argument("--one-by-one", type=int, default=300, help="trials through Optuna's API")
    ap.add_argument("--trials", type=int, default=200, help="trials of the overhead runs")
    ap.add_argument("--no-pg", action="store_true")
    ap.add_argument("--no-overhead", action="store_true")
    ap.add_argument("--train", action="store_true", help="also time real training workers")
    args = ap.parse_args()
    report: dict = {"load_average": os.getloadavg(), "cpus": os.cpu_count()}
    pg = None
    with tempfile.TemporaryDirectory() as tmp:
        backends = {"sqlite": lambda name: f"sqlite:///{tmp}/{name}.db"}
        if not args.no_pg:
            try:
                pg = PgServer()
            except PgUnavailable as e:
                sys.exit(f"bench_store: {e} (or pass --no-pg)")
            backends["postgresql"] = lambda name: pg.create()
        try:
            for name, database in backends.items():
                report[name] = {
                    "create": creation(database("create"), args.create, args.one_by_one)
                }
                if not args.no_overhead:
                    url = database("overhead")
                    report[name]["overhead"] = [overhead(url, args.trials, w) for w in (1, 2)]
                    if args.train:
                        report[name]["training"] = [training(url, w) for w in (1, 2)]
        finally:
            if pg is not None:
                pg.drop_all()
    report["goal_storing_5000_under_5s"] = {
        name: report[name]["create"]["storing_s"] * 5000 / args.create <= 5.0 for name in backends
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
