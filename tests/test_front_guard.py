"""The front against other sites, other machines and slow or greedy clients (issue 15).

Cross-site requests and foreign Host names (finding 5), what leaves the server about its
database (finding 10), formula cells in the CSV (finding 7), paged reads and half-open
connections (finding 11): each case on a real app, most on a real uvicorn socket.
"""

from __future__ import annotations

import csv
import io
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError

from api.cli import serve as cli_serve
from api.http.app import create_app
from api.http.limits import SpecLimits
from api.http.server import access, bind, make_server
from testkit.server import CREATE_WAIT

ROOT = Path(__file__).resolve().parent.parent
SPACE = {"stem": {"type": "cifar", "width": 8}, "stages": 1, "depth": [1, 1], "width": [8, 16]}
SPEC = {
    "name": "guard",
    "dataset": {"name": "synthetic", "resolution": 8, "num_classes": 2},
    "spaces": [{"preset": "AnyNetX_A", **SPACE}],
    "samples": 3,
}
SECRET_URL = "postgresql://dse:hunter2@db.internal:5432/secretdb"


def local(app, **kw) -> TestClient:
    return TestClient(app, base_url="http://127.0.0.1:8000", **kw)


# --- finding 5: CSRF and DNS rebinding --------------------------------------------------------
def test_cross_site_mutations_are_refused(store):
    study_id = store.create_study(SPEC)
    with local(create_app(create_wait=CREATE_WAIT, store=store)) as c:
        evil = {"Origin": "http://evil.example"}
        r = c.post(f"/api/studies/{study_id}/cancel", headers=evil)  # a form POST elsewhere
        assert r.status_code == 403 and r.json()["errors"][0]["field"] == "origin"
        r = c.post("/api/studies", json=SPEC, headers={"Sec-Fetch-Site": "cross-site"})
        assert r.status_code == 403
        r = c.post(f"/api/studies/{study_id}/cancel", headers={"Origin": "null"})
        assert r.status_code == 403
        assert store.get_study(study_id).status == "running"
        assert c.get(f"/api/studies/{study_id}", headers=evil).status_code == 200  # reads open
        same = {"Origin": "http://127.0.0.1:8000", "Sec-Fetch-Site": "same-origin"}
        assert c.post(f"/api/studies/{study_id}/cancel", headers=same).status_code == 200
        assert c.post("/api/studies", json=SPEC).status_code == 201  # the CLI, curl: no Origin
    app = create_app(create_wait=CREATE_WAIT, store=store, allowed_origins=["https://dash.example"])
    with local(app) as c:
        r = c.post("/api/studies", json=SPEC, headers={"Origin": "https://dash.example"})
        assert r.status_code == 201


def test_foreign_host_names_are_refused(store):
    with local(create_app(create_wait=CREATE_WAIT, store=store)) as c:
        r = c.get("/api/studies", headers={"Host": "attacker.example"})
        assert r.status_code == 400 and r.json()["errors"][0]["field"] == "host"
        for host in ("127.0.0.1:8000", "localhost", "[::1]:8000"):
            assert c.get("/healthz", headers={"Host": host}).status_code == 200, host
    with local(
        create_app(create_wait=CREATE_WAIT, store=store, allowed_hosts=None)
    ) as c:  # a public server
        assert c.get("/healthz", headers={"Host": "dse.example.org"}).status_code == 200


def test_binding_beyond_loopback_needs_a_token():
    out = io.StringIO()
    granted = access("0.0.0.0", None, env={}, stream=out)
    assert granted["token"] and len(granted["token"]) >= 24
    assert granted["token"] in out.getvalue() and "WARNING" in out.getvalue()
    assert granted["allowed_hosts"] is None
    out = io.StringIO()
    assert access("0.0.0.0", "chosen", env={}, stream=out)["token"] == "chosen"
    assert out.getvalue() == ""
    local_only = access("127.0.0.1", None, env={"DSE_ALLOWED_HOSTS": "box.lan"}, stream=out)
    assert local_only["token"] is None and "box.lan" in local_only["allowed_hosts"]
    assert "attacker.example" not in local_only["allowed_hosts"] and out.getvalue() == ""


def test_compose_asks_for_a_token_and_keeps_urls_off_command_lines():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert compose["x-dse-env"]["DSE_TOKEN"].startswith("${DSE_TOKEN:?")
    for name, service in compose["services"].items():
        command = " ".join(service.get("command") or [])
        assert "--db" not in command and "postgresql://" not in command, name


# --- finding 10: secrets stay out of command lines and error bodies -------------------------
def test_serve_hands_workers_the_database_in_their_environment(monkeypatch):
    started = []

    class Recorder:
        def __init__(self, cmd, env, **kw):
            started.append((cmd, env))

    monkeypatch.setattr(subprocess, "Popen", Recorder)
    cli_serve.start_workers(SECRET_URL, [("cpu", {"OMP_NUM_THREADS": "1"})])
    (cmd, env), = started  # fmt: skip
    assert not any("hunter2" in part or part == "--db" for part in cmd), cmd
    assert env["DSE_DB"] == SECRET_URL and env["OMP_NUM_THREADS"] == "1"


class Broken:
    """A store whose database is down, with the URL in the driver's message."""

    url = SECRET_URL

    def list_studies(self):
        raise OperationalError("SELECT 1", {}, Exception(f"could not connect to {SECRET_URL}"))

    def get_study(self, study_id):
        raise RuntimeError(f"connection to {SECRET_URL} lost")


def test_errors_do_not_show_the_database():
    with local(
        create_app(create_wait=CREATE_WAIT, store=Broken()), raise_server_exceptions=False
    ) as c:
        r = c.get("/healthz")
        assert r.status_code == 503 and r.json()["status"] == "unavailable"
        r500 = c.get("/api/studies/1")
        assert r500.status_code == 500 and r500.json()["errors"][0]["field"] == "server"
        for body in (r.text, r500.text):
            assert "hunter2" not in body and "db.internal" not in body and "secretdb" not in body


def test_dataset_roots_are_absolute_existing_and_downloads_opt_in(store, tmp_path):
    data = tmp_path / "data"
    (data / "cifar").mkdir(parents=True)
    cifar = {**SPEC, "dataset": {"name": "cifar10", "root": str(data / "cifar")}}
    cases = [
        ({**cifar, "dataset": {"name": "cifar10", "root": "data/cifar"}}, "absolute"),
        ({**cifar, "dataset": {"name": "cifar10", "root": str(data / "later")}}, "directory"),
        ({**cifar, "dataset": {**cifar["dataset"], "download": True}}, "DSE_ALLOW_DOWNLOAD"),
    ]
    limits = SpecLimits(data_dirs=(str(data),))
    with local(create_app(create_wait=CREATE_WAIT, store=store, limits=limits)) as c:
        for spec, needle in cases:
            r = c.post("/api/studies", json=spec)
            assert r.status_code == 422 and needle in r.json()["detail"], r.text
            assert r.json()["errors"][0]["field"].startswith("dataset.")
        assert c.post("/api/studies", json=cifar).status_code == 201
    allowing = SpecLimits.from_env({"DSE_DATA_DIRS": str(data), "DSE_ALLOW_DOWNLOAD": "1"})
    with local(create_app(create_wait=CREATE_WAIT, store=store, limits=allowing)) as c:
        assert c.post("/api/studies", json=cases[2][0]).status_code == 201


# --- findings 7 and 11: the trial table -------------------------------------------------------
def test_csv_is_paged_and_formula_free(store, monkeypatch):
    evil = '=HYPERLINK("http://evil.example","x")'
    spec = {**SPEC, "spaces": [{"preset": "AnyNetX_A", "name": evil, **SPACE},
                               {"preset": "AnyNetX_E", "name": "@SUM(1)", **SPACE}]}  # fmt: skip
    study_id = store.create_study(spec)

    def whole_study(*a, **kw):
        raise AssertionError("the CSV route read every trial")

    monkeypatch.setattr(store, "trial_frame", whole_study)
    with local(create_app(create_wait=CREATE_WAIT, store=store)) as c:
        r = c.get(f"/api/studies/{study_id}/trials?format=csv&limit=4&offset=1")
    assert r.status_code == 200, r.text
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 4
    assert {row["space"] for row in rows} == {"'" + evil, "'@SUM(1)"}
    for row in rows:
        assert not any(v.startswith(("=", "+", "-", "@")) for v in row.values()), row
        assert row["spec"].startswith("{") and int(row["flops"]) > 0


# --- finding 11: half-open connections ---------------------------------------------------------
@pytest.fixture
def served(store):
    """The app on a real uvicorn socket with a 1 s read deadline: its (host, port)."""
    server = make_server(create_app(create_wait=CREATE_WAIT, store=store), read_timeout=1.0)
    sock = bind("127.0.0.1", 0)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield sock.getsockname()[:2]
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


def closed_after(conn: socket.socket, limit: float) -> float | None:
    """Seconds until the server closes conn (None if it is still open after limit)."""
    conn.settimeout(limit)
    t0 = time.monotonic()
    try:
        while conn.recv(4096):
            pass
    except TimeoutError:
        return None
    return time.monotonic() - t0


def test_half_sent_requests_are_timed_out(served):
    slow = socket.create_connection(served)
    slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the end
    body = socket.create_connection(served)
    body.sendall(b"POST /api/studies HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{")
    silent = socket.create_connection(served)  # connects and says nothing
    for conn in (slow, body, silent):
        took = closed_after(conn, 5.0)
        assert took is not None and took < 4.0, "a half-open connection was kept"
        conn.close()
    # whole requests are still answered, and keep-alive connections serve more than one
    conn = socket.create_connection(served)
    conn.settimeout(10)
    reader = conn.makefile("rb")
    for _ in range(2):
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        status = reader.readline()
        length = 0
        while (line := reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        assert status.startswith(b"HTTP/1.1 200") and b'"ok"' in reader.read(length), status
    reader.close()
    conn.close()
