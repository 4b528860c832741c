"""`dse model`, `dse sample`, `dse export`: in-process through api.cli.parser, once as a process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from anynet.complexity import complexity
from anynet.export import spec_from_pycls
from anynet.regnet import RegNetParams, regnet_spec
from anynet.spec import NetSpec
from api.cli.kit import parse_bounds, parse_number
from testkit.cli import X400, bad, run, run_json

ROOT = Path(__file__).resolve().parents[1]


# --- model ---------------------------------------------------------------------------------
def test_model_regnet_json(capsys):
    data = run_json(capsys, "model", "--regnet", X400)
    assert data["stage_depths"] == [1, 2, 7, 12]
    assert data["stage_widths"] == [32, 64, 160, 384]
    assert data["group_widths"] == [16] * 4
    assert data["params"] == 5_157_512
    spec = NetSpec.from_dict(data["spec"])
    assert spec == regnet_spec(22, 24, 24.48, 2.54, 16)
    assert {k: data[k] for k in ("flops", "params", "acts")} == complexity(spec)
    assert data["regnet"]["rounding"] == "pycls"


def test_model_regnet_options(capsys):
    args = ("model", "--regnet", "14,56,38.84,2.4,16", "--se", "0.25")
    data = run_json(capsys, *args, "--rounding", "torchvision", "--resolution", "64")
    assert data["stage_widths"] == [64, 144, 320, 784]
    spec = NetSpec.from_dict(data["spec"])
    assert spec.se_ratio == 0.25 and spec.resolution == 64 and spec.num_classes == 1000
    data = run_json(capsys, *args, "--classes", "10", "--bot-mul", "0.5")
    assert NetSpec.from_dict(data["spec"]).num_classes == 10
    assert data["spec"]["stages"][0]["bottleneck_multiplier"] == 0.5


def test_model_text_table(capsys):
    code, out, _ = run(capsys, "model", "--regnet", "13,24,36.44,2.49,8")
    assert code == 0
    assert "pycls rule" in out and "368" in out and "params" in out


def test_model_spec_file(capsys, tmp_path):
    spec = regnet_spec(13, 24, 36.44, 2.49, 8, num_classes=10, resolution=32)
    path = tmp_path / "net.json"
    path.write_text(spec.to_json())
    data = run_json(capsys, "model", "--spec", str(path))
    assert NetSpec.from_dict(data["spec"]) == spec
    assert data["params"] == complexity(spec)["params"]
    data = run_json(capsys, "model", "--spec", str(path), "--resolution", "64")
    assert data["spec"]["resolution"] == 64


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (("--regnet", "22,20,24.48,2.54,16"), "w0: initial width must be a multiple of 8"),
        (("--regnet", "22,24,24.48,1.0,16"), "wm: width multiplier must be > 1"),
        (("--regnet", "22,-8,24.48,2.5,16"), "w0: initial width must be > 0"),
        (("--regnet", "22,24,-1,2.5,16"), "wa: width slope must be >= 0"),
        (("--regnet", "22,24,24.48"), "--regnet: expected D,W0,WA,WM,G"),
        (("--regnet", "22,24,x,2.5,16"), "--regnet: wa must be a number"),
        (("--regnet", X400, "--rounding", "timm"), "rounding: must be one of"),
        (("--spec", "/nonexistent/net.json"), "--spec: no such file"),
        ((), "one of the arguments --regnet --spec --reference --references is required"),
    ],
)
def test_model_bad_input(capsys, argv, needle):
    assert needle in bad(capsys, "model", *argv)


def test_model_bad_spec_files(capsys, tmp_path):
    path = tmp_path / "net.json"
    path.write_text("{not json")
    assert "malformed JSON" in bad(capsys, "model", "--spec", str(path))
    spec = regnet_spec(13, 24, 36.44, 2.49, 8).to_dict()
    spec["stages"][0]["width"] = -8
    path.write_text(json.dumps(spec))
    assert "stages.0.width" in bad(capsys, "model", "--spec", str(path))
    spec = regnet_spec(13, 24, 36.44, 2.49, 8).to_dict() | {"block": "shuffle"}
    path.write_text(json.dumps(spec))
    assert "block" in bad(capsys, "model", "--spec", str(path))


# --- sample --------------------------------------------------------------------------------
def test_sample_preset_with_bounds(capsys):
    argv = ("sample", "--space", "RegNetX", "--n", "3", "--flops", "360M:400M", "--seed", "0")
    data = run_json(capsys, *argv)
    assert len(data["samples"]) == 3 and data["draws"] >= 3
    assert data["acceptance"] == pytest.approx(3 / data["draws"])
    for s in data["samples"]:
        spec = NetSpec.from_dict(s["spec"])
        assert 360e6 <= s["complexity"]["flops"] <= 400e6
        assert s["complexity"] == complexity(spec)
        assert {"w0", "wa", "wm"} <= set(s["params"])
    assert run_json(capsys, *argv) == data  # same seed, same samples


def test_sample_space_file_and_overrides(capsys, tmp_path):
    path = tmp_path / "space.json"
    entry = {"preset": "ResNet", "stages": 3, "depth": [1, 3]}
    path.write_text(json.dumps(entry))
    argv = ("sample", "--space", str(path), "--n", "2", "--seed", "1", "--classes", "7")
    data = run_json(capsys, *argv, "--params", "1e3:5e6", "--resolution", "16")
    for s in data["samples"]:
        spec = NetSpec.from_dict(s["spec"])
        assert spec.num_classes == 7 and spec.resolution == 16 and len(spec.stages) == 3
        assert max(spec.stage_depths) <= 3
    code, out, _ = run(capsys, *argv)
    assert code == 0 and "acceptance" in out


def test_sample_named_complexity(capsys):
    # NDS §4's cap at ResNet-56's size; --params narrows the named bounds further
    argv = ("sample", "--space", "ResNet", "--n", "4", "--seed", "0", "--complexity", "nds_r56")
    for s in run_json(capsys, *argv)["samples"]:
        assert s["complexity"]["params"] <= 0.856e6 and s["complexity"]["flops"] <= 0.129e9
    for s in run_json(capsys, *argv, "--params", "0:0.3M")["samples"]:
        assert s["complexity"]["params"] <= 0.3e6 and s["complexity"]["flops"] <= 0.129e9
    assert "complexity: unknown preset 'r57'" in bad(
        capsys, "sample", "--space", "ResNet", "--n", "1", "--seed", "0", "--complexity", "r57"
    )


def test_parse_numbers():
    assert parse_number("360e6", "x") == 360e6
    assert parse_number("360M", "x") == 360e6
    assert parse_number("0.4G", "x") == 4e8
    assert parse_number("400MF", "x") == 4e8
    assert parse_bounds("360M:400M", "--flops") == (360e6, 400e6)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (("--space", "AnyNetZ"), "unknown preset 'AnyNetZ'"),
        (("--space", "RegNetX", "--flops", "1:2"), "flops"),
        (("--space", "RegNetX", "--flops", "400M:360M"), "--flops: LO"),
        (("--space", "RegNetX", "--flops", "lots"), "--flops: expected LO:HI"),
        (("--space", "RegNetX", "--acts", "1:x"), "--acts: expected a number"),
        (("--space", "/nonexistent/space.json"), "--space: no such file"),
    ],
)
def test_sample_bad_input(capsys, argv, needle):
    assert needle in bad(capsys, "sample", *argv, "--n", "2", "--seed", "0", "--max-draws", "2000")


def test_sample_bad_space_files(capsys, tmp_path):
    path = tmp_path / "space.json"
    path.write_text("[1, 2")
    assert "malformed JSON" in bad(
        capsys, "sample", "--space", str(path), "--n", "1", "--seed", "0"
    )
    path.write_text(json.dumps({"preset": "AnyNetX_A", "block": "shuffle"}))
    assert "block" in bad(capsys, "sample", "--space", str(path), "--n", "1", "--seed", "0")


# --- export --------------------------------------------------------------------------------
def test_export_pycls_reads_back(capsys):
    code, out, _ = run(capsys, "export", "--regnet", X400, "--format", "pycls", "--classes", "10")
    assert code == 0
    assert spec_from_pycls(out) == regnet_spec(22, 24, 24.48, 2.54, 16, num_classes=10)


def test_export_json_then_model_and_export_of_it(capsys, tmp_path):
    code, out, _ = run(capsys, "export", "--regnet", X400, "--format", "json")
    path = tmp_path / "x400.json"
    path.write_text(out)
    data = run_json(capsys, "model", "--spec", str(path))
    assert (
        data["regnet"]
        == RegNetParams(depth=22, w0=24, wa=24.48, wm=2.54, group_width=16).model_dump()
    )
    out = run_json(capsys, "export", "--spec", str(path), "--format", "timm")
    assert out["config"]["cfg"]["group_min_ratio"] == 0.0


def test_export_structured_torchvision(capsys):
    args = ("export", "--regnet", X400, "--format", "torchvision")
    out = run_json(capsys, *args, "--rounding", "torchvision")
    assert out["rule_agrees"] and out["config"]["from_init_params"]["w_a"] == 24.48
    out = run_json(capsys, *args)
    assert not out["rule_agrees"] and out["config"]["block_params"]["widths"][-1] == 384


def test_export_bad_input(capsys):
    assert "format: must be one of" in bad(capsys, "export", "--regnet", X400, "--format", "onnx")
    err = bad(capsys, "export", "--regnet", "6,24,36.44,2.49,8", "--format", "timm")
    assert "exactly 4 stages" in err


def test_installed_console_script(tmp_path):
    dse = ROOT / ".venv" / "bin" / "dse"
    if not dse.exists():
        dse = Path(sys.executable).parent / "dse"
    ok = subprocess.run(
        [str(dse), "model", "--regnet", X400, "--json"], capture_output=True, text=True, check=False
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["params"] == 5_157_512
    no = subprocess.run(
        [str(dse), "model", "--regnet", "22,24,24.48,0.9,16"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert no.returncode != 0 and no.stdout == ""
    assert no.stderr.strip().splitlines() == [
        "dse model: error: wm: width multiplier must be > 1, got 0.9"
    ]
