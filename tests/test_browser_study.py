"""A real browser (Debian's chromium via Playwright) on the study page: plots, toggles, screenshot.

The study's trials are finished through the Store's worker API with errors drawn from a
seeded model (no training), so the page has a known number of points to find.
"""

from __future__ import annotations

import math
import random
import time

import pytest

from api.http.app import create_app
from search.store import Store, TrialOutcome
from testkit.browser import WAIT_MS, open_page, screenshot
from testkit.server import serve

SPACE = {"stem": {"type": "cifar", "width": 16}, "stages": 3, "depth": [1, 3], "width": [8, 64]}
SPEC = {
    "name": "browser test: AnyNetX A/C/E (seeded synthetic errors, no training)",
    "dataset": {"name": "digits", "resolution": 16},
    "spaces": [{"preset": f"AnyNetX_{x}", **SPACE} for x in "ACE"],
    "samples": 40,
    "complexity": {"flops": [300_000, 1_500_000]},  # overlapping ranges: flops bins fill
    "fidelities": [1, 3],
    "seed": 3,
}
pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]


def modelled_error(claim, rng: random.Random) -> float:
    """Error falls with log of total width x depth, E beats C beats A, longer training helps (seeded noise)."""
    size = sum(s["width"] * s["depth"] for s in claim.net["stages"])
    offset = {"AnyNetX_A": 0.06, "AnyNetX_C": 0.04, "AnyNetX_E": 0.0}[claim.space]
    err = 0.55 - 0.07 * math.log(size) + offset - 0.04 * claim.level + rng.gauss(0, 0.025)
    return min(0.95, max(0.02, err))


def fill(store: Store) -> tuple[int, int]:
    """Create the study and finish every trial at every level; (study id, level-0 trials)."""
    study_id = store.create_study(SPEC)
    rng = random.Random(0)
    while (claim := store.claim("browser-test")) is not None:
        store.finish(claim, TrialOutcome("done", modelled_error(claim, rng), seconds=1.0))
    return study_id, store.count(study_id, level=0, status="done")


@pytest.fixture
def server(tmp_path):
    """uvicorn in a thread on a free loopback port: (base URL, store)."""
    store = Store(f"sqlite:///{tmp_path / 'browser.db'}")
    with serve(create_app(store=store)) as url:
        yield url, store
    store.close()


POINTS = """() => {
  const g = document.getElementById('edf');
  return (g.data || []).filter(t => t.meta === 'edf').reduce((n, t) => n + t.x.length, 0);
}"""
LAST_F = """() => document.getElementById('edf').data.filter(t => t.meta === 'edf')
  .map(t => t.y.slice(0, 3))"""


def test_study_page_in_chromium(server):
    url, store = server
    study_id, level0 = fill(store)
    assert level0 == 3 * 40
    with open_page(f"{url}/studies/{study_id}", {"width": 1400, "height": 600}) as (page, errors):
        page.wait_for_function(f"({POINTS})() === {level0}", timeout=WAIT_MS)
        assert page.locator("#legend tbody tr").count() == 3
        assert page.locator("#ks tbody tr").count() == 3  # A-C, A-E, C-E
        assert page.locator("#ks thead th").count() == 5  # a, b, D, p, q
        efit = (
            "() => document.getElementById('efit').data.filter(t => t.meta === 'efit')"
            ".reduce((n, t) => n + t.x.length, 0)"
        )
        page.wait_for_function(f"({efit})() === {level0}", timeout=WAIT_MS)  # DDS Fig. 8
        # the best networks' e_fit ranges: one strip per space, none over another, each
        # named in the legend (five overlapping shades had turned brown, unexplained)
        strips = page.evaluate(
            "() => document.getElementById('efit').layout.shapes"
            ".filter(s => s.type === 'rect').map(s => [s.y0, s.y1])"
        )
        assert len(strips) == 3 and all(strips[i][1] <= strips[i + 1][0] for i in range(2))
        legend = "() => document.getElementById('efit').data.filter(t => t.meta === 'best-strip')"
        assert page.evaluate(f"({legend})().length") == 3
        # the fitted-RegNet table names "space" once; the export table offers the winner
        # and the fit, with links only for the formats that build them (3-stage: no timm)
        heads = page.locator("#fit table th").all_inner_texts()
        assert heads[:2] == ["fit of", "winner's space"] and heads.count("space") == 0
        page.wait_for_function(
            "() => document.querySelectorAll('#exports table').length === 3", timeout=WAIT_MS
        )
        rows = page.locator("#exports table").first.locator("tr")
        assert rows.count() == 3  # header, winner, fitted RegNet
        assert rows.nth(1).inner_text().startswith("winner (trial ")
        links = rows.nth(1).locator("a").all_inner_texts()
        assert "timm" not in links and "pycls" in links and "json" in links
        off = rows.nth(1).locator("span.muted").first.get_attribute("title")
        assert off.startswith("timm cannot build") and "4 stages" in off
        assert page.locator("#progress .progress-row").count() == 3
        params = "() => [...document.querySelectorAll('#params [data-param]')].length"
        far = page.evaluate(
            "() => document.getElementById('params').parentElement"
            ".getBoundingClientRect().top > innerHeight + 100"
        )
        assert far and page.evaluate(params) == 0  # off the first screen: drawn when near
        page.locator("#params").scroll_into_view_if_needed()
        page.wait_for_function(f"({params})() >= 1", timeout=WAIT_MS)
        page.evaluate("() => window.scrollTo(0, 0)")
        plain = page.evaluate(LAST_F)

        page.click("#normalize button[data-v=flops]")
        # bins chosen from the data by default: every space keeps 3 networks a bin
        page.wait_for_function(
            "() => (document.body.dataset.rendered || '').includes('|flops|\"')",
            timeout=WAIT_MS,
        )
        assert "bins (chosen from the data)" in page.inner_text("#note")
        # NDS' 40 bins over 40 networks a space leave some bin empty: the page says which,
        # and which bin count stays honest
        page.fill("#bins", "40")
        page.dispatch_event("#bins", "change")
        page.wait_for_function(
            "() => (document.body.dataset.rendered || '').endsWith('|flops|error')",
            timeout=WAIT_MS,
        )
        assert "has no network in bin" in page.inner_text("#note")
        assert "networks a bin" in page.inner_text("#note")
        page.fill("#bins", "2")  # the count the note names as honest here
        page.dispatch_event("#bins", "change")
        page.wait_for_function(
            "() => (document.body.dataset.rendered || '').includes('|flops|\"')",
            timeout=WAIT_MS,
        )
        title = page.evaluate("() => document.getElementById('edf').layout.title.text")
        assert "flops" in title and "2 equal flops bins" in page.inner_text("#note")
        inside = int(page.evaluate("() => document.body.dataset.edfN"))
        assert 0 < inside <= level0 and page.evaluate(POINTS) == inside  # outside: left out
        assert page.evaluate(LAST_F) != plain  # weights changed the curves
        assert "stratified permutation KS" in page.inner_text("#ks-test")

        page.select_option("#fidelity", "3")
        page.wait_for_function(
            "() => (document.body.dataset.rendered || '').startsWith('3|')", timeout=WAIT_MS
        )
        page.select_option("#fidelity", "1")
        page.click("#normalize button[data-v=none]")
        page.wait_for_function(
            "() => (document.body.dataset.rendered || '').startsWith('1|none|')",
            timeout=WAIT_MS,
        )
        assert not errors, errors
        screenshot(page, "screenshot.png")  # CI keeps it as an artifact


def test_page_updates_without_reload(server):
    url, store = server
    spec = {**SPEC, "name": "live", "samples": 6, "fidelities": [1]}
    study_id = store.create_study(spec)
    with open_page(f"{url}/studies/{study_id}") as (page, _):
        page.wait_for_function("() => !!document.body.dataset.rendered", timeout=WAIT_MS)
        assert page.evaluate(POINTS) == 0
        page.evaluate("() => { window.notReloaded = true; }")
        claim = store.claim("browser-test")
        store.finish(claim, TrialOutcome("done", 0.25))
        t0 = time.monotonic()
        page.wait_for_function(f"({POINTS})() === 1", timeout=WAIT_MS)
        seen_after = time.monotonic() - t0
        assert page.evaluate("() => window.notReloaded === true")
        print(f"result visible on the page {seen_after:.2f} s after it was stored")


def test_space_names_are_text_in_the_plots(server):
    """Plotly renders an HTML subset in trace names: a space name must stay plain text."""

    url, store = server
    name = '<a href="http://evil.example">link</a><b>bold</b>'
    spec = {**SPEC, "name": "names", "samples": 3, "fidelities": [1]}
    spec["spaces"] = [{**spec["spaces"][0], "name": name}, spec["spaces"][1]]
    study_id = store.create_study(spec)
    while (claim := store.claim("browser-test")) is not None:
        store.finish(claim, TrialOutcome("done", 0.2 + 0.01 * claim.sample))
    with open_page(f"{url}/studies/{study_id}") as (page, _):
        page.wait_for_function(f"({POINTS})() === 6", timeout=WAIT_MS)
        page.wait_for_function("() => !!document.querySelector('#efit .legend')")
        for plot in ("#edf", "#efit"):  # the EDF's and e_fit's legends (issue 23)
            legend = page.evaluate(
                """(plot) => { const g = document.querySelector(plot + ' .legend');
                  return { links: g.querySelectorAll('a').length, text: g.textContent,
                           bold: g.querySelectorAll('tspan[style*="bold"]').length }; }""",
                plot,
            )
            assert legend["links"] == 0 and legend["bold"] == 0, legend  # no link, no markup
            assert name in legend["text"], legend  # shown as written


def test_banner_names_the_spaces_whose_trainings_did_not_learn(server):
    url, store = server
    spec = {**SPEC, "name": "at chance", "samples": 8, "fidelities": [1]}
    study_id = store.create_study(spec)
    rng = random.Random(1)
    while (claim := store.claim("browser-test")) is not None:
        # AnyNetX_A's trainings stay at chance (digits: 10 classes, 288 validation images)
        at_chance = claim.space == "AnyNetX_A"
        error = 0.9 - rng.random() * 0.02 if at_chance else modelled_error(claim, rng)
        store.finish(claim, TrialOutcome(
            "done", error, seconds=1.0, images_per_s=1.0, chance_error=0.8924, val_size=288,
            recipe={},
        ))  # fmt: skip
    with open_page(f"{url}/studies/{study_id}", {"width": 1400, "height": 900}) as (page, _):
        page.wait_for_function("() => !!document.body.dataset.rendered", timeout=WAIT_MS)
        banner = page.locator("#banner")
        assert banner.is_visible()
        text = banner.inner_text()
        assert "AnyNetX_A (1 epochs): 8 of 8 finished trials (100%) did not learn" in text
        assert "learning rate" in text and "AnyNetX_C" not in text
        assert page.evaluate(POINTS) == 3 * 8  # kept in the EDFs, not dropped
        row = page.locator('#progress .progress-row[data-space="AnyNetX_A"] .count')
        row.filter(has_text="8 at chance").wait_for(timeout=WAIT_MS)
        assert "at chance" not in page.locator("#progress").inner_text().split("AnyNetX_C")[1]
        screenshot(page, "not_learned_banner.png", full_page=False, min_bytes=None)
    fresh = {**SPEC, "name": "learns", "samples": 2, "fidelities": [1]}
    assert store.create_study(fresh)  # a study without such trials shows no banner:
    with open_page(f"{url}/studies/{study_id + 1}") as (page, _):
        page.wait_for_function("() => !!document.body.dataset.rendered", timeout=WAIT_MS)
        assert not page.locator("#banner").is_visible()


REFERENCE_ERRORS = {"resnet20": 0.12, "tiny regnet": 0.3}  # + 0.01 per seed


def test_reference_markers_on_the_edf(server):
    """Reference networks are dashed lines with a shaded band and 'beats N% of <space>' labels."""
    import httpx

    url, store = server
    spec = {**SPEC, "name": "references", "samples": 20, "fidelities": [1]}
    spec["references"] = ["resnet20", {"name": "tiny regnet", "regnet": "2,8,8,2,8"}]
    study_id = store.create_study(spec)
    rng = random.Random(2)
    while (claim := store.claim("browser-test")) is not None:
        base = REFERENCE_ERRORS.get(claim.space)
        error = modelled_error(claim, rng) if base is None else base + 0.01 * claim.sample
        store.finish(claim, TrialOutcome("done", error, seconds=1.0))
    results = httpx.get(f"{url}/api/studies/{study_id}/edf", timeout=WAIT_MS / 1000).json()
    marker = results["references"]["resnet20"]
    assert marker["n"] == 3 and marker["mean"] == pytest.approx(0.13)
    share = marker["percentile"]["AnyNetX_E"]
    assert share == pytest.approx(
        sum(e > 0.13 for e in results["params"]["flops"]["spaces"]["AnyNetX_E"]["error"]) / 20
    )
    with open_page(f"{url}/studies/{study_id}", {"width": 1400, "height": 800}) as (page, errors):
        page.wait_for_function(f"({POINTS})() === 60", timeout=WAIT_MS)  # refs: no points
        lines = page.evaluate(
            """() => document.getElementById('edf').data.filter(t => t.meta === 'reference')
              .map(t => ({x: t.x, name: t.name}))"""
        )
        assert [line["x"] for line in lines] == [
            [pytest.approx(0.13)] * 2,
            [pytest.approx(0.31)] * 2,
        ]
        layout = page.evaluate(
            """() => { const l = document.getElementById('edf').layout;
              return { bands: l.shapes.map(s => [s.x0, s.x1]),
                       labels: l.annotations.map(a => a.text) }; }"""
        )
        assert layout["bands"] == [
            [pytest.approx(0.12), pytest.approx(0.14)],
            [pytest.approx(0.3), pytest.approx(0.32)],
        ]
        assert f"{round(100 * share)}% of AnyNetX_E" in layout["labels"][0]
        assert layout["labels"][0].startswith("resnet20 13.00%: beats ")
        rows = page.locator("#references tbody tr")
        assert rows.count() == 2
        assert f"resnet20 beats {round(100 * share)}% of AnyNetX_E" in rows.first.inner_text()
        assert page.locator("#legend tbody tr").count() == 3  # still three spaces
        done = page.locator('#progress .progress-row[data-reference="tiny regnet"] .count')
        done.filter(has_text="3 done").wait_for(timeout=WAIT_MS)
        assert not errors, errors
        page.locator("#edf").scroll_into_view_if_needed()
        screenshot(page, "study_references.png", full_page=False)
