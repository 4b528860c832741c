"""The `dse` command line: `parser` builds the parser and runs `main`; one module per command registers
its subcommand and handles it (model, sample, export, scale, train, bench, study, worker,
edf, serve, demo, launch); `kit` holds what they share. `python -m api.cli` is `dse`.

Commands import the store, the analysis and torch inside their handlers, on purpose: the
parser then starts in 0.3 s, where importing those three takes 4.6-4.9 s (2-core AMD EPYC,
measured 2026-12-06), which `dse --help`, a typo's one-line error and `dse model` would pay.
"""

from api.cli.parser import main

__all__ = ["main"]
