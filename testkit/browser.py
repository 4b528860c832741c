"""How tests and benchmarks launch Debian's chromium through Playwright (one copy)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
# screenshots the browser tests take: CI keeps them; the README's picture is of a real demo
# (docs/screenshot.py), so running the tests leaves the work tree clean
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
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


@contextmanager
def open_page(url: str, viewport: dict | None = None) -> Iterator[tuple]:
    """A test's chromium showing `url`, closed after the block: (page, its script errors so far)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_or_fail(p)
        try:
            page = browser.new_page(**({"viewport": viewport} if viewport else {}))
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url, timeout=WAIT_MS)
            yield page, errors
        finally:
            browser.close()


def screenshot(page, name: str, full_page: bool = True, min_bytes: int | None = 20_000) -> None:
    """Save the page as artifacts/<name>; with min_bytes, assert it is more than a blank page."""
    out = ARTIFACTS / name
    out.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out), full_page=full_page)
    if min_bytes is not None:
        assert out.stat().st_size > min_bytes
