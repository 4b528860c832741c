"""Load test: /healthz latency while the largest allowed study is being created.

    .venv/bin/python benchmarks/bench_create_load.py [--db URL] [--requests 100]

(dse installed in the virtualenv, `make install`; no path set-up in the script.)

Starts `dse serve --workers 0` on a free loopback port (127.0.0.1 only; nothing leaves this
machine), posts the largest study the default limits allow (12 spaces x 500 samples: the
AnyNetX_A…E, AnyNetY_A…E, RegNetX and RegNetY presets in a 200-800 MF window), and sends
`--requests` GET /healthz one after another (20 ms apart) while the study is `creating`.
Goal (issue 15 finding 1): every one answers within 100 ms. Bounded: the study's creation
has the server's time budget, and the run stops after `--timeout` seconds.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

PRESETS = [f"AnyNet{k}_{x}" for k in "XY" for x in "ABCDE"] + ["RegNetX", "RegNetY"]
LARGEST = {
    "name": "load test: the largest allowed study (12 spaces x 500)",
    "spaces": [{"preset": p} for p in PRESETS],
    "samples": 500,
    "complexity": {"flops": [200e6, 800e6]},
}


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(db: str, port: int) -> subprocess.Popen:
    """`dse serve --workers 0` on 127.0.0.1:port; returns once /healthz answers."""
    dse = str(Path(sys.executable).with_name("dse"))
    proc = subprocess.Popen(
        [dse, "serve", "--db", db, "--workers", "0", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("dse serve did not answer /healthz within 120 s")


def _stats(prefix: str, seconds: list[float]) -> dict:
    """Median, p99 and max in milliseconds."""
    ms = sorted(1000 * x for x in seconds)
    if not ms:
        return {f"{prefix}_n": 0}
    return {
        f"{prefix}_n": len(ms),
        f"{prefix}_ms_median": round(statistics.median(ms), 1),
        f"{prefix}_ms_p99": round(ms[int(0.99 * (len(ms) - 1))], 1),
        f"{prefix}_ms_max": round(ms[-1], 1),
    }


class Probe:
    """GET /healthz on one kept-alive connection (TCP_NODELAY, as curl sends it)."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=30)
        self.conn.connect()
        self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def __call__(self) -> float:
        """Seconds one /healthz took (it must answer 200)."""
        t0 = time.perf_counter()
        self.conn.request("GET", "/healthz")
        response = self.conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"/healthz answered {response.status}")
        return time.perf_counter() - t0


def measure(url: str, requests: int, timeout: float) -> dict:
    """Time /healthz with nothing to do, then POST the largest study and time it again."""
    probe = Probe(url)
    probe()  # a warm connection, as a monitoring probe would have
    idle = []
    for _ in range(requests):  # the same probe on the idle server: this machine's floor
        idle.append(probe())
        time.sleep(0.01)
    with httpx.Client(base_url=url, timeout=30) as client:
        t0 = time.perf_counter()
        r = client.post("/api/studies", json=LARGEST)
        post_s = time.perf_counter() - t0
        if r.status_code not in (201, 202):
            raise RuntimeError(f"POST answered {r.status_code}: {r.text[:300]}")
        study_id = r.json()["id"]
        latencies: list[float] = []
        deadline = time.monotonic() + timeout
        while len(latencies) < requests and time.monotonic() < deadline:
            batch = [probe() for _ in range(10) if not time.sleep(0.01)]
            if client.get(f"/api/studies/{study_id}").json()["status"] != "creating":
                break  # these ten may have straddled the end: not counted
            latencies += batch
        while client.get(f"/api/studies/{study_id}").json()["status"] == "creating":
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        study = client.get(f"/api/studies/{study_id}").json()
    return {
        "post_status": r.status_code,
        "post_answered_s": round(post_s, 3),
        "study_status": study["status"],
        "creation": study.get("creation"),
        "trials": study["progress"]["totals"]["total"],
        **_stats("healthz_idle", idle),
        **_stats("healthz_creating", latencies),
        "all_under_100ms": bool(latencies) and max(latencies) < 0.1,
    }


def main() -> None:
    """Run the load test and print one JSON document."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", default=None, help="database URL (default: a fresh SQLite file)")
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds before giving up")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or f"sqlite:///{tmp}/load.db"
        port = free_port()
        server = start_server(db, port)
        try:
            figures = measure(f"http://127.0.0.1:{port}", args.requests, args.timeout)
        finally:
            server.terminate()
            server.wait(timeout=60)
    figures["load_average"] = os.getloadavg()
    figures["cpus"] = os.cpu_count()
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
