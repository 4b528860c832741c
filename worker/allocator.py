"""glibc malloc settings for training processes, applied when the process starts.

A training step allocates and frees activations of tens of MB. glibc serves every
allocation above its mmap threshold (at most 32 MB, dynamic) with a fresh mmap, so each step
page-faults its activations in again: an out-of-place add of two 84 MB tensors took 65 ms
(20,481 minor faults) against 14 ms (none) once the thresholds are raised, and sampled
ResNeXt nets trained 1.2-2.0x faster here. glibc reads these variables only at start-up
(`mallopt` later left half the faults in place), so the `dse` commands that train re-execute
themselves once with them set (`reexec_with_tuned_malloc`); workers started by `dse serve`
and the Docker image get them in their environment directly.
Tried and not kept: PyTorch's THP_MEM_ALLOC_ENABLE (with the raised thresholds it made
the add 8x slower) and glibc.malloc.hugetlb=1 (no gain on whole steps).
"""

from __future__ import annotations

import os
import platform
import sys

from worker.cpu import ONEDNN_ISA_ENV, onednn_env

MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}
OPT_OUT = "DSE_DEFAULT_MALLOC"  # set to 1 to keep glibc's defaults (no re-exec)


def _start_environ() -> dict[str, str]:
    """The environment this process started with (what glibc read), not today's os.environ."""
    try:
        with open("/proc/self/environ", "rb") as f:
            raw = f.read()
    except OSError:
        return dict(os.environ)
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def applies() -> bool:
    """Whether the settings mean anything here: Linux with glibc."""
    return sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def malloc_tuned() -> bool:
    """Whether this process started with the training malloc settings in effect."""
    env = _start_environ()
    return applies() and all(env.get(k) == v for k, v in MALLOC_ENV.items())


def tuned_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """`env` (default os.environ) plus the malloc settings, unless the user opted out."""
    env = dict(os.environ if env is None else env)
    if env.get(OPT_OUT) == "1" or not applies():
        return env
    return {**env, **MALLOC_ENV}


def reexec_with_tuned_malloc() -> None:
    """Replace this process by itself with the malloc settings, once; no-op where not needed.

    On a CPU with AMX the same re-execution caps oneDNN below AMX (worker.cpu.onednn_env:
    its bf16 kernels produced NaN there), which oneDNN also reads only once.
    Call before any work: the same PID, arguments and open files go on in the new image.
    """
    env = onednn_env(tuned_env())
    wanted = {k: env[k] for k in (*MALLOC_ENV, ONEDNN_ISA_ENV) if k in env}
    start = _start_environ()
    if all(start.get(k) == v for k, v in wanted.items()):
        return
    if all(os.environ.get(k) == v for k, v in wanted.items()):
        return  # set in os.environ after start (where glibc cannot see it): do not loop
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, sys.orig_argv, env)
