"""Recipe defaults (search/spec/recipe.py): one resolution, user fields kept, every default stated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from search.spec import recipe as defaults
from search.spec.recipe import default_batch_size, resolve_recipe
from search.spec.study import Recipe, StudySpec

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("train_size", "batch"),
    [(100, 16), (600, 16), (1150, 32), (2048, 64), (4096, 128), (45_000, 128), (None, 128)],
)
def test_batch_keeps_enough_steps_per_epoch(train_size, batch):
    assert default_batch_size(train_size) == batch
    if train_size and batch > defaults.BATCH_MIN:
        assert train_size // batch >= defaults.MIN_STEPS_PER_EPOCH
    if train_size and batch < defaults.BATCH_MAX:  # the largest such
        assert train_size // (2 * batch) < defaults.MIN_STEPS_PER_EPOCH


@pytest.mark.parametrize(
    ("dataset", "resolution", "flip", "padding"),
    [
        ("digits", 16, False, 0),
        ("mnist", 28, False, 1),
        ("fashion-mnist", 32, False, 2),
        ("cifar10", 32, True, 4),
        ("cifar100", 32, True, 4),
        ("svhn", 32, False, 4),
        ("imagefolder", 64, True, 8),
        ("synthetic", 16, True, 2),
    ],
)
def test_augmentation_defaults_per_dataset(dataset, resolution, flip, padding):
    r = resolve_recipe(Recipe(), dataset, 50_000, resolution, epochs=5)
    assert (r.flip, r.crop_padding) == (flip, padding)


def test_lr_scales_with_the_batch_and_warm_up_with_the_schedule():
    digits = resolve_recipe(Recipe(), "digits", 1150, 16, epochs=5)
    assert (digits.batch_size, digits.lr, digits.warmup_epochs) == (32, 0.0125, 1.0)
    cifar = resolve_recipe(Recipe(), "cifar10", 45_000, 32, epochs=1)
    assert (cifar.batch_size, cifar.lr, cifar.warmup_epochs) == (128, 0.05, 0.2)
    # a batch the user sets keeps the default lr's rule: 0.05 per 128 images
    assert resolve_recipe(Recipe(batch_size=256), "cifar10", 45_000, 32, 5).lr == 0.1
    assert resolve_recipe(Recipe(batch_size=512), "digits", 300, 16, 5).batch_size == 300


def test_every_field_the_user_sets_is_kept():
    given = Recipe(lr=0.3, batch_size=64, warmup_epochs=0, crop_padding=0, flip=True,
                   weight_decay=1e-4, precision="fp32")  # fmt: skip
    r = resolve_recipe(given, "digits", 1150, 16, epochs=5)
    assert r == given
    resolved = resolve_recipe(Recipe(), "digits", 1150, 16, 5).model_dump()
    # everything is chosen but the memory format, which the device decides (worker.train)
    assert [k for k, v in resolved.items() if v is None] == ["channels_last"]


def test_a_stored_spec_keeps_its_unset_fields_unset():
    spec = StudySpec.model_validate(
        {"name": "s", "spaces": [{"preset": "AnyNetX_A"}], "samples": 2, "recipe": {"lr": 0.02}}
    )
    again = StudySpec.model_validate(json.loads(spec.model_dump_json()))
    assert again.recipe.lr == 0.02 and again.recipe.batch_size is None and again.recipe.flip is None


def test_defaults_are_stated_in_the_schema_the_cli_help_and_the_readme(capsys):
    from api.cli.parser import build_parser

    props = StudySpec.model_json_schema()["$defs"]["Recipe"]["properties"]
    rules = {
        "lr": defaults.LR_RULE,
        "batch_size": defaults.BATCH_RULE,
        "warmup_epochs": defaults.WARMUP_RULE,
        "crop_padding": defaults.CROP_RULE,
        "flip": defaults.FLIP_RULE,
    }
    for field, rule in rules.items():
        assert rule in props[field]["description"], field
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for rule in rules.values():
        assert " ".join(rule.split()) in text
    assert "momentum 0.9" in text and "weight decay 5e-4" in text
    readme = " ".join((ROOT / "README.md").read_text().split())
    for rule in rules.values():
        assert rule in readme


# --- the defaults learn (the must-show lines; real trainings on digits) -------------
@pytest.mark.slow
def test_the_readme_train_line_learns_digits_with_the_defaults(capsys):
    from api.cli import main

    code = main(["train", "--regnet", "13,24,36.44,2.49,8", "--dataset", "digits",
                 "--resolution", "16", "--epochs", "5", "--device", "cpu", "--precision", "fp32",
                 "--threads", "1", "--json"])  # fmt: skip
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert code == 0 and doc["val_error"] < 0.08, doc["epochs"]
    print(f"dse train, RegNetX-200MF on digits, 5 epochs, fp32, defaults: {doc['val_error']}")
    assert doc["learned"] is True and doc["chance_error"] > 0.85
    ran = doc["recipe"]
    assert (ran["batch_size"], ran["lr"], ran["warmup_epochs"]) == (32, 0.0125, 1.0)
    assert (ran["crop_padding"], ran["flip"], ran["precision"]) == (0, False, "fp32")
    assert "batch_size=32 (default) lr=0.0125 (default)" in captured.err  # printed first


@pytest.mark.slow
def test_a_study_of_regnetx_200mf_sized_networks_learns_with_the_defaults(sqlite_url):
    from search.analysis.results import results_for
    from search.store import Store
    from worker.loop import run_worker

    spec = {
        "name": "defaults learn",
        "dataset": {"name": "digits", "resolution": 16},
        # RegNetX-200MF at 16 px with the cifar stem: 4.1 MF, 2.3 M params
        "spaces": [{"preset": "RegNetX", "stem": {"type": "cifar", "width": 32}}],
        "complexity": {"flops": [3e6, 5.5e6], "params": [1e6, 3.5e6]},
        "samples": 3,
        "fidelities": [5],
        "seed": 0,
    }
    store = Store(sqlite_url)
    try:
        study_id = store.create_study(spec)
        assert run_worker(sqlite_url, exit_when_idle=True, threads=1, poll_seconds=0.1,
                          install_signals=False) == 3  # fmt: skip
        trials = store.trials(study_id)
        assert [t["status"] for t in trials] == ["done"] * 3
        assert not any(t["not_learned"] for t in trials)
        assert all(t["recipe"]["lr"] == 0.0125 and t["recipe"]["batch_size"] == 32 for t in trials)
        errors = sorted(t["error"] for t in trials)
        print(f"RegNetX-200MF-sized study on digits, 5 epochs, defaults: val errors {errors}")
        # sampled networks differ: all learn (none at chance, asserted above), the median
        # near RegNetX-200MF's own 4.5-6.6% (docs/method.md §5); measured 3.8%, 14.6% and,
        # for a 57-block network (depths 2, 6, 18, 31; g = 4) that 5 epochs leave far from
        # trained, 74% (each space its own seed stream since issue 23)
        assert errors[0] < 0.10 and errors[1] < 0.20, errors
        assert results_for(store, study_id)["not_learned"] == []
    finally:
        store.close()
