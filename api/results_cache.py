"""The one cache of study results: typed, serialised once per store version, refreshed in the background.

The analysis of a large study takes about a second (bootstraps, KS tests); a page polls
every second. So: the first request computes and waits; once a version is cached, a newer
store version is computed by one background thread while requests keep getting the last
answer (with its own ETag) for up to `wait` seconds; the page picks the new one up at its
next poll. Polls never queue behind the analysis and never run it twice at once. Each answer
is validated into api.schemas.Results (the documented shape) and serialised by it (NaN and
infinities as null); exports read the same cached answers.
"""

from __future__ import annotations

import threading

from pydantic import BaseModel

from api.schemas import Results


class ResultsCache:
    """Results per (study, fidelity, normalisation): (version, ETag, JSON bytes, typed results).

    The normalisation is (normalize, bins, c_range): each setting is its own entry and ETag.
    """

    def __init__(
        self, compute=None, wait: float = 0.1, size: int = 64, model: type[BaseModel] = Results
    ):
        self._compute = compute
        self._model = model
        self.wait = wait
        self.size = size
        self._entries: dict[tuple, tuple[str, str, bytes, BaseModel]] = {}
        self._running: dict[tuple, threading.Event] = {}
        self._lock = threading.Lock()

    def _results(self, store, study_id, fidelity, normalize, bins, c_range) -> BaseModel:
        compute = self._compute
        if compute is None:
            from search.results import results_for as compute
        extra = {"bins": bins, "c_range": c_range} if bins is not None or c_range else {}
        return self._model.model_validate(compute(store, study_id, fidelity, normalize, **extra))

    def _refresh(self, key, store, version: str) -> None:
        study_id, fidelity, normalize, bins, c_range = key
        try:
            typed = self._results(store, study_id, fidelity, normalize, bins, c_range)
            body = typed.model_dump_json(by_alias=True, exclude_unset=True).encode()
            norm = f"{normalize}-{bins}" + "".join(f"-{v:g}" for v in c_range or ())
            etag = f'"{version}-{fidelity}-{norm}"'
            with self._lock:
                self._entries[key] = (version, etag, body, typed)
                while len(self._entries) > self.size:
                    self._entries.pop(next(iter(self._entries)))
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
        return self._entry(store, (study_id, fidelity, normalize, None, None), None)[3]

    def _entry(self, store, key: tuple, wait: float | None) -> tuple:
        """The cached entry; `wait` None waits for the current version, else up to `wait` s."""
        version = str(store.version(key[0]))
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] == version:
                return entry
            done = self._running.get(key)
            owner = done is None
            if owner:
                done = self._running[key] = threading.Event()
        if entry is None or wait is None:  # nothing to show yet: compute (or wait for it)
            if owner:
                self._refresh(key, store, version)  # errors reach the caller
            else:
                done.wait()
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
