"""What the study form asks the API: the preset catalogue and a spec's estimate (counts, time)."""

from __future__ import annotations

import functools
import statistics

import pytest

from anynet.spaces import PRESETS
from anynet.spaces.catalog import INFO
from api.http.app import create_app
from api.http.schemas import Estimate, Preset
from search.estimate import data_sizes, level_counts
from search.spec.datasets import DATASETS
from search.spec.study import DatasetSpec, StudySpec
from search.store import Store, TrialOutcome
from testkit.api import local_client

SPACE = {"stem": {"type": "cifar", "width": 8}, "stages": 2, "depth": [1, 2], "width": [8, 24]}
SPEC = {
    "name": "estimate test",
    "dataset": {
        "name": "synthetic",
        "resolution": 8,
        "num_classes": 4,
        "train_size": 128,
        "val_size": 32,
    },  # fmt: skip
    "spaces": [{"preset": "AnyNetX_A", **SPACE}, {"preset": "AnyNetX_E", **SPACE}],
    "samples": 10,
    "complexity": {"flops": [1e5, 3e5]},
    "fidelities": [1, 2, 4],
    "promote": 0.5,
    "recipe": {"batch_size": 32},
}


@pytest.fixture
def client(store):
    with local_client(create_app(store=store)) as c:
        yield c


def finished_trial(store: Store, images_per_s: float) -> int:
    """Store a small study and finish one of its trials at `images_per_s`; that trial's flops."""
    spec = {**SPEC, "name": "speed source", "samples": 2, "fidelities": [1]}
    study_id = store.create_study(spec)
    claim = store.claim("form-test")
    assert store.finish(claim, TrialOutcome("done", 0.5, seconds=1.0, images_per_s=images_per_s))
    (row,) = [t for t in store.trials(study_id, limit=10) if t["status"] == "done"]
    return row["flops"]


def test_presets_lists_every_preset_with_family_and_ranges(client):
    r = client.get("/api/presets")
    assert r.status_code == 200
    rows = [Preset.model_validate(p) for p in r.json()]
    assert [p.name for p in rows] == list(PRESETS) and set(INFO) == set(PRESETS)
    by = {p.name: p for p in rows}
    assert by["AnyNetX_A"].family == "AnyNetX" and by["RegNetY"].family == "RegNet"
    depth = by["AnyNetX_A"].parameters["depth"]
    assert (depth.kind, depth.lo, depth.hi) == ("log_uniform", 1, 16)
    assert by["AnyNetX_A"].parameters["group_width"].values == [1, 2, 4, 8, 16, 32]
    assert len(by["EfficientNet"].parameters["width"]) == 7  # one range per stage
    assert by["RegNetX"].stages == 4 and "w0" in by["RegNetX"].parameters
    assert by["AnyNetX_E"].constraints[-1] == "increasing_depth"
    assert all(p.description for p in rows)


def test_estimate_counts_and_time_exactly(client, store):
    flops = finished_trial(store, images_per_s=500.0)
    r = client.post("/api/studies/estimate", json=SPEC)
    assert r.status_code == 200, r.text
    est = Estimate.model_validate(r.json())
    # per space: 10 samples, then ceil(10 x 0.5) = 5, then ceil(5 x 0.5) = 3; two spaces
    assert [lv.trials_per_space for lv in est.levels] == [10, 5, 3]
    assert [lv.trials for lv in est.levels] == [20, 10, 6] and est.trials == 36
    # 128 // 32 = 4 full batches an epoch; validation 32 images once an epoch
    assert [lv.train_images for lv in est.levels] == [20 * 128, 10 * 128 * 2, 6 * 128 * 4]
    assert [lv.eval_images for lv in est.levels] == [20 * 32, 10 * 32 * 2, 6 * 32 * 4]
    assert (est.train_images, est.eval_images) == (8192, 2048)
    assert all(s.flops_source == "sampled_mean" for s in est.spaces)
    assert est.rate.source == "trials" and est.rate.trials == 1
    assert est.rate.flop_per_s == pytest.approx(500.0 * flops)
    # each space trains half the images, at its networks' mean flops
    per_space = [(8192 + 2048) / 2 * s.flops / (500.0 * flops) for s in est.spaces]
    seconds = sum(per_space)
    assert [s.seconds for s in est.spaces] == pytest.approx(per_space)
    assert est.seconds == pytest.approx(seconds)
    assert est.recipe["batch_size"] == 32 and est.recipe["lr"] == 0.0125  # the defaults shown
    four = client.post("/api/studies/estimate?workers=4", json=SPEC).json()
    assert four["workers"] == 4 and four["seconds"] == pytest.approx(seconds / 4)
    assert store.count(1) == 2 * 2  # nothing stored by estimating: the speed source's trials
    assert [s.id for s in store.list_studies()] == [1]


@pytest.mark.slow  # trains the speed probe (seconds on an idle CPU)
def test_estimate_measures_this_machine_without_finished_trials(client):
    spec = {**SPEC, "fidelities": [1]}
    r = client.post("/api/studies/estimate", json=spec)
    assert r.status_code == 200, r.text
    rate = r.json()["rate"]
    assert rate["source"] == "measured" and rate["trials"] == 0
    assert rate["device"] in ("cpu", "cuda", "mps") and rate["flop_per_s"] > 0
    assert "no finished trials" in rate["note"]
    # each space: 10 networks x (128 + 32) images at the mean flops of the networks it samples
    flops = [s["flops"] for s in r.json()["spaces"]]
    seconds = sum(10 * (128 + 32) * f for f in flops) / rate["flop_per_s"]
    assert r.json()["seconds"] == pytest.approx(seconds)


def test_spaces_are_priced_by_the_networks_creation_samples(client, store):
    """Issue 23: the midpoint of the flops bounds priced 6.5 MF for networks of about 1.4 MF;
    the estimate prices the mean flops of the networks the study will get."""
    finished_trial(store, images_per_s=500.0)  # the speed from the store: no probe
    spec = {**SPEC, "samples": 6, "complexity": {"flops": [1e4, 1e6]}, "seed": 5}
    est = client.post("/api/studies/estimate", json=spec).json()
    assert est["rate"]["source"] == "trials"
    study_id = store.create_study({**spec, "name": "the same spec, created"})
    trials = [t for t in store.trials(study_id, limit=100) if t["level"] == 0]
    for space in est["spaces"]:
        created = [t["flops"] for t in trials if t["space"] == space["name"]]
        assert len(created) == 6 and space["flops_source"] == "sampled_mean"
        assert space["flops"] == pytest.approx(statistics.fmean(created))
        assert space["flops"] < 0.6 * (1e4 + 1e6) / 2  # not the midpoint of the bounds
        assert "6 networks creation samples first" in space["flops_note"]


def test_unbounded_spaces_are_priced_at_the_input_they_train_at(client, store):
    from anynet.network import network_complexity, with_input
    from anynet.spaces.sampling import sample
    from search.store.creation import space_seed

    finished_trial(store, images_per_s=500.0)
    spec = {**SPEC, "complexity": {}, "seed": 5, "dataset": {**SPEC["dataset"], "resolution": None}}
    spec["dataset"] = {"name": "digits"}  # sampled at the space's 224 px, trained at 16
    est = client.post("/api/studies/estimate", json=spec).json()
    typed = StudySpec.model_validate(spec)
    for i, space in enumerate(est["spaces"]):
        seed = space_seed(5, typed.space_names()[i])  # each space's own stream, as created
        drawn = sample(typed.spaces[i].resolve(), 10, seed=seed,
                       in_channels=3, max_draws=200_000)  # fmt: skip
        counts = [network_complexity(with_input(s.spec, resolution=16, num_classes=10))["flops"]
                  for s in drawn.samples]  # fmt: skip
        assert space["flops"] == pytest.approx(statistics.fmean(counts))
        assert "at 16 px" in space["flops_note"]


@pytest.mark.parametrize("bound", ["params", "flops"])
def test_an_impossible_bound_is_a_422_naming_it(client, bound):
    spec = {**SPEC, "complexity": {bound: [1, 2]}}
    r = client.post("/api/studies/estimate", json=spec)
    assert r.status_code == 422, r.text
    (item,) = r.json()["errors"]
    assert item["field"] == f"complexity.{bound}"
    assert "[1, 2]" in item["reason"] and "200000 draws" in item["reason"]
    assert client.app.state.speed_probe.probes == 0  # no finished trials, yet no probe


def test_spaces_are_priced_out_of_the_server_process(client, store):
    from search import estimate

    finished_trial(store, images_per_s=500.0)
    estimate._priced.cache_clear()
    r = client.post("/api/studies/estimate", json={**SPEC, "seed": 11})
    assert r.status_code == 200 and r.json()["spaces"][0]["flops_source"] == "sampled_mean"
    assert estimate._priced.cache_info().currsize == 0  # sampled in a child, not here
    assert len(client.app.state.prices) == 1  # its prices kept for the same spec
    assert client.post("/api/studies/estimate", json={**SPEC, "seed": 11}).json() == r.json()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"samples": 0}, "samples"),
        ({"samples": 501}, "samples"),  # the server's DSE_MAX_SAMPLES
        ({"fidelities": [3, 1]}, "fidelities"),
        ({"spaces": [{"preset": "AnyNetX_A", "depth": "x"}]}, "spaces.0.depth"),
        ({"spaces": [{"preset": "NoSuchSpace"}]}, "spaces.0"),
        ({"recipe": {"lr": -1}}, "recipe.lr"),
        ({"complexity": {"flops": [5, 1]}}, "complexity"),
    ],
)
def test_estimate_refuses_a_bad_spec_naming_the_field(client, change, field):
    r = client.post("/api/studies/estimate", json={**SPEC, **change})
    assert r.status_code == 422, r.text
    fields = [e["field"] for e in r.json()["errors"]]
    assert any(f == field or f.startswith(f"{field}.") for f in fields), fields


def test_estimate_takes_yaml_and_says_when_sizes_are_unknown(client, store):
    finished_trial(store, images_per_s=500.0)
    text = "name: y\ndataset: {name: imagefolder, resolution: 16}\nspaces: [{preset: ResNet}]\n"
    text += "samples: 4\ncomplexity: {flops: [0, 2.0e6]}\n"
    r = client.post("/api/studies/estimate", content=text,
                    headers={"Content-Type": "application/x-yaml"})  # fmt: skip
    assert r.status_code == 200, r.text
    est = r.json()
    assert est["trials"] == 4 and est["train_images"] is None and est["seconds"] is None
    assert "train_size" in est["note"] and est["levels"][0]["seconds"] is None
    assert est["rate"] is not None  # the speed is known; the images are not


def test_split_sizes_are_those_the_worker_loads():
    from worker.data import load_dataset
    from worker.sources import SOURCES

    for name, split in DATASETS.items():
        source = SOURCES[name]
        assert (split.val_fraction, split.test_fraction) == (
            source.val_fraction,
            source.test_fraction,
        ), name
        if source.default_resolution is not None:
            assert split.side == source.default_resolution, name
    for spec in (
        DatasetSpec(name="digits"),
        DatasetSpec(name="digits", train_size=500, val_size=100, test_size=300),
        DatasetSpec(name="synthetic", train_size=200, resolution=8),
        DatasetSpec(name="synthetic", train_size=128, val_size=32, num_classes=4, resolution=8),
    ):
        sizes, loaded = data_sizes(spec), load_dataset(spec).sizes()
        assert (sizes.train, sizes.val) == (loaded["train"], loaded["val"]), spec


def test_split_sizes_of_the_datasets_read_from_files():
    cifar = data_sizes(DatasetSpec(name="cifar10"))
    assert (cifar.train, cifar.val, cifar.resolution, cifar.classes) == (45_000, 5_000, 32, 10)
    small = data_sizes(DatasetSpec(name="mnist", train_size=1000, resolution=16))
    assert (small.train, small.val, small.resolution) == (1000, 6_000, 16)
    folder = data_sizes(DatasetSpec(name="imagefolder", train_size=100))
    assert (folder.train, folder.val) == (100, None)


def test_level_counts_follow_promotion():
    assert level_counts(20, [1, 3, 9], 1 / 3) == [20, 7, 3]  # ceil(20/3), ceil(7/3)
    assert level_counts(9, [1, 3], 1 / 3) == [9, 3]
    assert level_counts(1, [1, 2, 3], 0.1) == [1, 1, 1]  # at least one


def test_openapi_documents_the_form_routes(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert "post" in paths["/api/studies/estimate"] and "get" in paths["/api/presets"]


def test_store_speed_counts_flops_at_the_input_trials_trained_at(client, store):
    """A digits study without a resolution samples at the space's 224 px; its trials train at
    16 px, and the speed is images/s x the flops there, not the stored ones."""
    from anynet.network import network_complexity, network_spec, with_input

    spec = {"name": "native", "dataset": {"name": "digits"},
            "spaces": [{"preset": "AnyNetX_A", **SPACE}], "samples": 1}  # fmt: skip
    study_id = store.create_study(spec)
    claim = store.claim("form-test")
    assert store.finish(claim, TrialOutcome("done", 0.5, seconds=1.0, images_per_s=100.0))
    (row,) = store.trials(study_id, limit=1)
    at_16 = network_complexity(
        with_input(network_spec(claim.net), resolution=16, num_classes=10, in_channels=3)
    )["flops"]
    assert at_16 < row["flops"]  # the stored count is at 224 px and 1000 classes
    rate = client.post("/api/studies/estimate", json=SPEC).json()["rate"]
    assert rate["source"] == "trials" and rate["flop_per_s"] == pytest.approx(100.0 * at_16)


def test_estimate_counts_without_a_speed_when_the_probe_fails(client):
    from api.http.routes.form import SpeedProbe

    app = client.app  # a probe whose child raises: int("x")
    app.state.speed_probe = SpeedProbe(app.state.creator, target=functools.partial(int, "x"))
    est = client.post("/api/studies/estimate", json=SPEC).json()
    assert est["trials"] == 36 and est["train_images"] == 8192
    assert est["rate"] is None and est["seconds"] is None and "speed unknown" in est["note"]
    assert "ValueError" in est["note"]
    again = client.post("/api/studies/estimate", json=SPEC).json()
    assert again["rate"] is None and app.state.speed_probe.probes == 1  # the failure is kept


def test_the_speed_probe_runs_in_a_child_bounded_in_time(client):
    import os
    import time

    from search.creator import ChildFailed

    creator = client.app.state.creator
    assert creator.call(os.getpid) != os.getpid()  # not this (the server's) process
    with pytest.raises(ChildFailed, match="stopped after 0.5 s"):
        creator.call(functools.partial(time.sleep, 60), seconds=0.5)
    with pytest.raises(ChildFailed, match="ValueError"):
        creator.call(functools.partial(int, "x"))


def test_estimate_needs_the_token_when_one_is_set(store):
    app = create_app(store=store, token="s3cret")
    with local_client(app) as c:
        r = c.post("/api/studies/estimate", json=SPEC)
        assert r.status_code == 401 and r.json()["errors"][0]["field"] == "authorization"
        assert app.state.speed_probe.probes == 0  # refused before any work
        finished_trial(store, images_per_s=500.0)
        ok = c.post("/api/studies/estimate", json=SPEC, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200, ok.text
