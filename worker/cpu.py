"""What this CPU can do for training, and the oneDNN setting bf16 needs on CPUs with AMX.

bf16 on a CPU runs natively with AVX512-BF16 or AMX; without either (AVX2-only CPUs, e.g.
some AMD EPYC machines) oneDNN emulates it, ~10x slower than fp32. On a CPU with AMX some oneDNN bf16
kernel yields NaN on some shapes, not always (issue 24; the runs that showed it, and the
rule bf16 must pass there, are docs/method.md §5 "Precision never changes the answer"). So
on CPUs with AMX:
- `precision: auto` trains in fp32 (worker.train.auto_precision);
- training processes start with oneDNN capped below AMX (`onednn_env`: the `dse` training
  commands re-execute themselves with it, worker.allocator), so an explicit bf16 runs on the
  AVX512-BF16 kernels. fp32 does not use AMX, so the cap costs fp32 nothing.
"""

from __future__ import annotations

import functools
import os
import platform

CPUINFO = "/proc/cpuinfo"
ONEDNN_ISA_ENV = "ONEDNN_MAX_CPU_ISA"  # read by oneDNN once, when it first dispatches
AMX_CAP = "AVX512_CORE_BF16"  # the highest ISA below AMX: native bf16 without AMX tiles
FEATURES = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu_flags(text: str | None = None) -> frozenset[str]:
    """The feature flags of /proc/cpuinfo (or of `text`, in its format); empty when unknown."""
    if text is None:
        text = _cpuinfo()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def cpu_model(text: str | None = None) -> str:
    """The CPU's model name from /proc/cpuinfo (or `text`); the platform's answer otherwise."""
    if text is None:
        text = _cpuinfo()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            return value.strip()

    return platform.processor() or platform.machine()


@functools.cache
def _cpuinfo() -> str:
    try:
        with open(CPUINFO) as f:
            return f.read()
    except OSError:
        return ""


def cpu_features(flags: frozenset[str] | None = None) -> dict[str, bool]:
    """AVX2, AVX-512, AVX512-BF16 and AMX (bf16 tiles) of this CPU, by name."""
    flags = cpu_flags() if flags is None else flags
    return {name: name in flags for name in FEATURES}


def has_amx(flags: frozenset[str] | None = None) -> bool:
    """Whether the CPU has AMX bf16 tiles (the kernels that produced NaN in issue 24)."""
    flags = cpu_flags() if flags is None else flags
    return "amx_bf16" in flags or "amx_tile" in flags


def onednn_env(env: dict[str, str], flags: frozenset[str] | None = None) -> dict[str, str]:
    """`env` with oneDNN capped below AMX on a CPU that has it; a cap already set is kept."""
    if has_amx(flags) and ONEDNN_ISA_ENV not in env:
        return {**env, ONEDNN_ISA_ENV: AMX_CAP}
    return dict(env)


def amx_capped(env: dict[str, str] | None = None) -> bool:
    """Whether oneDNN is kept off AMX here: no AMX, or the ISA cap set in `env` (os.environ)."""
    env = os.environ if env is None else env
    isa = env.get(ONEDNN_ISA_ENV, "").upper()
    return not has_amx() or (bool(isa) and "AMX" not in isa and isa != "ALL")
