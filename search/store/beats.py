"""Heartbeats: a daemon thread that calls `beat` every few seconds while a `with` block runs
(a creation touching its study, a worker touching its trial)."""

from __future__ import annotations

import threading


class Beats:
    """Calls `beat()` every `seconds` from a daemon thread between __enter__ and __exit__."""

    def __init__(self, seconds: float, name: str) -> None:
        self.seconds = seconds
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def beat(self) -> None:
        """One beat; subclasses say what it records."""
        raise NotImplementedError

    def _run(self) -> None:
        while not self.done.wait(self.seconds):
            self.beat()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.thread.join()
