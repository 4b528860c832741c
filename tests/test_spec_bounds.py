"""Posted specs that would exhaust or poison the service are 422s naming the field (issue 15).

Each case once passed validation and then took the server's memory (stages 10^6), handed
workers impossible jobs (a 31 GB synthetic tensor, 10^8-block networks), froze the event
loop (a YAML alias bomb), crashed with a plain-text 500 (widths >= 2^32, deep nesting,
Infinity on PostgreSQL) or stored a study no read could serve (lone surrogates, Infinity read
back as null). Every case is posted to a real app on SQLite and on PostgreSQL: the answer
must be the same 422 on both, fast, and nothing may be stored.
"""

from __future__ import annotations

import copy
import json
import time
from typing import get_args

import pytest
import yaml
from fastapi.testclient import TestClient

from anynet.spaces import PRESETS
from api.http.app import create_app
from api.http.limits import SpecLimits
from search.spec.study import DatasetName, DatasetSpec, StudySpec
from search.spec.text import MAX_NODES, load_text
from search.store import Store
from testkit.api import local_client
from testkit.server import CREATE_WAIT

SPACE = {"stem": {"type": "cifar", "width": 8}, "stages": 2, "depth": [1, 2], "width": [8, 24]}
SPEC = {
    "name": "bounds",
    "dataset": {"name": "synthetic", "resolution": 8, "num_classes": 4, "train_size": 128},
    "spaces": [{"preset": "AnyNetX_A", **SPACE}],
    "samples": 3,
}


def space(**kw) -> dict:
    """SPEC with the space's fields replaced."""
    return {**SPEC, "spaces": [{**SPEC["spaces"][0], **kw}]}


def dataset(**kw) -> dict:
    """SPEC with the dataset's fields replaced."""
    return {**SPEC, "dataset": {**SPEC["dataset"], **kw}}


def with_text(spec: dict, old: str, new: str) -> str:
    """JSON text of spec with one literal replaced (for what json.dumps would not write)."""
    text = json.dumps(spec)
    assert old in text
    return text.replace(old, new, 1)


def alias_bomb(levels: int = 9) -> str:
    """A spec whose depth is `levels` levels of anchors, each ten aliases of the one before."""
    lines = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]")
    body = yaml.safe_dump(SPEC)
    return "\n".join(lines) + "\n" + body.replace("- 1\n  - 2", f"*a{levels}", 1)


# (what, JSON/YAML text or spec, the field the 422 must name)
JSON_CASES = [
    # finding 2: sizes that multiply memory or time
    ("stages 10^6", space(stages=1_000_000), "spaces.0.stages"),
    ("depth 1e8", space(depth=[1e8, 1e8]), "spaces.0.depth"),
    ("width 2^33", space(width=[8, 2**33]), "spaces.0.width"),
    ("head width 1e9", space(head_width=10**9), "spaces.0.head_width"),
    ("classes 1e15", space(num_classes=10**15), "spaces.0.num_classes"),
    ("num_stages 10^6", space(constraints=[{"num_stages": 10**6}]), "spaces.0.constraints"),
    # finding 4: specs that validated, then crashed or starved workers
    ("synthetic at 1024 px", dataset(resolution=1024), "dataset.resolution"),
    ("train_size 1e12", dataset(train_size=10**12), "dataset.train_size"),
    ("dataset classes 1e15", dataset(num_classes=10**15), "dataset.num_classes"),
    ("unknown dataset", dataset(name="imagenet22k"), "dataset.name"),
    ("classes of cifar10", {**SPEC, "dataset": {"name": "cifar10", "num_classes": 10}},
     "dataset.num_classes"),
    ("negative seed", {**SPEC, "seed": -1}, "seed"),
    ("seed 10^30", {**SPEC, "seed": 10**30}, "seed"),
    ("negative split seed", dataset(seed=-5), "dataset.seed"),
    ("a 23 GB dataset", dataset(resolution=256, train_size=100_000), "dataset"),
    ("Infinity lr", with_text(SPEC, '"samples": 3', '"samples": 3, "recipe": {"lr": Infinity}'),
     "recipe.lr"),
    ("Infinity weight decay",
     with_text(SPEC, '"samples": 3', '"samples": 3, "recipe": {"weight_decay": Infinity}'),
     "recipe.weight_decay"),
    ("Infinity warm-up",
     with_text(SPEC, '"samples": 3', '"samples": 3, "recipe": {"warmup_epochs": Infinity}'),
     "recipe.warmup_epochs"),
    # finding 8: plain-text 500s and studies no read could serve
    ("group width choice 1e30", space(group_width={"choice": [1e30]}), "spaces.0.group_width"),
    ("Infinity bound", with_text(SPEC, '"samples": 3',
                                 '"samples": 3, "complexity": {"flops": [0, Infinity]}'),
     "complexity.flops.1"),
    ("NaN depth", with_text(SPEC, '"depth": [1, 2]', '"depth": [1, NaN]'), "spaces.0.depth"),
    ("space name of 300", space(name="x" * 300), "spaces.0.name"),
    ("control characters", space(name="a\x01b"), "spaces.0.name"),
    ("lone surrogate", with_text(space(name="x"), '"name": "x"', '"name": "\\ud800"'),
     "spaces.0.name"),
    ("NUL", with_text(space(name="x"), '"name": "x"', '"name": "a\\u0000"'), "spaces.0.name"),
    ("JSON 50,000 deep", with_text(SPEC, '"samples": 3',
                                   '"samples": 3, "x": ' + "[" * 50_000 + "]" * 50_000), "body"),
    # finding 9: the key of the pooled RegNet fit
    ("space named overall", space(name="overall"), "spaces.0.name"),
    ("space named all", space(name="all"), "spaces.0.name"),
]  # fmt: skip
YAML_CASES = [
    ("YAML alias bomb", alias_bomb(), "body"),
    ("YAML 20,000 deep", "name: x\nspaces: " + "[" * 20_000 + "]" * 20_000, "body"),
]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def client(request, tmp_path):
    """The app on a fresh SQLite file or PostgreSQL database, reached as from this machine."""
    url = (
        request.getfixturevalue("pg_url")
        if request.param == "postgres"
        else f"sqlite:///{tmp_path / 'bounds.db'}"
    )
    store = Store(url)
    with local_client(create_app(create_wait=CREATE_WAIT, store=store)) as c:
        yield c
    store.close()


def test_rejections_name_the_field_on_both_backends(client):
    for what, body, field in JSON_CASES + YAML_CASES:
        kind = "application/x-yaml" if (what, body, field) in YAML_CASES else "application/json"
        content = body if isinstance(body, str) else json.dumps(body)
        t0 = time.perf_counter()
        r = client.post("/api/studies", content=content, headers={"Content-Type": kind})
        took = time.perf_counter() - t0
        assert r.status_code == 422, (what, r.status_code, r.text[:300])
        assert r.json()["errors"][0]["field"] == field, (what, r.json())
        assert took < 5, (what, took)  # refused before any sampling or expansion
    assert client.get("/api/studies").json() == []  # nothing stored
    r = client.post("/api/studies", json=SPEC)  # and the server still serves
    assert r.status_code == 201, r.text


def test_dataset_names_are_the_workers():
    from worker.data import SOURCES

    assert set(get_args(DatasetName)) == set(SOURCES)


def test_yaml_aliases_count_expanded():
    assert load_text("a: &x [1, 2]\nb: *x\n", "yaml") == {"a": [1, 2], "b": [1, 2]}
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=f"more than {MAX_NODES} values"):
        load_text(alias_bomb(), "yaml")
    assert time.perf_counter() - t0 < 1  # counted while composing, never expanded
    with pytest.raises(ValueError, match="recursive alias"):
        load_text("a: &x [1, *x]", "yaml")


def test_every_preset_fits_the_default_limits():
    limits = SpecLimits()
    for name, preset in PRESETS.items():
        limits.check_space(preset, DatasetSpec(), name)


def test_the_operator_sets_the_limits(tmp_path):
    env = {"DSE_MAX_STAGES": "2", "DSE_MAX_WIDTH": "16", "DSE_MAX_RESOLUTION": "1024",
           "DSE_MAX_DEPTH": "3", "DSE_MAX_CLASSES": "5", "DSE_MAX_DATASET_MB": "100000"}  # fmt: skip
    limits = SpecLimits.from_env(env)
    store = Store(f"sqlite:///{tmp_path / 'limits.db'}")
    small = {"stages": 2, "depth": [1, 1], "width": [8, 16]}
    cases = [
        (space(**{**small, "stages": 3}), "spaces.0.stages"),
        (space(**{**small, "width": [8, 24]}), "spaces.0.width"),
        (space(**{**small, "depth": [1, 2]}), "spaces.0.depth"),
        ({**space(**small), "dataset": {"name": "synthetic", "resolution": 8, "num_classes": 6}},
         "dataset.num_classes"),
    ]  # fmt: skip
    with TestClient(
        create_app(create_wait=CREATE_WAIT, store=store, limits=limits), base_url="http://127.0.0.1"
    ) as c:
        for spec, field in cases:
            r = c.post("/api/studies", json=spec)
            assert r.status_code == 422 and r.json()["errors"][0]["field"] == field, r.text
            assert "DSE_MAX_" in r.json()["errors"][0]["reason"]  # says which setting
        # what the defaults refuse, this operator allows: 1024 px synthetic images
        big = {**space(**small), "dataset": {**SPEC["dataset"], "resolution": 1024}}
        r = c.post("/api/studies", json=big)
        assert r.status_code == 201, r.text
    store.close()
    with pytest.raises(ValueError, match="DSE_MAX_WIDTH"):
        SpecLimits.from_env({"DSE_MAX_WIDTH": "0"})


def test_specs_round_trip_through_json():
    """Every float is finite, so the stored JSON validates again as the same spec."""
    spec = StudySpec.model_validate({**SPEC, "complexity": {"flops": [0, 1e12]}})
    again = StudySpec.model_validate(json.loads(json.dumps(spec.model_dump(mode="json"))))
    assert again == spec
    with pytest.raises(ValueError, match="finite"):
        StudySpec.model_validate(copy.deepcopy({**SPEC, "promote": float("inf")}))
