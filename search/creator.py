"""Creator: runs study creations in child processes, so no request waits for sampling.

The same children run other CPU-bound work of the server: `call` (the estimate's sampling
and speed probe, bounded in time and memory: api.http.routes.form) and `pool` (a study's
results: api.http.results_cache). Processes, not threads: sampling is CPU-bound Python and
numpy, and a pure-Python millisecond of request work took up to 40 ms next to a sampling
thread (measured here), so `/healthz` could not promise 100 ms (issue 15 finding 1).
Children are forked from a forkserver that imported the store and the sampler once: each
creation starts in milliseconds, inheriting no thread, lock or database connection. A
child that dies leaves its study `creating`: the reaper fails it when its heartbeat stops
(search.store.recovery), or this process at once when it sees the child end. At most
`parallel` creations run at once; more are refused (CreatorBusy), never queued.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import forkserver, spawn

from search.spec.status import StudyStatus
from search.store import Store
from search.store.creation import CreationBudget, CreationFailed

log = logging.getLogger("dse.creator")
# What the forkserver imports once (search.forkserver_main says why the first).
PRELOAD = ["search.forkserver_main", "search.store", "anynet.spaces.sampling"]
MAIN_ENV = "DSE_FORKSERVER_MAIN"  # read by search.forkserver_main in the forkserver
NICENESS = 10  # a creation yields the CPU to the server's requests
PR_SET_PDEATHSIG = 1  # linux/prctl.h: the signal a process gets when its parent dies
PARENT_CHECK_SECONDS = 1.0  # how often a creation child checks that its parent lives
PARENT_GONE_EXIT = 70  # a creation child's exit code when its parent died (EX_SOFTWARE)


class CreatorBusy(RuntimeError):
    """Too many creations are running; try again later."""


def _create(url: str, study_id: int, budget: CreationBudget, server: int | None = None) -> None:
    """In the child: sample and store one study (failures are recorded on the study)."""
    exit_with_parent(server)  # a creation never outlives its server
    os.nice(NICENESS)  # requests of the server come first on a busy machine
    store = Store(url)
    try:
        store.fill_study(study_id, budget)
    except CreationFailed:
        pass  # the study is failed with the reason; nothing else to report
    finally:
        store.close()


def _call(conn, target, args: tuple) -> None:
    """In the child: send back ("ok", target(*args)) or ("error", why it raised)."""
    os.nice(NICENESS)
    try:
        value = target(*args)
    except BaseException as e:  # the parent gets the reason; the child ends either way
        conn.send(("error", f"{type(e).__name__}: {e}"))
    else:
        conn.send(("ok", value))
    finally:
        conn.close()


def _rss(pid: int) -> int | None:
    """Resident bytes of a process (Linux /proc), None where unknown."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _niced() -> None:
    """In a pool's child, once: yield the CPU to the server's requests."""
    os.nice(NICENESS)


class ChildFailed(RuntimeError):
    """A call in a child process raised, died, or went past its time or memory."""


def exit_with_parent(server: int | None = None, every: float = PARENT_CHECK_SECONDS) -> None:
    """In a creation child: end when the server (pid `server`) or the child's parent, the
    forkserver, ends: at once by SIGKILL on Linux, else within `every` s. No creation runs
    on after its server died, uncounted by the next one; its study stays `creating` and the
    next server's reaper fails it (search.store.recovery).

    multiprocessing hands every forkserver child the forkserver's "alive" pipe, and the
    forkserver lives until the last holder closes it: the child closes its copy (it starts
    no processes), so the forkserver ends with the server and PR_SET_PDEATHSIG fires."""
    alive = getattr(forkserver._forkserver, "_forkserver_alive_fd", None)
    if alive is not None:
        try:
            os.close(alive)
        except OSError:
            pass
        forkserver._forkserver._forkserver_alive_fd = None
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):  # no prctl: the thread below still watches
            pass

    def gone() -> bool:
        if os.getppid() != parent:
            return True
        try:
            os.kill(server, 0) if server else None
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, someone else's: a reused pid is not ours to judge
            pass
        return False

    def watch() -> None:
        while not gone():
            time.sleep(every)
        os._exit(PARENT_GONE_EXIT)

    if gone():
        os._exit(PARENT_GONE_EXIT)
    threading.Thread(target=watch, name="dse-parent-watch", daemon=True).start()


def _warm() -> None:
    """In the child: nothing (starting one makes the forkserver import PRELOAD)."""


@dataclass
class CreationJob:
    """One creation running in a child process."""

    study_id: int
    process: multiprocessing.process.BaseProcess
    done: threading.Event = field(default_factory=threading.Event)


class Creator:
    """Starts creations in child processes (`submit`), watches them, reaps dead ones."""

    def __init__(
        self,
        store,
        budget: CreationBudget | None = None,
        parallel: int = 2,
        reap_seconds: float = 30.0,
    ) -> None:
        self.store = store
        self.budget = budget or CreationBudget()
        self.parallel = parallel
        self.reap_seconds = reap_seconds
        self._jobs: list[CreationJob] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(PRELOAD)
        main = spawn.get_preparation_data("dse").get("init_main_from_path")
        if main:  # the path children would import again (search.forkserver_main)
            os.environ[MAIN_ENV] = main

    def start(self, warm_timeout: float = 120.0) -> None:
        """Reap dead creations, start the forkserver (its imports take seconds once), watch.

        Waits up to `warm_timeout` s for the forkserver, so the first POST after a start
        does not wait for it.
        """
        try:
            self.store.reap_creating()
        except Exception:  # the database may be down at start: /healthz says so, _watch retries
            log.warning("could not reap stale creations at start", exc_info=True)
        warm = threading.Thread(target=self._warm, name="dse-creator-warm", daemon=True)
        warm.start()
        warm.join(warm_timeout)
        self._watcher = threading.Thread(target=self._watch, name="dse-creator", daemon=True)
        self._watcher.start()

    def _warm(self) -> None:
        try:
            child = self._context.Process(target=_warm, daemon=True)
            child.start()
            child.join()
        except Exception:  # only a head start for the first creation
            log.debug("forkserver warm-up failed", exc_info=True)

    def submit(self, study_id: int) -> CreationJob:
        """Start creating `creating` study `study_id` in a child; CreatorBusy when full."""
        with self._lock:
            running = [j for j in self._jobs if not j.done.is_set()]
            if len(running) >= self.parallel:
                raise CreatorBusy(
                    f"{len(running)} studies are being created; try again in a few seconds"
                )
            child = self._context.Process(
                target=_create,
                args=(self.store.url, study_id, self.budget, os.getpid()),
                name=f"dse-create-{study_id}",
                daemon=True,
            )
            child.start()
            job = CreationJob(study_id, child)
            self._jobs.append(job)
        return job

    def call(self, target, args: tuple = (), seconds: float = 60.0, memory: int | None = None):
        """target(*args) run in a forkserver child (niced, like a creation): its value.

        The child is killed past `seconds` or past `memory` resident bytes (polled every
        0.1 s); that, an exception or a death raises ChildFailed with the reason. The value
        and target must pickle (a module-level function).
        """
        name = getattr(target, "__name__", "call")
        ours, theirs = self._context.Pipe(duplex=False)
        child = self._context.Process(
            target=_call, args=(theirs, target, args), name=f"dse-{name}", daemon=True
        )
        child.start()
        theirs.close()
        deadline = time.monotonic() + seconds
        answered = False
        try:
            while not ours.poll(0.1):
                if time.monotonic() > deadline:
                    raise ChildFailed(f"{name}: stopped after {seconds:g} s")
                rss = _rss(child.pid) if memory else None
                if rss is not None and rss > memory:
                    raise ChildFailed(
                        f"{name}: stopped at {rss / 2**20:.0f} MB (limit {memory / 2**20:.0f} MB)"
                    )
            try:
                status, value = ours.recv()
                answered = True
            except EOFError:
                child.join()
                code = child.exitcode
                raise ChildFailed(f"{name}: the process ended with exit code {code}") from None
        finally:
            if child.exitcode is None:
                child.join(1.0 if answered else 0)  # an answered child is ending by itself
                if child.exitcode is None:
                    child.kill()
            child.join()
            ours.close()
        if status != "ok":
            raise ChildFailed(f"{name}: {value}")
        return value

    def pool(self, workers: int):
        """A pool of `workers` forkserver children (niced; started when first used)."""
        return ProcessPoolExecutor(workers, mp_context=self._context, initializer=_niced)

    def busy(self) -> bool:
        """True when `parallel` creations are running (a submit would be refused)."""
        with self._lock:
            return sum(not j.done.is_set() for j in self._jobs) >= self.parallel

    def wait(self, job: CreationJob, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the job; True when it has finished."""
        job.process.join(timeout)
        if job.process.exitcode is not None:
            self._finished(job)
        return job.done.is_set()

    def _finished(self, job: CreationJob) -> None:
        """Record an ended child; a study it left `creating` is failed with the exit code."""
        with self._lock:
            if job.done.is_set():
                return
            job.done.set()
            self._jobs.remove(job)
        code = job.process.exitcode
        if code:
            try:
                status = self.store.get_study(job.study_id).status
                if status == StudyStatus.CREATING:
                    self.store.studies.fail(
                        job.study_id, f"creation process ended with exit code {code}"
                    )
            except Exception:  # the reaper will do it
                log.warning("could not fail study %d after its creation died", job.study_id)

    def _watch(self) -> None:
        """Join ended children (no zombies) and reap dead creations periodically."""
        waited = 0.0
        while not self._stop.wait(0.2):
            with self._lock:
                ended = [j for j in self._jobs if j.process.exitcode is not None]
            for job in ended:
                job.process.join()
                self._finished(job)
            waited += 0.2
            if waited >= self.reap_seconds:
                waited = 0.0
                try:
                    self.store.reap_creating()
                except Exception:  # the database may be down a while; try next time
                    log.warning("reaping dead creations failed", exc_info=True)

    def close(self) -> None:
        """Stop watching; stop running creations, their studies failed with the reason."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join()
        with self._lock:
            jobs = list(self._jobs)
        for job in jobs:
            job.process.terminate()
            job.process.join()
            try:
                self.store.studies.fail(
                    job.study_id, "the server stopped while the study was being created"
                )
            except Exception:  # the reaper will do it
                log.warning("could not fail study %d on shutdown", job.study_id)
