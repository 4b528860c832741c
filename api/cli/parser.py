"""The `dse` command line: one parser, subcommands registered by small modules."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys

from api.errors import one_line
from search.jsonable import json_safe

# One module per command, in `dse --help`'s order. Each defines register(subparsers); their
# handlers take the parsed args and return an exit code (or None for 0).
COMMAND_MODULES = (
    "api.cli.model",
    "api.cli.sample",
    "api.cli.export",
    "api.cli.scale",
    "api.cli.train",
    "api.cli.bench",
    "api.cli.study",
    "api.cli.worker",
    "api.cli.edf",
    "api.cli.serve",
    "api.cli.demo",
    "api.cli.launch",
)

# Commands that train in their own process: they start with glibc malloc settings that keep
# activations mapped between steps (worker.allocator).
TRAINING_COMMANDS = frozenset({"train", "bench", "worker"})
TRACEBACK_ENV = "DSE_TRACEBACK"


class CliError(Exception):
    """Bad input: printed as one line on stderr, exit code 2."""


def emit_json(obj) -> None:
    """Print one JSON document on stdout (the --json contract; NaN and infinities as null)."""
    sys.stdout.write(json.dumps(json_safe(obj), allow_nan=False) + "\n")
    sys.stdout.flush()


def json_option(parser: argparse.ArgumentParser, help: str = "one JSON document on stdout") -> None:
    """Add --json: the command prints one JSON document (emit_json) instead of text."""
    parser.add_argument("--json", action="store_true", help=help)


def from_args(args: argparse.Namespace, *names: str) -> dict:
    """The named options of parsed `args` as keyword arguments of the call they configure."""
    return {name: getattr(args, name) for name in names}


def db_option(parser: argparse.ArgumentParser) -> None:
    """Add --db (the one database URL; None falls back to search.store.default_url())."""
    parser.add_argument(
        "--db", default=None, help="database URL (default $DSE_DB, else sqlite:///dse.db)"
    )


def version() -> str:
    """The installed dse's version (its package metadata), else pyproject.toml's."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("dse")
    except PackageNotFoundError:  # run from a checkout that was never installed
        import tomllib
        from pathlib import Path

        pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
        return tomllib.loads(pyproject.read_text())["project"]["version"]


def build_parser() -> argparse.ArgumentParser:
    """The full `dse` parser with every registered subcommand."""
    parser = argparse.ArgumentParser(prog="dse", description=__doc__)
    parser.add_argument("--version", action="version", version=f"dse {version()}")
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
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
    except KeyboardInterrupt:
        print(f"dse {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `dse study show 1 | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit's flush
        return 141  # as a shell reports a process ended by SIGPIPE
    except (CliError, ValueError, OSError) as e:  # ValueError includes pydantic's errors
        print(f"dse {args.command}: error: {one_line(e)}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001  (one line, never a traceback: see unexpected())
        line, code = unexpected(e)
        print(f"dse {args.command}: error: {line}", file=sys.stderr)
        return code
    return int(code or 0)


def unexpected(e: Exception) -> tuple[str, int]:
    """(one line, exit code) for an error no command caught: an unreachable database is the
    user's to fix (2); anything else is ours (1), its traceback shown with DSE_TRACEBACK=1."""
    if os.environ.get(TRACEBACK_ENV):
        raise e
    from sqlalchemy.exc import SQLAlchemyError

    first = " ".join(str(e).split("\n")[0].split())[:300]
    if isinstance(e, SQLAlchemyError) or type(e).__module__.startswith(("psycopg", "optuna")):
        return f"database unreachable or refused: {first}; check --db / $DSE_DB", 2
    return f"{type(e).__name__}: {first} (a bug: {TRACEBACK_ENV}=1 shows the traceback)", 1
