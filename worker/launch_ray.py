"""`dse launch ray`: N workers as Ray actors, each running the loop of `dse worker`.

Each actor runs worker.loop.run_worker in its own Ray worker process, with the same claim,
heartbeat and retry rules as a `dse worker` process and the environment of
worker.launch.WorkerCommand (through Ray's `runtime_env`). Its worker id names Ray, its node
and the actor: `ray:<node ip>:node-<id>:actor-<id>:<pid>`.
- Resources: each actor asks Ray for `cpus_per_worker` CPUs and `gpus_per_worker` GPUs; a
  fraction (0.25) puts that many actors (4) on one GPU, visible to each as
  CUDA_VISIBLE_DEVICES; a CPU worker trains with one thread per CPU.
- An actor that dies is restarted by Ray (`max_restarts`, `max_task_retries`); the trial it
  held stops heartbeating and the store's lease rules fail and retry it, as for a crashed
  `dse worker`. `stop` asks every actor to hand its trial back at its next epoch boundary
  (SIGTERM to `dse worker`); `kill` ends them at once (their trials retried by the lease).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

from worker.launch import FleetProgress, WorkerCommand

ACTOR_RESTARTS = 3  # Ray restarts a dead actor this many times, then gives up on it
PING_SECONDS = 10.0  # an actor that answered a ping this recently counts as alive


def ray_module():
    """Ray, or a ValueError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ValueError("dse launch ray needs Ray: pip install 'dse[ray]'") from None
    return ray


def ray_worker_id() -> str:
    """ray:<node ip>:node-<id>:actor-<id>:<pid> for the actor calling it."""
    ray = ray_module()
    ctx = ray.get_runtime_context()
    node_id = ctx.get_node_id()
    # the node's address as the cluster knows it (ray.nodes()), else this host's
    addresses = [n.get("NodeManagerAddress") for n in ray.nodes() if n.get("NodeID") == node_id]
    node_ip = addresses[0] if addresses and addresses[0] else ray.util.get_node_ip_address()
    return f"ray:{node_ip}:node-{node_id[:8]}:actor-{ctx.get_actor_id()[:12]}:{os.getpid()}"


class WorkerActor:
    """The body of one Ray actor: run_worker in a thread of the actor, stoppable."""

    def __init__(self, run_kwargs: dict) -> None:
        # Ray imports this module in every worker process that unpickles the actor class;
        # the worker loop (the store, and torch once it trains) only where an actor runs
        from worker.loop import Stop

        self.run_kwargs = run_kwargs
        self.stop_event = Stop()
        self.worker = ray_worker_id()

    def run(self) -> int:
        """Claim and train trials until stopped or (with exit_when_idle) idle; count."""
        from worker.loop import run_worker

        return run_worker(  # the database URL is $DSE_DB, set by the launcher's runtime_env
            None,
            **self.run_kwargs,
            install_signals=False,
            stop=self.stop_event,
            worker=self.worker,
        )

    def stop(self) -> bool:
        """Stop at the next epoch boundary and hand the current trial back."""
        self.stop_event.event.set()
        return True

    def ping(self) -> str:
        """This actor's worker id (it is alive)."""
        return self.worker


def connect(address: str | None, num_cpus: int | None = None) -> bool:
    """Join the Ray cluster at `address`, else start a local runtime; True if we started one.

    An already initialised Ray (a test's, a notebook's) is used as it is.
    """
    ray = ray_module()
    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, logging_level="warning", log_to_driver=True)
        return False
    ray.init(num_cpus=num_cpus, include_dashboard=False, logging_level="warning")
    return True


class RayFleet:
    """N worker actors on the connected Ray cluster: start, watch, stop or kill them."""

    def __init__(
        self,
        db_url: str,
        workers: int,
        command: WorkerCommand,
        cpus_per_worker: float = 1.0,
        gpus_per_worker: float = 0.0,
        max_restarts: int = ACTOR_RESTARTS,
    ) -> None:
        if workers < 1:
            raise ValueError(f"--workers: must be >= 1, got {workers}")
        if cpus_per_worker < 0 or gpus_per_worker < 0:
            raise ValueError("--cpus-per-worker and --gpus-per-worker must be >= 0")
        self.db_url, self.workers, self.command = db_url, workers, command
        self.cpus, self.gpus, self.max_restarts = cpus_per_worker, gpus_per_worker, max_restarts
        self.actors: list = []
        self.runs: list = []
        self.results: dict[int, object] = {}
        self._pings: dict[int, object] = {}
        self._last_seen: dict[int, float] = {}

    def start(self) -> None:
        """Create the actors and start each one's worker loop."""
        ray = ray_module()
        remote = ray.remote(
            max_restarts=self.max_restarts,
            max_task_retries=self.max_restarts,
            max_concurrency=4,  # run, plus stop and ping while it runs
        )(WorkerActor)
        env = self.command.env(self.db_url)
        for _ in range(self.workers):
            actor = remote.options(
                num_cpus=self.cpus,
                num_gpus=self.gpus,
                runtime_env={"env_vars": env},
            ).remote(self.command.run_kwargs())
            self.actors.append(actor)
            self.runs.append(actor.run.remote())

    def poll(self) -> bool:
        """Collect finished runs and answered pings; True while any run is unfinished."""
        ray = ray_module()
        for i, ref in enumerate(self.runs):
            if i not in self.results and ray.wait([ref], timeout=0)[0]:
                try:
                    self.results[i] = ray.get(ref)
                except Exception as e:  # an actor that died more often than max_restarts
                    self.results[i] = e
        now = time.monotonic()
        for i, actor in enumerate(self.actors):
            if i in self.results:
                continue
            ping = self._pings.get(i)
            if ping is not None and ray.wait([ping], timeout=0)[0]:
                try:
                    ray.get(ping)
                    self._last_seen[i] = now
                except Exception:  # dead or restarting: not alive now
                    self._last_seen.pop(i, None)
                ping = None
            if ping is None:
                self._pings[i] = actor.ping.remote()
        return len(self.results) < len(self.runs)

    def alive(self) -> int:
        """Actors that answered a ping in the last PING_SECONDS and are still running."""
        now = time.monotonic()
        return sum(
            1
            for i in range(len(self.actors))
            if i not in self.results and now - self._last_seen.get(i, -1e9) <= PING_SECONDS
        )

    def wait(
        self,
        progress: FleetProgress | None = None,
        interval: float = 2.0,
        show: Callable[[str], None] | None = None,
    ) -> dict[int, object]:
        """Until every actor's loop has returned: show the progress line when it changes."""
        last = None
        while self.poll():
            if progress is not None and show is not None:
                line = _safe_line(progress, self.alive(), self.workers)
                if line != last:
                    show(line)
                    last = line
            time.sleep(interval)
        if progress is not None and show is not None:
            show(_safe_line(progress, 0, self.workers))
        return self.results

    def stop(self, grace: float = 120.0) -> None:
        """Ask every actor to hand its trial back and return; kill those still busy after grace."""
        ray = ray_module()
        for actor in self.actors:
            actor.stop.remote()
        pending = [r for i, r in enumerate(self.runs) if i not in self.results]
        if pending:
            ray.wait(pending, num_returns=len(pending), timeout=grace)
        self.poll()
        self.kill()

    def kill(self) -> None:
        """End every actor now, without restarting it."""
        ray = ray_module()
        for actor in self.actors:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # already gone
                pass


def _safe_line(progress: FleetProgress, alive: int, workers: int) -> str:
    """The progress line, or why it could not be read (the database may be down a while)."""
    try:
        return progress.line(alive, workers)
    except Exception as e:  # shown, never fatal: the workers go on
        return f"workers {alive}/{workers} alive (progress unavailable: {type(e).__name__})"


def launch(
    db_url: str,
    workers: int,
    command: WorkerCommand,
    address: str | None = None,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float = 0.0,
    show: Callable[[str], None] | None = None,
    interval: float = 2.0,
    started: Callable[[RayFleet], None] | None = None,
) -> dict[int, object]:
    """Start the fleet, show its progress until it ends; Ctrl-C stops it (a second kills it)."""
    from search.store import Store

    show = show or (lambda line: print(f"dse launch ray: {line}", file=sys.stderr, flush=True))
    t0 = time.monotonic()
    ours = connect(address)
    fleet = RayFleet(db_url, workers, command, cpus_per_worker, gpus_per_worker)
    store = Store(db_url)
    try:
        fleet.start()
        show(f"Ray ready in {time.monotonic() - t0:.1f} s; {workers} worker actors started")
        if started is not None:
            started(fleet)
        progress = FleetProgress(store, list(command.study_ids))
        try:
            return fleet.wait(progress, interval, show)
        except KeyboardInterrupt:
            show("interrupted: stopping the workers (they hand their trials back)")
            try:
                fleet.stop()
            except KeyboardInterrupt:
                fleet.kill()
            raise
    finally:
        store.close()
        if ours:
            ray_module().shutdown()
