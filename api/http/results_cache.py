"""The one cache of study results: typed, serialised once per store version, refreshed in the background.

The analysis of a large study takes about a second; a page polls every second. So the first
request computes and waits; once a version is cached, a newer store version is computed in
the background while requests keep getting the last answer (with its own ETag) for up to
`wait` seconds. Polls never queue behind the analysis and never run it twice at once. Each
answer is validated into api.http.schemas.Results and serialised by it (NaN and infinities
as null); exports read the same cached answers. The analysis runs in the Creator's
forkserver children, never in this process, bounded by `parallel`, `pending`, `waiting`
(more are refused with ResultsBusy, a 503), `size` and `max_bytes` (why, and what it
measured: docs/design.md, "No analysis runs in the server process").
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from concurrent.futures.process import BrokenProcessPool

from pydantic import BaseModel

from api.http.schemas import Results


class ResultsBusy(RuntimeError):
    """Too many analyses are outstanding; the client should retry (a 503)."""


_STORES: dict = {}  # in a pool's child: one Store per database URL, kept between analyses
_FRAMES: OrderedDict = OrderedDict()  # in a pool's child: trial frames per (url, study, version)
FRAMES_KEPT = 2  # studies' versions whose trial frames a child keeps (a 2,000-trial one: ~2 MB)
ANALYSIS_NICENESS = 19  # the lowest: an analysis any client may ask for yields to everything else
MOST_PARALLEL = 2  # analyses at once on a large machine (each child holds its own imports)


def analysis_slots() -> int:
    """Analyses run at once by default: one fewer than this process's cores, from 1 to 2."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(MOST_PARALLEL, (cores or 1) - 1))


def lowest_priority() -> None:
    """In a pool's child: run at ANALYSIS_NICENESS (a no-op when already as low)."""
    if os.getpriority(os.PRIO_PROCESS, 0) < ANALYSIS_NICENESS:
        os.setpriority(os.PRIO_PROCESS, 0, ANALYSIS_NICENESS)


class _FramesOfVersion:
    """A Store whose trial frames are read once per version of a study (the study's own and a
    refine child's parent's, which its version covers), then reused by the next analysis."""

    def __init__(self, store, frames: dict):
        self._store, self._frames = store, frames

    def trial_frame(self, study_id: int):
        """The study's trial frame, read from the store when this version has not read it."""
        if study_id not in self._frames:
            self._frames[study_id] = self._store.trial_frame(study_id)
        return self._frames[study_id]

    def __getattr__(self, name):
        return getattr(self._store, name)


def results_json(url: str, study_id, fidelity, normalize, bins, c_range, version=None) -> bytes:
    """In a pool's child: the study's Results as the JSON bytes the API answers.

    Another range of the same version (hostile reads ask a new one each time) reuses the
    trial frames read for the last (about 15% of a 2,000-trial study's analysis).
    """
    from search.analysis.results import results_for
    from search.store import Store

    lowest_priority()  # the pool's initializer niced the child to a creation's 10
    store = _STORES.get(url)
    if store is None:
        store = _STORES[url] = Store(url)
    if version is not None:
        key = (url, study_id, version)
        frames = _FRAMES.pop(key, {})
        _FRAMES[key] = frames  # the most recently used last
        while len(_FRAMES) > FRAMES_KEPT:
            _FRAMES.popitem(last=False)
        store = _FramesOfVersion(store, frames)
    extra = {"bins": bins, "c_range": c_range} if bins is not None or c_range else {}
    typed = Results.model_validate(results_for(store, study_id, fidelity, normalize, **extra))
    return typed.model_dump_json(by_alias=True, exclude_unset=True).encode()


class ResultsCache:
    """Results per (study, fidelity, normalisation): (version, ETag, JSON bytes, typed results).

    The normalisation is (normalize, bins, c_range): each setting is its own entry and ETag.
    `pool` (a callable making a concurrent.futures executor, e.g. Creator.pool) runs the
    analysis out of this process, `parallel` at once (default analysis_slots()); without it
    (or with `compute`) it runs in the caller's thread.
    """

    def __init__(
        self,
        compute=None,
        wait: float = 0.1,
        size: int = 64,
        model: type[BaseModel] = Results,
        pool=None,
        parallel: int | None = None,
        pending: int = 16,
        waiting: int = 24,
        max_bytes: int = 256 * 2**20,
    ):
        self._compute = compute
        self._model = model
        self.wait = wait
        self.size = size
        self.max_bytes = max_bytes
        self.pending, self.waiting = pending, waiting
        self._make_pool = pool
        self.parallel = parallel or analysis_slots()
        self._pool = None
        self._entries: OrderedDict[tuple, list] = OrderedDict()
        self._bytes = 0
        self._running: dict[tuple, threading.Event] = {}
        self._waiters = 0
        self._lock = threading.Lock()
        self.computed = 0  # analyses run (benchmarks and tests read it)

    def _body(
        self, store, version, study_id, fidelity, normalize, bins, c_range
    ) -> tuple[bytes, object]:
        """(JSON bytes, typed results or None) of one analysis, in a child when there is a pool."""
        compute = self._compute
        url = getattr(store, "url", None)
        if compute is None and self._make_pool is not None and _shareable(url):
            with self._lock:
                if self._pool is None:
                    self._pool = self._make_pool(self.parallel)
                pool = self._pool
            args = (url, study_id, fidelity, normalize, bins, c_range, version)
            try:
                return pool.submit(results_json, *args).result(), None
            except BrokenProcessPool:  # a child died (killed, out of memory): a fresh pool next
                with self._lock:
                    if self._pool is pool:
                        self._pool = None
                pool.shutdown(wait=False, cancel_futures=True)
                raise RuntimeError("results: the analysis process died") from None
        if compute is None:
            from search.analysis.results import results_for as compute
        extra = {"bins": bins, "c_range": c_range} if bins is not None or c_range else {}
        typed = self._model.model_validate(compute(store, study_id, fidelity, normalize, **extra))
        return typed.model_dump_json(by_alias=True, exclude_unset=True).encode(), typed

    def _refresh(self, key, store, version: str) -> None:
        study_id, fidelity, normalize, bins, c_range = key
        try:
            body, typed = self._body(store, version, *key)
            norm = f"{normalize}-{bins}" + "".join(f"-{v:g}" for v in c_range or ())
            etag = f'"{version}-{fidelity}-{norm}"'
            with self._lock:
                self.computed += 1
                old = self._entries.pop(key, None)
                if old is not None:
                    self._bytes -= len(old[2])
                self._entries[key] = [version, etag, body, typed]
                self._bytes += len(body)
                while len(self._entries) > 1 and (
                    len(self._entries) > self.size or self._bytes > self.max_bytes
                ):
                    _, dropped = self._entries.popitem(last=False)  # least recently used
                    self._bytes -= len(dropped[2])
        finally:
            with self._lock:
                self._running.pop(key).set()

    def get(
        self, store, study_id: int, fidelity, normalize, bins=None, c_range=None
    ) -> tuple[str, bytes]:
        """(ETag, JSON bytes) of the newest results available within `wait` seconds."""
        key = (study_id, fidelity, normalize, bins, tuple(c_range) if c_range else None)
        entry = self._entry(store, key, self.wait)
        return entry[1], entry[2]

    def results(self, store, study_id: int, fidelity, normalize) -> BaseModel:
        """The typed results of the store's current version (computed now if not cached)."""
        entry = self._entry(store, (study_id, fidelity, normalize, None, None), None)
        if entry[3] is None:  # computed in a child: parsed here once, when first asked
            entry[3] = self._model.model_validate_json(entry[2])
        return entry[3]

    def clear(self) -> None:
        """Forget every cached answer (the next request of each computes it again)."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def close(self) -> None:
        """Stop the analysis pool (running analyses are abandoned)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            children = list(getattr(pool, "_processes", {}).values())  # ProcessPoolExecutor's
            pool.shutdown(wait=False, cancel_futures=True)
            for child in children:  # an analysis may run for seconds: stopped, not awaited
                child.terminate()
            for child in children:
                child.join(5)

    def _entry(self, store, key: tuple, wait: float | None) -> list:
        """The cached entry; `wait` None waits for the current version, else up to `wait` s."""
        version = str(store.version(key[0]))
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                if entry[0] == version:
                    return entry
            done = self._running.get(key)
            owner = done is None
            if entry is None or wait is None:  # this request will wait: bounded
                if self._waiters >= self.waiting:
                    raise ResultsBusy(f"{self._waiters} requests are waiting for results")
            if owner:
                if len(self._running) >= self.pending:
                    if entry is not None:
                        return entry  # the last answer, until the server has room
                    raise ResultsBusy(f"{len(self._running)} analyses are outstanding")
                done = self._running[key] = threading.Event()
            if entry is None or wait is None:
                self._waiters += 1
        if entry is None or wait is None:  # nothing to show yet: compute (or wait for it)
            try:
                if owner:
                    self._refresh(key, store, version)  # errors reach the caller
                else:
                    done.wait()
            finally:
                with self._lock:
                    self._waiters -= 1
            if not owner:
                latest = self._entries.get(key)
                if latest is None or (wait is None and latest[0] != version):
                    return self._entry(store, key, wait)
        else:
            if owner:
                threading.Thread(
                    target=self._refresh_quietly, args=(key, store, version), daemon=True
                ).start()
            done.wait(wait)
        with self._lock:
            return self._entries.get(key, entry)

    def _refresh_quietly(self, key, store, version: str) -> None:
        try:
            self._refresh(key, store, version)
        except Exception:  # a failed background refresh keeps the last answer; next poll retries
            pass


def _shareable(url: str | None) -> bool:
    """True when another process can open the store's database (not SQLite in memory)."""
    if not url:
        return False
    return not (url.startswith("sqlite") and (":memory:" in url or url.rstrip("/") == "sqlite:"))
