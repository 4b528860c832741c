"""`dse train` / `dse bench` through the real entry point: JSON on stdout, one-line errors."""

from __future__ import annotations

import json

import pytest

from api.cli import CliError, main
from api.cli_kit import parse_regnet
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
    # recipes stop at lr 10 (search.spec.MAX_LR), where this network only stays at chance;
    # the training loop's divergence path is what is tested here
    monkeypatch.setattr("search.spec.MAX_LR", 1e5)
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


def test_bench_report_states_ratios_and_peak_fraction():
    report = {
        "engine": {"images_per_s": 3000.0, "flop_per_s": 1.2e11},
        "baseline": {"images_per_s": 1000.0, "flop_per_s": 4e10,
                     "tuned_malloc_images_per_s": 1500.0},
        "speedup": 3.0,
        "service": {"images_per_s": 4000.0, "flop_per_s": 1.6e11},
        "service_speedup": 4.0,
        "peak": {"bf16_flop_per_s": 4e11, "fp32_flop_per_s": 1.7e11},
        "engine_precision": "fp32",
        "engine_fraction_of_peak": 0.7,
        "service_fraction_of_peak": 0.94,
        "engine_fraction_of_bf16_peak": 0.3,
        "workers": {"one_worker_all_cores": 3000.0, "one_worker_per_core": 4000.0,
                    "cores": 2, "default": "one_worker_per_core"},
        "networks": [],
    }  # fmt: skip
    text = format_report(report)
    assert "3.00x" in text and "4.00x the naive loop" in text and "1500 images/s" in text
    assert "fp32 at 70.0% of that peak" in text and "one_worker_per_core" in text


def test_bench_runs_each_way_in_fresh_processes_with_the_right_malloc():
    from worker.bench import in_processes, networks

    spec = networks(1)[0].spec
    job = {"specs": [spec.to_json()], "threads": 1, "train_size": 64, "batch_size": 32}
    # in_processes raises if a child did not start with the malloc settings it was given
    engine = in_processes({**job, "way": "engine"}, 2, tuned_malloc=True)
    baseline = in_processes({**job, "way": "baseline"}, 1, tuned_malloc=False)
    assert len(engine) == len(baseline) == 1 and engine[0] > 0 and baseline[0] > 0
