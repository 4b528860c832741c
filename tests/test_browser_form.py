"""The study creation form in a real browser (Debian's chromium via Playwright): fill it, see the
estimate, see a bad value named next to its field, submit, land on the new study's page."""

from __future__ import annotations

import json
import re
import urllib.request

import pytest

from api.http.app import create_app
from search.spec.study import StudySpec
from search.store import Store, TrialOutcome
from testkit.browser import WAIT_MS, open_page, screenshot
from testkit.server import serve

SMALL = {"stem": {"type": "cifar", "width": 16}, "stages": 3, "depth": [1, 2], "width": [8, 64]}
pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]


@pytest.fixture
def server(tmp_path):
    """uvicorn in a thread on a free loopback port, with one finished trial: (URL, store)."""
    store = Store(f"sqlite:///{tmp_path / 'form.db'}")
    seed = {"name": "speed source", "dataset": {"name": "digits", "resolution": 16},
            "spaces": [{"preset": "AnyNetX_A", **SMALL}], "samples": 2}  # fmt: skip
    store.create_study(seed)
    claim = store.claim("form-test")  # the estimate's speed comes from this trial (no probe)
    store.finish(claim, TrialOutcome("done", 0.5, seconds=1.0, images_per_s=2000.0))
    with serve(create_app(store=store)) as url:
        yield url, store
    store.close()


def api_estimate(url: str, body: str) -> dict:
    """POST the body to the estimate route as any client would."""
    req = urllib.request.Request(f"{url}/api/studies/estimate", data=body.encode(),
                                 headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


ESTIMATED = "() => document.getElementById('estimate').dataset.state === 'ok'"


def trials_shown(n: int) -> str:
    """A page function true once the estimate panel shows n trials."""
    return f"() => {ESTIMATED[6:]} && document.getElementById('estimate').dataset.trials === '{n}'"


def test_create_form_in_chromium(server):
    url, store = server
    with open_page(f"{url}/", {"width": 1400, "height": 1000}) as (page, errors):
        page.wait_for_function(
            "() => document.querySelectorAll('#presets input[type=checkbox]').length === 22",
            timeout=WAIT_MS,
        )
        families = page.eval_on_selector_all(
            "#presets fieldset.family", "els => els.map(e => e.dataset.family)"
        )
        assert families[:3] == ["AnyNetX", "AnyNetY", "RegNet"] and "DenseNet" in families
        # the starting spec: AnyNetX_A and _E on digits, 20 samples at 1 and 3 epochs
        page.wait_for_function(trials_shown(2 * (20 + 7)), timeout=WAIT_MS)
        # the dataset's resolved defaults as placeholders of the empty recipe fields
        assert page.get_attribute("#r-batch_size", "placeholder") == "32 (default)"
        assert page.get_attribute("#r-lr", "placeholder") == "0.0125 (default)"
        assert page.get_attribute("#f-train-size", "placeholder") == "1150"
        assert "default (off)" in page.inner_text("#r-flip")

        page.fill("#f-name", "form test")
        page.fill("#f-samples", "6")
        page.fill("#f-fidelities", "1, 2")
        page.check("#presets input[value=AnyNetX_C]")
        page.fill("textarea[data-preset=AnyNetX_C]", json.dumps(SMALL))
        page.fill("#r-lr", "0.02")
        page.fill("#f-flops-hi", "2M")
        page.wait_for_function(trials_shown(3 * (6 + 2)), timeout=WAIT_MS)
        preview = page.inner_text("#spec-preview")
        spec = json.loads(preview)
        assert spec == {
            "name": "form test",
            "dataset": {"name": "digits", "resolution": 16},
            "spaces": [{"preset": f"AnyNetX_{x}", **SMALL} for x in "ACE"],
            "samples": 6,
            "fidelities": [1, 2],
            "complexity": {"flops": [0, 2_000_000]},
            "recipe": {"lr": 0.02},
        }
        # the panel shows what the API answers for the same JSON
        answer = api_estimate(url, preview)
        assert answer["trials"] == 24 and answer["rate"]["source"] == "trials"
        shown = float(page.get_attribute("#estimate", "data-seconds"))
        assert shown == pytest.approx(answer["seconds"])
        assert page.get_attribute("#estimate", "data-source") == "trials"
        summary = page.inner_text("#est-summary")
        assert summary.startswith("24 trials") and "1 worker" in summary
        assert page.locator("#est-levels tbody tr").count() == 2
        assert "networks creation samples first" in page.inner_text("#est-spaces")
        page.evaluate("() => window.scrollTo(0, 0)")  # the sticky estimate at its place
        screenshot(page, "create_form.png")

        # a bad value: the estimate's 422 is shown next to the field it names
        page.fill("#f-samples", "0")
        note = page.locator('.field-error[data-for="samples"]')
        note.wait_for(timeout=WAIT_MS)
        assert "greater than or equal to 1" in note.inner_text()
        assert page.get_attribute("#f-samples", "data-invalid") == "estimate"
        # the last estimate no longer describes the spec: it is not shown (issue 23)
        assert page.inner_text("#est-summary") == ""
        assert page.locator("#est-levels tbody tr").count() == 0
        assert page.get_attribute("#estimate", "data-trials") is None
        # submitting it anyway: the POST's 422 stays on the page, with the check asked for
        page.check("#f-check")
        with page.expect_response(re.compile(r"/api/studies\?check=true$")) as posted:
            page.click("#f-submit")
        assert posted.value.status == 422
        page.locator('.field-error[data-from="submit"][data-for="samples"]').wait_for(
            timeout=WAIT_MS
        )
        assert page.url.rstrip("/") == url and "422" in page.inner_text("#msg")
        shown = page.locator(".field-error, #form-errors li", has_text="samples:")
        assert shown.count() == 1  # once, not the estimate's and the POST's (issue 23)
        page.uncheck("#f-check")

        # an override the API refuses is named at its space's box
        page.fill("#f-samples", "6")
        page.fill("textarea[data-preset=AnyNetX_A]", '{"depth": "x"}')
        page.locator('.field-error[data-for="spaces.0.depth"]').wait_for(timeout=WAIT_MS)
        page.fill("textarea[data-preset=AnyNetX_A]", json.dumps(SMALL))
        page.wait_for_function(trials_shown(24), timeout=WAIT_MS)
        assert page.locator(".field-error").count() == 0
        ranges = page.inner_text(".override:first-child .preset-ranges")
        assert "depth 1–16" in ranges and "group_width {1, 2, 4, 8, 16, 32}" in ranges

        # no space picked: the API's error is shown at the presets
        boxes = page.locator("#presets input:checked")
        for _ in range(3):
            boxes.first.uncheck()
        page.locator('.field-error[data-for="spaces"]').wait_for(timeout=WAIT_MS)
        for x in "ACE":
            page.check(f"#presets input[value=AnyNetX_{x}]")  # overrides kept meanwhile
        page.wait_for_function(trials_shown(24), timeout=WAIT_MS)
        assert json.loads(page.inner_text("#spec-preview")) == spec

        page.click("#f-submit")
        page.wait_for_url(re.compile(r"/studies/\d+$"), timeout=WAIT_MS)
        study_id = int(page.url.rsplit("/", 1)[1])
        page.wait_for_function("() => !!document.body.dataset.rendered", timeout=WAIT_MS)
        assert not errors, errors
    study = store.get_study(study_id)
    assert study.name == "form test"
    assert study.spec == StudySpec.model_validate(spec)  # the JSON the preview showed
    assert study.spec.space_names() == ["AnyNetX_A", "AnyNetX_C", "AnyNetX_E"]
