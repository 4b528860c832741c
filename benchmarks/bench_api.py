"""API and page speed on a 5,000-trial study: EDF endpoint latency and time to first plot.

Goals (issue 6): the EDF endpoint answers in < 200 ms; the study page shows its first plot
with every trial in < 2 s (headless Debian chromium). The store is filled through the Store's
worker API (claim/finish) with seeded modelled errors, no training, and reused across runs.

    .venv/bin/python benchmarks/bench_api.py [--db sqlite:///bench-api.db] [--trials 5000]

(dse installed in the virtualenv, `make install`; no path set-up in the script.)
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from pathlib import Path

from api.http.app import create_app
from search.store import Store, TrialOutcome
from testkit import browser as chromium
from testkit.server import serve

ROOT = Path(__file__).resolve().parent.parent

SPACES = "ABCDE"


def bench_spec(trials: int) -> dict:
    """AnyNetX_A…E at 16 px, trials/5 networks each, one fidelity level."""
    space = {"stem": {"type": "cifar", "width": 16}, "stages": 3, "depth": [1, 4], "width": [8, 96]}
    return {
        "name": f"bench: {trials} trials (modelled errors, no training)",
        "dataset": {"name": "digits", "resolution": 16},
        "spaces": [{"preset": f"AnyNetX_{x}", **space} for x in SPACES],
        "samples": trials // len(SPACES),
        "complexity": {"flops": [300_000, 3_000_000]},
        "fidelities": [1],
        "seed": 0,
    }


def filled_study(store: Store, trials: int) -> int:
    """The bench study with every trial finished (created and filled on the first run)."""
    name = bench_spec(trials)["name"]
    existing = [s for s in store.list_studies() if s.name == name]
    if existing and store.count(existing[0].id, status="done") == trials:
        return existing[0].id
    t0 = time.perf_counter()
    study_id = store.create_study(bench_spec(trials))
    print(f"created {trials} trials in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    rng = random.Random(0)
    t0 = time.perf_counter()
    n = 0
    while (claim := store.claim("bench")) is not None:
        size = sum(s["width"] * s["depth"] for s in claim.net["stages"])
        err = 0.5 - 0.06 * math.log(size) + 0.015 * SPACES.index(claim.space[-1])
        err = min(0.95, max(0.02, err + rng.gauss(0, 0.03)))
        store.finish(claim, TrialOutcome("done", err, seconds=1.0))
        n += 1
        if n % 500 == 0:
            print(f"  finished {n}/{trials}", file=sys.stderr)
    print(f"finished {n} trials in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return study_id


def time_edf(url: str, app, study_id: int, repeats: int) -> dict:
    """Latency of /edf over HTTP: first analysis of a version, cached answer, 304 (ETag)."""
    import httpx

    out = {}
    with httpx.Client(timeout=60) as client:
        for normalize in ("none", "flops"):
            cold = []
            for _ in range(3):
                # a version never analysed: the analysis runs inside the request (first visit)
                app.state.results.clear()
                t0 = time.perf_counter()
                r = client.get(f"{url}/api/studies/{study_id}/edf?normalize={normalize}")
                cold.append(time.perf_counter() - t0)
                assert r.status_code == 200, r.text
            warm, not_modified = [], []
            for _ in range(repeats):
                t0 = time.perf_counter()
                r = client.get(f"{url}/api/studies/{study_id}/edf?normalize={normalize}")
                warm.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                r304 = client.get(
                    f"{url}/api/studies/{study_id}/edf?normalize={normalize}",
                    headers={"If-None-Match": r.headers["etag"]},
                )
                not_modified.append(time.perf_counter() - t0)
                assert r304.status_code == 304
            out[normalize] = {
                "first_analysis_ms": round(1000 * statistics.median(cold), 1),
                "warm_ms": round(1000 * statistics.median(warm), 1),
                "etag_304_ms": round(1000 * statistics.median(not_modified), 1),
                "bytes": len(r.content),
            }
    return out


def time_page(url: str, study_id: int, trials: int, runs: int) -> dict:
    """Headless chromium: navigation to the EDF plot of every trial, to the first screen
    complete, and from scrolling down to the error-vs-parameter plots (drawn lazily)."""
    from playwright.sync_api import sync_playwright

    points = """() => { const g = document.getElementById('edf');
      return (g.data || []).filter(t => t.meta === 'edf').reduce((n, t) => n + t.x.length, 0); }"""
    wall, in_page, full, params = [], [], [], []
    with sync_playwright() as p:
        browser = chromium.launch(p)
        try:
            for _ in range(runs):
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                t0 = time.perf_counter()
                page.goto(f"{url}/studies/{study_id}")
                # the EDF plot is drawn from all trials (its legend counts them; long EDFs
                # are subsampled for drawing by search.analysis.results)
                page.wait_for_function(
                    f"() => document.body.dataset.edfN === '{trials}' && ({points})() > 0",
                    timeout=60_000,
                    polling=20,
                )
                wall.append(time.perf_counter() - t0)
                in_page.append(
                    page.evaluate("() => performance.getEntriesByName('edf-plotted')[0].startTime")
                    / 1000
                )
                page.wait_for_function(
                    "() => !!document.body.dataset.rendered", timeout=60_000, polling=50
                )
                full.append(time.perf_counter() - t0)
                # the error-vs-parameter plots are drawn when their section nears the viewport
                t1 = time.perf_counter()
                page.locator("#params").scroll_into_view_if_needed()
                page.wait_for_function(
                    "() => [...document.querySelectorAll('#params [data-param]')]"
                    ".some(d => d.data && d.data.length)",
                    timeout=60_000,
                    polling=20,
                )
                params.append(time.perf_counter() - t1)
                page.close()
        finally:
            browser.close()
    return {
        "first_plot_s_median": round(statistics.median(wall), 3),
        "first_plot_s_max": round(max(wall), 3),
        "first_plot_s_all": [round(w, 3) for w in wall],
        "edf_mark_after_navigation_s_median": round(statistics.median(in_page), 3),
        "first_screen_s_median": round(statistics.median(full), 3),
        "param_plots_after_scroll_s_median": round(statistics.median(params), 3),
    }


def main(argv=None) -> int:
    """Fill (or reuse) the study, then print the figures as one JSON document."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--db", default=f"sqlite:///{ROOT / 'bench-api.db'}")
    ap.add_argument("--trials", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--page-runs", type=int, default=5)
    args = ap.parse_args(argv)
    store = Store(args.db)
    study_id = filled_study(store, args.trials)
    app = create_app(store=store)
    with serve(app) as url:
        figures = {
            "trials": store.count(study_id, status="done"),
            "edf": time_edf(url, app, study_id, args.repeats),
            "page": time_page(url, study_id, args.trials, args.page_runs),
        }
    figures["goals"] = {
        "edf_under_200ms": all(v["warm_ms"] < 200 for v in figures["edf"].values()),
        "page_under_2s": figures["page"]["first_plot_s_max"] < 2.0,
    }
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
