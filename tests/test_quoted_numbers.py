"""The study figures README.md and docs/method.md quote stay checkable (issue 23): the README's
inline spec is docs/first_study.json, and benchmarks/reproduce_readme.py reads every quoted
figure from the text and compares a run's `dse edf --json` with it (no training here)."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

from search.spec.study import StudySpec

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
METHOD = (REPO / "docs" / "method.md").read_text()


def _script():
    path = REPO / "benchmarks" / "reproduce_readme.py"
    spec = importlib.util.spec_from_file_location("reproduce_readme", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


rr = _script()


def test_the_readme_inline_spec_is_docs_first_study_json():
    block = re.search(r"## A study\n\n```json\n(.*?)```", README, re.S)
    assert block, "README.md's 'A study' starts with its spec as a ```json block"
    on_disk = (REPO / "docs" / "first_study.json").read_text()
    assert block[1] == on_disk
    StudySpec.model_validate(json.loads(on_disk))  # and it is a valid study


@pytest.mark.parametrize("example", ["first", "families", "demo"])
def test_every_quoted_figure_is_read(example):
    figures = rr.readme_figures(README, example, METHOD)
    assert {"trials", "wall_minutes", "at_chance"} <= set(figures)
    assert all(v >= 0 for v in figures.values())
    kinds = {k.split(":")[0] for k in figures}
    expected = {
        "first": {"mean", "D", "q", "error", "beats"},
        "families": {"min", "mean", "D", "p"},
        "demo": {"q", "D", "p", "q>=", "mean"},
    }[example]
    assert expected <= kinds
    for k, v in figures.items():
        if k.split(":")[0] in ("mean", "min", "error", "beats", "p", "q"):
            assert 0 <= v <= 1, (k, v)


def test_first_reads_what_the_readme_says():
    figures = rr.readme_figures(README, "first")
    text = rr.section(README, "## A study")
    m = re.search(r"mean error AnyNetX_E ([\d.]+) vs AnyNetX_A ([\d.]+)", text)
    assert figures["mean:AnyNetX_E"] == float(m[1]) and figures["mean:AnyNetX_A"] == float(m[2])
    assert figures["trials"] == 36  # 16 networks a space and 2 x 2 reference runs
    assert figures["beats:resnet20:AnyNetX_A"].decimals == 2  # "100%"


def test_quoted_keeps_the_digits_printed():
    assert rr.Quoted.parse("0.093").decimals == 3
    assert rr.Quoted.parse("88", percent=True) == 0.88
    assert rr.Quoted.parse("88", percent=True).decimals == 2
    assert rr.Quoted.parse("4.4e-4").decimals == 5
    assert rr.Quoted.parse("3.30", percent=True).decimals == 4


def _results(figures: dict) -> dict:
    """A `dse edf --json` document that measures exactly `figures` (the keys the script reads)."""
    spaces, ks, refs = {}, {}, {}
    for key, value in figures.items():
        kind, _, rest = key.partition(":")
        if kind in ("mean", "min"):
            s = spaces.setdefault(rest, {"n": 0, "n_failed": 0, "n_pending": 0, "mean": None,
                                         "min": None, "n_not_learned": 0})  # fmt: skip
            s[kind] = float(value)
        elif kind in ("D", "p", "q"):
            a, b = rest.split(" vs ")
            ks.setdefault(rest, {"a": a, "b": b})[kind] = float(value)
        elif kind in ("error", "beats"):
            name, _, space = rest.partition(":")
            r = refs.setdefault(name, {"n": 0, "n_failed": 0, "n_pending": 0, "mean": None,
                                       "percentile": {}})  # fmt: skip
            if kind == "error":
                r["mean"] = float(value)
            else:
                r["percentile"][space] = float(value)
    first = next(iter(spaces.values()))
    first["n"] = int(figures["trials"])
    first["n_not_learned"] = int(figures["at_chance"])
    return {"spaces": spaces, "ks": list(ks.values()), "references": refs}


def test_a_run_that_measures_the_quoted_figures_passes_and_a_moved_one_fails():
    quoted = rr.readme_figures(README, "first")
    measured = rr.measured_figures(_results(quoted), float(quoted["wall_minutes"]))
    rows = rr.compare(quoted, measured)
    assert rows and all(r.ok and r.same for r in rows), [r for r in rows if not r.ok]
    moved = dict(measured, **{"mean:AnyNetX_A": measured["mean:AnyNetX_A"] + 0.03})
    bad = [r.figure for r in rr.compare(quoted, moved) if not r.ok]
    assert bad == ["mean:AnyNetX_A"]
    close = dict(measured, **{"mean:AnyNetX_A": measured["mean:AnyNetX_A"] + 0.005})
    row = next(r for r in rr.compare(quoted, close) if r.figure == "mean:AnyNetX_A")
    assert row.ok and not row.same  # within the other machines' tolerance, not this one's digits
    slow = dict(measured, wall_minutes=measured["wall_minutes"] * 2.5)
    assert [r.figure for r in rr.compare(quoted, slow) if not r.ok] == ["wall_minutes"]
    fast = dict(measured, wall_minutes=measured["wall_minutes"] / 5)  # a GPU, a quiet machine
    assert all(r.ok for r in rr.compare(quoted, fast))
    missing = {k: v for k, v in measured.items() if k != "error:resnet20"}
    assert [r.tolerance for r in rr.compare(quoted, missing) if not r.ok] == ["missing"]


def test_the_demo_claims_are_read_from_both_files_and_q_keeps_its_verdict():
    quoted = rr.readme_figures(README, "demo", METHOD)
    ab, cd = "AnyNetX_A vs AnyNetX_B", "AnyNetX_C vs AnyNetX_D"
    assert quoted[f"q>=:{ab}"] == 0.05  # README: "A → B changes nothing"
    assert not rr.tolerance(f"q>=:{ab}", 0.05, 0.01)[0]
    assert rr.tolerance(f"q<:{cd}", 0.01, 0.005)[0] and not rr.tolerance(f"q<:{cd}", 0.01, 0.02)[0]
    assert quoted["trials"] == 160  # method.md §6: 5 spaces x 32
    # q within x10 but across 0.05 is another verdict, so it fails
    assert rr.tolerance(f"q:{cd}", 0.036, 0.012)[0]
    assert not rr.tolerance(f"q:{cd}", 0.036, 0.06)[0]
    with pytest.raises(ValueError, match="quote q:AnyNetX_C vs AnyNetX_D as 0.036 and 0.5"):
        rr.readme_figures(README, "demo", METHOD.replace("C → D D = 0.375, p = 0.021, q = 0.036",
                                                         "C → D D = 0.375, p = 0.021, q = 0.5"))  # fmt: skip


def test_each_example_is_held_to_the_run_in_its_precision():
    # README.md and docs/method.md quote each example's run in one precision and the same
    # command in the other (auto is bf16 on AVX512-BF16 CPUs and GPUs): a bf16 run of "first"
    # is held to the bf16 figures, which the fp32 ones would fail (0.421 vs 0.399 > 0.02)
    fp32 = rr.readme_figures(README, "first")
    bf16 = rr.readme_figures(README, "first", precision="bf16")
    assert rr.other_run(README, "first")[0] == "bf16" and set(bf16) == set(fp32)
    assert bf16["mean:AnyNetX_E"] == 0.421 and bf16["q:AnyNetX_A vs AnyNetX_E"] == 0.21
    assert bf16["beats:resnet20:AnyNetX_A"] == 1.0 and bf16["beats:resnet20:AnyNetX_E"] == 0.88
    assert bf16["trials"] == fp32["trials"]  # not restated: as first quoted
    measured = rr.measured_figures(_results(bf16), float(bf16["wall_minutes"]))
    assert all(r.ok and r.same for r in rr.compare(bf16, measured))
    assert "mean:AnyNetX_E" in [r.figure for r in rr.compare(fp32, measured) if not r.ok]
    # the demo's bf16 run (method.md) moves B → C and C → D to q = 0.075, as the README says
    demo = rr.readme_figures(README, "demo", METHOD, precision="bf16")
    assert demo["q:AnyNetX_B vs AnyNetX_C"] == demo["q:AnyNetX_C vs AnyNetX_D"] == 0.075
    assert demo["q>=:AnyNetX_D vs AnyNetX_E"] == 0.05 and demo["mean:AnyNetX_D"] == 0.331
    with pytest.raises(ValueError, match="bf16 steps' q as 0.08 and 0.075"):
        rr.readme_figures(re.sub(r"q = 0.075(\s+)for both", r"q = 0.08\1for both", README), "demo",
                          METHOD, precision="bf16")  # fmt: skip
    # families quotes bf16 first and one pair of its fp32 run; that pair's p is not checked
    fam = rr.readme_figures(README, "families", METHOD, precision="fp32")
    pair = "AnyNetX_E vs DenseNet-style"
    assert fam[f"q:{pair}"] == 0.063 and f"p:{pair}" not in fam
    assert set(fam) == set(rr.readme_figures(README, "families")) - {f"p:{pair}"}
    with pytest.raises(ValueError, match="no run in fp16"):
        rr.readme_figures(README, "first", precision="fp16")


# --- docs/method.md's sampling figures (seed 0, so the same on every machine) ------------------
def test_the_rounding_rules_disagree_as_often_as_method_md_says():
    # §3: "on 37% of 1,000 RegNetX_pycls samples and 29% of RegNetX samples"
    from anynet.regnet import regnet_widths
    from anynet.spaces import get_space
    from anynet.spaces.sampling import sample

    for space, share in (("RegNetX_pycls", 0.37), ("RegNetX", 0.29)):
        nets = [s.params for s in sample(get_space(space), 1000, 0).samples]
        args = [(p["depth"], p["w0"], p["wa"], p["wm"], p["g"], p["bot_mul"]) for p in nets]
        differ = [regnet_widths(*a, "pycls") != regnet_widths(*a, "torchvision") for a in args]
        assert sum(differ) / 1000 == pytest.approx(share, abs=0.01), space


def test_the_regnet_presets_are_as_method_md_says():
    # §4: 13.3% / 22.5% of draws kept (4 stages); RegNetX in 360–400 MF: 27% wm < 2, 73% b ≠ 1,
    # 50% g < 8
    from anynet.spaces import get_space
    from anynet.spaces.sampling import sample

    for space, kept in (("RegNetX", 0.133), ("RegNetX_pycls", 0.225)):
        assert sample(get_space(space), 1000, 0).acceptance == pytest.approx(kept, abs=0.015)
    nets = [
        s.params
        for s in sample(get_space("RegNetX"), 500, 0, bounds={"flops": (360e6, 400e6)}).samples
    ]
    for share, rule in ((0.27, lambda p: p["wm"] < 2), (0.73, lambda p: p["bot_mul"] != 1),
                        (0.50, lambda p: p["g"] < 8)):  # fmt: skip
        assert sum(map(rule, nets)) / len(nets) == pytest.approx(share, abs=0.02)


def test_the_demo_spaces_share_the_networks_method_md_says():
    # §4 Seeding: with a stream each, D and E share 2 of 32 networks, C 1 with each, no others
    from itertools import combinations

    from anynet.spaces.sampling import sample
    from api.cli.demo import demo_spec
    from search.store.creation import space_seed

    spec = StudySpec.model_validate(demo_spec(32, 2))
    nets = {}
    for label, space in zip(spec.space_names(), spec.spaces, strict=True):
        got = sample(space.resolve(), 32, seed=space_seed(spec.seed, label), bounds=spec.bounds(),
                     resolution=16, num_classes=10, in_channels=3).samples  # fmt: skip
        nets[label[-1]] = {s.spec.model_dump_json() for s in got}
    shared = {a + b: len(nets[a] & nets[b]) for a, b in combinations(sorted(nets), 2)}
    assert shared == {"AB": 0, "AC": 0, "AD": 0, "AE": 0, "BC": 0, "BD": 0, "BE": 0,
                      "CD": 1, "CE": 1, "DE": 2}  # fmt: skip
