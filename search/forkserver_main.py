"""Imported only by the creation forkserver (search.creator), before it forks children.

multiprocessing makes every forkserver child import the parent's main script again unless
the forkserver preloaded it, and Python 3.11's forkserver never does (it looks for the
script under a key the preparation data does not use). A child of ours runs only
`search.creator._create`, so it needs nothing from that script: naming the script as this
process's main module lets each child skip it (measured: 1-2 s per creation here).
"""

from __future__ import annotations

import os
import sys

MAIN_ENV = "DSE_FORKSERVER_MAIN"  # the parent's main script, set by Creator

_main = sys.modules["__main__"]
# only in the forkserver, whose main is its `-c` command (no file): never in a server
if os.environ.get(MAIN_ENV) and getattr(_main, "__file__", None) is None:
    _main.__file__ = os.environ[MAIN_ENV]
