"""`dse worker`: claim and train trials of running studies until stopped, idle or done."""

from __future__ import annotations

from api.cli.parser import CliError, db_option, from_args


def register(subparsers) -> None:
    """Add the `worker` subcommand."""
    w = subparsers.add_parser("worker", help="claim and train trials of running studies")
    db_option(w)
    w.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: best found)")
    w.add_argument("--max-trials", type=int, default=None, help="exit after N trials")
    w.add_argument("--exit-when-idle", action="store_true", help="exit when nothing is left")
    w.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: $DSE_THREADS or 1; run one worker per core)")  # fmt: skip
    w.add_argument("--study", type=int, action="append", default=None, help="only these studies")
    w.add_argument("--poll", type=float, default=1.0, help="seconds between polls when idle")
    w.add_argument(
        "--create-db",
        action="store_true",
        help="create the SQLite database if it is missing (default: refuse; a worker given a "
        "mistyped path would otherwise wait forever on an empty one)",
    )
    w.set_defaults(func=cmd_worker)


def cmd_worker(args) -> int:
    """Run one worker until stopped (or idle / max trials)."""
    from worker.loop import run_worker

    device = args.device or _best_device()
    if args.max_trials is not None and args.max_trials < 1:
        raise CliError("--max-trials: must be >= 1")
    options = from_args(args, "max_trials", "exit_when_idle", "threads", "create_db")
    run_worker(args.db, device=device, poll_seconds=args.poll, study_ids=args.study, **options)
    return 0


def _best_device() -> str:
    from worker.check import best_device

    return best_device()
