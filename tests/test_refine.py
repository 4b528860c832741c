"""The refine loop: a suggestion's id, the child spec it makes, the route, lineage and the CLI."""

from __future__ import annotations

import json

import pytest

from api.http.app import create_app
from search import refine as R
from search.analysis.results import results_for
from search.create import refine_plan
from search.spec.study import StudySpec
from search.store import Store
from testkit.api import finish_all, local_client
from testkit.specs import API_SPEC

SMALL = {"resolution": 16, "num_classes": 10, "stages": 2}
BASE = {
    "name": "parent",
    "dataset": {"name": "digits", "resolution": 8},
    "spaces": [{"preset": "AnyNetX_A", **SMALL}, {"preset": "RegNetX", "name": "R"}],
    "samples": 12,
    "fidelities": [1, 3],
    "complexity": {"flops": [0, 5e8]},
    "seed": 7,
}


def _spec() -> StudySpec:
    return StudySpec.model_validate(BASE)


def _row(kind, space, tail, **kw) -> dict:
    key = "constraint" if kind == "constraint" else "param"
    return {"kind": kind, "space": space, key: tail, **kw}


def test_ids_are_stable_and_parse_back():
    row = _row("constraint", "a:b", "shared_bottleneck")
    assert R.suggestion_id(row) == "constraint:a:b:shared_bottleneck"
    assert R.parse_id(R.suggestion_id(row)) == ("constraint", "a:b", "shared_bottleneck")
    assert R.suggestion_id(_row("range", "AnyNetX_E", "wa")) == "range:AnyNetX_E:wa"
    for bad in ("", "constraint", "range:A", "other:A:x", "constraint::x"):
        with pytest.raises(R.UnknownSuggestion, match="suggestion"):
            R.parse_id(bad)


@pytest.mark.parametrize("flag", ["shared_bottleneck", "shared_group_width", "increasing_width",
                                  "increasing_depth"])  # fmt: skip
def test_a_constraint_is_added_to_the_space_and_all_else_is_kept(flag):
    parent = _spec()
    child = R.child_spec(parent, _row("constraint", "AnyNetX_A", flag))
    assert child.space_names() == [f"AnyNetX_A+{flag}"]
    ds = child.spaces[0].resolve()
    assert ds.constraints == (flag,) and ds.stages == 2 and ds.resolution == 16
    for key in ("dataset", "samples", "fidelities", "complexity", "recipe", "seed", "promote"):
        assert getattr(child, key) == getattr(parent, key), key
    assert child.name == f"parent › AnyNetX_A+{flag}"
    # a constraint the space has already no longer applies
    with pytest.raises(R.NotApplicable, match="already"):
        R.child_spec(child, _row("constraint", f"AnyNetX_A+{flag}", flag))


def test_the_regnet_constraint_makes_the_regnet_form_of_the_space():
    child = R.child_spec(_spec(), _row("constraint", "AnyNetX_A", "regnet"))
    ds = child.spaces[0].resolve()
    assert ds.kind == "regnet" and ds.num_stages == 2 and ds.resolution == 16
    assert ds.num_classes == 10 and ds.block == "res_bottleneck"
    with pytest.raises(R.NotApplicable, match="RegNet space"):
        R.child_spec(_spec(), _row("constraint", "R", "regnet"))
    family = StudySpec.model_validate({**BASE, "spaces": [{"preset": "EfficientNet"}]})
    with pytest.raises(R.NotApplicable, match="mbconv blocks"):
        R.child_spec(family, _row("constraint", "EfficientNet", "regnet"))
    with pytest.raises(R.NotApplicable, match="RegNet space"):
        R.child_spec(_spec(), _row("constraint", "R", "shared_bottleneck"))


def test_a_range_narrows_that_stage_or_parameter_only():
    child = R.child_spec(_spec(), _row("range", "AnyNetX_A", "w2", lo=40.0, hi=200.0))
    ds = child.spaces[0].resolve()
    assert ds.width[0].lo == 8 and ds.width[0].hi == 1024  # stage 1 as it was
    assert (ds.width[1].lo, ds.width[1].hi, ds.width[1].quantum) == (40, 200, 8)
    assert child.space_names() == ["AnyNetX_A w2∈[40, 200]"]
    shared = R.child_spec(_spec(), _row("range", "AnyNetX_A", "bot_mul", lo=0.5, hi=1.0))
    b = shared.spaces[0].resolve().bottleneck_multiplier
    assert [d.values for d in b] == [(1.0, 0.5), (1.0, 0.5)]
    reg = R.child_spec(_spec(), _row("range", "R", "wa", lo=20.04, hi=60.0)).spaces[0].resolve()
    assert (reg.wa.lo, reg.wa.hi, reg.kind) == (20.1, 60.0, "regnet")  # snapped to the quantum


@pytest.mark.parametrize(
    ("space", "param", "why"),
    [
        ("AnyNetX_A", "flops", "measure of the networks"),
        ("AnyNetX_A", "depth", "measure of the networks"),
        ("R", "w1", "derived"),
        ("R", "d3", "derived"),
    ],
)
def test_ranges_of_what_the_space_does_not_draw_do_not_apply(space, param, why):
    with pytest.raises(R.NotApplicable, match=why):
        R.child_spec(_spec(), _row("range", space, param, lo=1.0, hi=2.0))


def test_family_fields_refine_by_their_sampled_names_and_branch_weights_say_why_not():
    effnet = StudySpec.model_validate({**BASE, "spaces": [{"preset": "EfficientNet"}]})
    child = R.child_spec(effnet, _row("range", "EfficientNet", "exp2", lo=4.0, hi=6.0))
    assert child.spaces[0].resolve().expansion[1].values == (6.0,)  # stage 2's t, narrowed
    inception = StudySpec.model_validate({**BASE, "spaces": [{"preset": "Inception"}]})
    with pytest.raises(R.NotApplicable, match="branch weights"):
        R.child_spec(inception, _row("range", "Inception", "br1_1x1", lo=1.0, hi=2.0))
    rows = R.annotate([_row("range", "Inception", "br1_1x1", lo=1.0, hi=2.0)], inception)
    assert rows[0]["applies"] is False and "branch weights" in rows[0]["why_not"]


def test_a_too_wide_or_empty_range_does_not_apply():
    with pytest.raises(R.NotApplicable, match="too wide"):
        R.child_spec(_spec(), _row("range", "R", "wa", lo=9.0, hi=200.0, narrows=False))
    with pytest.raises(R.NotApplicable, match="no bootstrap interval"):
        R.child_spec(_spec(), _row("range", "R", "wa", lo=None, hi=None))
    with pytest.raises(R.NotApplicable, match="cannot be narrowed"):
        R.child_spec(_spec(), _row("range", "R", "wm", lo=1.5001, hi=1.5002))
    with pytest.raises(R.UnknownSuggestion, match="no space"):
        R.child_spec(_spec(), _row("range", "nope", "wa", lo=20.0, hi=30.0))


def test_a_child_space_that_does_not_validate_does_not_apply():
    with pytest.raises(R.NotApplicable, match="cannot be applied: constraints: unknown"):
        R._validated({"preset": "AnyNetX_A", "constraints": ["bogus"]}, "bogus")


def test_annotate_and_find():
    rows = [
        _row("constraint", "AnyNetX_A", "shared_bottleneck", text="t"),
        _row("range", "AnyNetX_A", "flops", lo=1.0, hi=2.0, text="t"),
    ]
    R.annotate(rows, _spec())
    assert [r["id"] for r in rows] == [
        "constraint:AnyNetX_A:shared_bottleneck",
        "range:AnyNetX_A:flops",
    ]
    assert [r["applies"] for r in rows] == [True, False] and "measure" in rows[1]["why_not"]
    assert R.find(rows, rows[0]["id"], _spec()) is rows[0]
    with pytest.raises(R.NotApplicable, match="does not apply"):
        R.find(rows, "range:AnyNetX_A:flops", _spec())
    with pytest.raises(R.NotApplicable, match="no longer applies"):
        R.find(rows, "constraint:AnyNetX_A:increasing_depth", _spec())
    with pytest.raises(R.UnknownSuggestion, match="no suggestion"):
        R.find(rows, "range:AnyNetX_A:w9", _spec())
    with pytest.raises(R.UnknownSuggestion, match="no space"):
        R.find(rows, "constraint:Z:shared_bottleneck", _spec())
    with pytest.raises(R.UnknownSuggestion, match="unknown constraint"):
        R.find(rows, "constraint:AnyNetX_A:wider", _spec())


# --- the route, on SQLite ----------------------------------------------------------------


@pytest.fixture
def client(store):
    with local_client(create_app(store=store)) as c:
        yield c


def _created(client, spec=API_SPEC) -> int:
    r = client.post("/api/studies", json=spec)
    assert r.status_code in (201, 202), r.text
    assert _running(client, r.json()["id"])["status"] == "running"
    return r.json()["id"]


SB = "constraint:AnyNetX_A:shared_bottleneck"


def _running(client, study_id: int, timeout: float = 120.0) -> dict:
    """The study once its creation is over (202: sampled in the background; a busy machine)."""
    import time

    end = time.monotonic() + timeout
    while (detail := client.get(f"/api/studies/{study_id}").json())["status"] == "creating":
        assert time.monotonic() < end, f"study {study_id} still creating after {timeout} s"
        time.sleep(0.2)
    return detail


def test_refine_route_creates_the_child_and_is_idempotent(client, store):
    parent = _created(client)
    r = client.post(f"/api/studies/{parent}/refine", json={"suggestion": SB})
    assert r.status_code == 409 and "no finished trials" in r.json()["detail"], r.text
    finish_all(store)
    row = next(x for x in results_for(store, parent)["refinement"] if x["id"] == SB)
    assert row["applies"] is True and row["why_not"] is None
    r = client.post(f"/api/studies/{parent}/refine", json={"suggestion": SB})
    assert r.status_code in (201, 202), r.text
    child = r.json()["id"]
    assert r.headers["location"] == f"/api/studies/{child}"
    detail = _running(client, child)
    assert detail["spaces"] == ["AnyNetX_A+shared_bottleneck"]
    assert detail["parent"] == {"id": parent, "name": API_SPEC["name"]}
    assert detail["lineage"] == [{"id": parent, "name": API_SPEC["name"]}]
    assert detail["suggestion"]["id"] == SB and detail["suggestion"]["space"] == "AnyNetX_A"
    assert detail["suggestion"]["refined"] == "AnyNetX_A+shared_bottleneck"
    assert detail["suggestion"]["text"] == row["text"]
    assert detail["spec"]["seed"] == API_SPEC.get("seed", 0)
    assert detail["spec"]["samples"] == API_SPEC["samples"]
    assert detail["spec"]["fidelities"] == API_SPEC["fidelities"]
    assert (
        detail["spec"]["dataset"] == client.get(f"/api/studies/{parent}").json()["spec"]["dataset"]
    )
    up = client.get(f"/api/studies/{parent}").json()
    assert up["children"] == [
        {"id": child, "name": detail["name"], "status": detail["status"], "suggestion": SB}
    ]
    assert up["parent"] is None and up["lineage"] == [] and up["suggestion"] is None
    again = client.post(f"/api/studies/{parent}/refine", json={"suggestion": SB})
    assert again.status_code == 200 and again.json()["id"] == child  # the same child
    assert len(client.get("/api/studies").json()) == 2


def test_refine_route_errors(client, store):
    parent = _created(client)
    finish_all(store)
    url = f"/api/studies/{parent}/refine"
    r = client.post(url, json={"suggestion": "constraint:Nope:shared_bottleneck"})
    assert r.status_code == 404 and "Nope" in r.json()["detail"]
    r = client.post(url, json={"suggestion": "gibberish"})
    assert r.status_code == 404 and "gibberish" in r.json()["detail"]
    r = client.post(url, json={"suggestion": "range:AnyNetX_A:zz9"})
    assert r.status_code == 404 and "range:AnyNetX_A:zz9" in r.json()["detail"]
    # AnyNetX_E has every flag constraint: adding one no longer applies
    r = client.post(url, json={"suggestion": "constraint:AnyNetX_E:shared_bottleneck"})
    assert r.status_code == 409 and "no longer applies" in r.json()["detail"]
    r = client.post(url, json={"suggestion": "range:AnyNetX_A:flops"})
    assert r.status_code == 409 and "complexity" in r.json()["detail"]
    r = client.post(url, json={"suggestion": SB, "extra": 1})
    assert r.status_code == 422
    r = client.post(url, json={"suggestion": SB, "fidelity": 7})
    assert r.status_code == 422 and "fidelity" in r.json()["detail"]
    assert client.post("/api/studies/999/refine", json={"suggestion": SB}).status_code == 404
    creating = store.begin_study(API_SPEC)  # a parent still being created
    r = client.post(f"/api/studies/{creating}/refine", json={"suggestion": SB})
    assert r.status_code == 409 and "still being created" in r.json()["detail"]


def test_three_generations_of_lineage(client, store):
    a = _created(client)
    finish_all(store)
    b = client.post(f"/api/studies/{a}/refine", json={"suggestion": SB}).json()["id"]
    assert _running(client, b)["status"] == "running"
    finish_all(store)
    sg = "constraint:AnyNetX_A+shared_bottleneck:shared_group_width"
    r = client.post(f"/api/studies/{b}/refine", json={"suggestion": sg})
    assert r.status_code in (201, 202), r.text
    c = r.json()["id"]
    detail = _running(client, c)
    assert [x["id"] for x in detail["lineage"]] == [a, b]
    assert detail["parent"]["id"] == b
    assert detail["spaces"] == ["AnyNetX_A+shared_bottleneck+shared_group_width"]
    ds = StudySpec.model_validate(detail["spec"]).spaces[0].resolve()
    assert set(ds.constraints) == {"shared_bottleneck", "shared_group_width"}
    assert [x["id"] for x in client.get(f"/api/studies/{b}").json()["children"]] == [c]
    assert [x["id"] for x in client.get(f"/api/studies/{a}").json()["children"]] == [b]
    assert store.lineage(a) == [] and store.children(c) == []


# --- the CLI -------------------------------------------------------------------------------


def test_cli_refine_and_show(tmp_path, capsys):
    from api.cli import main

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    store = Store(url)
    parent = store.create_study(StudySpec.model_validate(API_SPEC))
    assert main(["study", "refine", str(parent), SB, "--db", url]) == 2
    assert "no finished trials" in capsys.readouterr().err
    finish_all(store)
    assert main(["study", "refine", str(parent), SB, "--db", url, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["parent"] == parent and out["created"] is True
    child = out["id"]
    assert main(["study", "refine", str(parent), SB, "--db", url]) == 0
    assert capsys.readouterr().out.strip() == str(child)  # the same child again
    assert (
        main(["study", "refine", str(parent), "constraint:X:shared_bottleneck", "--db", url]) == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "X" in err
    assert main(["study", "show", str(child), "--db", url, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["lineage"] == [{"id": parent, "name": API_SPEC["name"]}]
    assert shown["suggestion"]["id"] == SB
    assert main(["study", "show", str(child), "--db", url]) == 0
    text = capsys.readouterr().out
    assert f"lineage: {parent} 'api test' → {child}" in text and f"tries: {SB}" in text
    assert main(["study", "show", str(parent), "--db", url]) == 0
    assert f"child: {child}" in capsys.readouterr().out
    store.close()


def test_lineage_in_the_store_on_postgres(pg_url):
    """The same lineage on PostgreSQL (migration 0004's columns and foreign key)."""
    store = Store(pg_url)
    try:
        a = store.create_study(StudySpec.model_validate(API_SPEC))
        finish_all(store)
        spec, record = refine_plan(store, a, SB)
        b = store.create_study(spec, parent_id=a, suggestion=record)
        finish_all(store)
        spec, record = refine_plan(
            store, b, "constraint:AnyNetX_A+shared_bottleneck:increasing_width"
        )
        c = store.create_study(spec, parent_id=b, suggestion=record)
        assert [x["id"] for x in store.lineage(c)] == [a, b]
        assert store.child_trying(a, SB) == b and store.child_trying(b, SB) is None
        assert store.get_study(c).suggestion["refined"] == (
            "AnyNetX_A+shared_bottleneck+increasing_width"
        )
        store.discard_study(b)  # a removed parent leaves its child without one
        assert store.get_study(c).parent_id is None and store.lineage(c) == []
    finally:
        store.close()


def test_dse_edf_prints_the_refine_command_of_each_finding(tmp_path, capsys):
    import random
    import shlex

    from api.cli import main
    from search.store import TrialOutcome

    url = f"sqlite:///{tmp_path / 'edf.db'}"
    store = Store(url)
    space = {"stem": {"type": "cifar", "width": 8}, "stages": 2, "depth": [1, 2], "width": [8, 64]}
    spec = {
        **API_SPEC,
        "spaces": [{"preset": "AnyNetX_A", **space}],
        "samples": 60,
        "fidelities": [1],
    }
    parent = store.create_study(spec)
    rng = random.Random(0)
    while (claim := store.claim("t")) is not None:  # wider last stages are better
        err = 0.6 - 0.005 * claim.net["stages"][1]["width"] + rng.gauss(0, 0.01)
        store.finish(claim, TrialOutcome("done", err))
    assert main(["edf", str(parent), "--db", url]) == 0
    out = capsys.readouterr().out
    cmds = [line.split("try it: ", 1)[1] for line in out.splitlines() if "try it: " in line]
    assert cmds == [f"dse study refine {parent} constraint:AnyNetX_A:increasing_width"]
    assert main([*shlex.split(cmds[0])[1:], "--db", url]) == 0  # the printed command works
    child = int(capsys.readouterr().out)
    assert store.get_study(child).spec.space_names() == ["AnyNetX_A+increasing_width"]
    store.close()


def _racing_children(url: str) -> None:
    """Four requests for one suggestion at once create one child; the others are told which."""
    import threading

    from search.store.studies import ChildExists

    store = Store(url)
    parent = store.begin_study(_spec())
    record = {"id": "constraint:AnyNetX_A:shared_bottleneck"}
    barrier, outcomes = threading.Barrier(4), []

    def ask() -> None:
        barrier.wait(60)
        try:
            outcomes.append(("created", store.begin_study(_spec(), parent, record)))
        except ChildExists as e:
            outcomes.append(("exists", e.study_id))

    pool = [threading.Thread(target=ask) for _ in range(4)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    created = [i for kind, i in outcomes if kind == "created"]
    assert len(created) == 1 and len(outcomes) == 4
    assert {i for _, i in outcomes} == set(created)
    assert [c["id"] for c in store.children(parent)] == created
    store.close()


def test_racing_refine_requests_make_one_child_sqlite(sqlite_url):
    _racing_children(sqlite_url)


@pytest.mark.postgres
def test_racing_refine_requests_make_one_child_postgres(pg_url):
    _racing_children(pg_url)


# --- a child reuses the parent's reference runs and is tested against the parent's space ----
@pytest.mark.parametrize("db", ["sqlite", "postgres"])
def test_a_child_reuses_finished_reference_runs_and_is_tested_against_its_parent(
    tmp_path, request, db
):
    from search.store import reference_reuse

    url = request.getfixturevalue("pg_url") if db == "postgres" else f"sqlite:///{tmp_path}/r.db"
    store = Store(url)
    try:
        spec = {**API_SPEC, "references": ["resnet20"], "reference_seeds": 2, "fidelities": [1]}
        parent = store.create_study(spec)
        n = finish_all(store, error=lambda c: 0.5 if c.space == "resnet20" else
                       (0.1 if c.space == "AnyNetX_A" else 0.3) + 0.001 * c.sample)  # fmt: skip
        assert n == 2 * API_SPEC["samples"] + 2
        pr = results_for(store, parent)
        assert pr["vs_parent"] is None and pr["references"]["resnet20"]["n_reused"] == 0
        child_spec, record = refine_plan(store, parent, SB)
        child = store.create_study(child_spec, parent_id=parent, suggestion=record)
        refs = store.trials(child, space="resnet20")
        assert [t["status"] for t in refs] == ["done", "done"]  # copied, not queued
        assert all(t["worker"] == reference_reuse.REUSED_WORKER for t in refs)
        assert all(t["reason"].startswith(f"reused from study {parent} trial") for t in refs)
        assert [t["error"] for t in refs] == [0.5, 0.5]
        left = finish_all(store, error=lambda c: 0.3 + 0.001 * c.sample)
        assert left == API_SPEC["samples"]  # only the refined space's networks trained
        r = results_for(store, child)
        marker = r["references"]["resnet20"]
        assert marker["n"] == 2 and marker["n_reused"] == 2
        assert f"reused from study {parent}" in marker["reused"]
        from api.cli.edf import table

        assert f"2 of 2 seeds reused from study {parent}" in table(r)
        row = r["vs_parent"]
        assert (
            row["a"] == "AnyNetX_A+shared_bottleneck" and row["b"] == f"parent {parent}: AnyNetX_A"
        )
        assert row["parent"] == parent and row["test"] == "two-sample KS"
        assert row["D"] == 1.0 and row["q"] == row["p"] and r["ks"] == [row]  # 0.3 vs 0.1
        norm = results_for(store, child, normalize="flops", bins=1)["vs_parent"]
        assert norm["test"] == "stratified permutation KS" and norm["q"] is not None
        # the child's results read the parent's trials: its version follows them
        from datetime import timedelta

        from sqlalchemy import update

        from search.store.models import TrialRow, utcnow

        before = store.version(child)
        with store.db.write() as session, session.begin():
            session.execute(
                update(TrialRow)
                .where(TrialRow.study_id == parent)
                .values(updated_at=utcnow() + timedelta(hours=1))
            )
        assert store.version(child) != before
        # another recipe is another training: nothing is reused
        recipe = child_spec.recipe.model_copy(update={"lr": 0.0123})
        other = child_spec.model_copy(update={"recipe": recipe})
        again = {**record, "id": f"{record['id']}:other-recipe"}  # one child a suggestion
        third = store.create_study(other, parent_id=parent, suggestion=again)
        assert {t["status"] for t in store.trials(third, space="resnet20")} == {"waiting"}
    finally:
        store.close()


def test_spaces_of_a_study_draw_from_their_own_seed_streams(tmp_path):
    from search.store.creation import space_seed

    assert space_seed(0, "a") == space_seed(0, "a") != space_seed(0, "b") != space_seed(1, "a")
    same = {"preset": "AnyNetX_A", **SMALL}
    spec = {**BASE, "spaces": [{**same, "name": "a"}, {**same, "name": "b"}], "samples": 8,
            "fidelities": [1]}  # fmt: skip
    store = Store(f"sqlite:///{tmp_path / 'seeds.db'}")
    try:
        sid = store.create_study(spec)
        nets = {s: [json.dumps(t["spec"], sort_keys=True) for t in store.trials(sid, space=s)]
                for s in ("a", "b")}  # fmt: skip
        assert len(nets["a"]) == len(nets["b"]) == 8
        assert not set(nets["a"]) & set(nets["b"])  # one seed for both drew the same 8
    finally:
        store.close()
