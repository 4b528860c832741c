"""How tests and benchmarks launch Debian's chromium through Playwright (one copy)."""

from __future__ import annotations

import shutil
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    """Debian's chromium, if installed (`make browser` installs it)."""
    if Path(CHROMIUM).exists():
        return CHROMIUM
    return shutil.which("chromium")


def launch(playwright):
    """A headless chromium; RuntimeError saying how to install it when it is missing."""
    path = chromium_path()
    if path is None:
        raise RuntimeError(f"{CHROMIUM} not found: run `make browser` (apt-get install chromium)")
    return playwright.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)


# How long a browser test waits for the page to reach a state (ms). A wait returns as soon as
# the state is reached, so this costs nothing when the machine is quiet; it is long because
# the suite must pass with another job busy beside it (issue 20 item 8: 30 s was not enough).
WAIT_MS = 180_000


def launch_or_fail(playwright):
    """Debian's chromium for a test; a missing browser FAILS the test with the way to install it."""
    import pytest

    try:
        return launch(playwright)
    except RuntimeError as e:
        pytest.fail(str(e))
