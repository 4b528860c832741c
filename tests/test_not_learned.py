"""Studies say when their trainings did not learn, and --check refuses recipes that cannot.

Real trainings on digits: a recipe with lr 1e-6 leaves every network at chance; the store marks
those trials not_learned, `dse study show`, `dse study wait`, `dse edf` and the results say so,
and `dse study create --check` / `POST /api/studies?check=true` refuse such a study.
"""

from __future__ import annotations

import json

import pytest

from api.cli import main
from search.store import Store, TrialOutcome
from testkit.api import local_client
from testkit.server import CREATE_WAIT
from testkit.specs import TINY_SPACE

CANNOT_LEARN = {
    "name": "lr 1e-6",
    "dataset": {"name": "digits", "resolution": 16},
    "spaces": [TINY_SPACE],
    "samples": 3,
    "fidelities": [1],
    "recipe": {"lr": 1e-6},
    "seed": 0,
}


def _result(val_error, chance=0.9, val_size=288, status="done"):
    """What a worker hands to Store.finish."""
    return TrialOutcome(status, val_error, seconds=1.0, images_per_s=1.0, chance_error=chance,
                        val_size=val_size, recipe={"lr": 0.0125, "batch_size": 32})  # fmt: skip


@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_store_marks_counts_and_reports_trials_at_chance(db, request):
    from search.analysis.results import results_for

    url = request.getfixturevalue("sqlite_url" if db == "sqlite" else "pg_url")
    store = Store(url)
    try:
        spec = {**CANNOT_LEARN, "samples": 10, "recipe": {}}
        study_id = store.create_study(spec)
        errors = [0.88, 0.87, 0.05, 0.06, 0.07, 0.08, 0.05, 0.04, 0.06, 0.05]  # 2 at chance
        for e in errors:
            store.finish(store.claim("w"), _result(e))
        rows = store.trials(study_id, limit=20)
        assert sorted(r["not_learned"] for r in rows) == [False] * 8 + [True] * 2
        assert {r["chance_error"] for r in rows} == {0.9} and rows[0]["recipe"]["lr"] == 0.0125
        level = store.progress(study_id)["spaces"]["AnyNetX_A"][0]
        assert level["done"] == 10 and level["not_learned"] == 2  # counted, still done
        results = results_for(store, study_id)
        space = results["spaces"]["AnyNetX_A"]
        assert space["n"] == 10 and space["n_not_learned"] == 2  # kept in the EDF
        assert space["chance_error"] == 0.9
        assert results["not_learned"][0]["space"] == "AnyNetX_A"  # 20% > 10%: a warning
        assert "did not learn" in results["not_learned"][0]["text"]
        frame = store.trial_frame(study_id)
        assert int(frame["not_learned"].eq(True).sum()) == 2
    finally:
        store.close()


@pytest.mark.slow
def test_a_recipe_that_cannot_learn_shows_in_study_show_wait_and_edf(sqlite_url, tmp_path, capsys):
    from worker.loop import run_worker

    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(CANNOT_LEARN))
    assert main(["study", "create", str(spec_file), "--db", sqlite_url]) == 0
    study_id = int(capsys.readouterr().out)
    trained = run_worker(sqlite_url, exit_when_idle=True, threads=1, poll_seconds=0.1,
                         install_signals=False)  # fmt: skip
    assert trained == 3
    capsys.readouterr()
    assert main(["study", "show", str(study_id), "--db", sqlite_url]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.strip().startswith("AnyNetX_A"))
    assert row.split()[-1] == "3" and row.split()[5] == "3"  # 3 done, all 3 at chance
    assert "warning: AnyNetX_A (1 epochs): 3 of 3 finished trials (100%) did not learn" in out
    assert "learning rate" in out
    assert main(["study", "wait", str(study_id), "--db", sqlite_url, "--timeout", "5"]) == 0
    assert "did not learn" in capsys.readouterr().err
    assert main(["edf", str(study_id), "--db", sqlite_url]) == 0
    assert "warning: AnyNetX_A (1 epochs): 3 of 3" in capsys.readouterr().out
    assert main(["edf", str(study_id), "--db", sqlite_url, "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["spaces"]["AnyNetX_A"]["n_not_learned"] == 3
    assert "did not learn" in captured.err  # --json keeps stdout one document


@pytest.mark.slow
def test_check_refuses_a_recipe_at_chance_and_passes_the_defaults(
    sqlite_url, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("DSE_THREADS", "1")  # the check's training (worker.train.set_threads)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(CANNOT_LEARN))
    code = main(["study", "create", str(bad), "--check", "--device", "cpu", "--db", sqlite_url])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "RegNetX-200MF trained 1 epoch(s) on digits" in err and "stays at chance" in err
    assert "against chance 0.89" in err and "on 288 images" in err  # the numbers
    assert "the study was not created" in err
    store = Store(sqlite_url)
    try:
        assert store.list_studies() == []
    finally:
        store.close()
    good = tmp_path / "good.json"
    good.write_text(json.dumps({**CANNOT_LEARN, "recipe": {}}))
    code = main(["study", "create", str(good), "--check", "--device", "cpu", "--db", sqlite_url,
                 "--json"])  # fmt: skip
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert code == 0 and doc["id"] == 1 and doc["check"]["learned"] is True
    assert doc["check"]["recipe"]["lr"] == 0.0125 and "it learns" in captured.err


@pytest.mark.slow
def test_api_check_parameter_refuses_with_422_and_the_numbers(tmp_path, monkeypatch):
    monkeypatch.setenv("DSE_THREADS", "1")

    from api.http.app import create_app

    store = Store(f"sqlite:///{tmp_path / 'api.db'}")
    try:
        with local_client(create_app(create_wait=CREATE_WAIT, store=store)) as client:
            r = client.post("/api/studies?check=true", json=CANNOT_LEARN)
            assert r.status_code == 422, r.text
            error = r.json()["errors"][0]
            assert error["field"] == "recipe" and "stays at chance" in error["reason"]
            assert "against chance" in error["reason"] and "288 images" in error["reason"]
            assert client.get("/api/studies").json() == []
            assert client.post("/api/studies", json=CANNOT_LEARN).status_code == 201  # unchecked
            from api.http.routes import studies

            assert studies._CHECKING.acquire(blocking=False)  # a check is training meanwhile
            try:
                busy = client.post("/api/studies?check=true", json=CANNOT_LEARN)
            finally:
                studies._CHECKING.release()
            assert busy.status_code == 429 and busy.json()["errors"][0]["field"] == "check"
    finally:
        store.close()
