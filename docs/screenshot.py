"""Make docs/screenshot.png from a real demo: `dse demo` trains, headless chromium shoots.

    .venv/bin/python docs/screenshot.py [--samples 16] [--epochs 2] [--out docs/screenshot.png]
    .venv/bin/python docs/screenshot.py --spec docs/families_study.json \
        --out docs/families.png [--workers 2]

Runs `dse demo` (or, with --spec, `dse study create SPEC` and `dse serve`) on a temporary
SQLite database and a free port, waits until every trial has finished, opens the study page
in Debian's chromium via Playwright and saves a full-page screenshot. Nothing here is
modelled: the errors on the picture are real trainings on scikit-learn's digits.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_demo(db: str, port: int, samples: int, epochs: int, timeout: float) -> tuple:
    """Start `dse demo`; (process, study URL) once every trial is finished."""
    cmd = [str(ROOT / ".venv" / "bin" / "dse"), "demo", "--db", db, "--port", str(port),
           "--samples", str(samples), "--epochs", str(epochs)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url, deadline = None, time.monotonic() + timeout
    for line in proc.stdout:
        print(line, end="", file=sys.stderr)
        if m := re.search(r"open (http://\S+)", line):
            url = m.group(1)
        m = re.search(r"(\d+)/(\d+) trials", line)
        if url and m and m.group(1) == m.group(2) and "running" not in line:
            return proc, url
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise SystemExit(f"dse demo did not finish within {timeout:.0f} s")


def run_study(db: str, port: int, spec: Path, workers: int | None, timeout: float) -> tuple:
    """Create the study of `spec`, serve it with local workers; (process, URL) once finished."""
    dse = str(ROOT / ".venv" / "bin" / "dse")
    made = subprocess.run([dse, "study", "create", str(spec), "--db", db],
                          check=True, capture_output=True, text=True)  # fmt: skip
    study_id = int(made.stdout.split()[-1])
    cmd = [dse, "serve", "--db", db, "--port", str(port)]
    cmd += ["--workers", str(workers)] if workers else []
    proc = subprocess.Popen(cmd, stdout=sys.stderr, stderr=subprocess.STDOUT, text=True)
    waited = subprocess.run([dse, "study", "wait", str(study_id), "--db", db,
                             "--timeout", str(timeout)], check=False)  # fmt: skip
    if waited.returncode:
        proc.kill()
        raise SystemExit(f"study {study_id} did not finish within {timeout:.0f} s")
    return proc, f"http://127.0.0.1:{port}/studies/{study_id}"


def shoot(url: str, out: Path) -> None:
    """Full-page screenshot of the study page once its plots are drawn."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])  # fmt: skip
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            page.wait_for_function("() => !!document.body.dataset.rendered", timeout=60_000)
            page.locator("#params").scroll_into_view_if_needed()  # drawn when scrolled near
            page.wait_for_function(
                "() => [...document.querySelectorAll('#params [data-param]')]"
                ".some(d => d.data && d.data.length)",
                timeout=60_000,
            )
            page.evaluate("() => window.scrollTo(0, 0)")
            page.wait_for_timeout(1500)  # Plotly's responsive relayout
            page.screenshot(path=str(out), full_page=True)
        finally:
            browser.close()


def main(argv=None) -> int:
    """Run the demo, take the picture, stop the demo."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=32, help="networks per space (dse demo's)")
    ap.add_argument("--epochs", type=int, default=2, help="epochs per network (dse demo's)")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshot.png")
    ap.add_argument("--spec", type=Path, help="a study spec to run instead of the demo")
    ap.add_argument("--workers", type=int, help="local workers of `dse serve` (with --spec)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        db = f"sqlite:///{os.path.join(tmp, 'demo.db')}"
        if args.spec:
            proc, url = run_study(db, free_port(), args.spec, args.workers, args.timeout)
        else:
            proc, url = run_demo(db, free_port(), args.samples, args.epochs, args.timeout)
        try:
            shoot(url, args.out)
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
