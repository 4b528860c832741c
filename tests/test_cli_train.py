"""`dse train` / `dse bench` through the real entry point: JSON on stdout, one-line errors."""

from __future__ import annotations

import json

import pytest

from api.cli.kit import parse_regnet
from api.cli.parser import CliError, main
from worker.bench import format_report


def test_train_json_is_one_document_with_the_contract_keys(capsys):
    code = main(["train", "--regnet", "2,16,16,2.5,8", "--dataset", "digits", "--epochs", "2",
                 "--batch-size", "64", "--threads", "1", "--json"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0
    doc = json.loads(out)
    assert {"val_error", "epochs", "images_per_s", "flops", "params", "status"} <= set(doc)
    assert doc["status"] == "done" and len(doc["epochs"]) == 2 and 0 <= doc["val_error"] <= 1
    assert doc["flops"] > 0 and doc["params"] > 0 and doc["spec"]["resolution"] == 16
    assert "epoch 2/2" in err  # progress goes to stderr, not stdout


def test_spec_file_is_trained_with_the_dataset_classes(tmp_path, capsys):
    from anynet.regnet import regnet_spec

    f = tmp_path / "net.json"
    f.write_text(regnet_spec(2, 16, 16, 2.5, 8, stem_type="cifar", resolution=12).to_json())
    code = main(["train", "--spec", str(f), "--dataset", "synthetic", "--epochs", "1",
                 "--threads", "1", "--json"])  # fmt: skip
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["spec"]["num_classes"] == 10 and doc["spec"]["resolution"] == 12


def test_missing_dataset_root_is_one_line_and_exit_2(tmp_path, capsys):
    code = main(["train", "--regnet", "2,16,16,2.5,8", "--dataset", "cifar10",
                 "--data-root", str(tmp_path / "none"), "--epochs", "1"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "cifar-10-batches-py" in err and str(tmp_path / "none") in err


def test_divergence_exits_1_with_the_status_not_a_traceback(capsys, monkeypatch):
    # recipes stop at lr 10 (search.spec.study.MAX_LR), where this network only stays at chance;
    # the training loop's divergence path is what is tested here
    monkeypatch.setattr("search.spec.study.MAX_LR", 1e5)
    code = main(["train", "--regnet", "2,16,16,2.5,8", "--dataset", "digits", "--epochs", "2",
                 "--lr", "10000", "--threads", "1", "--json"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 1 and json.loads(out)["status"] == "diverged"
    assert "Traceback" not in err and "diverged" in err


def test_bad_regnet_argument_names_the_flag():
    regnet = parse_regnet("6,24,24.5,2.5,8")
    assert (regnet.depth, regnet.w0, regnet.wa, regnet.wm, regnet.group_width) == (
        6,
        24,
        24.5,
        2.5,
        8,
    )
    with pytest.raises(CliError, match="--regnet"):
        parse_regnet("6,24,24")
    assert main(["train", "--regnet", "a,b,c,d,e", "--dataset", "digits", "--epochs", "1"]) == 2


def _bench_report() -> dict:
    workers = {
        "default": 300.0,
        "one_thread": 310.0,
        "all_cores": 20.0,
        "default_over_one_thread": 300 / 310,
        "all_cores_over_one_thread": 20 / 310,
    }
    report = {
        "machine": {"cpu": "AMD EPYC", "cores": 2, "torch_cpu_capability": "AVX2", "gpu": None,
                    "features": {"avx2": True, "avx512f": False, "amx_bf16": False}},
        "peak": {"gemm": {"fp32": {"flop_per_s": 6e10}, "bf16": {"flop_per_s": 3e8}},
                 "conv": {"fp32": {"channels_last": 3e10, "nchw": 2e10}}},
        "engine": {"images_per_s": 150.0, "flop_per_s": 1.2e10, "precision": "fp32, channels_last",
                   "fraction_of_gemm_peak": 0.2, "fraction_of_conv_peak": 0.4},
        "step": {"seconds": 0.8, "shares": {"convolution": 0.6, "normalisation": 0.25,
                                             "elementwise": 0.14, "optimizer": 0.005,
                                             "data": 0.005}},
        "baseline": {"images_per_s": 50.0},
        "speedup": 3.0,
        "workers": {"cores": 2, "goal": 0.8, "free": workers, "with_busy_core": workers,
                    "default_threads": [1]},
    }  # fmt: skip
    return report


def test_bench_report_names_the_machine_peaks_split_and_workers():
    text = format_report(_bench_report())
    assert "AMD EPYC, 2 cores: avx2 (torch AVX2)" in text
    assert "fp32 60.0, bf16 0.3" in text and "fp32 channels_last 30.0, nchw 20.0" in text
    assert "20.0% of the GEMM peak, 40.0% of the conv-shape peak" in text
    assert "convolution 60%, normalisation 25%" in text and "3.00x" in text
    assert "default / 1 thread 0.97, goal >= 0.8; default threads [1]" in text
    assert "one core busy" in text
    assert "without" not in text  # a report from before the small-channel batch norm


def test_bench_report_shows_the_engine_without_the_small_channel_bn_beside_it():
    report = _bench_report()
    report["engine_without_small_bn"] = {
        "images_per_s": 120.0, "fraction_of_gemm_peak": 0.16, "fraction_of_conv_peak": 0.32,
        "speedup": 2.4, "step": {"seconds": 1.0, "shares": {"convolution": 0.5,
                                                            "normalisation": 0.35}},
    }  # fmt: skip
    report["small_bn_speedup"] = 1.25
    text = format_report(report)
    assert "16.0% of the GEMM peak, 32.0% of the conv-shape peak; step 1000 ms" in text
    assert "normalisation 35%" in text and "1.25x (engine with / without it" in text
    assert "3.00x (engine / naive loop, same network); without the small-channel BN 2.40x" in text


def test_bench_alternates_with_and_without_the_small_channel_bn(monkeypatch):
    from worker import bench

    order = []
    monkeypatch.setattr(bench, "run_children", lambda job, n, tuned_malloc: order.append(
        job["small_bn"]) or [{"small_bn": job["small_bn"]}])  # fmt: skip
    replies = bench.with_and_without({"way": "engine"}, 3, log=lambda s: None)
    assert order == [True, False, False, True, True, False]
    assert all(r["small_bn"] is k for k, v in replies.items() for r in v)


def test_bench_conv_shapes_count_each_distinct_convolution():
    from anynet.complexity import complexity
    from worker.bench import conv_shapes, networks

    spec = networks(1)[0].spec
    batch = 2
    shapes = conv_shapes(spec, batch)
    assert all(s["count"] >= 1 and s["input"][0] == batch for s in shapes)
    assert sum(s["count"] for s in shapes) > len(shapes)  # blocks of a stage share shapes
    # forward multiply-adds per image of the convs (train flops = 3 passes x 2 flops a MAC):
    # most of the network's flops, never more
    conv_flops = sum(s["count"] * s["train_flops"] for s in shapes) / (3 * 2 * batch)
    assert 0.8 * complexity(spec)["flops"] < conv_flops <= complexity(spec)["flops"]


def test_bench_runs_each_way_in_fresh_processes_with_the_right_malloc():
    from worker.bench import in_processes, networks

    spec = networks(1)[0].spec
    job = {"specs": [spec.to_json()], "threads": 1, "train_size": 64, "batch_size": 32}
    # in_processes raises if a child did not start with the malloc settings it was given
    engine = in_processes({**job, "way": "engine"}, 2, tuned_malloc=True)
    baseline = in_processes({**job, "way": "baseline"}, 1, tuned_malloc=False)
    assert len(engine) == len(baseline) == 1 and engine[0] > 0 and baseline[0] > 0
