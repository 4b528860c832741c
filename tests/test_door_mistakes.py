"""Mistakes refused at the door with one line naming the fix (issue 23): datasets without a
root, missing or unreachable databases, bad URLs, unknown studies; failed trials' reasons in
`dse study show`, `dse edf` and the progress; a study whose trials all fail ends failed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import closing

import pytest

from search.store import Store, TrialOutcome
from testkit.cli import bad, run, run_json
from testkit.specs import smoke_spec

TINY = smoke_spec()["spaces"][0]  # the smoke study's AnyNetX_A: 2 stages, 8–32 wide


def _spec(**changes) -> dict:
    return {
        "name": "door",
        "dataset": {"name": "digits", "resolution": 16},
        "spaces": [TINY],
        "samples": 3,
        **changes,
    }


def _write(tmp_path, spec: dict) -> str:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    return str(path)


# --- datasets that need a root ---------------------------------------------------------------
@pytest.mark.parametrize("name", ["cifar10", "mnist", "imagefolder"])
def test_a_file_dataset_without_root_is_refused_at_create(capsys, tmp_path, sqlite_url, name):
    spec = _write(tmp_path, _spec(dataset={"name": name}))
    err = bad(capsys, "study", "create", spec, "--db", sqlite_url)
    assert "dataset.root" in err and f"{name} is read from files" in err
    with closing(Store(sqlite_url)) as store:
        assert store.list_studies() == []  # nothing stored


def test_store_refuses_a_file_dataset_without_root(sqlite_url):
    with closing(Store(sqlite_url)) as store, pytest.raises(ValueError, match="dataset.root"):
        store.create_study(_spec(dataset={"name": "cifar10"}))


# --- databases: missing, malformed, unreachable ------------------------------------------------
def test_commands_other_than_create_never_make_a_database(capsys, tmp_path):
    url = f"sqlite:///{tmp_path / 'typo.db'}"
    for argv in (["study", "list"], ["study", "show", "1"], ["edf", "1"], ["worker"]):
        err = bad(capsys, *argv, "--db", url)
        assert "no database at" in err and "--create-db" in err, err
    assert not (tmp_path / "typo.db").exists()


def test_a_worker_creates_the_database_only_when_asked(tmp_path):
    from worker.loop import run_worker

    url = f"sqlite:///{tmp_path / 'new.db'}"
    with pytest.raises(ValueError, match="no database at"):
        run_worker(url, exit_when_idle=True, install_signals=False)
    assert run_worker(url, exit_when_idle=True, install_signals=False, create_db=True) == 0
    assert (tmp_path / "new.db").exists()


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("sqlite://tmp/x.db", "sqlite:////tmp/x.db"),  # two slashes: a host
        ("not a url", "not a database URL"),
        ("http://example.org/x", "unknown database 'http'"),
        ("sqlite:////no/such/folder/x.db", "no folder /no/such/folder"),
    ],
)
def test_bad_urls_are_one_line_naming_the_fix(capsys, url, needle):
    for argv in (["study", "list"], ["edf", "1"], ["worker"]):
        assert needle in bad(capsys, *argv, "--db", url)


def test_an_unreachable_database_is_one_line(capsys, tmp_path):
    url = "postgresql://nobody:secret@127.0.0.1:9/none"  # port 9: nothing listens
    spec = _write(tmp_path, _spec())
    for argv in (
        ["study", "list"],
        ["study", "show", "1"],
        ["study", "create", spec],
        ["edf", "1"],
        ["serve", "--workers", "0", "--port", "0"],
    ):
        err = bad(capsys, *argv, "--db", url)
        assert "database unreachable" in err and "--db" in err and "secret" not in err, err


def test_an_unknown_study_names_no_request_part(capsys, tmp_path, sqlite_url):
    assert run(capsys, "study", "create", _write(tmp_path, _spec()), "--db", sqlite_url)[0] == 0
    err = bad(capsys, "edf", "99", "--db", sqlite_url)
    assert err.strip() == "dse edf: error: study 99: no such study"


def test_an_unexpected_error_is_one_line_without_traceback(capsys, monkeypatch, sqlite_url):
    import api.cli.study

    def boom(args):
        raise KeyError("surprise")

    monkeypatch.setattr(api.cli.study, "cmd_list", boom)
    code, out, err = run(capsys, "study", "list", "--db", sqlite_url)
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1
    assert "KeyError" in err and "DSE_TRACEBACK=1" in err
    monkeypatch.setenv("DSE_TRACEBACK", "1")
    with pytest.raises(KeyError):
        run(capsys, "study", "list", "--db", sqlite_url)


# --- failed trials: their reasons, and a study whose trials all fail ---------------------------
def _failed(reason: str) -> TrialOutcome:
    return TrialOutcome("failed", None, seconds=0.1, reason=reason)


def test_a_study_stops_failed_once_its_first_trials_all_fail(sqlite_url):
    from search.store.studies import FAIL_FAST

    with closing(Store(sqlite_url)) as store:
        study_id = store.create_study(_spec(samples=FAIL_FAST + 2))
        for _ in range(FAIL_FAST):
            assert store.get_study(study_id).status == "running"
            store.finish(store.claim("w"), _failed("DatasetError: root is required"))
        study = store.get_study(study_id)
        assert study.status == "failed"
        assert f"the first {FAIL_FAST} trials of the lowest level failed" in study.reason
        assert "DatasetError: root is required" in study.reason
        progress = store.progress(study_id)
        assert progress["failures"] == [
            {"reason": "DatasetError: root is required", "trials": FAIL_FAST}
        ]
        assert progress["totals"]["cancelled"] == 2 and progress["reason"] == study.reason
        assert store.claim("w") is None  # nothing left to train


def test_a_study_with_a_trial_that_trained_goes_on(sqlite_url):
    with closing(Store(sqlite_url)) as store:
        study_id = store.create_study(_spec(samples=4))
        store.finish(store.claim("w"), TrialOutcome("done", 0.3, seconds=0.1))
        for _ in range(3):
            store.finish(store.claim("w"), _failed("out of memory"))
        study = store.get_study(study_id)
        assert study.status == "done" and study.reason is None
        assert store.progress(study_id)["failures"] == [{"reason": "out of memory", "trials": 3}]


@pytest.mark.slow
def test_every_trial_failing_shows_in_worker_show_wait_and_edf(capsys, tmp_path, sqlite_url):
    from worker.loop import run_worker

    empty = tmp_path / "images"
    empty.mkdir()
    spec = _spec(dataset={"name": "imagefolder", "root": str(empty), "resolution": 16})
    code, out, _ = run(capsys, "study", "create", _write(tmp_path, spec), "--db", sqlite_url)
    study_id = int(out)
    assert run_worker(sqlite_url, exit_when_idle=True, threads=1, poll_seconds=0.1,
                      install_signals=False) == 3  # fmt: skip
    err = capsys.readouterr().err
    assert err.count(") failed: DatasetError") == 3 and " finished" not in err
    code, out, _ = run(capsys, "study", "show", str(study_id), "--db", sqlite_url)
    assert code == 0 and "failed: all 3 trials of the lowest level failed" in out
    assert "failed trials:" in out and "3 x DatasetError" in out
    code, out, err = run(capsys, "study", "wait", str(study_id), "--db", sqlite_url)
    assert code == 1 and "all 3 trials" in err
    code, out, _ = run(capsys, "edf", str(study_id), "--db", sqlite_url)
    assert code == 0 and "3 x DatasetError" in out
    code, out, _ = run(capsys, "edf", str(study_id), "--db", sqlite_url, "--json")
    assert json.loads(out)["failures"][0]["trials"] == 3


# --- dse --version, dse scale's help, dse study wait's progress --------------------------------
def test_version(capsys):
    import tomllib
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"dse {pyproject['project']['version']}"


def test_scale_help_names_the_rule_each_input_gets(capsys, tmp_path):
    code, out, _ = run(capsys, "scale", "--help")
    assert code == 0
    help_text = " ".join(out.split())
    assert "dds for a RegNet (--regnet, or a --spec file that is a dse export of one)" in help_text
    assert "efficientnet for any other --spec" in help_text
    # and that is what runs: a dse export of a RegNet scales by dds, a plain NetSpec by efficientnet
    code, out, _ = run(capsys, "export", "--regnet", "13,24,36,2.5,8", "--format", "json")
    export = json.loads(out)
    (tmp_path / "export.json").write_text(json.dumps(export))
    (tmp_path / "net.json").write_text(json.dumps(export["spec"]))
    rules = {
        name: run_json(capsys, "scale", "--spec", str(tmp_path / name), "--flops", "2x")["rule"]
        for name in ("export.json", "net.json")
    }
    assert rules == {"export.json": "dds", "net.json": "efficientnet"}


def test_wait_reports_progress_per_level_and_time_left(capsys, tmp_path, sqlite_url):
    with closing(Store(sqlite_url)) as store:
        study_id = store.create_study(_spec(samples=6, fidelities=[1, 3]))
        for _ in range(3):
            store.finish(store.claim("w"), TrialOutcome("done", 0.3, seconds=0.1))
    argv = ("study", "wait", str(study_id), "--db", sqlite_url, "--timeout", "1.5")
    code, out, err = run(capsys, *argv, "--interval", "0.05", "--report", "0", "--json")
    assert code == 1  # timed out: the study is still running
    assert json.loads(out)["totals"]["done"] == 3  # stdout: the one JSON document
    lines = [
        line for line in err.splitlines() if line.startswith(f"dse study wait: study {study_id}")
    ]
    assert len(lines) >= 2  # periodically, not only at the end
    assert "level 0 (1 ep): 3/6 finished, 3 left" in lines[0]
    assert "level 1 (3 ep): 0/~2 finished, ~2 left" in lines[0]  # ceil(6 x 1/3) to come
    assert lines[0].endswith(" left") and "about " in lines[0]


def test_eta_from_the_rate_measured():
    from api.cli.study import Eta, wait_line

    eta = Eta(done=0.0, created_seconds_ago=100.0)
    assert eta.seconds_left(0.0, 10.0) is None  # nothing trained yet: no rate
    eta = Eta(done=10.0, created_seconds_ago=100.0)  # 10 epochs in 100 s before the wait
    assert 99 < eta.seconds_left(10.0, 10.0) < 101
    assert eta.seconds_left(10.0, 0.0) == 0.0
    level = {"level": 0, "epochs": 1, "total": 4, "expected": 4, "running": 1, "finished": 2}
    assert wait_line(7, "running", [level], 125.0) == (
        "study 7 running: level 0 (1 ep): 2/4 finished, 2 left; 1 running; about 2 min left"
    )


def test_failures_in_the_api_and_a_page_that_shows_them(tmp_path, sqlite_url):
    from pathlib import Path

    from api.http.app import create_app
    from testkit.api import local_client

    store = Store(sqlite_url)
    try:
        study_id = store.create_study(_spec(samples=3))
        for _ in range(3):
            store.finish(store.claim("w"), _failed("DatasetError: no such folder"))
        with local_client(create_app(store=store)) as client:
            shown = client.get(f"/api/studies/{study_id}").json()
            assert shown["status"] == "failed" and "all 3 trials" in shown["reason"]
            expected = [{"reason": "DatasetError: no such folder", "trials": 3}]
            assert shown["progress"]["failures"] == expected
            assert shown["progress"]["reason"] == shown["reason"]
            edf = client.get(f"/api/studies/{study_id}/edf")
            assert edf.status_code == 200 and edf.json()["failures"] == expected
    finally:
        store.close()
    static = Path(__file__).parents[1] / "api" / "http" / "static"
    assert 'id="failures"' in (static / "study.body.html").read_text()
    assert "renderFailures(study.progress.failures" in (static / "study.js").read_text()


# --- Optuna studies named for people ------------------------------------------------------------
def test_optuna_study_names_are_readable_and_unique(sqlite_url):
    import re

    import optuna

    with closing(Store(sqlite_url)) as store:
        first = store.create_study(_spec(name="my <study> 1"))
        name = store.get_study(first).optuna_name
        assert re.fullmatch(rf"dse-{first}-my-study-1-[0-9a-f]{{8}}", name), name
        store.discard_study(first)
        again = store.create_study(_spec(name="my <study> 1"))  # SQLite reuses the id
        assert store.get_study(again).optuna_name != name
        names = [s.study_name for s in optuna.get_all_study_summaries(store.optuna)]
        assert names == [store.get_study(again).optuna_name]


def test_a_reader_that_stops_early_ends_the_command_quietly():
    read, write = os.pipe()
    os.close(read)  # `dse … | head` after head has exited
    try:
        done = subprocess.run([sys.executable, "-m", "api.cli", "model", "--reference", "resnet20"],
                              stdout=write, stderr=subprocess.PIPE, text=True, timeout=120)  # fmt: skip
    finally:
        os.close(write)
    assert done.returncode == 141 and done.stderr == ""
