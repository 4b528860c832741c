"""What every launcher of workers shares: the worker's command line and environment, the
SQLite guard, and the fleet's progress line.

`dse launch ray`, `dse launch slurm`, docker-compose.yml and deploy/k8s-workers.yaml all run
the same `dse worker` (tests/test_launch.py compares them with `WorkerCommand`):
- the database URL travels in the environment (`DSE_DB`), never on a command line, where
  `ps` shows it to every user of the host;
- glibc's malloc thresholds are set in the environment the process starts with
  (worker.allocator), so the worker need not re-execute itself;
- a CPU worker gets an explicit thread count (`--threads`, `OMP_NUM_THREADS`,
  `MKL_NUM_THREADS`), one per CPU it was given; a GPU worker leaves torch's default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from sqlalchemy.engine import make_url

from search.spec.status import StudyStatus
from search.store import DB_ENV
from worker.allocator import MALLOC_ENV

THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class WorkerCommand:
    """One `dse worker` as a launcher starts it: device, threads, idle exit, studies."""

    device: str = "cpu"
    threads: int | None = 1
    exit_when_idle: bool = True
    study_ids: tuple[int, ...] = field(default_factory=tuple)
    poll_seconds: float = 1.0

    def argv(self, program: tuple[str, ...] = ("dse",)) -> list[str]:
        """The command line (no database URL: that is in `env`)."""
        out = [*program, "worker", "--device", self.device]
        if self.threads is not None:
            out += ["--threads", str(self.threads)]
        if self.exit_when_idle:
            out.append("--exit-when-idle")
        for study in self.study_ids:
            out += ["--study", str(study)]
        if self.poll_seconds != 1.0:
            out += ["--poll", f"{self.poll_seconds:g}"]
        return out

    def env(self, db_url: str | None = None) -> dict[str, str]:
        """The variables the worker starts with (DSE_DB only when a URL is given)."""
        out = dict(MALLOC_ENV)
        if self.threads is not None:
            out |= {name: str(self.threads) for name in THREAD_ENV}
        if db_url:
            out[DB_ENV] = db_url
        return out

    def run_kwargs(self) -> dict:
        """The keyword arguments of worker.loop.run_worker that `argv` stands for."""
        return {
            "device": self.device,
            "threads": self.threads,
            "exit_when_idle": self.exit_when_idle,
            "study_ids": list(self.study_ids) or None,
            "poll_seconds": self.poll_seconds,
        }


def threads_for(cpus_per_worker: float) -> int:
    """Torch threads of a worker given its CPUs: one per whole CPU, at least 1."""
    return max(1, math.floor(cpus_per_worker))


def device_for(gpus_per_worker: float) -> str:
    """cuda for a worker given any share of a GPU, else cpu."""
    return "cuda" if gpus_per_worker > 0 else "cpu"


class SharedDatabaseRequired(ValueError):
    """A SQLite file cannot be shared by workers on other machines."""


def require_shared_database(url: str, where: str) -> None:
    """Refuse a SQLite URL for workers that may run on other machines (`where` says which)."""
    if make_url(url).get_backend_name() == "sqlite":
        raise SharedDatabaseRequired(
            f"{where} may run workers on other machines, which cannot share the SQLite file "
            f"{make_url(url).database!r}: use PostgreSQL (--db postgresql://user@host/db, or "
            "$DSE_DB)"
        )


class FleetProgress:
    """Trials done and left of the studies a fleet works on (the running ones it has seen)."""

    def __init__(self, store, study_ids: list[int] | None = None) -> None:
        self.store = store
        self.fixed = list(study_ids or [])
        self.seen: set[int] = set(self.fixed)

    def counts(self) -> tuple[int, int]:
        """(trials finished, trials waiting or running) over the studies seen so far."""
        if not self.fixed:
            self.seen |= {
                s.id for s in self.store.list_studies() if s.status == StudyStatus.RUNNING
            }
        finished = left = 0
        for study_id in sorted(self.seen):
            totals = self.store.progress(study_id)["totals"]
            running = totals["waiting"] + totals["running"]
            finished += totals["total"] - running
            left += running
        return finished, left

    def line(self, alive: int, workers: int) -> str:
        """`workers a/n alive, trials d done, l left` for the live display."""
        finished, left = self.counts()
        return f"workers {alive}/{workers} alive, trials {finished} done, {left} left"
