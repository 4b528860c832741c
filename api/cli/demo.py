"""`dse demo`: AnyNetX_A…E compared on the embedded digits data, trained and served."""

from __future__ import annotations

import sys
import threading

from api.cli.serve import env_port, serve, server_args, start_workers, stop_workers, worker_plan
from search.spec.status import TrialStatus

TERMINAL = tuple(s.value for s in TrialStatus.ended())


def register(subparsers) -> None:
    """Add `demo` to the dse parser."""
    d = subparsers.add_parser("demo", help="compare AnyNetX_A…E on the embedded digits data")
    server_args(d)
    d.add_argument("--port", type=int, default=env_port())
    # 32 networks a space at 2 epochs: chosen so the increasing-width step C → D shows while
    # A → B → C do not in most seeds; what the default seed gives: docs/method.md §6, "the demo"
    d.add_argument("--samples", type=int, default=32, help="networks per space")
    d.add_argument("--epochs", type=int, default=2, help="training epochs per network")
    d.add_argument("--no-serve", action="store_true", help="train and report, no HTTP server")
    d.set_defaults(func=cmd_demo)


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
        # no recipe: digits' defaults (search.spec.recipe) learn in a few epochs
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
    from sqlalchemy.engine import make_url

    from search.spec.study import StudySpec
    from search.store import Store

    store = Store(args.db)
    study_id = store.create_study(StudySpec.model_validate(demo_spec(args.samples, args.epochs)))
    where = make_url(store.url).render_as_string(hide_password=True)  # $DSE_DB or the default
    print(f"dse demo: study {study_id} created in {where}", file=sys.stderr, flush=True)
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
