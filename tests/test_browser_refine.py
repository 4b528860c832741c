"""The refine loop in Chromium: a trained study's "try it" creates the child study, which a
worker trains, and whose page shows its own EDF beside the parent's (dashed)."""

from __future__ import annotations

import re
import threading
import time

import pytest

from api.http.app import create_app
from search.store import Store
from testkit.browser import WAIT_MS, open_page, screenshot
from testkit.server import serve
from worker.loop import run_worker

SPACE = {"stem": {"type": "cifar", "width": 8}, "stages": 2, "depth": [1, 2], "width": [8, 16]}
SPEC = {
    "name": "refine loop (digits 8x8, 1 epoch)",
    "dataset": {"name": "digits", "resolution": 8},
    "spaces": [{"preset": "AnyNetX_A", **SPACE, "resolution": 8, "num_classes": 10}],
    "samples": 6,
    "fidelities": [1],
    "seed": 5,
}
TRY = "constraint:AnyNetX_A:shared_bottleneck"
pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]

EDF = """(meta) => { const g = document.getElementById('edf');
  return (g && g.data || []).filter(t => t.meta === meta).reduce((n, t) => n + t.x.length, 0); }"""


def train(url: str, study_id: int) -> int:
    """Train every trial of one study with a real worker (CPU, one thread); how many."""
    done: list[int] = []
    t = threading.Thread(
        target=lambda: done.append(
            run_worker(
                url,
                "cpu",
                exit_when_idle=True,
                threads=1,
                poll_seconds=0.2,
                study_ids=[study_id],
                install_signals=False,
            )  # fmt: skip
        )
    )
    t.start()
    t.join(timeout=600)
    assert not t.is_alive(), "the worker did not finish in 240 s"
    return done[0]


def test_try_it_creates_the_child_which_runs_beside_its_parent(tmp_path):
    url_db = f"sqlite:///{tmp_path / 'refine.db'}"
    store = Store(url_db)
    parent = store.create_study(SPEC)
    assert train(url_db, parent) == 6
    try:
        with (
            serve(create_app(store=store)) as url,
            open_page(f"{url}/studies/{parent}", {"width": 1300, "height": 900}) as (page, errors),
        ):
            page.wait_for_function(f"({EDF})('edf') === 6", timeout=WAIT_MS)
            button = page.locator(f'button.try-it[data-suggestion="{TRY}"]')
            button.wait_for(state="attached", timeout=WAIT_MS)
            if not button.is_visible():  # untested suggestions are folded away
                page.click("#more-suggestions summary")
            button.click()
            page.wait_for_url(re.compile(rf"/studies/(?!{parent}$)\d+$"), timeout=WAIT_MS)
            child = int(page.url.rsplit("/", 1)[1])
            end = time.monotonic() + 120  # a 202: its networks are still being sampled
            while store.get_study(child).status == "creating" and time.monotonic() < end:
                time.sleep(0.2)
            study = store.get_study(child)
            assert study.status == "running", (study.status, study.reason)
            assert study.parent_id == parent and study.suggestion["id"] == TRY
            assert study.spec.space_names() == ["AnyNetX_A+shared_bottleneck"]
            assert study.spec.seed == SPEC["seed"] and study.spec.samples == 6
            # the child's page: the lineage, and the parent's EDF before the child trained
            page.wait_for_function(f"({EDF})('parent-edf') === 6", timeout=WAIT_MS)
            crumbs = page.inner_text("#lineage")
            assert f"{parent}: {SPEC['name']}" in crumbs and TRY in crumbs
            assert page.evaluate(f"({EDF})('edf')") == 0
            assert train(url_db, child) == 6  # the child runs
            page.wait_for_function(f"({EDF})('edf') === 6", timeout=WAIT_MS)
            names = page.evaluate(
                "() => document.getElementById('edf').data.filter(t => t.meta)"
                ".map(t => [t.meta, t.name, t.line.dash || 'solid'])"
            )
            dashed = [n for n in names if n[0] == "parent-edf"]
            assert len(dashed) == 1 and dashed[0][2] == "dash"
            assert f"parent {parent}: AnyNetX_A" in dashed[0][1]
            assert any(n[0] == "edf" and "AnyNetX_A+shared_bottleneck" in n[1] for n in names)
            vs = page.inner_text("#vs-parent")
            assert "(n=6) vs the parent's AnyNetX_A" in vs and "D = " in vs and "q = " in vs, vs
            page.goto(f"{url}/studies/{parent}", timeout=WAIT_MS)  # the parent lists it
            page.wait_for_function(
                f"() => document.getElementById('lineage').innerText.includes('{child}:')",
                timeout=WAIT_MS,
            )
            page.goto(f"{url}/studies/{child}", timeout=WAIT_MS)
            page.wait_for_function(f"({EDF})('parent-edf') === 6", timeout=WAIT_MS)
            page.wait_for_function(f"({EDF})('edf') === 6", timeout=WAIT_MS)
            assert not errors, errors
            screenshot(page, "refine_child.png")
    finally:
        store.close()
