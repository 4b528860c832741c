"""`dse serve` (the API plus local workers in one command) and `dse demo` (AnyNetX_A…E on digits)."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time

from api.cli.parser import db_option
from search.spec.status import TrialStatus

TERMINAL = tuple(s.value for s in TrialStatus.ended())


def register(subparsers) -> None:
    """Add `serve` and `demo` to the dse parser."""
    p = subparsers.add_parser("serve", help="run the HTTP API and N local workers")
    _common(p)
    p.add_argument(
        "--port", type=int, default=_env_port(), help="default $DSE_PORT or 8000; 0 = any free"
    )
    p.set_defaults(func=cmd_serve)

    d = subparsers.add_parser("demo", help="compare AnyNetX_A…E on the embedded digits data")
    _common(d)
    d.add_argument("--port", type=int, default=_env_port())
    # 32 networks a space at 2 epochs: enough for the increasing-width step C → D to show at
    # q < 0.01 while A → B → C show none (docs/method.md §6, "the demo"), in ~5 min on 2 cores
    d.add_argument("--samples", type=int, default=32, help="networks per space")
    d.add_argument("--epochs", type=int, default=2, help="training epochs per network")
    d.add_argument("--no-serve", action="store_true", help="train and report, no HTTP server")
    d.set_defaults(func=cmd_demo)


def _env_port() -> int:
    raw = os.environ.get("DSE_PORT", "8000")
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"DSE_PORT: expected a port number, got {raw!r}") from None


def _common(p: argparse.ArgumentParser) -> None:
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


def demo_spec(samples: int, epochs: int) -> dict:
    """AnyNetX_A…E scaled to digits: cifar stem 16, 3 stages, 16 px, 10 classes, small nets."""
    if samples < 2:
        raise ValueError(f"--samples: need at least 2 per space, got {samples}")
    if epochs < 1:
        raise ValueError(f"--epochs: need at least 1, got {epochs}")
    space = {
        "stem": {"type": "cifar", "width": 16},
        "stages": 3,
        "depth": [1, 3],
        "width": [8, 64],
        "resolution": 16,
        "num_classes": 10,
    }
    return {
        "name": f"demo: AnyNetX A-E on digits ({samples} x {epochs} ep)",
        "dataset": {"name": "digits", "resolution": 16},
        "spaces": [{"preset": f"AnyNetX_{x}", **space} for x in "ABCDE"],
        "samples": samples,
        # DDS compares spaces at matched complexity: a small flops window keeps every
        # space's networks comparable and each training a few seconds on one core
        "complexity": {"flops": [1_000_000, 12_000_000]},
        "fidelities": [epochs],
        # no recipe: digits' defaults (search/spec/recipe.py) learn in a few epochs
        "seed": 0,
    }


def progress_counts(progress: dict) -> dict[str, int]:
    """Trial counts by status over all spaces and levels (the `totals` of a Progress body)."""
    return {k: int(progress["totals"][k]) for k in ("waiting", "running", *TERMINAL)}


def progress_bar(counts: dict[str, int], width: int = 30) -> str:
    """`[#####.....] 12/40 done, 2 running, 1 failed`."""
    total = sum(counts.values())
    finished = sum(counts[k] for k in TERMINAL)
    filled = int(width * finished / total) if total else 0
    extra = ", ".join(f"{counts[k]} {k}" for k in ("running", "failed", "diverged") if counts[k])
    return f"[{'#' * filled}{'.' * (width - filled)}] {finished}/{total} trials" + (
        f", {extra}" if extra else ""
    )


def watch(store, study_id: int, stop: threading.Event, stream=sys.stderr) -> bool:
    """Draw the progress bar until the study has no waiting or running trial (True) or stop."""
    while not stop.is_set():
        counts = progress_counts(store.progress(study_id))
        line = progress_bar(counts)
        stream.write("\r" + line if stream.isatty() else line + "\n")
        stream.flush()
        if sum(counts.values()) and not counts["waiting"] and not counts["running"]:
            stream.write("\n" if stream.isatty() else "")
            return True
        stop.wait(1.0 if stream.isatty() else 10.0)
    return False


def cmd_demo(args) -> int:
    """`dse demo`: create the AnyNetX_A…E study on digits, train it, serve its page."""
    from search.spec.study import StudySpec
    from search.store import Store

    store = Store(args.db)
    study_id = store.create_study(StudySpec.model_validate(demo_spec(args.samples, args.epochs)))
    print(f"dse demo: study {study_id} created in {args.db}", file=sys.stderr, flush=True)
    stop = threading.Event()
    if args.no_serve:
        procs = start_workers(args.db, worker_plan(args.workers, args.device))
        try:
            watch(store, study_id, stop)
        finally:
            stop_workers(procs)
        from search.analysis.results import results_for

        summary = results_for(store, study_id, None, None)
        print(_demo_summary(summary))
        return 0

    def on_ready(url, server):
        print(f"dse demo: open {url}/studies/{study_id}  (Ctrl-C stops)", flush=True)
        threading.Thread(target=watch, args=(store, study_id, stop), daemon=True).start()

    try:
        return serve(args, on_ready=on_ready)
    finally:
        stop.set()


def _demo_summary(results: dict) -> str:
    """What `dse edf` prints for the study: per-space errors, KS table, findings, e_fit."""
    from api.cli.edf import table

    return table(results)
