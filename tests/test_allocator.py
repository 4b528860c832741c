"""Training processes start with glibc malloc settings that keep activations mapped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from worker.allocator import MALLOC_ENV, OPT_OUT, applies, tuned_env

pytestmark = pytest.mark.skipif(not applies(), reason="glibc malloc settings: Linux/glibc only")

ROOT = Path(__file__).resolve().parents[1]
DSE = Path(sys.executable).with_name("dse")


def plain_env(**extra: str) -> dict[str, str]:
    """This environment without the malloc settings (as a user's shell has it)."""
    env = {k: v for k, v in os.environ.items() if k not in MALLOC_ENV and k != OPT_OUT}
    return {**env, **extra}


FAULTS = """
import resource, torch
torch.set_num_threads(1)
a, b = torch.randn(256, 80, 32, 32), torch.randn(256, 80, 32, 32)  # 84 MB each
for _ in range(12):  # the heap grows until freed blocks fit the 64-byte-aligned requests
    a + b
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    c = a + b
    del c
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5)
"""


def faults_per_add(env: dict[str, str]) -> float:
    out = subprocess.run([sys.executable, "-c", FAULTS], env=env, capture_output=True,
                         text=True, check=True)  # fmt: skip
    return float(out.stdout)


def test_tuned_malloc_stops_page_faulting_activations_in_every_step():
    default = faults_per_add(plain_env())
    tuned = faults_per_add(tuned_env(plain_env()))
    assert default > 10_000  # 84 MB in 4 kB pages, mapped afresh on every add
    assert tuned < 100


def test_reexec_keeps_the_pid_and_arguments_and_happens_once():
    code = (
        "import os, sys; from worker.allocator import malloc_tuned, reexec_with_tuned_malloc;"
        "print('start', os.getpid(), malloc_tuned(), flush=True); reexec_with_tuned_malloc();"
        "print('after', os.getpid(), malloc_tuned(), sys.argv[1:])"
    )
    out = subprocess.run([sys.executable, "-c", code, "x", "y"], env=plain_env(), cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout.split("\n")  # fmt: skip
    first, second, after = out[0].split(), out[1].split(), out[2].split(" ", 3)
    assert first[2] == "False" and second[2] == "True"  # the re-executed image starts tuned
    assert first[1] == second[1] == after[1]  # same process
    assert after[3] == "['x', 'y']" and len([line for line in out if line]) == 3


@pytest.mark.parametrize(("extra", "expected"), [({}, "tuned"), ({OPT_OUT: "1"}, "default")])
def test_dse_train_runs_with_the_settings_unless_opted_out(extra, expected):
    cmd = [str(DSE), "train", "--regnet", "1,16,16,2.5,8", "--dataset", "digits",
           "--epochs", "1", "--threads", "1", "--json"]  # fmt: skip
    out = subprocess.run(cmd, env=plain_env(**extra), capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    assert json.loads(out)["malloc"] == expected


def test_served_workers_get_the_settings_in_their_environment():
    assert tuned_env({"A": "1"}) == {"A": "1", **MALLOC_ENV}
    assert tuned_env({OPT_OUT: "1"}) == {OPT_OUT: "1"}
