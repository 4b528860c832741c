"""Worker processes against a real database: exactly once, crashes, SIGTERM, cancel, SQLite."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time

import optuna
import pytest
from optuna.trial import TrialState
from sqlalchemy.exc import OperationalError

from search.store import Store
from worker import loop

WAIT = 300  # seconds any group of workers may take before the test fails


def _dse(dse_bin, *args, timeout: float = 60, check: bool = False):
    """`dse ARGS` as a process: the CompletedProcess (text stdout and stderr)."""
    return subprocess.run(
        [dse_bin, *args], capture_output=True, text=True, timeout=timeout, check=check
    )


def _create(dse_bin, url, spec, tmp_path) -> int:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    out = _dse(
        dse_bin, "study", "create", str(path), "--db", url, "--json", timeout=120, check=True
    )
    return json.loads(out.stdout)["id"]


def _worker(dse_bin, url, *extra, cwd=None) -> subprocess.Popen:
    """A `dse worker` process; url None = the default database (no --db, no $DSE_DB)."""
    cmd = [dse_bin, "worker", "--threads", "1", "--poll", "0.5", *extra]
    env = {k: v for k, v in os.environ.items() if k != "DSE_DB"}
    if url is not None:
        cmd[2:2] = ["--db", url]
    return subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env={**env, "OMP_NUM_THREADS": "1"},
    )


def _finish(procs) -> list[str]:
    errs = []
    for p in procs:
        _, err = p.communicate(timeout=WAIT)
        errs.append(err)
    return errs


def _assert_each_once(store, study_id, expected):
    frame = store.trial_frame(study_id)
    assert len(frame) == expected
    assert (frame.status == "done").all(), frame[["trial_id", "status", "reason"]]
    assert frame.groupby(["space", "sample", "level"]).size().max() == 1
    assert frame["error"].between(0, 1).all()
    study = store.get_study(study_id)
    trials = optuna.load_study(study_name=study.optuna_name, storage=store.optuna).trials
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == expected
    assert sorted(t._trial_id for t in complete) == sorted(frame.trial_id)
    assert study.status == "done"
    return frame


def test_retrying_backs_off(monkeypatch, capsys):
    delays, calls = [], []
    monkeypatch.setattr(loop.time, "sleep", delays.append)

    def flaky():
        calls.append(1)
        if len(calls) < 4:
            raise OperationalError("SELECT 1", {}, Exception("connection refused"))
        return "ok"

    assert loop.retrying(flaky, "claim") == "ok"
    assert delays == [0.5, 1.0, 2.0]
    assert "database unavailable" in capsys.readouterr().err

    def down():
        raise OperationalError("SELECT 1", {}, Exception("down"))

    with pytest.raises(OperationalError):  # give_up bounds how long a report may wait
        loop.retrying(down, "report", give_up=1e-9)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.xdist_group("pg")
def test_four_worker_processes_postgres(pg_url, smoke_spec, dse_bin, tmp_path):
    study_id = _create(dse_bin, pg_url, smoke_spec, tmp_path)
    procs = [_worker(dse_bin, pg_url, "--exit-when-idle") for _ in range(4)]
    errs = _finish(procs)
    assert [p.returncode for p in procs] == [0] * 4, errs
    assert not any("Traceback" in e for e in errs), errs
    store = Store(pg_url)
    frame = _assert_each_once(store, study_id, 40)
    pids = {str(p.pid) for p in procs}
    assert {w.split(":")[1] for w in frame.worker} <= pids  # done by these four processes
    assert (frame.attempt == 1).all()
    shown = _dse(dse_bin, "study", "show", str(study_id), "--db", pg_url, "--json", check=True)
    progress = json.loads(shown.stdout)
    for space in ("AnyNetX_A", "AnyNetX_E"):
        assert progress["spaces"][space][0]["done"] == 20
        assert progress["spaces"][space][0]["waiting"] == 0
    assert progress["totals"]["failed"] == progress["totals"]["diverged"] == 0
    waited = _dse(dse_bin, "study", "wait", str(study_id), "--db", pg_url, "--timeout", "10")
    assert waited.returncode == 0


def _wait_for(predicate, timeout=WAIT, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def _running_after_an_epoch(store, study_id, proc, left: int = 0):
    """A trial of `proc` running past its first epoch with at least `left` epochs to go."""
    rows = store.trials(study_id, status="running", limit=10)
    return next(
        (r for r in rows
         if 1 <= r["epochs_done"] <= r["epochs"] - left and f":{proc.pid}:" in r["worker"]),
        None,
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.xdist_group("pg")
def test_kill9_trial_retried_nothing_lost(pg_url, smoke_spec, dse_bin, tmp_path):
    # 40 epochs, killed with 10 or more to go: with 6 on a fast CPU (bf16 on AVX512-BF16) the
    # kill once landed as the trial ended; nothing failed and the trial counted done (the
    # only path to that is recovery repairing a row whose Optuna trial had completed), which
    # is right, but not the lost-worker retry this test pins
    smoke_spec.update(
        samples=1,
        fidelities=[40],
        limits={"heartbeat_seconds": 1, "grace_seconds": 3, "max_attempts": 3},
    )
    study_id = _create(dse_bin, pg_url, smoke_spec, tmp_path)
    store = Store(pg_url)
    victim = _worker(dse_bin, pg_url)
    mid_trial = lambda: _running_after_an_epoch(store, study_id, victim, left=10)  # noqa: E731
    _wait_for(mid_trial, what="an epoch with 10 to go")
    victim.send_signal(signal.SIGKILL)  # mid-trial: its later epochs are never reported
    victim.communicate(timeout=30)
    in_flight = [
        r for r in store.trials(study_id, status="running") if f":{victim.pid}:" in r["worker"]
    ]
    assert len(in_flight) == 1, "the victim was between trials when killed"
    row = in_flight[0]
    restarted = _worker(dse_bin, pg_url, "--exit-when-idle")
    errs = _finish([restarted])
    assert restarted.returncode == 0, errs
    frame = _assert_each_once(store, study_id, 2)
    lost = store.trials(study_id, include_retried=True, status="failed")
    assert [r["trial_id"] for r in lost] == [row["trial_id"]]
    assert "lost" in lost[0]["reason"]
    retry = frame[frame.trial_id == lost[0]["retried_as"]].iloc[0]
    assert (retry["space"], retry["sample"], retry["attempt"]) == (row["space"], row["sample"], 2)
    assert f":{restarted.pid}:" in retry.worker
    assert store.optuna.get_trial(row["trial_id"]).state == TrialState.FAIL


@pytest.mark.slow
def test_sqlite_two_workers_and_readers_never_locked(sqlite_url, smoke_spec, dse_bin, tmp_path):
    smoke_spec["samples"] = 8
    study_id = _create(dse_bin, sqlite_url, smoke_spec, tmp_path)
    # the default database: sqlite:///dse.db in the working directory
    assert sqlite_url == f"sqlite:///{tmp_path / 'dse.db'}"
    procs = [_worker(dse_bin, None, "--exit-when-idle", cwd=tmp_path) for _ in range(2)]
    failures: list[str] = []
    reads = [0]

    def read() -> None:
        store = Store(sqlite_url)
        while any(p.poll() is None for p in procs):
            try:
                store.progress(study_id)
                store.trials(study_id, offset=2, limit=5)
                store.trial_frame(study_id)
                store.version(study_id)
                reads[0] += 1
            except Exception as e:  # any error from a reader fails the test
                failures.append(repr(e))
            time.sleep(0.05)

    readers = [threading.Thread(target=read) for _ in range(2)]
    for t in readers:
        t.start()
    errs = _finish(procs)
    for t in readers:
        t.join()
    assert failures == []
    assert reads[0] > 0
    assert [p.returncode for p in procs] == [0, 0], errs
    assert not any("locked" in e or "Traceback" in e for e in errs), errs
    _assert_each_once(Store(sqlite_url), study_id, 16)


@pytest.mark.slow
def test_sigterm_hands_back_and_cancel_stops(sqlite_url, smoke_spec, dse_bin, tmp_path):
    # 40 epochs: long enough that the trial is still training when `dse study cancel` lands
    smoke_spec.update(samples=1, fidelities=[40])
    study_id = _create(dse_bin, sqlite_url, smoke_spec, tmp_path)
    store = Store(sqlite_url)
    first = _worker(dse_bin, sqlite_url)
    row = _wait_for(lambda: _running_after_an_epoch(store, study_id, first), what="an epoch")
    first.send_signal(signal.SIGTERM)
    _, err = first.communicate(timeout=WAIT)
    assert first.returncode == 0, err
    handed = next(r for r in store.trials(study_id) if r["trial_id"] == row["trial_id"])
    assert handed["status"] in ("waiting", "done")  # handed back, or it was the last epoch
    assert store.count(study_id, status="running") == 0
    # a study cancelled while a trial trains: the trial stops at its next epoch
    second = _worker(dse_bin, sqlite_url, "--exit-when-idle")
    _wait_for(lambda: _running_after_an_epoch(store, study_id, second), what="an epoch")
    out = _dse(dse_bin, "study", "cancel", str(study_id), "--db", sqlite_url)
    assert out.returncode == 0, out.stderr
    _, err = second.communicate(timeout=WAIT)
    assert second.returncode == 0, err
    progress = store.progress(study_id)
    assert progress["status"] == "cancelled"
    assert progress["totals"]["running"] == progress["totals"]["waiting"] == 0
    assert progress["totals"]["cancelled"] >= 1


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.xdist_group("pg")
def test_worker_waits_out_a_database_outage(pg_server, smoke_spec, dse_bin, tmp_path):
    name = f"dse_test_later_{os.getpid()}_{int(time.time())}"
    later = pg_server.url(name)
    log = tmp_path / "worker.err"
    with log.open("w") as err_file:
        worker = subprocess.Popen(
            [
                dse_bin,
                "worker",
                "--db",
                later,
                "--threads",
                "1",
                "--poll",
                "0.5",
                "--max-trials",
                "2",
            ],
            stdout=subprocess.DEVNULL,
            stderr=err_file,
        )
    # the database does not exist yet: the worker must wait and say so, not crash
    _wait_for(lambda: "database unavailable" in log.read_text(), what="a retry message")
    assert worker.poll() is None
    pg_server.create(name)
    smoke_spec["samples"] = 1
    study_id = _create(dse_bin, later, smoke_spec, tmp_path)
    worker.wait(timeout=WAIT)
    err = log.read_text()
    assert worker.returncode == 0, err
    assert "Traceback" not in err
    store = Store(later)
    _assert_each_once(store, study_id, 2)
    store.close()
