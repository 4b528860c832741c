"""`dse serve`: the HTTP API and N local workers in one command (`dse demo` serves through it)."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

from api.cli.parser import db_option
from search.spec.environ import env_number


def register(subparsers) -> None:
    """Add `serve` to the dse parser."""
    p = subparsers.add_parser("serve", help="run the HTTP API and N local workers")
    server_args(p)
    p.add_argument(
        "--port", type=int, default=env_port(), help="default $DSE_PORT or 8000; 0 = any free"
    )
    p.set_defaults(func=cmd_serve)


def env_port() -> int:
    """The default --port: $DSE_PORT, else 8000."""
    return env_number("DSE_PORT", int, "a port number", 8000)


def server_args(p: argparse.ArgumentParser) -> None:
    """The options `dse serve` and `dse demo` share: --db, --workers, --host, --device."""
    db_option(p)
    p.add_argument(
        "--workers", type=int, default=None, help="local worker processes (default: per GPU/core)"
    )
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))


def gpu_count() -> int:
    """How many CUDA devices this machine has (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def worker_plan(workers: int | None, device: str) -> list[tuple[str, dict[str, str]]]:
    """(device, extra env) per local worker: one per GPU, else one single-threaded one per core."""
    if workers == 0:
        return []  # API only (the compose api service): no torch import, no device probe
    if workers is not None and workers < 0:
        raise ValueError(f"--workers: must be >= 0, got {workers}")
    gpus = gpu_count() if device in ("auto", "cuda") else 0
    if device == "cuda" and gpus == 0:
        raise ValueError("--device: cuda requested but no CUDA device is visible")
    if gpus:
        n = gpus if workers is None else workers
        return [("cuda", {"CUDA_VISIBLE_DEVICES": str(i % gpus)}) for i in range(n)]
    # On CPU one process per core with one thread each beats one many-threaded process
    # (small networks do not fill a core's worth of parallel work; `dse bench` measured it).
    n = (os.cpu_count() or 1) if workers is None else workers
    single = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "DSE_THREADS": "1"}
    return [("cpu", dict(single)) for _ in range(n)]


def _die_with_parent() -> None:
    """In the child: receive SIGTERM when the serving process dies, even by SIGKILL (Linux)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def start_workers(
    db_url: str | None, plan: list[tuple[str, dict[str, str]]]
) -> list[subprocess.Popen]:
    """Start `dse worker --device D` once per plan entry, on db_url (default: $DSE_DB)."""
    from search.store.db import DB_ENV
    from worker.allocator import tuned_env
    from worker.cpu import onednn_env

    # the URL may hold a password: it goes in the environment, never on a command line (ps)
    env = {**os.environ, DB_ENV: db_url} if db_url else dict(os.environ)
    procs = []
    for device, extra in plan:
        cmd = [sys.executable, "-m", "api.cli", "worker", "--device", device]
        if device == "cpu":
            cmd += ["--threads", "1"]
        procs.append(
            subprocess.Popen(
                cmd,
                env=onednn_env(tuned_env({**env, **extra})),
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
        )
    return procs


def stop_workers(procs: list[subprocess.Popen], grace: float = 10.0) -> None:
    """SIGTERM every worker, wait up to `grace` seconds, then SIGKILL what is left."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def serve(args, on_ready=None) -> int:
    """Run uvicorn on args.host:args.port with the planned local workers until interrupted."""
    from api.http.app import create_app
    from api.http.limits import SpecLimits
    from api.http.server import access, bind, make_server, url_of

    sock = bind(args.host, args.port)
    app = create_app(
        args.db,
        limits=SpecLimits.from_env(),
        **access(args.host, os.environ.get("DSE_TOKEN") or None),
    )
    plan = worker_plan(args.workers, args.device)
    url = url_of(args.host, sock)
    procs = start_workers(args.db, plan)
    server = make_server(app)
    devices = ", ".join(sorted({d for d, _ in plan})) or "none"
    print(f"dse: serving {url}  ({len(procs)} local workers on {devices})", flush=True)
    if on_ready is not None:
        on_ready(url, server)
    try:
        server.run(sockets=[sock])
    finally:
        stop_workers(procs)
        sock.close()
    return 0


def cmd_serve(args) -> int:
    """`dse serve`: the API and the local workers in one process tree."""
    return serve(args)
