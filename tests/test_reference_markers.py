"""Reference markers (issue 13.3): reference networks trained with a study's recipe at every
level and seed, kept out of every space's statistics, drawn with their percentile per space.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import ValidationError

from search.analysis.markers import beats_text, percentile
from search.spec.study import StudySpec
from search.store import Store, TrialOutcome
from testkit.api import local_client
from testkit.specs import TINY_SPACE

NETSPEC = {"stem": {"type": "cifar", "width": 8}, "stages": [{"depth": 1, "width": 8}]}
SPEC = {
    "name": "with references",
    "dataset": {"name": "digits", "resolution": 16},
    "spaces": [TINY_SPACE, {**TINY_SPACE, "preset": "AnyNetX_C", "name": "C"}],
    "samples": 6,
    "fidelities": [1, 2],
    "promote": 0.5,
    "references": ["resnet20", {"name": "tiny regnet", "regnet": "2,8,8,2,8"}, NETSPEC],
    "reference_seeds": 2,
    "seed": 5,
}


def _spec(**kw) -> dict:
    return {**SPEC, **kw}


# --- the spec -------------------------------------------------------------------------------
def test_spec_accepts_names_regnet_parameters_and_netspecs():
    spec = StudySpec.model_validate(SPEC)
    assert spec.reference_labels() == ["resnet20", "tiny regnet", "net2"]
    assert spec.references[1].regnet == (2, 8, 8, 2, 8)
    unset = {k: v for k, v in SPEC.items() if k != "reference_seeds"}
    assert StudySpec.model_validate(unset).reference_seeds == 3  # the default
    seeds = unset | {"seeds": 4}
    assert StudySpec.model_validate(seeds).reference_seeds == 4  # the name for it
    again = StudySpec.model_validate(spec.model_dump(mode="json"))  # stored, read back
    assert again.reference_labels() == spec.reference_labels() and again.reference_seeds == 2
    regnet = {"regnet": {"depth": 2, "w0": 8, "wa": 8, "wm": 2, "group_width": 8}}
    assert StudySpec.model_validate(_spec(references=[regnet])).reference_labels() == [
        "RegNet(2,8,8,2,8)"
    ]


@pytest.mark.parametrize(
    ("references", "extra", "says"),
    [
        (["resnet21"], {}, "unknown network 'resnet21'"),
        ([{"regnet": "2,8,8"}], {}, "D,W0,WA,WM,G"),
        ([{"regnet": "2,9,8,2,8"}], {}, "regnet."),
        ([{"reference": "resnet20", "regnet": "2,8,8,2,8"}], {}, "exactly one"),
        ([{"net": {"stages": []}}], {}, "net.stages"),
        (["lenet", "lenet"], {}, "listed twice"),
        ([{"name": "C", "reference": "lenet"}], {}, "taken by a space"),
        ([{"regnet": "2,8,8,2,8", "options": {"dropout": 0.1}}], {}, "options"),
        (["lenet"], {"reference_seeds": 0}, "reference_seeds"),
        (["lenet"] * 21, {}, "references"),
    ],
)
def test_spec_refuses_bad_references_naming_them(references, extra, says):
    with pytest.raises(ValidationError) as info:
        StudySpec.model_validate(_spec(references=references, **extra))
    assert says in str(info.value)


def test_a_reference_too_small_for_the_dataset_is_refused_at_the_spec():
    with pytest.raises(ValidationError) as info:
        StudySpec.model_validate(_spec(references=["vgg16_cifar"]))  # needs 32 px, gets 16
    assert "references.0 (vgg16_cifar) at 16 px: resolution: vgg16_cifar needs at least 32" in str(
        info.value
    )


def test_operator_limits_bound_references_seeds_and_inline_sizes():
    from api.http.limits import SpecLimitError, SpecLimits

    spec = StudySpec.model_validate(SPEC)
    SpecLimits().check(spec)
    for limits, field in (
        (SpecLimits(max_references=2), "references"),
        (SpecLimits(max_reference_seeds=1), "reference_seeds"),
    ):
        with pytest.raises(SpecLimitError) as info:
            limits.check(spec)
        assert info.value.field == field, (field, str(info.value))
    for limits, field in (  # the spaces are as deep and wide: check the references alone
        (SpecLimits(max_depth=1), "references.1.depth"),  # the RegNet: 1 + 1 blocks
        (SpecLimits(max_width=15), "references.1.width"),  # its widths: 8, 16
    ):
        with pytest.raises(SpecLimitError) as info:
            limits.check_references(spec)
        assert info.value.field == field, (field, str(info.value))
    SpecLimits(max_depth=2, max_width=32).check_references(spec)


def test_api_refuses_an_unknown_reference_with_a_422_naming_it(tmp_path):

    from api.http.app import create_app

    store = Store(f"sqlite:///{tmp_path / 'api.db'}")
    try:
        with local_client(create_app(store=store)) as client:
            r = client.post("/api/studies", json=_spec(references=["nosuchnet"]))
            assert r.status_code == 422, r.text
            assert "references" in r.text and "nosuchnet" in r.text
    finally:
        store.close()


# --- percentile arithmetic ------------------------------------------------------------------
def test_percentile_is_the_share_of_a_space_with_a_higher_error():
    errors = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    assert percentile(0.25, errors) == pytest.approx(0.6)  # 0.3, 0.4, 0.5 are worse
    assert percentile(0.3, errors) == pytest.approx(0.4)  # a tie does not count as beaten
    assert percentile(0.05, errors) == 1.0 and percentile(0.9, errors) == 0.0
    # NDS weights: the weighted share (0.4 and 0.5 carry 3 of the 5 units of weight)
    assert percentile(0.35, errors, [1, 0.5, 0.5, 1, 2]) == pytest.approx(3 / 5)
    assert percentile(None, errors) is None and percentile(0.2, np.zeros(0)) is None
    assert beats_text("resnet20", 0.62, "AnyNetX_E") == "resnet20 beats 62% of AnyNetX_E"


# --- the store --------------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", pytest.param("pg", marks=pytest.mark.postgres)])
def store(request):
    s = Store(request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url"))
    yield s
    s.close()


def _error(claim) -> float:
    """Hand-made errors: references at 0.3 + 0.02 per seed; a space's sample k at 0.1 + 0.05 k."""
    if claim.space in ("resnet20", "tiny regnet", "net2"):  # a reference trial's label
        return 0.3 + 0.02 * claim.sample
    return 0.1 + 0.05 * claim.sample - 0.01 * claim.level


def _finish_all(store) -> list:
    claims = []
    while (claim := store.claim("test")) is not None:
        claims.append(claim)
        store.finish(claim, TrialOutcome("done", _error(claim), seconds=1.0))
    return claims


def test_creation_stores_every_reference_seed_at_every_level(store):
    study_id = store.create_study(SPEC)
    rows = store.trials(study_id, limit=1000)
    refs = [r for r in rows if r["reference"] is not None]
    # 3 references x 2 seeds x 2 levels, all waiting from the start (never promoted)
    assert len(refs) == 3 * 2 * 2
    assert {(r["reference"], r["sample"], r["level"], r["epochs"]) for r in refs} == {
        (label, seed, level, epochs)
        for label in ("resnet20", "tiny regnet", "net2")
        for seed in (0, 1)
        for level, epochs in ((0, 1), (1, 2))
    }
    assert all(r["status"] == "waiting" for r in refs)
    resnet = next(r for r in refs if r["reference"] == "resnet20")
    assert resnet["spec"]["reference"] == "resnet20" and resnet["spec"]["resolution"] == 16
    from anynet.network import network_complexity, network_spec

    assert resnet["flops"] == network_complexity(network_spec(resnet["spec"]))["flops"]
    assert len([r for r in rows if r["reference"] is None]) == 2 * 6  # level 0 of each space
    progress = store.progress(study_id)
    assert set(progress["spaces"]) == {"AnyNetX_A", "C"}
    assert progress["references"]["resnet20"][1]["waiting"] == 2
    assert progress["totals"]["total"] == 12 + 12  # every trial of the study
    assert sum(e["total"] for levels in progress["spaces"].values() for e in levels) == 12


def test_references_stay_out_of_spaces_promotion_and_statistics(store):
    from search.analysis.results import results_for

    study_id = store.create_study(SPEC)
    claims = _finish_all(store)
    seeds = {c.seed for c in claims if c.space == "resnet20"}
    assert seeds == {5, 6}  # seed k trains with the study's seed + k: each repeat differs
    rows = store.trials(study_id, limit=1000)
    level1 = [r for r in rows if r["level"] == 1 and r["reference"] is None]
    assert len(level1) == 2 * 3  # promote 0.5 of 6 per space; no reference promoted
    assert store.get_study(study_id).status.value == "done"
    results = results_for(store, study_id)
    assert set(results["spaces"]) == {"AnyNetX_A", "C"}  # no reference is a space
    assert results["spaces"]["C"]["n"] == 6 and results["ks"][0]["a"] == "AnyNetX_A"
    assert {p["space"] for p in results["rank_correlation"]} == {"AnyNetX_A", "C", "all"}
    ref = results["references"]["resnet20"]
    assert ref["n"] == 2 and ref["errors"] == pytest.approx([0.3, 0.32])
    assert ref["mean"] == pytest.approx(0.31) and (ref["lo"], ref["hi"]) == (0.3, 0.32)
    assert ref["sd"] == pytest.approx(np.std([0.3, 0.32], ddof=1))
    # space errors 0.10, 0.15, ..., 0.35: only 0.35 is above 0.31 → beats 1 of 6
    assert ref["percentile"]["C"] == pytest.approx(1 / 6)
    assert ref["text"]["C"] == "resnet20 beats 17% of C"
    at2 = results_for(store, study_id, fidelity=2)["references"]["resnet20"]
    assert at2["n"] == 2 and at2["mean"] == pytest.approx(0.31)  # trained at level 1 too
    frame = store.trial_frame(study_id)
    assert frame["reference"].notna().sum() == 12


def test_a_retried_reference_trial_stays_a_reference(store):
    from search.store.promotion import copy_values

    study_id = store.create_study(_spec(fidelities=[1]))
    claim = next(c for c in iter(lambda: store.claim("w"), None) if c.space == "tiny regnet")
    from search.store.models import TrialRow

    with store.db.read() as session:
        row = session.get(TrialRow, claim.trial_id)
        values = copy_values(row, row.level, row.epochs, row.attempt + 1)
    assert values["reference"] == "tiny regnet" and values["sample"] == claim.sample
    assert store.writer.add(study_id, [values])  # its own key: a retry is stored


# --- the API and the CLI ----------------------------------------------------------------------
def test_edf_route_and_dse_edf_show_the_markers(store, tmp_path, capsys):

    from api.cli import main
    from api.http.app import create_app
    from api.http.schemas import Results

    study_id = store.create_study(SPEC)
    _finish_all(store)
    with local_client(create_app(store=store)) as client:
        r = client.get(f"/api/studies/{study_id}/edf")
        assert r.status_code == 200, r.text
        body = Results.model_validate(r.json())
        marker = body.references["tiny regnet"]
        assert marker.n == 2 and marker.mean == pytest.approx(0.31)
        assert marker.percentile == {"AnyNetX_A": pytest.approx(1 / 6), "C": pytest.approx(1 / 6)}
        assert set(body.spaces) == {"AnyNetX_A", "C"}
        normed = client.get(f"/api/studies/{study_id}/edf?normalize=flops&bins=1").json()
        assert set(normed["references"]) == {"resnet20", "tiny regnet", "net2"}
        show = client.get(f"/api/studies/{study_id}").json()
        assert show["progress"]["references"]["net2"][0]["done"] == 2
    url = store.url
    assert main(["edf", str(study_id), "--db", url]) == 0
    out = capsys.readouterr().out
    assert "reference networks" in out
    line = next(x for x in out.splitlines() if x.strip().startswith("resnet20 ("))
    assert line.endswith("MF, 0.334 M params): error 0.3100 [0.3000, 0.3200] over 2 of 2 seeds")
    assert "resnet20 beats 17% of AnyNetX_A" in out
    assert main(["edf", str(study_id), "--db", url, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["references"]["net2"]["percentile"]["C"] == pytest.approx(1 / 6)
    assert main(["study", "show", str(study_id), "--db", url]) == 0
    shown = capsys.readouterr().out.split("reference networks:")
    assert "tiny regnet" not in shown[0] and "AnyNetX_A" in shown[0]
    row = next(x.split() for x in shown[1].splitlines() if x.strip().startswith("net2"))
    assert row[1:5] == ["0", "1", "0", "0"] and row[5] == "2"  # level 0, 1 epoch: 2 done
    png = tmp_path / "edf.png"
    assert main(["edf", str(study_id), "--db", url, "--png", str(png)]) == 0
    assert png.stat().st_size > 10_000


# --- real training ----------------------------------------------------------------------------
@pytest.mark.slow
def test_a_worker_trains_reference_trials(sqlite_url):
    from worker.loop import run_worker

    spec = _spec(samples=1, fidelities=[1], spaces=[TINY_SPACE], references=["lenet"])
    store = Store(sqlite_url)
    try:
        study_id = store.create_study(spec)
        trained = run_worker(sqlite_url, exit_when_idle=True, threads=1, poll_seconds=0.1,
                             install_signals=False)  # fmt: skip
        assert trained == 1 + 2
        refs = [r for r in store.trials(study_id) if r["reference"] == "lenet"]
        assert [r["status"] for r in refs] == ["done", "done"], refs
        assert all(0 <= r["error"] <= 1 and r["epochs_done"] == 1 for r in refs)
        from search.analysis.results import results_for

        marker = results_for(store, study_id)["references"]["lenet"]
        assert marker["n"] == 2 and marker["percentile"]["AnyNetX_A"] in (0.0, 1.0)
    finally:
        store.close()


@pytest.mark.slow
def test_check_trains_the_first_reference(sqlite_url, tmp_path, capsys, monkeypatch):
    from api.cli import main

    monkeypatch.setenv("DSE_THREADS", "1")
    path = tmp_path / "spec.json"
    refs = ["resnet20", {"name": "tiny regnet", "regnet": "2,8,8,2,8"}]
    path.write_text(json.dumps(_spec(fidelities=[1], references=refs)))
    code = main(["study", "create", str(path), "--check", "--device", "cpu", "--db", sqlite_url,
                 "--json"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "resnet20 trained 1 epoch(s) on digits" in captured.err and "it learns" in captured.err
    assert json.loads(captured.out)["check"]["network"] == "resnet20"


def test_the_estimate_counts_the_reference_trials_and_their_time():
    from search.estimate import Rate, estimate

    rate = Rate("measured", 1e9, 0, "cpu", "test")
    spec = StudySpec.model_validate(SPEC)
    without = estimate(StudySpec.model_validate(_spec(references=[])), rate)
    est = estimate(spec, rate)
    assert est["trials"] == without["trials"] + 3 * 2 * 2  # 3 references x 2 seeds x 2 levels
    assert [lv["reference_trials"] for lv in est["levels"]] == [6, 6]
    assert [r["name"] for r in est["references"]] == ["resnet20", "tiny regnet", "net2"]
    assert all(r["trials"] == 4 for r in est["references"])
    extra = sum(r["seconds"] for r in est["references"])
    assert extra > 0 and est["seconds"] == pytest.approx(without["seconds"] + extra)
    first = est["levels"][0]
    per_trial = first["train_images"] // first["trials"]
    assert first["train_images"] == without["levels"][0]["train_images"] + 6 * per_trial


def test_png_reference_labels_stay_inside_the_axes_and_quote_the_servers_percentage():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from api.cli.edf import _plot_references

    spaces = ["AnyNetX_A", "AnyNetX_B", "AnyNetX_C", "AnyNetX_D", "AnyNetX_E"]
    refs = {
        name: {
            "name": name,
            "mean": mean,
            "lo": mean - 0.01,
            "hi": mean + 0.01,
            "percentile": dict.fromkeys(spaces, 0.625),
            "text": {s: f"{name} beats 62% of {s}" for s in spaces},
        }  # fmt: skip
        for name, mean in (("resnet20", 0.97), ("a much longer reference name", 0.02))
    }
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    ax.set_xlim(0, 1)
    _plot_references(ax, refs)
    fig.canvas.draw()
    box = ax.get_window_extent()
    texts = ax.texts
    assert len(texts) == 2 and all("62% of AnyNetX_E" in t.get_text() for t in texts)
    assert not any("63%" in t.get_text() for t in texts)
    for t in texts:
        got = t.get_window_extent()
        assert box.x0 - 1 <= got.x0 and got.x1 <= box.x1 + 1, (t.get_text(), got, box)
    plt.close(fig)


def test_png_best_efit_ranges_are_stacked_strips_in_the_legend():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from api.cli.edf import _plot_efit

    best = {"lo": 0.1, "median": 0.2, "hi": 0.4}
    fits = {f"S{i}": {"x": [0.1, 0.2], "error": [0.3, 0.4], "best": best} for i in range(5)}
    fig, ax = plt.subplots()
    _plot_efit(ax, fits, {f"S{i}": f"C{i}" for i in range(5)})
    ys = sorted((p.get_y(), p.get_y() + p.get_height()) for p in ax.patches)  # axes fraction
    assert len(ys) == 5 and all(a[1] <= b[0] for a, b in zip(ys, ys[1:], strict=False))
    labels = ax.get_legend_handles_labels()[1]
    assert sum("best 95% range" in t for t in labels) == 5
    plt.close(fig)
