"""The `dse` command line: one parser, subcommands registered by small modules."""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from api.errors import one_line
from search.jsonable import json_safe

# Each module defines register(subparsers); their handlers take the parsed args and
# return an exit code (or None for 0).
COMMAND_MODULES = (
    "api.cli_anynet",
    "api.cli_scale",
    "api.cli_train",
    "api.cli_study",
    "api.cli_results",
    "api.cli_serve",
    "api.cli_launch",
)

# Commands that train in their own process: they start with glibc malloc settings that keep
# activations mapped between steps (worker.allocator).
TRAINING_COMMANDS = frozenset({"train", "bench", "worker"})


class CliError(Exception):
    """Bad input: printed as one line on stderr, exit code 2."""


def emit_json(obj) -> None:
    """Print one JSON document on stdout (the --json contract; NaN and infinities as null)."""
    sys.stdout.write(json.dumps(json_safe(obj), allow_nan=False) + "\n")
    sys.stdout.flush()


def db_option(parser: argparse.ArgumentParser) -> None:
    """Add --db (the one database URL; None falls back to search.store.default_url())."""
    parser.add_argument(
        "--db", default=None, help="database URL (default $DSE_DB, else sqlite:///dse.db)"
    )


def build_parser() -> argparse.ArgumentParser:
    """The full `dse` parser with every registered subcommand."""
    parser = argparse.ArgumentParser(prog="dse", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `dse` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if argv is None and args.command in TRAINING_COMMANDS:  # the process's own entry point
        from worker.allocator import reexec_with_tuned_malloc

        reexec_with_tuned_malloc()
    try:
        code = args.func(args)
    except KeyboardInterrupt:
        print(f"dse {args.command}: interrupted", file=sys.stderr)
        return 130
    except (CliError, ValueError, OSError) as e:  # ValueError includes pydantic's errors
        print(f"dse {args.command}: error: {one_line(e)}", file=sys.stderr)
        return 2
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
