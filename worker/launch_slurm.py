"""`dse launch slurm`: an array job of N `dse worker --exit-when-idle` tasks through submitit.

submitit (the library pycls' own launcher submits its jobs with) writes the sbatch script,
pickles the task and keeps each task's stdout/stderr in the log folder. Each task runs the
command line and environment of worker.launch.WorkerCommand as a child process, so glibc
reads the malloc settings at start-up, as in every other launcher. `--cluster local` runs
the tasks as processes on this machine (submitit's LocalExecutor), `--cluster debug` in this
process one after the other: both for trying a setup before a cluster sees it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from search.store import DB_ENV
from worker.launch import FleetProgress, WorkerCommand

CLUSTERS = ("slurm", "local", "debug")


def submitit_module():
    """submitit, or a ValueError saying how to install it."""
    try:
        import submitit
    except ImportError:
        raise ValueError("dse launch slurm needs submitit: pip install 'dse[slurm]'") from None
    return submitit


@dataclass(frozen=True)
class WorkerTask:
    """One array task: run the worker command with its environment; its exit code."""

    argv: list[str]
    env: dict[str, str]

    def __call__(self, index: int) -> int:
        """Run `dse worker` (task `index` of the array) to its end; raise if it failed."""
        print(f"dse launch slurm: task {index}: {' '.join(self.argv[2:])}", flush=True)
        code = subprocess.call(self.argv, env={**os.environ, **self.env})
        if code != 0:
            raise RuntimeError(f"dse worker (task {index}) exited with code {code}")
        return code


def worker_task(db_url: str, command: WorkerCommand) -> WorkerTask:
    """The task of every array element: this Python running the `dse` CLI's worker.

    The task is pickled into the log folder; a URL that is already $DSE_DB here stays out
    of it (sbatch, like the local cluster, passes this environment on to the tasks).
    """
    env = command.env(None if os.environ.get(DB_ENV) == db_url else db_url)
    return WorkerTask(command.argv((sys.executable, "-m", "api.cli")), env)


def submit(
    db_url: str,
    workers: int,
    command: WorkerCommand,
    folder: str | Path,
    cluster: str = "slurm",
    partition: str | None = None,
    gpus_per_worker: int = 0,
    cpus_per_worker: int = 1,
    minutes: int = 240,
    array_parallelism: int | None = None,
) -> list:
    """Submit the array job of `workers` tasks; the submitit jobs."""
    if cluster not in CLUSTERS:
        raise ValueError(f"--cluster: one of {', '.join(CLUSTERS)}, got {cluster!r}")
    if workers < 1:
        raise ValueError(f"--workers: must be >= 1, got {workers}")
    if gpus_per_worker < 0 or cpus_per_worker < 1 or minutes < 1:
        raise ValueError("--gpus-per-worker >= 0, --cpus-per-worker >= 1 and --time >= 1")
    submitit = submitit_module()
    executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    params: dict = {
        "name": "dse-worker",
        "timeout_min": minutes,
        "tasks_per_node": 1,
        "nodes": 1,
        "cpus_per_task": cpus_per_worker,
        "gpus_per_node": gpus_per_worker,
        "slurm_array_parallelism": array_parallelism or workers,
    }
    if partition:
        params["slurm_partition"] = partition
    executor.update_parameters(**params)
    return executor.map_array(worker_task(db_url, command), list(range(workers)))


def wait(
    jobs: list,
    progress: FleetProgress | None = None,
    interval: float = 10.0,
    show: Callable[[str], None] | None = None,
) -> list[str | None]:
    """Until every job has ended: show the study progress when it changes; each job's failure."""
    last = None
    while True:
        running = sum(not job.done() for job in jobs)
        if progress is not None and show is not None:
            try:
                line = progress.line(running, len(jobs)).replace("alive", "running")
            except Exception as e:  # shown, never fatal: the tasks go on
                line = f"tasks {running}/{len(jobs)} running (progress unavailable: {e!r})"
            if line != last:
                show(line)
                last = line
        if not running:
            break
        time.sleep(interval)
    return [_failure(job) for job in jobs]


def _failure(job) -> str | None:
    """Why a finished job failed (its task's exception, or its state), None if it did not."""
    try:
        error = job.exception()
    except Exception as e:  # no result was written: the job was killed or never ran
        return f"{job.state}: {type(e).__name__}"
    return None if error is None else " ".join(str(error).split())[-300:]
