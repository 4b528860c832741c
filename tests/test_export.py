"""Exports build the same network in their target (docs/method.md §3): built and compared here."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from anynet.complexity import complexity
from anynet.export import FORMATS, as_regnet, export, export_dict, spec_from_pycls
from anynet.regnet import RegNetParams, regnet_spec
from anynet.spec import NetSpec

torch.set_num_threads(1)

# (depth, w0, wa, wm, group_width, se_ratio): RegNetX-200MF/400MF, RegNetY-800MF, a 4-stage
# RegNet whose rules agree, one with b = 0.5, and a small SE one.
REGNETS = [
    (13, 24, 36.44, 2.49, 8, 0.0),
    (22, 24, 24.48, 2.54, 16, 0.0),
    (14, 56, 38.84, 2.4, 16, 0.25),
    (16, 48, 27.89, 2.09, 8, 0.25),
    (18, 80, 34.01, 2.25, 24, 0.0),
]
ROUNDINGS = ("pycls", "torchvision")


def _params(args, rounding, b=1.0) -> RegNetParams:
    d, w0, wa, wm, g, se = args
    return RegNetParams(
        depth=d,
        w0=w0,
        wa=wa,
        wm=wm,
        group_width=g,
        bottleneck_multiplier=b,
        se_ratio=se,
        rounding=rounding,
    )


def _run(text: str) -> dict:
    """Execute an exported Python snippet; its namespace holds what the target built."""
    ns: dict = {}
    exec(compile(text, "<export>", "exec"), ns)
    return ns


def _n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def _exported(args, rounding, fmt: str, num_classes: int) -> tuple:
    """(NetSpec, export_dict, namespace its code built) of one RegNet exported to `fmt`."""
    p = _params(args, rounding)
    spec = p.spec(num_classes=num_classes)
    out = export_dict(p, fmt, num_classes=num_classes)
    return spec, out, _run(export(p, fmt, num_classes=num_classes))


@pytest.mark.parametrize("rounding", ROUNDINGS)
@pytest.mark.parametrize("args", REGNETS)
def test_torchvision_builds_the_same_network(args, rounding):
    spec, out, ns = _exported(args, rounding, "torchvision", num_classes=100)
    assert out["rule"] == "torchvision"
    bp = ns["block_params"]
    assert list(bp.depths) == spec.stage_depths
    assert list(bp.widths) == spec.stage_widths
    assert list(bp.group_widths) == spec.group_widths
    assert _n_params(ns["model"]) == complexity(spec)["params"]
    if rounding == "torchvision":
        assert "from_init_params" in out["config"] and out["rule_agrees"]


def test_torchvision_says_when_its_rule_differs():
    # RegNetX-400MF under pycls: torchvision's rule would widen the last stage 384 → 400.
    p = _params(REGNETS[1], "pycls")
    out = export_dict(p, "torchvision")
    assert not out["rule_agrees"] and "block_params" in out["config"]
    assert "[32, 64, 160, 400]" in out["note"] and "explicit BlockParams" in out["note"]
    assert out["note"] in export(p, "torchvision")


def test_torchvision_ours_built_equals_theirs():
    from anynet.build import build

    p = _params(REGNETS[2], "pycls")
    spec = p.spec()
    theirs = _run(export(p, "torchvision"))["model"]
    assert _n_params(theirs) == _n_params(build(spec)) == complexity(spec)["params"]


@pytest.mark.parametrize("rounding", ROUNDINGS)
@pytest.mark.parametrize("args", REGNETS)
def test_timm_builds_the_same_network(args, rounding):
    spec, out, ns = _exported(args, rounding, "timm", num_classes=10)
    assert out["config"]["cfg"]["group_min_ratio"] == (0.0 if rounding == "pycls" else 0.9)
    model = ns["model"]
    stages = [getattr(model, f"s{i}") for i in range(1, 5)]
    widths = [list(stage.children())[-1].conv3.conv.out_channels for stage in stages]
    depths = [len(list(stage.children())) for stage in stages]
    groups = [list(stage.children())[-1].conv2.conv.groups for stage in stages]
    assert groups == [s.groups for s in spec.stages]
    assert widths == spec.stage_widths and depths == spec.stage_depths
    assert _n_params(model) == complexity(spec)["params"]


def test_timm_bottleneck_multiplier_and_stem_width():
    p = _params(REGNETS[3], "pycls", b=0.5)
    spec = p.spec(stem_width=24)
    model = _run(export(p, "timm", stem_width=24))["model"]
    assert _n_params(model) == complexity(spec)["params"]


def test_timm_refuses_other_than_four_stages():
    for d in (6, 30):  # 3 and 5 stages
        p = RegNetParams(depth=d, w0=24, wa=36.44, wm=2.49, group_width=8)
        with pytest.raises(ValueError, match="exactly 4 stages"):
            export(p, "timm")


def test_timm_refuses_a_network_that_is_not_a_regnet():
    spec = regnet_spec(13, 24, 36.44, 2.49, 8)
    stages = [s.model_dump() for s in spec.stages]
    stages[2]["depth"] = 1  # widths 24, 56, 152, 368·7: no (w0, wa, wm) gives this
    odd = NetSpec.from_dict(spec.to_dict() | {"stages": stages})
    with pytest.raises(ValueError, match="timm builds only RegNets"):
        export(odd, "timm")


def test_netspec_of_a_regnet_is_recognised():
    for rounding in ROUNDINGS:
        spec = regnet_spec(22, 24, 24.48, 2.54, 16, rounding=rounding)
        p = as_regnet(spec, rounding)
        assert p is not None and p.spec() == spec
        model = _run(export(spec, "timm"))["model"]
        assert _n_params(model) == complexity(spec)["params"]
    tv = regnet_spec(22, 24, 24.48, 2.54, 16, rounding="torchvision")
    assert "from_init_params" in export_dict(tv, "torchvision")["config"]


@pytest.mark.parametrize("rounding", ROUNDINGS)
@pytest.mark.parametrize("args", REGNETS)
def test_pycls_yaml_reads_back_to_the_same_spec(args, rounding):
    p = _params(args, rounding)
    spec = p.spec(num_classes=10, resolution=64)
    text = export(p, "pycls", num_classes=10, resolution=64)
    assert spec_from_pycls(text) == spec
    kind = export_dict(p, "pycls", num_classes=10, resolution=64)["config"]["MODEL"]["TYPE"]
    # A torchvision-rounded RegNet that the pycls rule would change is written as ANYNET.
    if rounding == "pycls" or p.model_copy(update={"rounding": "pycls"}).spec() == p.spec():
        assert kind == "regnet"
    else:
        assert kind == "anynet"


def test_pycls_anynet_of_a_cifar_resnet():
    stages = [{"depth": 9, "width": w, "stride": s} for w, s in ((16, 1), (32, 2), (64, 2))]
    spec = NetSpec.from_dict(
        {"stem": {"type": "cifar", "width": 16}, "block": "res_basic", "stages": stages}
    )
    out = export_dict(spec, "pycls")
    assert out["config"]["ANYNET"]["BLOCK_TYPE"] == "res_basic_block"
    assert out["config"]["ANYNET"]["STEM_TYPE"] == "res_stem_cifar"
    assert spec_from_pycls(export(spec, "pycls")) == spec
    with pytest.raises(ValueError, match="^block: torchvision"):
        export(spec, "torchvision")
    with pytest.raises(ValueError, match="^block: timm"):
        export(spec, "timm")


@pytest.mark.parametrize("fmt", FORMATS)
def test_refusals_name_the_reason(fmt):
    convnext = NetSpec.from_dict(
        {
            "stem": {"type": "convnext", "width": 32},
            "block": "convnext",
            "stages": [{"depth": 1, "width": 32, "stride": 2}] * 4,
        }
    )
    if fmt == "json":
        assert NetSpec.from_dict(json.loads(export(convnext, fmt))["spec"]) == convnext
        return
    with pytest.raises(ValueError, match="convnext"):
        export(convnext, fmt)


@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_json_round_trip(rounding):
    p = _params(REGNETS[2], rounding)
    data = json.loads(export(p, "json", num_classes=10))
    spec = NetSpec.from_dict(data["spec"])
    assert spec == p.spec(num_classes=10)
    assert RegNetParams(**data["regnet"]) == p and data["rule"] == rounding
    assert RegNetParams(**data["regnet"]).spec(num_classes=10) == spec


def test_bad_format_and_options():
    p = _params(REGNETS[0], "pycls")
    with pytest.raises(ValueError, match="^format: "):
        export(p, "onnx")
    with pytest.raises(ValueError, match="^depth_multiplier: "):
        export(p, "json", depth_multiplier=2)
    with pytest.raises(ValueError, match="^num_classes: a NetSpec export"):
        export(p.spec(), "json", num_classes=10)


@pytest.mark.parametrize("space", ["RegNetX", "RegNetY"])
def test_sampled_regnets_export_to_every_target(space):
    from anynet.spaces import get_space
    from anynet.spaces.sampling import sample

    bounds = {"flops": (150e6, 250e6)}
    for s in sample(get_space(space), 2, seed=11, bounds=bounds, num_classes=10).samples:
        spec = s.spec
        p = as_regnet(spec, "pycls")
        assert p is not None and p.spec(num_classes=10) == spec
        assert spec_from_pycls(export(spec, "pycls")) == spec
        n = complexity(spec)["params"]
        tv = _run(export(spec, "torchvision"))
        assert [list(tv["block_params"].widths), list(tv["block_params"].depths)] == [
            spec.stage_widths,
            spec.stage_depths,
        ]
        assert _n_params(tv["model"]) == n
        if len(spec.stages) == 4:
            assert _n_params(_run(export(spec, "timm"))["model"]) == n


def test_pycls_regnet_with_a_cifar_stem():
    p = _params(REGNETS[0], "pycls")
    text = export(p, "pycls", stem_type="cifar", stem_width=16, resolution=32)
    assert "res_stem_cifar" in text and "TYPE: regnet" in text
    assert spec_from_pycls(text) == p.spec(stem_type="cifar", stem_width=16, resolution=32)


@settings(max_examples=60, deadline=None)
@given(
    depth=st.integers(8, 28),
    w0=st.integers(1, 32).map(lambda q: 8 * q),
    wa=st.integers(800, 25600).map(lambda c: c / 100),
    wm=st.integers(1500, 3000).map(lambda m: m / 1000),
    g=st.sampled_from([1, 2, 4, 8, 16, 24, 32, 48, 64, 128]),
    b=st.sampled_from([0.25, 0.5, 1.0, 2.0]),
    rounding=st.sampled_from(ROUNDINGS),
)
def test_exported_parameters_give_our_stages_in_the_target(depth, w0, wa, wm, g, b, rounding):
    from timm.models.regnet import RegNet as TimmRegNet
    from timm.models.regnet import RegNetCfg
    from torchvision.models.regnet import BlockParams

    p = RegNetParams(
        depth=depth, w0=w0, wa=wa, wm=wm, group_width=g, bottleneck_multiplier=b,
        rounding=rounding,
    )  # fmt: skip
    try:
        spec = p.spec()
    except ValueError:
        return  # e.g. b·w rounds to a width that no group divides: not a network
    stages = [spec.stage_depths, spec.stage_widths, spec.group_widths]
    cfg = export_dict(p, "torchvision")["config"]
    if "from_init_params" in cfg:
        bp = BlockParams.from_init_params(**cfg["from_init_params"])
    else:
        bp = BlockParams(**cfg["block_params"])
    assert [list(bp.depths), list(bp.widths), list(bp.group_widths)] == stages
    if len(spec.stages) != 4:
        return
    try:
        timm_cfg = RegNetCfg(**export_dict(p, "timm")["config"]["cfg"])
    except ValueError as e:  # timm's pycls variant has no lcm step: refused, never wrong
        assert str(e).startswith("rounding: timm would build")
        assert rounding == "pycls" and b > 1
        return
    args, _ = TimmRegNet._get_stage_args(None, timm_cfg)
    assert [[a[k] for a in args] for k in ("depth", "out_chs", "group_size")] == stages


# --- the released pycls (0.1.1 on the package index) builds our YAML ------------------------
def _pycls_release_model(text: str, tmp_path):
    """The network pycls 0.1.1 builds from an exported YAML (its global config, reset first)."""
    from pycls.core import builders, config

    config.reset_cfg()
    path = tmp_path / "export.yaml"
    path.write_text(text)
    config.cfg.merge_from_file(str(path))  # refuses keys this release does not know
    return builders.build_model()


def _shapes(model) -> list[tuple[int, ...]]:
    return sorted(tuple(p.shape) for p in model.parameters())


def _release_cases() -> list[tuple[str, NetSpec]]:
    from anynet.spaces import get_space
    from anynet.spaces.sampling import sample

    cifar = {"stem": {"type": "cifar", "width": 16}, "resolution": 32, "num_classes": 10}
    stages = [{"depth": 3, "width": w, "stride": s} for w, s in ((16, 1), (32, 2), (64, 2))]
    cases = [
        ("RegNetX-200MF", _params(REGNETS[0], "pycls").spec()),
        ("RegNetY-800MF", _params(REGNETS[2], "pycls").spec()),
        ("ResNet-20", NetSpec.from_dict({**cifar, "block": "res_basic", "stages": stages})),
        ("Vanilla", NetSpec.from_dict({**cifar, "block": "vanilla", "stages": stages})),
    ]
    for space in ("AnyNetX_E", "AnyNetY_A"):
        drawn = sample(get_space(space), 2, seed=5, bounds={"flops": (100e6, 300e6)})
        cases += [(f"{space}#{i}", s.spec) for i, s in enumerate(drawn.samples)]
    return cases


def test_the_released_pycls_builds_every_yaml_export_as_the_same_network(tmp_path):
    from anynet.build import build

    for name, spec in _release_cases():
        text = export(spec, "pycls")
        assert "HEAD_W" not in text, name  # 0.1.1 refuses the key; 0 is its meaning anyway
        model = _pycls_release_model(text, tmp_path)
        assert _n_params(model) == complexity(spec)["params"], name
        assert _shapes(model) == _shapes(build(spec)), name
    with_head = _release_cases()[4][1].model_copy(update={"head_width": 64})
    assert export_dict(with_head, "pycls")["config"]["ANYNET"]["HEAD_W"] == 64
    assert "newer than 0.1.1" in export_dict(with_head, "pycls")["note"]


# --- a study's export: its input, the winner and the fit side by side, formats that build ----
def _study_with_trials(tmp_path):
    """A digits study (10 classes, 16 px) of two spaces stored at the space's 1000 classes."""
    from search.spec.study import StudySpec
    from search.store import Store
    from testkit.api import finish_all

    url = f"sqlite:///{tmp_path / 'export.db'}"
    small = {"stem": {"type": "cifar", "width": 8}, "depth": [1, 2], "width": [8, 48]}
    spec = StudySpec.model_validate({
        "name": "export",
        "dataset": {"name": "digits"},
        "spaces": [{"preset": "AnyNetX_E", "num_classes": 1000, "stages": 3, **small},
                   {"preset": "EfficientNet", "stem": {"type": "cifar", "width": 8},
                    "stages": 2, "head_width": 32}],
        "samples": 4,
        "fidelities": [1],
    })  # fmt: skip
    store = Store(url)
    sid = store.create_study(spec)
    assert finish_all(store) == 8
    return store, url, sid


def test_a_study_export_has_the_study_input_both_networks_and_only_formats_that_build(tmp_path):
    from api.http.app import create_app
    from testkit.api import local_client

    store, _, sid = _study_with_trials(tmp_path)
    try:
        with local_client(create_app(store=store)) as client:
            url = f"/api/studies/{sid}/export"
            r = client.get(url, params={"space": "AnyNetX_E", "format": "json"})
            assert r.status_code == 200, r.text
            body = r.json()
            spec = NetSpec.from_dict(body["structured"]["config"]["spec"])
            assert (spec.num_classes, spec.resolution) == (10, 16)  # digits, not the space's
            assert any("num_classes 1000 → 10" in n for n in body["notes"])
            winner, fit = body["candidates"]
            assert (winner["network"], fit["network"], body["network"]) == ("winner", "fit", "fit")
            assert winner["error"] == pytest.approx(0.1) and fit["error"] is None
            assert fit["e_fit"] == pytest.approx(winner["e_fit"])  # the winner's distance to it
            for c in (winner, fit):
                assert set(c["complexity"]) == {"flops", "params", "acts"}
                assert c["formats"]["timm"] and "exactly 4 stages" in c["formats"]["timm"]
                for fmt, why in c["formats"].items():  # the listed formats and the API agree
                    got = client.get(url, params={"space": "AnyNetX_E", "format": fmt,
                                                  "network": c["network"]})  # fmt: skip
                    assert got.status_code == (200 if why is None else 422), (fmt, got.text)
                    if why is not None:
                        assert f"format: {fmt} cannot build the {c['network']}" in got.text
            r = client.get(url, params={"space": "AnyNetX_E", "format": "pycls",
                                        "network": "winner"})  # fmt: skip
            got = spec_from_pycls(r.json()["text"].split("\n", 2)[2])
            assert got.stage_widths == winner["stage_widths"] and got.num_classes == 10
            assert r.json()["complexity"] == winner["complexity"]
            r = client.get(url, params={"space": "EfficientNet", "format": "json"})
            (only,) = r.json()["candidates"]  # no RegNet is offered for mbconv networks
            assert only["network"] == "winner" and only["e_fit"] is None
            assert [f for f, why in only["formats"].items() if why is None] == ["json"]
            r = client.get(url, params={"space": "EfficientNet", "format": "torchvision"})
            assert r.status_code == 422
            assert "format: torchvision cannot build the winner (mbconv blocks)" in r.text
            r = client.get(url, params={"space": "EfficientNet", "format": "json",
                                        "network": "fit"})  # fmt: skip
            assert r.status_code == 422 and "network: no fitted RegNet" in r.text
    finally:
        store.close()


def test_dse_export_study_space_format_and_trials_csv(tmp_path, capsys):
    import csv
    import io

    from testkit.cli import bad, run

    store, url, sid = _study_with_trials(tmp_path)
    store.close()
    code, out, err = run(capsys, "export", "--study", str(sid), "--space", "AnyNetX_E",
                         "--network", "winner", "--format", "pycls", "--db", url)  # fmt: skip
    assert code == 0, err
    assert "# * winner" in err and "#   fit" in err  # what was chosen, beside the export
    assert "NUM_CLASSES: 10" in out and "IM_SIZE: 16" in out
    code, out, err = run(capsys, "export", "--study", str(sid), "--space", "AnyNetX_E",
                         "--format", "json", "--db", url)  # fmt: skip
    assert code == 0 and json.loads(out)["spec"]["num_classes"] == 10  # stdout: JSON alone
    err = bad(capsys, "export", "--study", str(sid), "--space", "EfficientNet",
              "--format", "pycls", "--db", url)  # fmt: skip
    assert "pycls cannot build the winner (mbconv blocks)" in err
    assert "--resolution" in bad(capsys, "export", "--study", str(sid), "--format", "json",
                                 "--resolution", "32", "--db", url)  # fmt: skip
    assert "--space" in bad(capsys, "export", "--study", str(sid), "--space", "nope",
                            "--format", "json", "--db", url)  # fmt: skip
    assert "--study" in bad(capsys, "export", "--regnet", "13,24,36.44,2.49,8", "--trials",
                            "--format", "json")  # fmt: skip
    code, out, err = run(capsys, "export", "--study", str(sid), "--trials", "--db", url)
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 8 and {r["space"] for r in rows} == {"AnyNetX_E", "EfficientNet"}


def test_own_rules_check_formats_with_dse_copies_of_the_targets_rules():
    from anynet.export import own_rules, timm_stages, torchvision_stages

    p = _params((22, 24, 24.48, 2.54, 16, 0.0), "pycls")
    with own_rules():
        (tv, tv_by), (tm, tm_by) = torchvision_stages(p), timm_stages(p)
    assert tv_by == "dse's copy of the torchvision rule" and tm_by == "dse's copy of the pycls rule"
    assert (tv, tm) == (torchvision_stages(p)[0], timm_stages(p)[0])  # the libraries agree
    assert torchvision_stages(p)[1] == "torchvision's BlockParams"  # outside: the library
