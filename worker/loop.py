"""The worker loop: claim a trial, train it, report each epoch, heartbeat, finish; repeat.

Any number of these run on any machines against one database URL. The store makes every
step safe to race (see search.store); this loop adds what a process must do itself:
- a heartbeat thread while a trial trains, so a crashed worker's trial is reaped and retried;
- cancellation: each epoch's report says whether to go on (study cancelled → stop);
- SIGTERM/SIGINT: stop at the next epoch boundary and hand the trial back untrained
  (or finish it if it was already done), then exit 0; a second signal exits at once;
- database outages: every store call is retried with exponential backoff (logged to
  stderr), never a crash loop.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from anynet.network import network_spec, with_input
from search.store import TRANSIENT_ERRORS, Claim, Store, TrialOutcome, TrialStatus
from search.store.beats import Beats
from worker.allocator import malloc_tuned

if TYPE_CHECKING:
    from worker.train import TrainResult

log = logging.getLogger("dse.worker")
T = TypeVar("T")
BACKOFF_START = 0.5
BACKOFF_MAX = 30.0


def worker_id() -> str:
    """host:pid:random — unique per process, readable in the trial table."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Stop:
    """Set by SIGTERM/SIGINT: finish or hand back the current trial, then exit."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def install(self) -> None:
        """Route SIGTERM and SIGINT here (main thread only)."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum, _frame) -> None:
        if self.event.is_set():  # second signal: leave now, the reaper retries the trial
            os._exit(128 + signum)
        log.warning("signal %d: stopping after the current epoch", signum)
        self.event.set()

    @property
    def requested(self) -> bool:
        """True once a stop was asked for."""
        return self.event.is_set()


def retrying(call: Callable[[], T], what: str, stop: Stop | None = None, give_up: float = 0) -> T:
    """Run a store call, retrying database outages with exponential backoff.

    give_up > 0 re-raises after that many seconds; 0 retries until the database is back
    (or a stop is requested while waiting, which re-raises).
    """
    delay, start = BACKOFF_START, time.monotonic()
    while True:
        try:
            return call()
        except TRANSIENT_ERRORS as e:
            waited = time.monotonic() - start
            if (give_up and waited >= give_up) or (stop is not None and stop.requested):
                raise
            reason = " ".join(str(e).split())[:200]
            print(
                f"dse worker: {what}: database unavailable ({reason}); retry in {delay:.1f}s",
                file=sys.stderr,
                flush=True,
            )
            if stop is not None:
                stop.event.wait(delay)  # a signal cuts the wait short
            else:
                time.sleep(delay)
            delay = min(BACKOFF_MAX, delay * 2)


class Heartbeat(Beats):
    """A thread recording the claim's heartbeat every limits.heartbeat_seconds."""

    def __init__(self, store: Store, claim: Claim) -> None:
        super().__init__(claim.limits.heartbeat_seconds, "dse-heartbeat")
        self.store, self.claim = store, claim

    def beat(self) -> None:
        """Record one heartbeat; a transient database error is said and retried next beat."""
        try:
            self.store.heartbeat(self.claim)
        except TRANSIENT_ERRORS as e:
            print(
                f"dse worker: heartbeat failed ({type(e).__name__}); will retry",
                file=sys.stderr,
                flush=True,
            )


class DatasetCache:
    """Each study's dataset loaded once per worker, kept on the device."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.cache: dict[str, object] = {}

    def get(self, spec):
        """The dataset of `spec` (a DatasetSpec) on this worker's device."""
        from worker.data import load_dataset

        key = spec.model_dump_json()
        if key not in self.cache:
            self.cache[key] = load_dataset(spec).to(self.device)
        return self.cache[key]


def fit_to_data(net: dict, data):
    """The network (a NetSpec or a reference network), with classes, channels and resolution
    set to the dataset's."""
    wanted = {
        "num_classes": data.num_classes,
        "in_channels": data.in_channels,
        "resolution": data.resolution,
    }
    return with_input(network_spec(net), **wanted)


# what a trial's outcome takes from the training's result as it is: every field but the two
# outcome_of decides (errors, speed, validation size, the recipe as it ran)
OUTCOME_FROM_RESULT = tuple(
    f.name for f in dataclasses.fields(TrialOutcome) if f.name not in ("status", "reason")
)


def outcome_of(result: TrainResult) -> TrialOutcome:
    """What the store records of a worker.train TrainResult (its statuses → the trial's)."""
    message = result.message or None
    if result.status == "done":
        status, reason = TrialStatus.DONE, None
    elif result.status == "diverged":
        status, reason = TrialStatus.DIVERGED, message or "training diverged"
    elif result.status == "cancelled":
        status, reason = TrialStatus.CANCELLED, message or "study cancelled"
    elif result.status == "oom":
        status, reason = TrialStatus.FAILED, f"out of memory: {result.message}".rstrip(": ")
    else:
        status = TrialStatus.FAILED
        reason = message or f"training ended with status {result.status}"
    measured = {f: getattr(result, f) for f in OUTCOME_FROM_RESULT}
    measured.update(threads=result.threads or None, device=result.device or None)  # 0, "": unknown
    return TrialOutcome(status=status, reason=reason, **measured)


def run_trial(store: Store, claim: Claim, datasets: DatasetCache, stop: Stop, threads=None):
    """Train one claimed trial and record it; returns how it ended as the worker prints it:
    'done', 'failed: <reason>', 'diverged: <reason>', 'cancelled', 'released' or 'lost'."""

    def on_epoch(metrics: dict) -> bool:
        """Report the epoch; go on unless the study was cancelled, the trial lost or a stop asked."""
        try:
            go_on = retrying(lambda: store.report_epoch(claim, metrics), "report", give_up=60)
        except TRANSIENT_ERRORS:
            go_on = True  # keep training; the heartbeat decides whether we still own it
        last = int(metrics.get("epoch", 0)) >= claim.epochs
        return go_on and (last or not stop.requested)  # SIGTERM in the last epoch: finish it

    with Heartbeat(store, claim):  # first: importing torch may take a while on a busy host
        from worker.train import TrainResult, train

        try:
            data = datasets.get(claim.dataset)
            spec = fit_to_data(claim.net, data)
            result = train(
                spec,
                data,
                claim.recipe,
                claim.epochs,
                device=datasets.device,
                seed=claim.seed,
                on_epoch=on_epoch,
                threads=threads,
            )
        except (ValueError, RuntimeError, MemoryError) as e:  # bad data or an unbuildable net
            result = TrainResult("failed", None, None, [], 0.0, 0.0, f"{type(e).__name__}: {e}")
        if result.status == "cancelled" and stop.requested:
            released = retrying(lambda: store.release(claim), "release")
            return "released" if released else "lost"
        outcome = outcome_of(result)
        finished = retrying(lambda: store.finish(claim, outcome), "finish")
    if not finished:
        return "lost"
    if outcome.status in (TrialStatus.FAILED, TrialStatus.DIVERGED):
        return f"{outcome.status.value}: {outcome.reason}"
    return outcome.status.value


def run_worker(
    db_url: str | None = None,
    device: str = "cpu",
    max_trials: int | None = None,
    exit_when_idle: bool = False,
    threads: int | None = None,
    poll_seconds: float = 1.0,
    study_ids: list[int] | None = None,
    install_signals: bool = True,
    stop: Stop | None = None,
    worker: str | None = None,
    create_db: bool = False,
) -> int:
    """Claim and train trials of running studies until stopped, idle or max_trials; count.

    A launcher may pass its own `stop` (set it to stop the worker, as SIGTERM does) and a
    `worker` id naming where it runs (default: host:pid:random). A SQLite database that
    does not exist is refused (ValueError) unless create_db.
    """
    stop = stop or Stop()
    if install_signals and threading.current_thread() is threading.main_thread():
        stop.install()
    me = worker or worker_id()
    try:
        store = retrying(lambda: Store(db_url, create=create_db), "connect", stop)
    except TRANSIENT_ERRORS:  # stopped while the database was still down
        return 0
    where = store.url.split("@")[-1]
    malloc = "tuned malloc" if malloc_tuned() else "default malloc"
    print(f"dse worker {me}: on {where} ({device}, {malloc})", file=sys.stderr, flush=True)
    try:
        return _loop(
            store, me, stop, device, max_trials, exit_when_idle, threads, poll_seconds, study_ids
        )
    except TRANSIENT_ERRORS:  # re-raised by retrying only once a stop was requested
        return 0
    finally:
        store.close()


def _loop(store, me, stop, device, max_trials, exit_when_idle, threads, poll_seconds, study_ids):
    """Claim → train → finish until stopped, idle or max_trials; trials finished."""
    # torch and the training code load before the first claim, not while a claimed trial
    # waits for them without a heartbeat (a minute on a busy machine: reaped as lost)
    import worker.train  # noqa: F401

    datasets = DatasetCache(device)
    trained, last_reap = 0, 0.0
    while not stop.requested and (max_trials is None or trained < max_trials):
        if time.monotonic() - last_reap >= poll_seconds:
            retrying(store.reap_stale, "reap", stop)
            last_reap = time.monotonic()
        claim = retrying(lambda: store.claim(me, study_ids), "claim", stop)
        if claim is None:
            if exit_when_idle and retrying(lambda: store.idle(study_ids), "idle", stop):
                break
            stop.event.wait(poll_seconds)
            continue
        outcome = run_trial(store, claim, datasets, stop, threads)
        trained += outcome not in ("released", "lost")  # recorded: done, failed, diverged…
        print(
            f"dse worker {me}: trial {claim.trial_id} ({claim.space} #{claim.sample}, "
            f"level {claim.level}) {outcome}",
            file=sys.stderr,
            flush=True,
        )
    return trained
