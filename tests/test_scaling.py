"""Scaling to a flop budget (anynet.scaling): the closest exact flops, in Python, CLI and API."""

from __future__ import annotations

import json
import math

import pytest

from anynet.complexity import complexity
from anynet.regnet import RegNetParams
from anynet.scaling import (
    ALPHA,
    BETA,
    GAMMA,
    compound,
    parse_budget,
    scale,
    scale_to,
    widen,
    widen_regnet,
)
from anynet.spaces import get_space
from anynet.spaces.sampling import sample
from anynet.spec import NetSpec
from api.http.app import create_app
from search.store import Store
from testkit.api import created, finish_all, local_client
from testkit.cli import X400, bad, run, run_json
from testkit.nets import b0_spec
from testkit.server import CREATE_WAIT

X400_PARAMS = RegNetParams(depth=22, w0=24, wa=24.48, wm=2.54, group_width=16)


def _grid(lo: float, hi: float, n: int) -> list[float]:
    return [lo + (hi - lo) * i / (n - 1) for i in range(n)]


def test_compound_rounds_as_efficientnet():
    spec = compound(b0_spec(), width=1.1, depth=1.2, resolution=260)
    assert spec.stem.width == 32 and spec.head_width == 1408  # make_divisible(1280·1.1, 8)
    assert spec.stage_widths == [16, 24, 48, 88, 120, 208, 352]
    assert spec.stage_depths == [2, 3, 3, 4, 4, 5, 2]  # ceil(d·1.2)
    with pytest.raises(ValueError, match="width, depth: multipliers must be > 0"):
        compound(b0_spec(), width=0)


def test_efficientnet_rule_gives_the_closest_exact_flops():
    base = b0_spec()
    out = scale(base, factor=4)
    target = 4 * complexity(base)["flops"]
    assert out.rule == "efficientnet" and out.target_flops == target
    assert out.complexity == complexity(out.spec)
    assert abs(out.deviation) < 0.05
    phi = out.factors["phi"]
    assert out.spec == compound(base, BETA**phi, ALPHA**phi, out.factors["resolution"])
    assert out.factors["resolution"] == round(224 * GAMMA**phi)
    # no φ of a fine grid gives a network whose exact flops are closer to the target
    best = abs(out.complexity["flops"] - target)
    for p in _grid(math.log2(4) - 1, math.log2(4) + 1, 401):
        net = compound(base, BETA**p, ALPHA**p, round(224 * GAMMA**p))
        assert abs(complexity(net)["flops"] - target) >= best


def test_dds_rule_keeps_depth_wm_and_block_and_grows_w0_wa_g():
    out = scale(X400_PARAMS, flops=1.6e9, rule="dds")
    p = out.regnet
    assert (p.depth, p.wm, p.bottleneck_multiplier, p.se_ratio) == (22, 2.54, 1.0, 0.0)
    assert p.w0 > 24 and p.wa > 24.48 and p.group_width > 16 and p.w0 % 8 == 0
    assert out.spec == p.spec() and out.complexity == complexity(out.spec)
    assert out.spec.depth == 22 and out.spec.block == "res_bottleneck"
    best = abs(out.complexity["flops"] - 1.6e9)
    for log_s in _grid(0.5, 1.5, 301):
        net = widen_regnet(X400_PARAMS, 2.0**log_s).spec()
        assert abs(complexity(net)["flops"] - 1.6e9) >= best


def test_dds_rule_on_a_network_keeps_depths_and_stem():
    spec = sample(get_space("DenseNet"), 1, seed=2).samples[0].spec
    out = scale(spec, factor=2, rule="dds")
    assert out.spec.stage_depths == spec.stage_depths and out.spec.stem == spec.stem
    assert all(w % 8 == 0 for w in out.spec.stage_widths)
    assert out.spec == widen(spec, out.factors["s"])
    assert out.complexity["flops"] > complexity(spec)["flops"]


def test_defaults_and_bad_input_name_the_field():
    assert scale_to(X400_PARAMS, "2x").rule == "dds"
    assert scale_to(b0_spec(), "1G").rule == "efficientnet"
    assert parse_budget("4x") == (None, 4.0) and parse_budget("1.6G") == (1.6e9, None)
    for text in ("4y", "-2x", "0x", "1e999"):
        with pytest.raises(ValueError, match="flops: "):
            parse_budget(text)
    with pytest.raises(ValueError, match="rule: must be one of"):
        scale(b0_spec(), factor=2, rule="mnas")
    with pytest.raises(ValueError, match="flops: give exactly one"):
        scale(b0_spec(), flops=1e9, factor=2)
    with pytest.raises(ValueError, match="resolution: a NetSpec takes no spec options"):
        scale(b0_spec(), factor=2, resolution=32)


# --- dse scale, dse export --scale-flops ------------------------------------------------------
def test_dse_scale_spec_and_regnet(capsys, tmp_path):
    path = tmp_path / "b0.json"
    path.write_text(b0_spec().to_json())
    data = run_json(capsys, "scale", "--spec", str(path), "--flops", "4x")
    spec = NetSpec.from_dict(data["spec"])
    assert data["rule"] == "efficientnet" and data["complexity"] == complexity(spec)
    assert data["base"]["complexity"] == complexity(b0_spec())
    assert data["target_flops"] == 4 * data["base"]["complexity"]["flops"]
    assert data["spec"] == scale(b0_spec(), factor=4).spec.to_dict()
    data = run_json(capsys, "scale", "--regnet", X400, "--flops", "1.6G", "--classes", "10")
    assert data["rule"] == "dds" and data["regnet"]["depth"] == 22
    assert NetSpec.from_dict(data["spec"]).num_classes == 10
    code, out, _ = run(capsys, "scale", "--regnet", X400, "--flops", "2x", "--rule", "efficientnet")
    assert code == 0 and "deviation from the target" in out and "rule efficientnet" in out
    assert "flops: expected a factor" in bad(capsys, "scale", "--regnet", X400, "--flops", "4y")
    assert "--rule" in bad(capsys, "scale", "--regnet", X400, "--flops", "2x", "--rule", "mnas")


def test_dse_export_scaled(capsys):
    data = run_json(capsys, "export", "--regnet", X400, "--format", "pycls",
                    "--scale-flops", "4x")  # fmt: skip
    scaled = scale(X400_PARAMS, factor=4, rule="dds")
    assert data["stage_widths"] == scaled.spec.stage_widths
    assert data["config"]["REGNET"]["W0"] == scaled.regnet.w0
    assert data["config"]["REGNET"]["DEPTH"] == 22
    assert "--rule: give --scale-flops" in bad(
        capsys, "export", "--regnet", X400, "--format", "json", "--rule", "dds"
    )


# --- the export route --------------------------------------------------------------------------
def test_export_route_scales_and_refuses_what_the_target_cannot_build(tmp_path):
    small = {"stem": {"type": "cifar", "width": 8}, "resolution": 8, "num_classes": 4}
    spec = {
        "name": "families",
        "dataset": {"name": "synthetic", "resolution": 8, "num_classes": 4, "train_size": 64},
        "spaces": [
            {"preset": "AnyNetX_E", **small, "stages": 2, "depth": [1, 2], "width": [8, 24]},
            {"preset": "EfficientNet", **small, "stages": 2, "head_width": 32},
        ],
        "samples": 3,
        "fidelities": [1],
    }
    store = Store(f"sqlite:///{tmp_path / 'f.db'}")
    try:
        with local_client(create_app(store=store, create_wait=CREATE_WAIT)) as client:
            sid = created(client, spec)
            assert finish_all(store) == 6
            url = f"/api/studies/{sid}/export"
            r = client.get(url, params={"space": "AnyNetX_E", "scale_flops": "4x"})
            assert r.status_code == 200, r.text
            body = r.json()
            exported = NetSpec.from_dict(body["structured"]["config"]["spec"])
            assert body["complexity"] == complexity(exported)
            assert body["scaled"]["complexity"] == body["complexity"]
            assert abs(body["scaled"]["deviation"]) < 0.5 and "scaled by the" in body["source"]
            r = client.get(url, params={"space": "EfficientNet", "format": "pycls"})
            assert r.status_code == 422 and "block: pycls has no 'mbconv' block" in r.text
            r = client.get(url, params={"space": "EfficientNet", "scale_flops": "2x"})
            assert r.status_code == 200, r.text
            body = r.json()
            assert any("not RegNets" in n for n in body["notes"])
            assert body["scaled"]["rule"] == "efficientnet"
            assert NetSpec.from_dict(body["structured"]["config"]["spec"]).block == "mbconv"
            r = client.get(url, params={"space": "AnyNetX_E", "scale_flops": "4y"})
            assert r.status_code == 422 and "flops" in r.text
            r = client.get(url, params={"space": "AnyNetX_E", "rule": "dds"})
            assert r.status_code == 422 and "rule" in json.dumps(r.json())
    finally:
        store.close()
