"""`dse launch ray|slurm` and deploy/: one worker command everywhere, real Ray and submitit.

The Ray tests share one local Ray runtime (2 CPUs, no dashboard, 127.0.0.1) started here
and shut down after them; the Slurm test uses submitit's local cluster (real processes).
Waits are generous: these must pass with another job busy on the machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from api.cli.launch import ray_command, slurm_command
from api.cli.parser import build_parser
from search.store import Store
from worker.launch import WorkerCommand, require_shared_database

REPO = Path(__file__).resolve().parents[1]
WAIT = 600  # seconds a launched fleet may take before the test fails


def _cli(*args: str, timeout: float = WAIT) -> subprocess.CompletedProcess:
    """`dse ARGS` from this checkout, as a real process."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    env.pop("DSE_DB", None)
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env=env,
    )


def _worker_kwargs(argv: list[str]) -> dict:
    """run_worker's keyword arguments as `dse worker` parses this command line."""
    args = build_parser().parse_args(argv[1:])
    assert args.func.__name__ == "cmd_worker"
    return {
        "device": args.device,
        "threads": args.threads,
        "exit_when_idle": args.exit_when_idle,
        "study_ids": args.study,
        "poll_seconds": args.poll,
    }


def test_worker_command_means_what_it_says():
    command = WorkerCommand(device="cuda", threads=2, study_ids=(3, 4), poll_seconds=0.5)
    argv = command.argv()
    assert argv[:2] == ["dse", "worker"]
    assert _worker_kwargs(argv) == command.run_kwargs()  # the Ray actor runs these
    env = command.env("postgresql://u:secret@db/dse")
    assert env["DSE_DB"] == "postgresql://u:secret@db/dse"
    assert not any("secret" in a for a in argv)  # never on a command line
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "2"
    assert env["MALLOC_MMAP_THRESHOLD_"] == env["MALLOC_TRIM_THRESHOLD_"] == str(1 << 30)
    assert "DSE_DB" not in command.env()


def test_launchers_build_the_worker_command():
    parse = build_parser().parse_args
    ray = ray_command(parse(["launch", "ray", "--workers", "8", "--gpus-per-worker", "0.25"]))
    assert ray.argv() == ["dse", "worker", "--device", "cuda", "--threads", "1"]
    ray = ray_command(
        parse(["launch", "ray", "--workers", "2", "--cpus-per-worker", "2.5", "--exit-when-idle"])
    )
    assert ray.argv() == ["dse", "worker", "--device", "cpu", "--threads", "2", "--exit-when-idle"]
    slurm = slurm_command(
        parse(["launch", "slurm", "--workers", "4", "--gpus-per-worker", "1", "--study", "7"])
    )
    assert slurm.argv() == [
        *("dse", "worker", "--device", "cuda", "--threads", "1", "--exit-when-idle"),
        *("--study", "7"),
    ]


def test_deploy_files_run_the_launchers_worker():
    parse = build_parser().parse_args
    # what `dse launch slurm --gpus-per-worker 1` and `dse launch ray --gpus-per-worker 1
    # --exit-when-idle` run on each task / actor
    gpu_slurm = slurm_command(
        parse(["launch", "slurm", "--workers", "8", "--gpus-per-worker", "1"])
    )
    gpu_ray = ray_command(
        parse(["launch", "ray", "--workers", "8", "--gpus-per-worker", "1", "--exit-when-idle"])
    )
    assert gpu_slurm == gpu_ray
    expected_env = gpu_slurm.env("postgresql://unused")

    job = yaml.safe_load((REPO / "deploy" / "k8s-workers.yaml").read_text())
    assert job["kind"] == "Job" and job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == job["spec"]["parallelism"]
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == gpu_slurm.argv()
    env = {e["name"]: e for e in container["env"]}
    assert env["DSE_DB"]["valueFrom"]["secretKeyRef"]["key"]  # from a Secret, not a value
    assert "value" not in env["DSE_DB"]
    for name, value in expected_env.items():
        if name != "DSE_DB":
            assert env[name]["value"] == value, name
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1

    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    worker = compose["services"]["worker"]
    # compose's workers restart (restart: unless-stopped) instead of exiting when idle
    always_on = WorkerCommand(**{**gpu_slurm.__dict__, "exit_when_idle": False})
    command = [a.replace("${DSE_DEVICE:-cuda}", "cuda") for a in worker["command"]]
    assert command == always_on.argv()
    assert set(worker["environment"]) >= set(expected_env)
    for name, value in expected_env.items():
        if name != "DSE_DB":
            assert worker["environment"][name] == value, name
    assert worker["environment"]["DSE_DB"].startswith("${DSE_DB")  # from the environment
    reservation = worker["deploy"]["resources"]["reservations"]["devices"][0]
    assert reservation["count"] == 1 and "gpu" in reservation["capabilities"]


def test_sqlite_refused_for_other_machines(tmp_path):
    url = f"sqlite:///{tmp_path / 'dse.db'}"
    with pytest.raises(ValueError, match="PostgreSQL"):
        require_shared_database(url, "dse launch slurm")
    require_shared_database("postgresql://u@h/db", "dse launch slurm")  # fine
    for args in (
        ["launch", "ray", "--db", url, "--workers", "2", "--address", "10.0.0.1:6379"],
        ["launch", "slurm", "--db", url, "--workers", "2", "--folder", str(tmp_path / "logs")],
    ):
        out = _cli(*args, timeout=120)
        assert out.returncode == 2, out.stderr
        assert "PostgreSQL" in out.stderr and "SQLite" in out.stderr
        assert "Traceback" not in out.stderr
    assert not (tmp_path / "logs").exists()  # nothing was submitted


# --- real runs -------------------------------------------------------------------------


def _assert_each_once(store: Store, study_id: int, expected: int):
    frame = store.trial_frame(study_id)
    assert len(frame) == expected, frame[["trial_id", "space", "sample", "level", "status"]]
    assert (frame.status == "done").all(), frame[["trial_id", "status", "reason"]]
    assert frame.groupby(["space", "sample", "level"]).size().max() == 1
    assert store.get_study(study_id).status == "done"
    return frame


@pytest.fixture(scope="module")
def ray_runtime():
    """A local Ray runtime with 2 CPUs for this module's tests; every process of it stopped."""
    ray = pytest.importorskip("ray")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_AUTH_MODE", "disabled")  # a local test cluster: no token file
        mp.setenv("PYTHONPATH", str(REPO))  # the actors import this checkout
        ray.init(
            num_cpus=2,
            num_gpus=1,  # declared, not used: actors with a GPU share find nothing to train
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            logging_level="warning",
        )
        try:
            yield ray
        finally:
            ray.shutdown()


def _two_level_spec(**changes) -> dict:
    from testkit.specs import smoke_spec

    # 3 networks a space at 1 epoch, the best one of each promoted to 2 epochs: 8 trials
    return smoke_spec(**{"samples": 3, "fidelities": [1, 2], **changes})


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.xdist_group("pg")
def test_ray_two_actors_finish_a_two_level_study_once(ray_runtime, pg_url):
    from worker import launch_ray

    store = Store(pg_url)
    study_id = store.create_study(_two_level_spec())
    lines: list[str] = []
    fleets = []
    command = WorkerCommand(threads=1, exit_when_idle=True, poll_seconds=0.5)
    results = launch_ray.launch(
        pg_url, 2, command, show=lines.append, interval=0.5, started=fleets.append
    )
    assert results == {0: results[0], 1: results[1]}
    assert all(isinstance(n, int) for n in results.values()), results
    assert sum(results.values()) == 8
    frame = _assert_each_once(store, study_id, 8)
    assert sorted(frame.level.value_counts().items()) == [(0, 6), (1, 2)]
    assert (frame.attempt == 1).all()
    # each worker id names Ray, its node and the actor; only these two actors worked
    actors = {a._actor_id.hex()[:12] for a in fleets[0].actors}
    nodes = {n["NodeID"][:8]: n["NodeManagerAddress"] for n in ray_runtime.nodes()}
    for worker in frame.worker:
        kind, ip, node, actor, pid = worker.split(":")
        assert kind == "ray" and nodes[node.removeprefix("node-")] == ip, worker
        assert actor.removeprefix("actor-") in actors and pid.isdigit(), worker
    assert lines[0].startswith("Ray ready in ") and "2 worker actors started" in lines[0]
    assert all(line.startswith("workers ") for line in lines[1:]), lines
    assert lines[-1] == "workers 0/2 alive, trials 8 done, 0 left"
    store.close()


@pytest.mark.slow
@pytest.mark.xdist_group("pg")  # with the other Ray tests: one Ray runtime for all of them
def test_ray_quarter_gpus_put_four_workers_on_one_gpu(ray_runtime, sqlite_url):
    from worker.launch_ray import RayFleet

    Store(sqlite_url).close()  # the schema, before four workers open it at once
    command = WorkerCommand(device="cuda", threads=1, exit_when_idle=True, poll_seconds=0.5)
    fleet = RayFleet(sqlite_url, 4, command, cpus_per_worker=0.5, gpus_per_worker=0.25)
    fleet.start()
    try:  # four actors fit the runtime's one GPU (and 2 CPUs) only by sharing it
        results = fleet.wait(interval=0.5)
    finally:
        fleet.kill()
    assert results == {0: 0, 1: 0, 2: 0, 3: 0}  # each started, found no work, returned


def _running_after_an_epoch(store: Store, study_id: int):
    rows = store.trials(study_id, status="running", limit=10)
    return next((r for r in rows if r["epochs_done"] >= 1), None)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.xdist_group("pg")
def test_ray_killed_actor_is_restarted_and_its_trial_retried_once(ray_runtime, pg_url):
    from worker.launch_ray import RayFleet

    ray = ray_runtime
    store = Store(pg_url)
    # 100 epochs a trial, so the kill lands mid-trial on a quiet machine too (6 finished before
    # it there); a lost trial is noticed after 30 s (a live worker's heartbeats may be late on a
    # busy machine: a short grace reaps them too)
    limits = {"heartbeat_seconds": 1, "grace_seconds": 30, "max_attempts": 3}
    study_id = store.create_study(_two_level_spec(samples=2, fidelities=[100], limits=limits))
    fleet = RayFleet(pg_url, 2, WorkerCommand(threads=1, exit_when_idle=True, poll_seconds=0.5))
    fleet.start()
    try:
        deadline = time.monotonic() + WAIT
        row = None
        while row is None and time.monotonic() < deadline:
            row = _running_after_an_epoch(store, study_id)
            time.sleep(0.2)
        assert row is not None, "no trial reached its first epoch"
        victim = next(
            i for i, a in enumerate(fleet.actors) if a._actor_id.hex()[:12] in row["worker"]
        )
        ray.kill(fleet.actors[victim], no_restart=False)  # Ray restarts it
        results = fleet.wait(interval=0.5)
    finally:
        fleet.kill()
    # the restarted actor ran its loop again to the end (run was retried on it)
    assert isinstance(results[victim], int), results
    frame = _assert_each_once(store, study_id, 4)
    lost = store.trials(study_id, include_retried=True, status="failed")
    assert [r["trial_id"] for r in lost] == [row["trial_id"]], lost
    assert "lost" in lost[0]["reason"]
    retry = frame[frame.trial_id == lost[0]["retried_as"]].iloc[0]
    assert (retry["space"], retry["sample"], retry["attempt"]) == (row["space"], row["sample"], 2)
    assert (frame[frame.trial_id != retry.trial_id].attempt == 1).all()
    store.close()


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.xdist_group("pg")
def test_slurm_local_cluster_two_tasks_finish_a_study_once(pg_url, tmp_path):
    pytest.importorskip("submitit")
    store = Store(pg_url)
    study_id = store.create_study(_two_level_spec())
    folder = tmp_path / "logs"
    out = _cli(
        *("launch", "slurm", "--db", pg_url, "--workers", "2", "--cluster", "local"),
        *("--folder", str(folder), "--wait", "--interval", "1", "--poll", "0.5"),
    )
    assert out.returncode == 0, out.stderr
    job_ids = out.stdout.split()
    assert len(job_ids) == 2 and len(set(job_ids)) == 2, out.stdout
    assert f"logs in {folder}" in out.stderr
    assert "trials 8 done, 0 left" in out.stderr
    assert "every task completed" in out.stderr
    assert "Traceback" not in out.stderr
    frame = _assert_each_once(store, study_id, 8)
    assert frame.worker.nunique() <= 2  # the two tasks' workers
    logs = [p.read_text() for p in folder.glob("*_log.err")]
    assert len(logs) == 2 and all("dse worker" in text for text in logs)
    store.close()


def _processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that contain `text` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{entry.name}: {cmdline[:200]}")
    return found


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.xdist_group("pg")
def test_ray_ctrl_c_hands_trials_back_and_leaves_no_process(pg_url):
    pytest.importorskip("ray")
    import signal
    import tempfile

    store = Store(pg_url)
    # 1,000 epochs a trial: still training when Ctrl-C lands (it stops at the next epoch), and
    # epochs reported every second: with the default 10 s heartbeat a quiet machine finished
    # 40-epoch trials before one was ever seen running after an epoch
    limits = {"heartbeat_seconds": 1}
    study_id = store.create_study(_two_level_spec(samples=1, fidelities=[1000], limits=limits))
    temp = tempfile.mkdtemp(prefix="dse-ray-", dir="/tmp")  # short: Ray's socket paths
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_TMPDIR": temp, "DSE_DB": pg_url}
    env.setdefault("RAY_AUTH_MODE", "disabled")
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "launch", "ray", "--workers", "2", "--interval", "1"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
        # Ctrl-C's default action even when this suite runs with SIGINT ignored (a shell's
        # background job: `make test &`), which the child would inherit and keep
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + WAIT
        while _running_after_an_epoch(store, study_id) is None:
            assert time.monotonic() < deadline and proc.poll() is None, "no trial started"
            assert store.progress(study_id)["totals"]["done"] == 0, "trials ended before Ctrl-C"
            time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends
        _, err = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err
    assert "stopping the workers" in err
    progress = store.progress(study_id)["totals"]
    assert progress["running"] == 0, progress
    assert progress["waiting"] + progress["done"] == 2, progress  # handed back, none lost
    assert store.count(study_id, include_retried=True, status="failed") == 0
    deadline = time.monotonic() + 60  # Ray's processes end shortly after the driver
    while _processes_mentioning(temp) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _processes_mentioning(temp) == []
    shutil.rmtree(temp, ignore_errors=True)
    store.close()


def test_slurm_task_keeps_an_environment_url_out_of_its_pickle(monkeypatch):
    from worker.launch_slurm import worker_task

    command = WorkerCommand(threads=2)
    monkeypatch.setenv("DSE_DB", "postgresql://u:secret@db/dse")
    task = worker_task("postgresql://u:secret@db/dse", command)
    assert "DSE_DB" not in task.env  # sbatch passes $DSE_DB on; the pickle never holds it
    assert task.argv[1:3] == ["-m", "api.cli"] and task.argv[3:] == command.argv()[1:]
    task = worker_task("postgresql://u:other@db/dse", command)  # given by --db
    assert task.env == command.env("postgresql://u:other@db/dse")
