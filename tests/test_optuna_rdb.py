"""Bulk trial creation leaves Optuna's tables as Optuna's own API would; params are recorded.

Issue 15 findings 12 (bulk creation through a documented path, exactly as Optuna would
store it) and 13 (every trial carries Optuna params with their distributions, so Optuna's
and optuna-dashboard's importance, slice and parallel-coordinate views work).
"""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial
from sqlalchemy import select

from search.store import Store, TrialOutcome, optuna_rdb, trial_params
from search.store.models import TrialRow
from search.store.promotion import copy_values

REGNET = {"preset": "RegNetX", "resolution": 32, "num_classes": 10, "stem": {"width": 16}}


def _mixed_spec(smoke_spec, samples=6):
    """Two AnyNet spaces (A: per-stage b, g; E: shared b, g) and a RegNet space."""
    smoke_spec["samples"] = samples
    smoke_spec["spaces"].append({**REGNET, "depth": [6, 10], "w0": [16, 32]})
    smoke_spec["complexity"] = {"flops": [0, 4e8]}
    return smoke_spec


def _rows(store: Store, optuna_study_id: int) -> dict[str, list[tuple]]:
    """Every row Optuna keeps for a study's trials, by table, ids replaced by numbers."""
    t = optuna_rdb.TRIALS
    out = {}
    with store.db.read() as session:
        out["trials"] = session.execute(
            select(t.c.number, t.c.state, t.c.datetime_start, t.c.datetime_complete)
            .where(t.c.study_id == optuna_study_id)
            .order_by(t.c.number)
        ).all()
        for table, key, value in (
            (optuna_rdb.PARAMS, "param_name", ("param_value", "distribution_json")),
            (optuna_rdb.USER_ATTRS, "key", ("value_json",)),
            (optuna_rdb.SYSTEM_ATTRS, "key", ("value_json",)),
        ):
            out[table.name] = session.execute(
                select(t.c.number, table.c[key], *(table.c[v] for v in value))
                .join(t, t.c.trial_id == table.c.trial_id)
                .where(t.c.study_id == optuna_study_id)
                .order_by(t.c.number, table.c[key])
            ).all()
    return out


def _one_by_one(store: Store, trials, name: str) -> optuna.Study:
    """The same trials made by Optuna's create_new_trial(template_trial), in a new study."""
    study_id = store.optuna.create_new_study([optuna.study.StudyDirection.MINIMIZE], name)
    for t in trials:
        template = create_trial(
            state=t.state,
            params=t.params,
            distributions=t.distributions,
            user_attrs=t.user_attrs,
            system_attrs=t.system_attrs,
        )
        store.optuna.create_new_trial(study_id, template_trial=template)
    return optuna.load_study(study_name=name, storage=store.optuna)


def _same(store: Store, bulk: optuna.Study, one: optuna.Study, skip: int = 0) -> None:
    """Equal through Optuna's API and row for row in its tables (the times are "now" in both)."""
    a, b = bulk.get_trials()[skip:], one.get_trials()
    assert len(a) == len(b) > 0
    for x, y in zip(a, b, strict=True):
        assert (x.number - skip, x.state, x.params, x.distributions) == (
            y.number,
            y.state,
            y.params,
            y.distributions,
        )
        assert (x.user_attrs, x.system_attrs, x.values) == (y.user_attrs, y.system_attrs, y.values)
        assert (x.datetime_start is None, x.datetime_complete is None) == (
            y.datetime_start is None,
            y.datetime_complete is None,
        )
    rows_a, rows_b = _rows(store, bulk._study_id), _rows(store, one._study_id)
    for table in rows_a:
        shift = [(r[0] - skip, *r[1:]) for r in rows_a[table] if r[0] >= skip]
        if table == "trials":
            assert [r[:2] for r in shift] == [r[:2] for r in rows_b[table]]
        else:
            assert shift == rows_b[table], table


@pytest.mark.parametrize("db", ["sqlite", pytest.param("pg", marks=pytest.mark.postgres)])
def test_bulk_trials_equal_optunas_own(request, smoke_spec, db):
    """Bulk-created trials read back exactly as trials made one at a time by Optuna."""
    url = request.getfixturevalue("sqlite_url" if db == "sqlite" else "pg_url")
    store = Store(url)
    study_id = store.create_study(_mixed_spec(smoke_spec))
    bulk = optuna.load_study(study_name=store.get_study(study_id).optuna_name, storage=store.optuna)
    assert len(bulk.trials) == 18 and {t.state for t in bulk.trials} == {TrialState.WAITING}
    _same(store, bulk, _one_by_one(store, bulk.trials, "waiting"))

    # cancelling fails the waiting trials in bulk, as set_trial_state_values(FAIL) would
    one = _one_by_one(store, bulk.trials, "failed")
    for t in one.trials:
        store.optuna.set_trial_state_values(t._trial_id, TrialState.FAIL)
    store.cancel_study(study_id)
    _same(store, bulk, one)

    # trials added after the cancel are created cancelled: FAIL, started and ended now
    with store.db.read() as session:
        source = session.get(TrialRow, bulk.trials[0]._trial_id)
    store.writer.add(study_id, [copy_values(source, 0, source.epochs, a) for a in (5, 6)])
    added = bulk.get_trials()[18:]
    assert [t.state for t in added] == [TrialState.FAIL] * 2
    _same(store, bulk, _one_by_one(store, added, "created-failed"), skip=18)
    assert store.count(study_id, status="cancelled", include_retried=True) == 20
    store.close()


def test_params_and_distributions_through_optunas_api(sqlite_url, smoke_spec):
    """Every trial carries its drawn values and complexity as params with distributions."""
    store = Store(sqlite_url)
    study_id = store.create_study(_mixed_spec(smoke_spec))
    study = optuna.load_study(
        study_name=store.get_study(study_id).optuna_name, storage=store.optuna
    )
    rows = {r["trial_id"]: r for r in store.trials(study_id, limit=100)}
    by_space: dict[str, list] = {}
    for t in study.trials:
        row = rows[t._trial_id]
        by_space.setdefault(t.params["space"], []).append(t)
        assert t.params["space"] == row["space"]
        for key in ("flops", "params", "acts"):
            assert t.params[key] == row[key]
        assert set(t.params) == set(t.distributions)
        for name, value in t.params.items():  # each value lies in its distribution
            d = t.distributions[name]
            assert d._contains(d.to_internal_repr(value)), (name, value, d)
    assert set(by_space) == {"AnyNetX_A", "AnyNetX_E", "RegNetX"}
    a, e, r = by_space["AnyNetX_A"][0], by_space["AnyNetX_E"][0], by_space["RegNetX"][0]
    d = a.distributions
    # AnyNetX_A: per-stage values as built, from the space's own distributions (docs/method.md §4)
    assert {"d1", "d2", "w1", "w2", "bot_mul1", "bot_mul2", "g1", "g2"} <= set(a.params)
    assert d["space"] == CategoricalDistribution(("AnyNetX_A", "AnyNetX_E", "RegNetX"))
    # AnyNetX draws w1 on a grid of 8, RegNetX derives it: one int range over both
    assert isinstance(d["w1"], IntDistribution) and (d["w1"].low, d["w1"].step) == (8, 1)
    assert d["bot_mul1"] == CategoricalDistribution((0.25, 0.5, 1.0))
    # the space's g values, and those the group rule built (g = w·b where w·b < g: 12, 24, …)
    assert {1, 2, 4, 8, 16, 32} <= set(d["g1"].choices)
    assert all(g % 4 == 0 for g in set(d["g1"].choices) - {1, 2, 4, 8, 16, 32})
    assert d["flops"] == IntDistribution(0, 400_000_000)  # widened to the bound; 0: not log
    assert d["params"].log and isinstance(d["params"], IntDistribution)
    # AnyNetX_E shares b and g: each recorded once, under its plain name
    assert "bot_mul" in e.params and "g" in e.params and "bot_mul1" not in e.params
    # RegNetX: d, w0, wa, wm, g, b as drawn, plus the stages they give
    assert {"depth", "w0", "wa", "wm", "g", "bot_mul", "d1", "w1"} <= set(r.params)
    assert r.distributions["wa"] == FloatDistribution(8.0, 255.9, log=True)  # DDS §3.3: wa < 256
    assert r.distributions["w0"] == IntDistribution(16, 32, log=True)
    # total depth: RegNetX draws it in [6, 10], AnyNet sums its stages': one range
    assert r.distributions["depth"].high == 10 and r.distributions["depth"].low <= 6
    # one distribution per name across the study, as Optuna requires
    for t in study.trials:
        for name, dist in t.distributions.items():
            assert dist == d.get(name, dist) or name not in d
    store.close()


def test_importance_slice_and_parallel_coordinates_work(sqlite_url, smoke_spec):
    """Optuna's own analysis runs on a dse study once trials finished (what the dashboard uses)."""
    pytest.importorskip("sklearn")
    store = Store(sqlite_url)
    smoke_spec["samples"] = 12
    study_id = store.create_study(smoke_spec)
    while (claim := store.claim("w")) is not None:
        size = sum(s["width"] * s["depth"] for s in claim.net["stages"])
        store.finish(claim, TrialOutcome("done", 1.0 / (1.0 + size / 100)))
    study = optuna.load_study(
        study_name=store.get_study(study_id).optuna_name, storage=store.optuna
    )
    w1 = study.trials[0].distributions["w1"]
    # the smoke spec's width [8, 32]: log-uniform (DDS §3.2), so step 1 (Optuna has no log steps)
    assert w1 == IntDistribution(8, 32, log=True)
    importances = optuna.importance.get_param_importances(study)
    assert {"space", "flops", "d1", "w1"} <= set(importances)
    assert abs(sum(importances.values()) - 1.0) < 1e-6
    slice_plot = optuna.visualization.plot_slice(study)
    assert len(slice_plot.data) >= len(importances) - 1  # one panel per param
    parallel = optuna.visualization.plot_parallel_coordinate(study, params=["w1", "d1", "flops"])
    assert len(parallel.data) >= len(study.trials)  # a line per finished trial
    store.close()


def test_promoted_trials_carry_their_params_and_fidelity(sqlite_url, smoke_spec):
    """A promotion (and a retry) records the network's params again, at its own epochs."""
    store = Store(sqlite_url)
    smoke_spec.update(samples=3, fidelities=[1, 3])
    study_id = store.create_study(smoke_spec)
    while (claim := store.claim("w")) is not None:  # level-1 claims are left running
        if claim.level == 0:
            store.finish(claim, TrialOutcome("done", 0.1 + 0.01 * claim.sample))
    study = optuna.load_study(
        study_name=store.get_study(study_id).optuna_name, storage=store.optuna
    )
    by_level: dict[int, dict] = {}
    for t in study.trials:
        by_level.setdefault(t.user_attrs["level"], {})[
            (t.params["space"], t.user_attrs["sample"])
        ] = t
    assert len(by_level[0]) == 6 and len(by_level[1]) == 2  # ceil(3 / 3) per space
    for key, promoted in by_level[1].items():
        twin = by_level[0][key]
        assert promoted.params == {**twin.params, "epochs": 3}
        assert promoted.distributions == twin.distributions
        assert promoted.distributions["epochs"] == CategoricalDistribution((1, 3))
    store.close()


def test_distributions_merge_across_spaces():
    """A name two spaces draw differently becomes one range covering both (Optuna's rule)."""
    from anynet.spaces import get_space

    a, regnet = get_space("AnyNetX_A"), get_space("RegNetX_pycls")
    rows_a = [trial_params.trial_params("A", {"g": 4, "w1": 64}, _cx(1), 1)]
    rows_r = [trial_params.trial_params("R", {"g": 24, "w1": 48}, _cx(2), 1)]
    dists = trial_params.study_distributions({"A": (a, rows_a), "R": (regnet, rows_r)}, [1, 3])
    assert dists["epochs"] == CategoricalDistribution((1, 3))
    assert dists["space"] == CategoricalDistribution(("A", "R"))
    # AnyNetX's g is a choice, RegNet's g power2_or_log_uniform: an int range over both
    assert dists["g"] == IntDistribution(1, 128)
    # w1: AnyNetX draws it (log-uniform, quantum 8), RegNet derives it: the union, step 1
    assert dists["w1"] == IntDistribution(8, 1024)
    restored = trial_params.from_json(trial_params.to_json(dists))
    assert restored == dists


def _cx(k: int) -> dict:
    return {"flops": 1000 * k, "params": 100 * k, "acts": 10 * k}


@pytest.mark.parametrize("db", ["sqlite", pytest.param("pg", marks=pytest.mark.postgres)])
def test_a_duplicate_trial_adds_nothing_anywhere(request, smoke_spec, db):
    """An existing (space, sample, level, attempt) is an IntegrityError, and the Optuna trial
    made in the same transaction is gone with it: never an Optuna trial without its row."""
    from sqlalchemy.exc import IntegrityError

    url = request.getfixturevalue("sqlite_url" if db == "sqlite" else "pg_url")
    store = Store(url)
    smoke_spec["samples"] = 2
    study_id = store.create_study(smoke_spec)
    with store.db.read() as session:
        source = session.get(TrialRow, store.trials(study_id, limit=1)[0]["trial_id"])
    twin = copy_values(source, source.level, source.epochs, source.attempt)
    with pytest.raises(IntegrityError):
        store.writer.add(study_id, [copy_values(source, 0, 1, 2), twin])
    study = optuna.load_study(
        study_name=store.get_study(study_id).optuna_name, storage=store.optuna
    )
    assert len(study.trials) == store.count(study_id, include_retried=True) == 4
    assert store.writer.add(study_id, [copy_values(source, 0, 1, 2)])  # the new one alone
    store.close()
