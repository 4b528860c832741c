"""Fuzz the API from its own OpenAPI schema (schemathesis, in-process ASGI): never a 5xx, and
every response has the shape the schema documents (progress, results, trials, errors)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance

from api.http.app import create_app
from api.http.limits import SpecLimits
from search.store import Store, TrialOutcome

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
    ("POST", "/api/studies/estimate"),
    ("GET", "/api/presets"),
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
            "spaces": [{"preset": "AnyNetX_A", **space}, {"preset": "AnyNetX_E", **space}],
            "samples": 3,
            "fidelities": [1, 2],
        }
    )
    # trials finished at both levels (one diverged): results and trials carry every part
    while (claim := store.claim("fuzz")) is not None:
        error = None if claim.sample == 1 else 0.2 + 0.1 * claim.sample
        outcome = TrialOutcome("done" if error else "diverged", error, images_per_s=100.0)
        store.finish(claim, outcome)  # images/s: the estimate's speed (no probe training)
    # tight limits keep any spec the fuzzer manages to make valid cheap to sample; the
    # in-process client reaches the app by the name "testserver"
    limits = SpecLimits(max_samples=3, max_spaces=2, max_epochs=3)
    app = create_app(store=store, limits=limits, allowed_hosts=["testserver"])
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    store.close()


def test_schema_lists_every_route(api_schema):
    found = {(op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations()}
    assert set(OPERATIONS) <= found, set(OPERATIONS) - found


def test_schema_types_progress_and_results(api_schema):
    """The progress and results bodies are documented field by field: no untyped part."""
    components = api_schema.raw_schema["components"]["schemas"]
    detail = components["StudyDetail"]["properties"]
    assert detail["progress"] == {"$ref": "#/components/schemas/Progress"}
    results = api_schema.raw_schema["paths"]["/api/studies/{study_id}/edf"]["get"]["responses"]
    ref = results["200"]["content"]["application/json"]["schema"]["$ref"]
    assert ref == "#/components/schemas/Results"

    def untyped(node, path=""):  # a property with no type, $ref, anyOf or enum is an Any
        if isinstance(node, dict):
            if "properties" in node:
                for name, prop in node["properties"].items():
                    if not set(prop) & {"type", "$ref", "anyOf", "allOf", "enum", "const"}:
                        yield f"{path}.{name}"
            for key, value in node.items():
                yield from untyped(value, f"{path}.{key}")

    for name in ("Progress", "Results", "SpaceResults", "Edf", "Suggestion", "RegNetFit"):
        assert not list(untyped(components[name], name)), name


# the study the fixture made (id 1): these reads answer 200 with their documented bodies
KNOWN = [
    ("/api/presets", {}),
    ("/api/studies", {}),
    ("/api/studies/{study_id}", {}),
    ("/api/studies/{study_id}/trials", {"limit": 4}),
    ("/api/studies/{study_id}/trials", {"format": "csv"}),
    ("/api/studies/{study_id}/edf", {}),
    ("/api/studies/{study_id}/edf", {"fidelity": 2, "normalize": "flops"}),
    ("/api/studies/{study_id}/export", {"format": "pycls"}),
    ("/api/studies/{study_id}/export", {"space": "AnyNetX_E", "format": "json"}),
]


@pytest.mark.parametrize(("path", "query"), KNOWN)
def test_bodies_match_the_schema(api_schema, path, query):
    params = {"study_id": 1} if "{" in path else None
    case = api_schema[path]["GET"].Case(path_parameters=params, query=query)
    response = case.call_and_validate(checks=[not_a_server_error, response_schema_conformance])
    assert response.status_code == 200, response.text[:500]


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
        checks = [not_a_server_error, response_schema_conformance]
        response = case.call_and_validate(checks=checks)
        if response.status_code >= 400:
            assert response.json()["detail"]  # every error names its field and reason

    run()
