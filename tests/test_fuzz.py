"""Fuzz the API from its own OpenAPI schema (schemathesis, in-process ASGI): never a 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from api.app import create_app
from api.deps import SpecLimits
from search.store import Store

pytestmark = pytest.mark.timeout(240)
OPERATIONS = [
    ("GET", "/healthz"),
    ("POST", "/api/studies"),
    ("GET", "/api/studies"),
    ("GET", "/api/studies/{study_id}"),
    ("POST", "/api/studies/{study_id}/cancel"),
    ("GET", "/api/studies/{study_id}/trials"),
    ("GET", "/api/studies/{study_id}/edf"),
    ("GET", "/api/studies/{study_id}/export"),
]


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    """The app's own schema, bound in-process to an app on a fresh SQLite file with one study."""
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('fuzz')}/fuzz.db")
    space = {"stem": {"type": "cifar", "width": 8}, "stages": 1, "depth": [1, 1], "width": [8, 8]}
    store.create_study(
        {
            "name": "fuzz",
            "dataset": {"name": "synthetic", "resolution": 8, "num_classes": 2},
            "spaces": [{"preset": "AnyNetX_A", **space}],
            "samples": 2,
        }
    )
    # tight limits keep any spec the fuzzer manages to make valid cheap to sample
    app = create_app(store=store, limits=SpecLimits(max_samples=3, max_spaces=2, max_epochs=3))
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    store.close()


def test_schema_lists_every_route(api_schema):
    found = {(op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations()}
    assert set(OPERATIONS) <= found, set(OPERATIONS) - found


# negative data (schema-violating input) needs something to violate: a parameter or a body
CASES = [(m, p, GenerationMode.POSITIVE) for m, p in OPERATIONS] + [
    (m, p, GenerationMode.NEGATIVE) for m, p in OPERATIONS if "{" in p or m == "POST"
]


@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_no_server_errors(api_schema, method, path, mode):
    operation = api_schema[path][method]

    @given(operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=15, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    def run(case):
        response = case.call()
        assert response.status_code < 500, (case.method, case.path, response.text[:500])
        if response.status_code >= 400:
            assert response.json()["detail"]  # every error names its field and reason

    run()
