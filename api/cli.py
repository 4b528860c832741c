"""The `dse` command line: one parser, subcommands registered by small modules."""

from __future__ import annotations

import argparse
import importlib
import json
import sys

# Each module defines register(subparsers); their handlers take the parsed args and
# return an exit code (or None for 0).
COMMAND_MODULES = (
    "api.cli_anynet",
    "api.cli_train",
    "api.cli_study",
    "api.cli_results",
    "api.cli_serve",
)

# Commands that train in their own process: they start with glibc malloc settings that keep
# activations mapped between steps (worker.allocator).
TRAINING_COMMANDS = frozenset({"train", "bench", "worker"})


class CliError(Exception):
    """Bad input: printed as one line on stderr, exit code 2."""


def emit_json(obj) -> None:
    """Print one JSON document on stdout (the --json contract)."""
    sys.stdout.write(json.dumps(obj, default=_jsonable) + "\n")
    sys.stdout.flush()


def _jsonable(o):
    if hasattr(o, "model_dump"):
        return o.model_dump(mode="json")
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def one_line(exc: BaseException) -> str:
    """A one-line reason for an exception (pydantic errors name the field)."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            parts = []
            for e in exc.errors():
                loc = ".".join(str(x) for x in e.get("loc", ()))
                parts.append(f"{loc}: {e.get('msg')}" if loc else str(e.get("msg")))
            return "; ".join(parts)
        except Exception:
            pass
    return " ".join(str(exc).split()) or type(exc).__name__


def build_parser() -> argparse.ArgumentParser:
    """The full `dse` parser with every registered subcommand."""
    parser = argparse.ArgumentParser(prog="dse", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:  # not written yet
                continue
            raise
        module.register(sub)
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
    except (CliError, ValueError, FileNotFoundError, PermissionError, OSError) as e:
        print(f"dse {args.command}: error: {one_line(e)}", file=sys.stderr)
        return 2
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
