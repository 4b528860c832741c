"""`dse launch ray|slurm`: start many `dse worker`s on a Ray cluster or as a Slurm array job."""

from __future__ import annotations

import gc
import sys

from api.cli.parser import CliError, db_option, from_args


def register(subparsers) -> None:
    """Add `launch ray` and `launch slurm` to the dse parser."""
    launch = subparsers.add_parser("launch", help="start N workers with Ray or Slurm")
    how = launch.add_subparsers(dest="how", required=True, metavar="HOW")

    p = how.add_parser("ray", help="N worker actors on a Ray cluster (default: one started here)")
    _common(p)
    p.add_argument("--address", default=None, help="Ray cluster address (default: start one here)")
    p.add_argument(
        "--gpus-per-worker", type=float, default=0.0, help="GPU share per worker (0.25: 4 per GPU)"
    )
    p.add_argument(
        "--cpus-per-worker", type=float, default=1.0, help="CPUs per worker (its torch threads)"
    )
    p.add_argument("--exit-when-idle", action="store_true", help="end when nothing is left")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between progress lines")
    p.set_defaults(func=cmd_ray)

    p = how.add_parser("slurm", help="an array job of N `dse worker --exit-when-idle` tasks")
    _common(p)
    p.add_argument("--partition", default=None, help="Slurm partition")
    p.add_argument("--gpus-per-worker", type=int, default=0, help="GPUs per task")
    p.add_argument("--cpus-per-worker", type=int, default=1, help="CPUs per task (torch threads)")
    p.add_argument("--time", type=int, default=240, help="minutes per task (default 240)")
    p.add_argument("--array-parallelism", type=int, default=None, help="tasks at once")
    p.add_argument("--cluster", default="slurm", choices=("slurm", "local", "debug"))
    p.add_argument("--folder", default="dse-slurm-logs", help="submitit's log folder")
    p.add_argument("--wait", action="store_true", help="wait for the tasks, show progress")
    p.add_argument("--interval", type=float, default=10.0, help="seconds between progress lines")
    p.set_defaults(func=cmd_slurm)


def _common(p) -> None:
    db_option(p)
    p.add_argument("--workers", type=int, required=True, help="how many workers")
    p.add_argument("--study", type=int, action="append", default=None, help="only these studies")
    p.add_argument("--poll", type=float, default=1.0, help="seconds between polls when idle")


def _url(args) -> str:
    from search.store import default_url

    return args.db or default_url()


def _show(prefix: str):
    def show(line: str) -> None:
        print(f"dse launch {prefix}: {line}", file=sys.stderr, flush=True)

    return show


def ray_command(args):
    """The WorkerCommand each Ray actor runs (worker.launch)."""
    from worker.launch import WorkerCommand, device_for, threads_for

    return WorkerCommand(
        device=device_for(args.gpus_per_worker),
        threads=threads_for(args.cpus_per_worker),
        exit_when_idle=args.exit_when_idle,
        study_ids=tuple(args.study or ()),
        poll_seconds=args.poll,
    )


def slurm_command(args):
    """The WorkerCommand each Slurm array task runs (worker.launch): always --exit-when-idle."""
    from worker.launch import WorkerCommand, device_for

    return WorkerCommand(
        device=device_for(args.gpus_per_worker),
        threads=args.cpus_per_worker,
        exit_when_idle=True,
        study_ids=tuple(args.study or ()),
        poll_seconds=args.poll,
    )


def cmd_ray(args) -> int:
    """Start the Ray actors, show progress until they end; Ctrl-C stops them."""
    from worker.launch import require_shared_database

    url = _url(args)
    if args.address:
        require_shared_database(url, "dse launch ray --address")
    from worker.launch_ray import launch

    command = ray_command(args)
    options = from_args(args, "address", "cpus_per_worker", "gpus_per_worker", "interval")
    results = launch(url, args.workers, command, show=_show("ray"), **options)
    failed = {i: r for i, r in results.items() if isinstance(r, BaseException)}
    for i, error in failed.items():
        print(f"dse launch ray: worker {i} failed: {error!r}"[:500], file=sys.stderr)
    trained = sum(r for r in results.values() if isinstance(r, int))
    print(f"dse launch ray: {trained} trials trained by {len(results)} workers", file=sys.stderr)
    return 1 if failed else 0


def cmd_slurm(args) -> int:
    """Submit the array job; print its job ids and log folder; --wait: wait with progress."""
    from worker.launch import require_shared_database

    url = _url(args)
    if args.cluster == "slurm":
        require_shared_database(url, "dse launch slurm")
    from worker.launch_slurm import submit

    command = slurm_command(args)
    options = from_args(args, "folder", "cluster", "partition", "array_parallelism")
    options |= from_args(args, "gpus_per_worker", "cpus_per_worker")
    jobs = submit(url, args.workers, command, minutes=args.time, **options)
    print("\n".join(str(j.job_id) for j in jobs), flush=True)  # no loop variable keeps one
    logs = jobs[0].paths.folder if jobs else args.folder
    print(f"dse launch slurm: {len(jobs)} tasks; logs in {logs}", file=sys.stderr, flush=True)
    try:
        return _wait(url, jobs, command, args, logs) if args.wait else 0
    finally:
        jobs.clear()
        gc.collect()  # submitit's jobs (in cycles) complain when left to interpreter exit


def _wait(url, jobs, command, args, logs) -> int:
    """Wait for the array's tasks with a progress line; CliError naming the failed ones."""
    from search.store import Store
    from worker.launch import FleetProgress
    from worker.launch_slurm import wait

    store = Store(url)
    try:
        progress = FleetProgress(store, list(command.study_ids))
        failures = wait(jobs, progress, args.interval, _show("slurm"))
    except KeyboardInterrupt:
        for job in jobs:
            job.cancel(check=False)
        raise
    finally:
        store.close()
    bad = [f"{job.job_id}: {why}" for job, why in zip(jobs, failures, strict=True) if why]
    if bad:
        raise CliError(f"tasks did not complete: {'; '.join(bad)} (logs in {logs})")
    print("dse launch slurm: every task completed", file=sys.stderr)
    return 0
