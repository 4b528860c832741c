"""Precision never changes the answer: AMX detection, oneDNN's cap, bf16 against fp32 (issue 24)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from search.spec.study import DatasetSpec, Recipe
from worker import cpu
from worker.data import load_dataset

ROOT = Path(__file__).resolve().parents[1]

SAPPHIRE_RAPIDS = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu vme sse sse2 avx avx2 fma avx512f avx512bw avx512_bf16 amx_bf16 amx_tile amx_int8
"""
EPYC = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
flags\t\t: fpu vme sse sse2 avx avx2 fma
"""
GRAVITON = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp bf16
"""


def test_features_are_read_from_cpuinfo_text():
    spr, epyc, arm = (cpu.cpu_flags(t) for t in (SAPPHIRE_RAPIDS, EPYC, GRAVITON))
    assert cpu.cpu_features(spr) == dict.fromkeys(cpu.FEATURES, True)
    assert cpu.cpu_features(epyc) == {"avx2": True, "avx512f": False, "avx512_bf16": False,
                                      "amx_bf16": False, "amx_tile": False}  # fmt: skip
    assert cpu.has_amx(spr) and not cpu.has_amx(epyc) and not cpu.has_amx(arm)
    assert "asimd" in arm and cpu.cpu_flags("") == frozenset()
    assert cpu.cpu_model(SAPPHIRE_RAPIDS) == "Intel(R) Xeon(R) Platinum 8480+"
    assert cpu.cpu_model(EPYC) == "AMD EPYC"


def test_onednn_is_capped_below_amx_only_where_amx_is():
    spr, epyc = cpu.cpu_flags(SAPPHIRE_RAPIDS), cpu.cpu_flags(EPYC)
    assert cpu.onednn_env({"A": "1"}, spr) == {"A": "1", cpu.ONEDNN_ISA_ENV: "AVX512_CORE_BF16"}
    assert cpu.onednn_env({"A": "1"}, epyc) == {"A": "1"}
    mine = {cpu.ONEDNN_ISA_ENV: "AVX2"}  # an operator's own cap is kept
    assert cpu.onednn_env(mine, spr) == mine


def test_amx_capped_reads_the_isa_setting(monkeypatch):
    monkeypatch.setattr(cpu, "has_amx", lambda flags=None: True)
    assert not cpu.amx_capped({})
    assert cpu.amx_capped({cpu.ONEDNN_ISA_ENV: "AVX512_CORE_BF16"})
    assert not cpu.amx_capped({cpu.ONEDNN_ISA_ENV: "AVX512_CORE_AMX"})
    assert not cpu.amx_capped({cpu.ONEDNN_ISA_ENV: "ALL"})
    monkeypatch.setattr(cpu, "has_amx", lambda flags=None: False)
    assert cpu.amx_capped({})


@pytest.mark.parametrize(("amx", "gains", "expected"),
                         [(True, True, "fp32"), (False, True, "bf16"), (False, False, "fp32")])  # fmt: skip
def test_auto_is_fp32_on_amx_cpus_even_where_bf16_is_faster(monkeypatch, amx, gains, expected):
    from worker import train as wt

    monkeypatch.setattr(cpu, "has_amx", lambda flags=None: amx)
    monkeypatch.setattr(wt, "cpu_bf16_gains", lambda: gains)
    assert wt.auto_precision(torch.device("cpu")) == expected


def test_explicit_bf16_on_an_amx_cpu_caps_onednn_and_says_so(monkeypatch):
    from worker import train as wt

    monkeypatch.setattr(cpu, "has_amx", lambda flags=None: True)
    monkeypatch.delenv(cpu.ONEDNN_ISA_ENV, raising=False)
    engine = wt.Engine(torch.nn.Linear(2, 2), Recipe(precision="bf16"), torch.device("cpu"))
    assert os.environ[cpu.ONEDNN_ISA_ENV] == "AVX512_CORE_BF16"
    assert engine.describe() == "bf16, channels_last, oneDNN AVX512_CORE_BF16"
    fp32 = wt.Engine(torch.nn.Linear(2, 2), Recipe(precision="fp32"), torch.device("cpu"))
    assert fp32.describe() == "fp32, channels_last"  # fp32 never uses AMX: nothing to say


def test_training_commands_restart_with_the_cap_on_amx_cpus(monkeypatch):
    from worker import allocator

    seen = {}

    def execve(path, argv, env):
        seen.update(env)
        raise SystemExit(0)

    monkeypatch.setattr(cpu, "has_amx", lambda flags=None: True)
    monkeypatch.setattr(allocator, "_start_environ", lambda: {**allocator.MALLOC_ENV})
    monkeypatch.setattr(os, "environ", {**allocator.MALLOC_ENV})
    monkeypatch.setattr(os, "execve", execve)
    with pytest.raises(SystemExit):
        allocator.reexec_with_tuned_malloc()
    assert seen[cpu.ONEDNN_ISA_ENV] == "AVX512_CORE_BF16"
    # started with the cap (the re-executed image): no second re-execution
    capped = {**allocator.MALLOC_ENV, cpu.ONEDNN_ISA_ENV: "AVX512_CORE_BF16"}
    monkeypatch.setattr(allocator, "_start_environ", lambda: capped)
    allocator.reexec_with_tuned_malloc()


ISSUE_RUN = ["train", "--space", "AnyNetX_E", "--seed", "1", "--dataset", "digits",
             "--resolution", "16", "--epochs", "2", "--threads", "1", "--json"]  # fmt: skip


@pytest.mark.slow
@pytest.mark.skipif(not cpu.has_amx(), reason="needs a CPU with AMX (amx_bf16/amx_tile in "
                    "/proc/cpuinfo): issue 24's NaN came from oneDNN's AMX bf16 kernels")  # fmt: skip
def test_issue_run_on_amx_is_done_and_repeats_itself():
    env = {k: v for k, v in os.environ.items() if k != cpu.ONEDNN_ISA_ENV}
    results = []
    for precision in ("auto", "bf16", "bf16", "bf16"):
        out = subprocess.run([sys.executable, "-m", "api.cli", *ISSUE_RUN, "--precision",
                              precision], cwd=ROOT, env=env, capture_output=True, text=True)  # fmt: skip
        results.append(json.loads(out.stdout))
    assert results[0]["status"] == "done" and results[0]["precision"].startswith("fp32")
    bf16 = results[1:]
    assert [r["status"] for r in bf16] == ["done"] * 3, [r["message"] for r in bf16]
    assert len({r["val_error"] for r in bf16}) == 1  # same seed, same answer
    assert all("AVX512_CORE_BF16" in r["precision"] for r in bf16)


@pytest.mark.slow
def test_bf16_gives_fp32_answers_on_sampled_networks():
    """The rule of docs/method.md §5 on 3 small AnyNetX_E networks (emulated bf16 here)."""
    from worker.bench import precision_agreement
    from worker.train import set_threads

    set_threads(1)
    data = load_dataset(DatasetSpec(name="digits", resolution=16))
    data = dataclasses.replace(data, train_x=data.train_x[:512], train_y=data.train_y[:512])
    report = precision_agreement("AnyNetX_E", 3, data, epochs=2, seed=1,
                                 bounds={"flops": (0.5e6, 3e6)})  # fmt: skip
    assert report["fp32_done"] == 3, report
    assert report["diverged_where_fp32_trains"] == 0, report
    assert report["agree"], report
    assert all(r["bf16"]["precision"].startswith("bf16") for r in report["networks"])


def test_results_warn_when_a_level_mixes_precisions():
    import pandas as pd

    from search.analysis.results import mixed_precisions

    frame = pd.DataFrame({"status": ["done", "done", "done", "diverged"],
                          "precision": ["fp32", "bf16", "fp32", "bf16"]})  # fmt: skip
    note = mixed_precisions(frame)
    assert note is not None and "1 in bf16, 2 in fp32" in note
    assert mixed_precisions(frame[frame["precision"] == "fp32"]) is None
    assert mixed_precisions(frame.assign(precision=[None, "fp32", "fp32", "bf16"])) is None


def test_workers_started_by_dse_serve_get_the_cap_on_amx_cpus(monkeypatch):
    from api.cli import serve as cli_serve

    started = []

    class FakePopen:
        def __init__(self, cmd, env, preexec_fn=None):
            started.append((cmd, env))

    monkeypatch.setattr(cpu, "has_amx", lambda flags=None: True)
    monkeypatch.delenv(cpu.ONEDNN_ISA_ENV, raising=False)
    monkeypatch.setattr(cli_serve.subprocess, "Popen", FakePopen)
    cli_serve.start_workers(None, cli_serve.worker_plan(2, "cpu"))
    assert len(started) == 2
    for cmd, env in started:
        assert env[cpu.ONEDNN_ISA_ENV] == "AVX512_CORE_BF16" and env["DSE_THREADS"] == "1"
        assert cmd[-2:] == ["--threads", "1"]
