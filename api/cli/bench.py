"""`dse bench`: this machine's peaks, the training engine's fraction of them, workers per core."""

from __future__ import annotations

import sys

from api.cli.parser import emit_json, json_option


def register(subparsers) -> None:
    """Add the bench subcommand."""
    b = subparsers.add_parser(
        "bench", help="this machine's peaks, the engine's fraction of them, workers per core"
    )
    b.add_argument(
        "--quick",
        action="store_true",
        help="fewer images and repeats (the timings are medians either way; both take minutes, "
        "more on a loaded machine)",
    )
    json_option(b)
    b.set_defaults(func=cmd_bench)


def cmd_bench(args) -> int:
    """Run the engine-vs-baseline benchmark and print its figures."""
    from worker.bench import format_report, run_bench

    report = run_bench(quick=args.quick, log=lambda s: print(s, file=sys.stderr, flush=True))
    if args.json:
        emit_json(report)
    else:
        print(format_report(report))
    return 0
