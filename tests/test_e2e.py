"""End to end: `dse serve` with local workers on SQLite, and the docker-compose commands on PostgreSQL."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from testkit.specs import API_SPACE

ROOT = Path(__file__).resolve().parent.parent
DSE = [sys.executable, "-m", "api.cli"]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def tiny_spec(name: str) -> dict:
    """2 spaces x 6 samples on synthetic 8 px data (128 train images), 1 epoch."""
    space = {**API_SPACE, "resolution": 8, "num_classes": 4}
    return {
        "name": name,
        "dataset": {
            "name": "synthetic",
            "resolution": 8,
            "num_classes": 4,
            "train_size": 128,
            "val_size": 64,
            "test_size": 0,
        },
        "spaces": [{"preset": "AnyNetX_A", **space}, {"preset": "AnyNetX_E", **space}],
        "samples": 6,
        "fidelities": [1],
        "recipe": {"batch_size": 64},
        "seed": 1,
    }


def http(method: str, url: str, body: dict | None = None, headers: dict | None = None):
    """(status, parsed JSON or text) of one request; never raises for 4xx/5xx."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            raw, status, ctype = r.read(), r.status, r.headers.get("content-type", "")
    except urllib.error.HTTPError as e:
        raw, status, ctype = e.read(), e.code, e.headers.get("content-type", "")
    return status, (json.loads(raw) if "json" in ctype else raw.decode())


class Processes:
    """Processes started by a test, each in its own session; all killed at the end."""

    def __init__(self):
        self.procs: list[subprocess.Popen] = []

    def start(self, cmd: list[str], env: dict[str, str]) -> subprocess.Popen:
        """Start cmd with stdout piped (the serve URL is read from it)."""
        p = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.procs.append(p)
        return p

    def stop(self) -> None:
        """SIGTERM each process group, then SIGKILL what is left."""
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


@pytest.fixture
def processes():
    procs = Processes()
    yield procs
    procs.stop()


def read_url(proc: subprocess.Popen, timeout: float = 60) -> str:
    """The URL `dse serve` prints when it is listening."""
    deadline = time.monotonic() + timeout
    lines = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        lines.append(line)
        m = re.search(r"serving (http://\S+)", line)
        if m:
            return m.group(1)
    raise AssertionError("dse serve printed no URL:\n" + "".join(lines))


def wait_healthy(url: str, timeout: float = 60) -> None:
    """Poll /healthz until it answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if http("GET", f"{url}/healthz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url}/healthz never answered 200")


def wait_finished(url: str, study_id: int, timeout: float = 600) -> dict:
    """Poll the study until it is sampled and no trial is waiting or running; its detail."""
    from api.cli.demo import progress_counts

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, detail = http("GET", f"{url}/api/studies/{study_id}")
        assert status == 200, detail
        counts = progress_counts(detail["progress"])
        if sum(counts.values()) and not counts["waiting"] and not counts["running"]:
            return detail
        time.sleep(1)
    raise AssertionError(f"study {study_id} did not finish: {detail['progress']}")


def check_results(url: str, study_id: int, samples: int) -> dict:
    """The EDF JSON of a finished study: every space has n samples and a proper EDF."""
    status, results = http("GET", f"{url}/api/studies/{study_id}/edf")
    assert status == 200, results
    spaces = results["spaces"]
    assert sorted(spaces) == ["AnyNetX_A", "AnyNetX_E"]
    for name, s in spaces.items():
        assert s["n"] == samples, (name, s["n"])
        assert 0 <= s["min"] <= s["mean"] <= 1, (name, s)
        y = s["edf"]["F"]
        assert y == sorted(y) and abs(y[-1] - 1.0) < 1e-9, (name, y)
    return results


def test_serve_sqlite_end_to_end(tmp_path, processes):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("DSE_TOKEN", None)
    db = f"sqlite:///{tmp_path / 'e2e.db'}"
    serve = processes.start([*DSE, "serve", "--db", db, "--workers", "2", "--port", "0"], env)
    url = read_url(serve)
    wait_healthy(url)
    children = child_commands(serve.pid)  # the workers, and the creations' forkserver
    workers = [cmd for cmd in children if "worker" in cmd]
    assert len(workers) == 2, children
    assert not any(db in " ".join(cmd) for cmd in children), children  # the URL stays in env
    status, created = http("POST", f"{url}/api/studies", tiny_spec("e2e sqlite"))
    assert status in (201, 202), created  # 202: sampled after the 2 s wait on a busy machine
    study_id = created["id"]
    detail = wait_finished(url, study_id)
    assert detail["status"] in ("done", "running")
    check_results(url, study_id, samples=6)

    # the export builds in torchvision from its structured arguments (never exec'd code)
    status, export = http(
        "GET", f"{url}/api/studies/{study_id}/export?space=AnyNetX_E&format=torchvision"
    )
    assert status == 200, export
    from torchvision.models.regnet import BlockParams, RegNet

    config = export["structured"]["config"]
    if "from_init_params" in config:
        block_params = BlockParams.from_init_params(**config["from_init_params"])
    else:
        block_params = BlockParams(**config["block_params"])
    model = RegNet(block_params, num_classes=config["num_classes"], stem_width=config["stem_width"])
    built = sum(p.numel() for p in model.parameters())
    assert built == export["complexity"]["params"], (built, export["complexity"])
    assert export["recipe"]["epochs"] == 100 and export["recipe"]["warmup_epochs"] == 5


def child_commands(pid: int) -> list[list[str]]:
    """The command lines of a process's children (Linux /proc), as `ps` shows them."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [Path(f"/proc/{c}/cmdline").read_text().split("\0") for c in children]


def interpolate(value: str, env: dict[str, str]) -> str:
    """docker compose's ${VAR:-default} / ${VAR:?error} / ${VAR} / $VAR interpolation."""

    def sub(m: re.Match) -> str:
        name, kind, arg = m.group(1) or m.group(4), m.group(2), m.group(3)
        got = env.get(name)
        if not got and kind == "?":
            raise ValueError(f"{name}: {arg}")  # compose refuses to start
        return got if got else (arg if kind == "-" else "") or ""

    return re.sub(r"\$\{(\w+)(?::([-?])([^}]*))?\}|\$(\w+)", sub, value)


@pytest.mark.postgres
def test_compose_commands_on_postgres(pg_url, processes, tmp_path):
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert services["worker"]["deploy"]["resources"]["reservations"]["devices"][0]["count"] == 1
    assert "healthcheck" in services["postgres"] and services["postgres"]["volumes"]
    # the same commands and environment the compose file gives; this machine has no GPU,
    # so DSE_DEVICE=cpu; the api listens on every interface, so compose asks for a token
    values = {"DSE_DB": pg_url, "DSE_DEVICE": "cpu"}
    with pytest.raises(ValueError, match="DSE_TOKEN"):
        interpolate(compose["x-dse-env"]["DSE_TOKEN"], values)
    values["DSE_TOKEN"] = "e2e-token"
    api_cmd = [interpolate(a, values) for a in services["api"]["command"]]
    worker_cmd = [interpolate(a, values) for a in services["worker"]["command"]]
    assert api_cmd[:2] == ["dse", "serve"] and worker_cmd[:2] == ["dse", "worker"]
    assert pg_url not in api_cmd + worker_cmd  # the URL (and its password) only in env
    compose_env = {k: interpolate(v, values) for k, v in compose["x-dse-env"].items()}
    assert compose_env["DSE_DB"] == pg_url

    env = {**os.environ, "OMP_NUM_THREADS": "1", "DSE_PORT": "0", **compose_env}
    api = processes.start([*DSE, *api_cmd[1:]], env)
    url = read_url(api)
    wait_healthy(url)
    for _ in range(2):  # docker compose up --scale worker=2
        processes.start([*DSE, *worker_cmd[1:]], env)
    spec = tiny_spec("e2e compose")
    assert http("POST", f"{url}/api/studies", spec)[0] == 401
    token = {"Authorization": "Bearer e2e-token"}
    status, created = http("POST", f"{url}/api/studies", spec, headers=token)
    assert status in (201, 202), created  # 202: sampled after the 2 s wait on a busy machine
    wait_finished(url, created["id"])
    check_results(url, created["id"], samples=6)


def test_demo_prints_the_study_url_and_trains_it(tmp_path, processes):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("DSE_TOKEN", None)
    db = f"sqlite:///{tmp_path / 'demo.db'}"
    cmd = [*DSE, "demo", "--db", db, "--port", "0", "--samples", "2", "--epochs", "1"]
    demo = processes.start(cmd, env)
    deadline, lines, page = time.monotonic() + 60, [], None
    while page is None and time.monotonic() < deadline:
        line = demo.stdout.readline()
        lines.append(line)
        if m := re.search(r"open (http://\S+/studies/(\d+))", line):
            page, study_id = m.group(1), int(m.group(2))
        elif not line and demo.poll() is not None:
            break
    assert page, "dse demo printed no study URL:\n" + "".join(lines)
    url = page.rsplit("/studies/", 1)[0]
    status, html = http("GET", page)
    assert status == 200 and "study.js" in html
    detail = wait_finished(url, study_id)
    assert detail["spaces"] == [f"AnyNetX_{x}" for x in "ABCDE"]
    status, results = http("GET", f"{url}/api/studies/{study_id}/edf")
    assert status == 200, results
    assert {name: s["n"] for name, s in results["spaces"].items()} == {
        f"AnyNetX_{x}": 2 for x in "ABCDE"
    }
