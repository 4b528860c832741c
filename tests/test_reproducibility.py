"""Trials record the thread count and device they trained with (issue 23 item 5), a study whose
done trials mix thread counts or precisions says so, and migration 0006 upgrades a database
that has trials."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from alembic import command
from sqlalchemy import create_engine, inspect
from sqlalchemy.pool import NullPool

from api.cli import main
from api.http.schemas import Progress, Trial
from search.analysis.results import mixed_threads, results_for
from search.exports import trials_csv
from search.spec.reproducibility import mixed_setting, ran_with_notes
from search.spec.status import TrialStatus
from search.store import Store, TrialOutcome
from search.store.migrations import alembic_config
from testkit.specs import smoke_spec
from worker.loop import run_worker

# one space, three networks, one epoch on 16 px synthetic images: seconds per trial; fp32, so
# that `auto` picking bf16 on some CPUs does not change what is asserted
TINY = smoke_spec(name="threads", spaces=[smoke_spec()["spaces"][0]], samples=3,
                  recipe={"batch_size": 64, "lr": 0.1, "precision": "fp32"})  # fmt: skip
BACKENDS = ["sqlite", pytest.param("pg", marks=pytest.mark.postgres)]


def _work(url: str, threads: int, most: int | None = None) -> int:
    return run_worker(url, threads=threads, max_trials=most, exit_when_idle=True,
                      poll_seconds=0.1, install_signals=False)  # fmt: skip


def _show(capsys, url: str, study_id: int) -> str:
    capsys.readouterr()
    assert main(["study", "show", str(study_id), "--db", url]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("db", BACKENDS)
def test_workers_record_threads_and_device_and_a_mix_is_warned(request, db, capsys):
    url = request.getfixturevalue("sqlite_url" if db == "sqlite" else "pg_url")
    store = Store(url)
    try:
        study_id = store.create_study(TINY)
        assert _work(url, threads=1, most=1) == 1
        out = _show(capsys, url, study_id)
        assert "ran with: 1 thread (1); fp32 (1); cpu (1)" in out
        assert "warning: threads:" not in out  # one thread count: no notice
        assert not any("threads:" in w for w in results_for(store, study_id)["warnings"])

        assert _work(url, threads=2) == 2
        rows = store.trials(study_id)
        assert [r["status"] for r in rows] == ["done"] * 3
        assert sorted(r["threads"] for r in rows) == [1, 2, 2]
        assert {r["device"] for r in rows} == {"cpu"}
        assert all(Trial.model_validate(r).threads == r["threads"] for r in rows)  # the API's
        frame = store.trial_frame(study_id)
        assert sorted(frame["threads"]) == [1, 2, 2] and set(frame["device"]) == {"cpu"}
        csv = pd.read_csv(pd.io.common.StringIO(trials_csv(rows)))
        assert sorted(csv["threads"]) == [1, 2, 2] and set(csv["device"]) == {"cpu"}

        progress = store.progress(study_id)
        assert progress["ran_with"] == {
            "threads": {1: 1, 2: 2}, "precision": {"fp32": 3}, "device": {"cpu": 3}
        }  # fmt: skip
        Progress.model_validate(progress)
        out = _show(capsys, url, study_id)
        assert "ran with: 1 thread (1), 2 threads (2); fp32 (3); cpu (3)" in out
        assert "warning: threads: trials ran with 1 and 2 threads (1 and 2 done); results " \
               "can differ with the thread count" in out  # fmt: skip
        assert "warning: precision:" not in out  # one precision: no notice
        assert main(["study", "show", str(study_id), "--db", url, "--json"]) == 0
        shown = json.loads(capsys.readouterr().out)
        assert shown["ran_with"]["threads"] == {"1": 1, "2": 2}
        notes = results_for(store, study_id)["warnings"]  # the study page shows these
        assert [n for n in notes if n.startswith("threads:")] == [
            "threads: this level's trials ran with 1 and 2 threads (1 and 2 done); results can "
            "differ with the thread count (docs/method.md §5)"
        ]
    finally:
        store.close()


def test_mixed_notices_only_when_done_trials_differ():
    assert mixed_setting({1: 5}, "threads") is None and mixed_setting({}, "precision") is None
    assert mixed_setting({2: 1, 1: 4}, "threads") == (
        "threads: trials ran with 1 and 2 threads (4 and 1 done); results can differ with the "
        "thread count (docs/method.md §5)"
    )
    assert mixed_setting({"fp32": 2, "bf16": 1, "fp16": 1}, "precision").startswith(
        "precision: trials ran in bf16, fp16 and fp32 (1, 1 and 2 done); results can differ "
        "with the precision"
    )
    same = {"threads": {1: 3}, "precision": {"fp32": 3}, "device": {"cpu": 2, "cuda:0": 1}}
    assert ran_with_notes(same) == [] and ran_with_notes({}) == []
    both = {"threads": {1: 2, 4: 1}, "precision": {"bf16": 1, "fp32": 2}}
    assert [n.split(":")[0] for n in ran_with_notes(both)] == ["threads", "precision"]
    frame = pd.DataFrame({"status": ["done", "done", "diverged", "failed"],
                          "threads": [1, 1, 2, None]})  # fmt: skip
    assert mixed_threads(frame) is None  # the 2-thread trial diverged: no errors to compare
    assert "1 and 2 threads (2 and 1 done)" in mixed_threads(frame.assign(status="done"))
    assert mixed_threads(frame.drop(columns="threads")) is None  # a frame from before 0006
    assert mixed_threads(frame.assign(threads=None, status="done")) is None


@pytest.mark.parametrize("db", BACKENDS)
def test_migration_0006_upgrades_a_database_with_trials(request, db):
    url = request.getfixturevalue("sqlite_url" if db == "sqlite" else "pg_url")
    store = Store(url)
    study_id = store.create_study(TINY)
    claim = store.claim("before")
    assert store.finish(claim, TrialOutcome(TrialStatus.DONE, val_error=0.5, threads=1))
    store.close()
    engine = create_engine(store.url, poolclass=NullPool)
    try:  # back to the schema of 0005: the database as a store before this change left it
        config = alembic_config()
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0005")
        columns = {c["name"] for c in inspect(engine).get_columns("dse_trials")}
        assert "threads" not in columns and "device" not in columns and "recipe" in columns
    finally:
        engine.dispose()

    store = Store(url)  # upgrades on start
    try:
        old = next(r for r in store.trials(study_id) if r["trial_id"] == claim.trial_id)
        assert (old["status"], old["error"], old["threads"], old["device"]) == (
            "done", 0.5, None, None
        )  # fmt: skip
        assert store.progress(study_id)["ran_with"]["threads"] == {}
        new = store.claim("after")
        outcome = TrialOutcome(TrialStatus.DONE, val_error=0.25, threads=2, device="cpu")
        assert store.finish(new, outcome)
        row = next(r for r in store.trials(study_id) if r["trial_id"] == new.trial_id)
        assert (row["threads"], row["device"]) == (2, "cpu")
        assert store.progress(study_id)["ran_with"]["threads"] == {2: 1}
    finally:
        store.close()
