"""The store: create, claim exactly once, report, finish once, reap and retry, cancel, read."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import optuna
import pytest
from optuna.trial import TrialState

from search.spec.study import StudySpec
from search.store import Store, StudyNotFound, TrialOutcome
from worker.loop import outcome_of
from worker.train import TrainResult

DONE = TrialOutcome("done", 0.25, seconds=0.5, images_per_s=100.0)


def _tiny(spec, samples=3, **limits):
    spec["samples"] = samples
    if limits:
        spec["limits"] = limits
    return spec


def test_create_samples_and_interleaves(sqlite_url, smoke_spec):
    store = Store(sqlite_url)
    study_id = store.create_study(_tiny(smoke_spec, samples=4))
    study = store.get_study(study_id)
    assert (study.name, study.status) == ("smoke", "running")
    assert set(study.sampling) == {"AnyNetX_A", "AnyNetX_E"}
    assert 0 < study.sampling["AnyNetX_A"]["acceptance"] <= 1
    rows = store.trials(study_id, limit=100)
    assert [(r["space"], r["sample"]) for r in rows] == [
        (s, i) for i in range(4) for s in ("AnyNetX_A", "AnyNetX_E")
    ]
    assert all(r["status"] == "waiting" and r["level"] == 0 and r["epochs"] == 1 for r in rows)
    assert all(r["flops"] <= 2e7 for r in rows)
    # Optuna holds the same trials, WAITING, each carrying its network and numbers
    trials = optuna.load_study(study_name=study.optuna_name, storage=store.optuna).trials
    assert [t._trial_id for t in trials] == [r["trial_id"] for r in rows]
    first = trials[0]
    assert first.state == TrialState.WAITING
    assert first.user_attrs["net"] == rows[0]["spec"]
    assert first.params["flops"] == rows[0]["flops"] and first.params["space"] == "AnyNetX_A"
    assert first.params["d1"] == rows[0]["params_sampled"]["d1"]
    assert set(first.user_attrs) == {"sample", "level", "attempt", "net"}
    assert first.params["epochs"] == 1
    frame = store.trial_frame(study_id)
    assert len(frame) == 8 and frame["error"].isna().all()
    columns = "trial_id space sample level epochs status error flops params acts depth spec"
    assert set(columns.split()) <= set(frame.columns)
    assert any(c.startswith("p_") for c in frame.columns)


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda s: s.update(sampels=3), "sampels"),
        (lambda s: s["spaces"][0].update(preset="NoSuchSpace"), "NoSuchSpace"),
        (lambda s: s.update(complexity={"flops": [0, 10]}), "flops"),
    ],
)
def test_bad_input_rejected_nothing_stored(sqlite_url, smoke_spec, change, needle):
    store = Store(sqlite_url)
    change(smoke_spec)
    with pytest.raises(ValueError, match=needle):
        store.create_study(smoke_spec)
    assert store.list_studies() == []
    assert store.optuna.get_all_studies() == []


def test_unknown_study(sqlite_url):
    store = Store(sqlite_url)
    with pytest.raises(StudyNotFound):
        store.get_study(42)
    with pytest.raises(LookupError):
        store.progress(42)


def test_life_cycle_progress_paging_version(sqlite_url, smoke_spec):
    store = Store(sqlite_url)
    study_id = store.create_study(_tiny(smoke_spec))
    v0 = store.version(study_id)
    claim = store.claim("w1")
    assert store.version(study_id) != v0
    assert store.progress(study_id)["spaces"][claim.space][0]["running"] == 1
    assert store.report_epoch(claim, {"epoch": 1, "val_error": 0.5, "train_loss": 1.0})
    assert store.finish(claim, DONE)
    assert not store.finish(claim, DONE)  # a second report is not counted
    row = next(r for r in store.trials(study_id) if r["trial_id"] == claim.trial_id)
    assert (row["status"], row["error"], row["worker"], row["epochs_done"]) == (
        "done",
        0.25,
        "w1",
        1,
    )
    trial = store.optuna.get_trial(claim.trial_id)
    assert trial.state == TrialState.COMPLETE and trial.value == 0.25
    assert trial.intermediate_values == {1: 0.5}
    assert [r["trial_id"] for r in store.trials(study_id, offset=2, limit=2)] == [
        r["trial_id"] for r in store.trials(study_id, limit=100)[2:4]
    ]
    assert store.count(study_id) == 6 and store.count(study_id, status="done") == 1
    assert store.count(study_id, space=claim.space, status="waiting") == 2
    totals = store.progress(study_id)["totals"]
    assert (totals["done"], totals["waiting"], totals["total"]) == (1, 5, 6)


def test_finished_speeds_are_the_latest_done_trials(sqlite_url, smoke_spec):
    # what search/estimate.py prices a spec from: done trials with a speed, newest first
    store = Store(sqlite_url)
    assert store.finished_speeds(10) == ([], {})
    study_id = store.create_study(_tiny(smoke_spec, samples=2))
    claims = [store.claim("w") for _ in range(4)]
    speeds = [100.0, 200.0, None, 50.0]
    for claim, speed in zip(claims[:3], speeds, strict=False):
        assert store.finish(claim, TrialOutcome("done", 0.3, images_per_s=speed))
    assert store.finish(claims[3], TrialOutcome("diverged", None, images_per_s=50.0))
    rows, specs = store.finished_speeds(10)
    timed = sorted(claims[:2], key=lambda c: -c.trial_id)
    assert rows == [(c.net, speeds[claims.index(c)], study_id) for c in timed]
    assert list(specs) == [study_id]
    assert StudySpec.model_validate(specs[study_id]) == store.get_study(study_id).spec
    assert store.finished_speeds(1)[0] == rows[:1]


def test_diverged_and_oom(sqlite_url, smoke_spec):
    store = Store(sqlite_url)
    study_id = store.create_study(_tiny(smoke_spec, samples=1))
    a, b = store.claim("w"), store.claim("w")
    diverged = TrainResult("diverged", None, None, [], 0.0, 0.1, "nan loss at epoch 1")
    assert store.finish(a, outcome_of(diverged))
    assert store.finish(b, outcome_of(TrainResult("oom", None, None, [], 0.0, 0.1, "CUDA OOM")))
    rows = {r["trial_id"]: r for r in store.trials(study_id)}
    assert rows[a.trial_id]["status"] == "diverged"
    assert rows[a.trial_id]["reason"] == "nan loss at epoch 1"
    assert rows[b.trial_id]["status"] == "failed" and "out of memory" in rows[b.trial_id]["reason"]
    assert store.optuna.get_trial(a.trial_id).state == TrialState.FAIL
    assert store.get_study(study_id).status == "done"


def test_release_hands_back(sqlite_url, smoke_spec):
    store = Store(sqlite_url)
    study_id = store.create_study(_tiny(smoke_spec, samples=1))
    claim = store.claim("w1")
    assert store.release(claim)
    assert store.optuna.get_trial(claim.trial_id).state == TrialState.WAITING
    assert store.count(study_id, status="waiting") == 2
    again = [store.claim("w2"), store.claim("w2")]
    assert claim.trial_id in {c.trial_id for c in again}


def test_cancel(sqlite_url, smoke_spec):
    store = Store(sqlite_url)
    study_id = store.create_study(_tiny(smoke_spec))
    running = store.claim("w1")
    assert store.cancel_study(study_id)
    assert store.claim("w2") is None
    assert not store.report_epoch(running, {"epoch": 1, "val_error": 0.4})  # stop now
    assert store.finish(running, TrialOutcome("cancelled"))
    progress = store.progress(study_id)
    assert progress["status"] == "cancelled"
    assert (progress["totals"]["cancelled"], progress["totals"]["total"]) == (6, 6)


def _reap_case(url, smoke_spec, max_attempts):
    store = Store(url)
    spec = _tiny(
        smoke_spec, samples=1, heartbeat_seconds=1, grace_seconds=2, max_attempts=max_attempts
    )
    study_id = store.create_study(spec)
    lost = store.claim("lost-worker")
    time.sleep(3.5)  # no heartbeats: past the grace period
    assert store.reap_stale() == [lost.trial_id]
    assert store.reap_stale() == []  # idempotent
    return store, study_id, lost


@pytest.mark.parametrize("db", ["sqlite", pytest.param("pg", marks=pytest.mark.postgres)])
def test_lost_worker_retried_result_counted_once(request, smoke_spec, db):
    url = request.getfixturevalue("sqlite_url" if db == "sqlite" else "pg_url")
    store, study_id, lost = _reap_case(url, smoke_spec, max_attempts=3)
    old = store.trials(study_id, include_retried=True, status="failed")[0]
    assert old["trial_id"] == lost.trial_id and old["retried_as"] is not None
    assert "lost-worker lost" in old["reason"]
    # the lost worker comes back with a result: dropped, the retry's counts
    assert not store.finish(lost, DONE)
    assert not store.report_epoch(lost, {"epoch": 1, "val_error": 0.1})
    claims = [store.claim("w2"), store.claim("w2")]
    retry = next(c for c in claims if c.trial_id == old["retried_as"])
    assert retry.attempt == 2 and retry.net == lost.net
    for c in claims:
        assert store.finish(c, DONE)
    frame = store.trial_frame(study_id)
    assert len(frame) == 2 and (frame.status == "done").all()
    assert frame.groupby(["space", "sample", "level"]).size().max() == 1
    assert store.count(study_id, include_retried=True) == 3
    assert store.optuna.get_trial(lost.trial_id).state == TrialState.FAIL
    assert store.get_study(study_id).status == "done"


def test_lost_worker_gives_up_after_max_attempts(sqlite_url, smoke_spec):
    store, study_id, lost = _reap_case(sqlite_url, smoke_spec, max_attempts=1)
    row = next(r for r in store.trials(study_id) if r["trial_id"] == lost.trial_id)
    assert (row["status"], row["reason"]) == ("failed", "worker lost after 1 attempts")
    assert store.count(study_id, status="waiting") == 1  # no retry was made


@pytest.mark.postgres
@pytest.mark.xdist_group("pg")
def test_concurrent_claims_never_double(pg_url, smoke_spec):
    study_id = Store(pg_url).create_study(smoke_spec)
    got: list[list[int]] = [[] for _ in range(6)]

    def work(k: int) -> None:
        store = Store(pg_url)  # own engine and pool, as a separate process would have
        while (claim := store.claim(f"w{k}")) is not None:
            got[k].append(claim.trial_id)
        store.close()

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = [tid for ids in got for tid in ids]
    assert len(claimed) == len(set(claimed)) == 40
    store = Store(pg_url)
    assert store.count(study_id, status="running") == 40
    owners = {r["trial_id"]: r["worker"] for r in store.trials(study_id, limit=100)}
    for k, ids in enumerate(got):
        assert all(owners[tid] == f"w{k}" for tid in ids)


@pytest.mark.parametrize("db", ["sqlite", pytest.param("pg", marks=pytest.mark.postgres)])
def test_concurrent_first_starts_migrate_once(request, db):
    url = request.getfixturevalue("sqlite_url" if db == "sqlite" else "pg_url")
    code = f"from search.store import Store; Store({url!r}).close()"
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE) for _ in range(4)
    ]
    errors = [p.communicate(timeout=120)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], errors
    assert Store(url).list_studies() == []


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda s: s.update(fidelities=[3, 1]), "fidelities"),
        (lambda s: s["spaces"][1].update(preset="AnyNetQ"), "AnyNetQ"),
        (lambda s: s.update(complexity={"params": [1, 2]}), "params"),
    ],
)
def test_cli_create_rejects_with_reason(sqlite_url, smoke_spec, tmp_path, capsys, change, needle):
    import yaml

    from api.cli import main

    change(smoke_spec)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(smoke_spec))
    Store(sqlite_url).close()  # the database exists: `study list` reads it (never makes one)
    assert main(["study", "create", str(path), "--db", sqlite_url]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dse study: error:") and needle in err and "\n" not in err
    assert main(["study", "list", "--db", sqlite_url, "--json"]) == 0
    assert capsys.readouterr().out.strip() == "[]"


def test_cli_create_show_cancel(sqlite_url, smoke_spec, tmp_path, capsys):
    import json

    from api.cli import main

    path = tmp_path / "spec.json"
    path.write_text(json.dumps(_tiny(smoke_spec, samples=2)))
    assert main(["study", "create", str(path), "--db", sqlite_url]) == 0
    study_id = int(capsys.readouterr().out.strip())
    assert main(["study", "show", str(study_id), "--db", sqlite_url, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["spaces"]["AnyNetX_E"][0]["waiting"] == 2 and shown["totals"]["total"] == 4
    assert main(["study", "wait", str(study_id), "--db", sqlite_url, "--timeout", "0"]) == 1
    assert main(["study", "cancel", str(study_id), "--db", sqlite_url]) == 0
    assert "cancelled" in capsys.readouterr().out
    assert main(["study", "wait", str(study_id), "--db", sqlite_url, "--timeout", "5"]) == 0
    assert main(["study", "show", "999", "--db", sqlite_url]) == 2


def test_crash_windows_repaired(sqlite_url, smoke_spec):
    """A worker dying between Optuna's transition and our row update leaves no zombie."""
    store = Store(sqlite_url)
    spec = _tiny(smoke_spec, samples=1, heartbeat_seconds=1, grace_seconds=2)
    study_id = store.create_study(spec)
    completed, diverged = store.claim("w1"), store.claim("w1")
    # finish() got as far as Optuna, then the process died
    store.optuna.set_trial_state_values(completed.trial_id, TrialState.COMPLETE, [0.3])
    outcome = {"status": "diverged", "reason": "loss became nan in epoch 1"}
    store.optuna.set_trial_system_attr(diverged.trial_id, "dse_outcome", outcome)
    store.optuna.set_trial_state_values(diverged.trial_id, TrialState.FAIL)
    assert store.count(study_id, status="running") == 2
    time.sleep(3)
    assert store.reap_stale() == []  # nothing was RUNNING in Optuna: nothing to retry
    rows = {r["trial_id"]: r for r in store.trials(study_id)}
    assert (rows[completed.trial_id]["status"], rows[completed.trial_id]["error"]) == ("done", 0.3)
    assert rows[diverged.trial_id]["status"] == "diverged"
    assert store.count(study_id, include_retried=True) == 2
    assert store.get_study(study_id).status == "done"


def test_url_from_environment(sqlite_url, monkeypatch):
    from search.store import DEFAULT_URL, default_url, normalize_url

    monkeypatch.delenv("DSE_DB", raising=False)
    assert default_url() == DEFAULT_URL == "sqlite:///dse.db"
    monkeypatch.setenv("DSE_DB", sqlite_url)
    assert Store().url == sqlite_url
    assert normalize_url("postgresql://u@h/db").startswith("postgresql")
    with pytest.raises(ValueError, match="db"):
        Store("sqlite://")


def test_outcome_is_typed_and_adapted_from_training():
    from types import SimpleNamespace

    from search.spec.status import TrialStatus

    assert list(TrialStatus) == ["waiting", "running", "done", "failed", "diverged", "cancelled"]
    assert TrialStatus.unfinished() == ("waiting", "running") and TrialStatus.DONE.finished
    with pytest.raises(ValueError, match="status"):
        TrialOutcome("running")
    nan = TrialOutcome("done", float("nan"), seconds=float("inf"))
    assert (nan.status, nan.reason, nan.seconds) == ("diverged", "training diverged", None)
    assert TrialOutcome("done", 0.3).columns()["error"] == 0.3
    assert TrialOutcome("failed", 0.3, reason="x").columns()["error"] is None
    cases = {
        "done": ("done", None),
        "diverged": ("diverged", "nan at 2"),
        "cancelled": ("cancelled", "nan at 2"),
        "oom": ("failed", "out of memory: nan at 2"),
        "exploded": ("failed", "nan at 2"),
    }
    for status, (want, reason) in cases.items():
        out = outcome_of(TrainResult(status, 0.2, 0.3, [], 5.0, 1.0, "nan at 2"))
        assert (out.status, out.reason) == (want, reason), status
        assert (out.test_error, out.seconds, out.images_per_s) == (0.3, 1.0, 5.0)
    from search.store.trial_life import TrialLifecycle

    with pytest.raises(TypeError, match="TrialOutcome"):  # no duck-typed worker objects
        TrialLifecycle.finish(None, None, SimpleNamespace(status="done", val_error=0.1))


def test_reused_study_id_gets_its_own_spec(sqlite_url, smoke_spec):
    """SQLite reuses the id of a discarded study; the cached spec must not leak into it."""
    store = Store(sqlite_url)
    first = store.begin_study({**smoke_spec, "name": "first"})
    other = Store(sqlite_url)  # another process's view: it caches "first" too
    assert store.get_study(first).spec.name == other.get_study(first).spec.name == "first"
    store.discard_study(first)
    second = store.begin_study({**smoke_spec, "name": "second"})
    assert second == first
    assert store.get_study(second).spec.name == other.get_study(second).spec.name == "second"
