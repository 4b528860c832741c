"""The `dse` command line: `parser` builds the parser and runs `main`; one module per command registers
its subcommand and handles it (model, sample, export, scale, train, bench, study, worker,
edf, serve, demo, launch); `kit` holds what they share. `python -m api.cli` is `dse`.
"""

from api.cli.parser import main

__all__ = ["main"]
