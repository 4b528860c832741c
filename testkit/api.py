"""The HTTP API in-process: a client from this machine, studies created, trials finished."""

from __future__ import annotations

from fastapi.testclient import TestClient

from search.store import Store, TrialOutcome
from testkit.specs import API_SPEC

LOCAL = "http://127.0.0.1:8000"  # the front answers loopback Host names only


def local_client(app) -> TestClient:
    """A test client that reaches the app as a browser on this machine does (Host 127.0.0.1)."""
    return TestClient(app, base_url=LOCAL)


def created(client, spec=API_SPEC, **kw) -> int:
    """POST a study that must be created at once (201); its id."""
    r = client.post("/api/studies", json=spec, **kw)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def finish_all(store: Store, error=lambda claim: 0.1 + 0.01 * claim.sample, limit=None) -> int:
    """Finish waiting trials through the worker's Store API, without training."""
    n = 0
    while limit is None or n < limit:
        claim = store.claim("test-filler")
        if claim is None:
            return n
        result = TrialOutcome("done", error(claim), seconds=1.0, images_per_s=1.0)
        assert store.finish(claim, result)
        n += 1
    return n
