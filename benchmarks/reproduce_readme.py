"""Rerun a study README.md or docs/method.md quotes, exactly as they say, and check its figures.

    PYTHONPATH=. .venv/bin/python benchmarks/reproduce_readme.py --example first|families|demo
        [--exact] [--keep DIR] [--results EDF.json --wall-minutes M --precision P] [--json]

`first` is README's "A study" (docs/first_study.json, the README's inline spec), `families`
its "Example: design-space families on digits" (docs/families_study.json), `demo` the
`dse demo` run of docs/method.md §6 (and the README's first paragraph, which quotes it). In a
fresh temporary directory with a fresh SQLite database (`DSE_DB=sqlite:///…/dse.db`) it runs
what the text says: `dse study create SPEC`, two `dse worker --exit-when-idle` processes with
the default flags (one torch thread each, the best device: what `dse serve --workers 2`
starts too) and `dse study wait 1`, or `dse demo --no-serve` (one worker per core); then
`dse edf 1 --json`. Each text quotes a run in one precision and, beside it, the same command
in the other (`precision: auto` trains in bf16 on a CPU with AVX512-BF16 and on every GPU, in
fp32 elsewhere); the run's precision (`dse study show --json`, `ran_with`) picks the figures
it is held to (`other_run`). It prints each quoted figure beside the one measured and exits 1
when one differs by more than its tolerance (or the run fails):

- wall time (from `dse study create` to the end of `dse study wait`): at most ×2 the time
  quoted (a quiet machine or a GPU is faster, which is no disagreement);
- errors (mean, min, a reference's mean): ±0.02;
- KS D: ±0.13 (two networks of 16);
- KS p: within a factor of 10; q: the same, and on the same side of 0.05 (the verdict);
- "X → Y changes nothing" (the demo): q ≥ 0.05; "(q < Q)": below Q;
- a reference's percentile in a space: ±13 points (two networks of 16);
- trials at chance: ±1; trial counts: exactly;
- the flops range of a space's networks (sampled, not trained: the same on every machine):
  to the digits quoted.

On a CPU, training is deterministic for a fixed seed, thread count and precision
(docs/method.md §5), so on the machine the text names a rerun gives its figures to the
digits printed, whatever the load: only the wall time moves (`--exact` fails on any other
difference). The tolerances are for other machines: another CPU's or a GPU's kernels round
differently, and a 2-epoch training moves as far under that as under a new seed; a figure
outside them says the run tells another story, or that the machine trains differently, and
is worth a look either way.

The figures are read from the text (`readme_figures`; tests/test_quoted_numbers.py holds
that reading to README.md and docs/method.md as they stand), so each number lives in one
place. `--results` checks a saved `dse edf --json` document instead of training (with
`--wall-minutes`, the wall time that run took); `--keep DIR` runs in DIR and leaves the
database, the logs and edf.json there.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
METHOD = REPO / "docs" / "method.md"
SPECS = {
    "first": REPO / "docs" / "first_study.json",
    "families": REPO / "docs" / "families_study.json",
    "demo": None,  # `dse demo --no-serve` makes its own (api/cli/demo.py demo_spec)
}
# where each example's figures stand: from this heading to the next (README.md), or this
# bullet to the next (docs/method.md)
SECTIONS = {
    "first": "## A study",
    "families": "## Example: design-space families on digits",
    "demo": "- **The demo**",
}
# The precision each example's text quotes first; beside it, each quotes the same command in
# the other one (`precision: auto` is bf16 on a CPU with AVX512-BF16 and on every GPU, fp32
# elsewhere: docs/method.md §5), whose figures replace the ones it restates (`other_run`).
PRECISION = {"first": "fp32", "families": "bf16", "demo": "fp32"}
VERDICT_Q = 0.05  # a difference is a finding at q < 0.05 (docs/method.md §6)
NAME = r"[A-Za-z][\w.-]*[\w]"  # a space or reference name (AnyNetX_E, DenseNet-style)
NUM = r"\d+(?:\.\d+)?(?:e-?\d+)?"


# --- the figures quoted ------------------------------------------------------------------------
class Quoted(float):
    """A figure as the text writes it: its value and the decimals printed (0.093: 3; 88%: 2)."""

    decimals: int

    @classmethod
    def parse(cls, text: str, percent: bool = False) -> Quoted:
        mantissa, _, exp = text.lower().partition("e")
        decimals = len(mantissa.partition(".")[2]) - (int(exp) if exp else 0)
        q = cls(float(text) / 100 if percent else float(text))
        q.decimals = decimals + (2 if percent else 0)
        return q

    @classmethod
    def bound(cls, value: float) -> Quoted:
        q = cls(value)
        q.decimals = 0
        return q


def section(text: str, head: str) -> str:
    """The text from `head` to the next heading (or bullet, for a bullet), whitespace collapsed
    (lines wrap anywhere)."""
    start = text.index(head)
    stop = "\n- **" if head.startswith("- **") else "\n## "
    end = text.find(stop, start + len(head))
    return " ".join(text[start : end if end >= 0 else None].split())


def _pair(a: str, b: str) -> str:
    return " vs ".join(sorted((a, b)))


def _need(s: str, pattern: str, where: str, what: str) -> re.Match:
    m = re.search(pattern, s)
    if not m:
        raise ValueError(f"{where}: no {what} (/{pattern}/)")
    return m


def readme_figures(
    text: str, example: str, method: str | None = None, precision: str | None = None
) -> dict[str, Quoted]:
    """{figure: value} as README.md (`text`) quotes them for `example`; a figure missing is an
    error. `demo` reads the README's first paragraph and docs/method.md's "The demo" (`method`).
    With `precision` other than the run the text quotes first (PRECISION), the figures the text
    gives for a run in that precision replace those (`other_run`); a precision the text
    quotes no run of is an error.

    Keys: `trials`, `wall_minutes`, `at_chance`, `mean:SPACE`, `min:SPACE`, `D:A vs B`,
    `p:A vs B`, `q:A vs B` (the pair's names sorted), `q<:A vs B` and `q>=:A vs B` (bounds),
    `error:REF`, `beats:REF:SPACE` (a fraction), `flops_lo:SPACE`, `flops_hi:SPACE` and
    `flops_lo:not SPACE` (millions; the other spaces'); errors quoted in percent become
    fractions.
    """
    if precision is not None and precision != PRECISION[example]:
        other, figures = other_run(text, example, method)
        if precision != other:
            raise ValueError(f"{example}: the text quotes no run in {precision}")
        merged = {**readme_figures(text, example, method), **figures}
        return {k: v for k, v in merged.items() if v is not None}
    if example == "demo":
        return _demo_figures(text, method if method is not None else METHOD.read_text())
    where = f"README.md ({SECTIONS[example]})"
    s = section(text, SECTIONS[example])
    out: dict[str, Quoted] = {}
    m = _need(s, rf"(\d+) trials (?:.{{0,160}}? )?in ({NUM}) minutes", where, "trials, wall time")
    out["trials"], out["wall_minutes"] = Quoted.parse(m[1]), Quoted.parse(m[2])
    m = _need(s, r"(\d+) of (\d+) trials at chance", where, "trials at chance")
    out["at_chance"] = Quoted.parse(m[1])
    if example == "first":
        m = _need(
            s,
            rf"mean error ({NAME}) ({NUM}) vs ({NAME}) ({NUM}), KS D = ({NUM}), q = ({NUM})",
            where,
            "space comparison",
        )
        out[f"mean:{m[1]}"], out[f"mean:{m[3]}"] = Quoted.parse(m[2]), Quoted.parse(m[4])
        pair = _pair(m[1], m[3])
        out[f"D:{pair}"], out[f"q:{pair}"] = Quoted.parse(m[5]), Quoted.parse(m[6])
        m = _need(
            s,
            rf"({NAME}) at ({NUM}) beats (\d+)% of ({NAME}) and (\d+)% of ({NAME})",
            where,
            "reference percentiles",
        )
        out[f"error:{m[1]}"] = Quoted.parse(m[2])
        out[f"beats:{m[1]}:{m[4]}"] = Quoted.parse(m[3], percent=True)
        out[f"beats:{m[1]}:{m[6]}"] = Quoted.parse(m[5], percent=True)
        return out
    # families: "min / mean validation error A 2.78% / 5.87%, B …;", "KS D, p, q: A vs B
    # 0.50, 0.03, 0.06; …." and "the A networks have 4.3–11.4 M flops, the others 1.0–2.7 M"
    clause = _need(s, r"min / mean validation error (.*?);", where, "min / mean errors")[1]
    for name, lo, u1, mean, u2 in re.findall(rf"({NAME}) ({NUM})(%?) / ({NUM})(%?)", clause):
        out[f"min:{name}"] = Quoted.parse(lo, percent=bool(u1))
        out[f"mean:{name}"] = Quoted.parse(mean, percent=bool(u2))
    clause = _need(s, r"KS D, p, q: (.*?)\.(?: |$)", where, "KS pairs")[1]
    for a, b, d, p, q in re.findall(rf"({NAME}) vs ({NAME}) ({NUM}), ({NUM}), ({NUM})", clause):
        pair = _pair(a, b)
        out[f"D:{pair}"], out[f"p:{pair}"] = Quoted.parse(d), Quoted.parse(p)
        out[f"q:{pair}"] = Quoted.parse(q)
    m = _need(
        s,
        rf"({NAME}) networks have ({NUM})–({NUM}) M flops, the others ({NUM})–({NUM}) M",
        where,
        "flops ranges",
    )
    out[f"flops_lo:{m[1]}"], out[f"flops_hi:{m[1]}"] = Quoted.parse(m[2]), Quoted.parse(m[3])
    out[f"flops_lo:not {m[1]}"] = Quoted.parse(m[4])
    out[f"flops_hi:not {m[1]}"] = Quoted.parse(m[5])
    if not any(k.startswith("min:") for k in out) or not any(k.startswith("p:") for k in out):
        raise ValueError(f"{where}: no errors or no KS pairs parsed")
    return out


def _demo_figures(readme: str, method: str) -> dict[str, Quoted]:
    """The README's claims about the demo ("X → Y changes nothing": q ≥ 0.05, the threshold of
    docs/method.md §6; "X → Y … (q = Q)" or "(q < Q)") and method.md's measured run."""
    out: dict[str, Quoted] = {}
    where = "README.md (first paragraph)"
    s = " ".join(readme[: readme.index("\n## ")].split())

    def pair(a: str, b: str) -> str:
        return _pair(f"AnyNetX_{a}", f"AnyNetX_{b}")

    for a, b in re.findall(r"\b([A-E]) → ([A-E]) changes nothing", s):
        out[f"q>=:{pair(a, b)}"] = Quoted.bound(0.05)
    for a, b, op, q in re.findall(rf"\b([A-E]) → ([A-E])\b(?:(?!→)[^;()])*?\(q (=|<) ({NUM})\)", s):
        out[f"{'q' if op == '=' else 'q<'}:{pair(a, b)}"] = Quoted.parse(q)
    if not out:
        raise ValueError(f"{where}: no claim about the demo (X → Y changes nothing, (q = Q))")
    where = "docs/method.md (§6, The demo)"
    s = section(method, SECTIONS["demo"])
    m = _need(s, rf"(\d+) trainings in ({NUM}) minutes", where, "trainings, wall time")
    out["trials"], out["wall_minutes"] = Quoted.parse(m[1]), Quoted.parse(m[2])
    m = _need(s, r"(\d+) of (\d+) trials at chance", where, "trials at chance")
    out["at_chance"] = Quoted.parse(m[1])
    found = re.findall(rf"\b([A-E]) → ([A-E]) (?:D = ({NUM}), p = ({NUM}), )?q = ({NUM})", s)
    if not found:
        raise ValueError(f"{where}: no KS pairs (X → Y q = …)")
    quoted = {}
    for a, b, d, p, q in found:
        quoted[f"q:{pair(a, b)}"] = Quoted.parse(q)
        if d:
            quoted[f"D:{pair(a, b)}"], quoted[f"p:{pair(a, b)}"] = Quoted.parse(d), Quoted.parse(p)
    m = re.search(rf"mean error ({NUM}) → ({NUM}) → ({NUM}) from ([A-E]) to ([A-E]) to ([A-E])", s)
    if m:
        for value, space in zip(m.groups()[:3], m.groups()[3:], strict=True):
            quoted[f"mean:AnyNetX_{space}"] = Quoted.parse(value)
    for key, value in quoted.items():
        if key in out and out[key] != value:
            raise ValueError(f"README.md and {where} quote {key} as {out[key]} and {value}")
        out[key] = value
    return out


def other_run(text: str, example: str, method: str | None = None) -> tuple[str, dict]:
    """(precision, figures) of the run in the other precision that the text quotes beside
    `example`'s first one: the figures it restates (None: one it gives no value for there);
    the rest are taken to hold as first quoted."""
    out: dict[str, Quoted | None] = {}
    if example == "first":  # README: "... trains in bf16 (...), the same command took ..."
        where = f"README.md ({SECTIONS[example]})"
        m = _need(
            section(text, SECTIONS[example]),
            rf"trains in bf16 \(commit \w+\), the same command took ({NUM}) minutes and gave "
            rf"({NAME}) ({NUM}) and ({NAME}) ({NUM}), D = ({NUM}), q = ({NUM}), ({NAME}) ({NUM}) "
            rf"beating (\d+)% of ({NAME}) and (\d+)% of ({NAME})",
            where,
            "bf16 run",
        )
        out["wall_minutes"] = Quoted.parse(m[1])
        out[f"mean:{m[2]}"], out[f"mean:{m[4]}"] = Quoted.parse(m[3]), Quoted.parse(m[5])
        pair = _pair(m[2], m[4])
        out[f"D:{pair}"], out[f"q:{pair}"] = Quoted.parse(m[6]), Quoted.parse(m[7])
        out[f"error:{m[8]}"] = Quoted.parse(m[9])
        out[f"beats:{m[8]}:{m[11]}"] = Quoted.parse(m[10], percent=True)
        out[f"beats:{m[8]}:{m[13]}"] = Quoted.parse(m[12], percent=True)
        return "bf16", out
    if example == "families":  # README: "... where `auto` is fp32 (...), the same verdicts but"
        where = f"README.md ({SECTIONS[example]})"
        m = _need(
            section(text, SECTIONS[example]),
            rf"where `auto` is fp32 \(commit \w+\), the same command gave the same verdicts but "
            rf"one: ({NAME}) vs ({NAME}) had D = ({NUM}), q = ({NUM})",
            where,
            "fp32 run",
        )
        pair = _pair(m[1], m[2])
        out[f"D:{pair}"], out[f"q:{pair}"] = Quoted.parse(m[3]), Quoted.parse(m[4])
        out[f"p:{pair}"] = None  # not quoted for that run: not checked
        return "fp32", out
    where = "docs/method.md (§6, The demo)"
    s = section(method if method is not None else METHOD.read_text(), SECTIONS["demo"])
    m = _need(
        s,
        rf"where `auto` trains in bf16 \(commit \w+, [\d-]+, ({NUM}) minutes[^)]*\): (\d+) of "
        rf"(\d+) at chance; the means of ([A-E]), ([A-E]) and ([A-E]) within {NUM} of the fp32 "
        rf"run's \(({NUM}), ({NUM}), ({NUM})\)",
        where,
        "bf16 run",
    )
    out["wall_minutes"], out["at_chance"] = Quoted.parse(m[1]), Quoted.parse(m[2])
    for space, value in zip(m.groups()[3:6], m.groups()[6:9], strict=True):
        out[f"mean:AnyNetX_{space}"] = Quoted.parse(value)
    m = _need(
        s,
        rf"the steps ([A-E])-to-([A-E]) and ([A-E])-to-([A-E]) both at D = ({NUM}), p = ({NUM}), "
        rf"q = ({NUM}), and ([A-E])-to-([A-E]) at q = ({NUM})",
        where,
        "bf16 steps",
    )
    for a, b in ((m[1], m[2]), (m[3], m[4])):
        pair = _pair(f"AnyNetX_{a}", f"AnyNetX_{b}")
        out[f"D:{pair}"], out[f"p:{pair}"] = Quoted.parse(m[5]), Quoted.parse(m[6])
        out[f"q:{pair}"] = Quoted.parse(m[7])
    out[f"q:{_pair(f'AnyNetX_{m[8]}', f'AnyNetX_{m[9]}')}"] = Quoted.parse(m[10])
    # the README's first paragraph restates the two steps' q for bf16: they must agree
    readme = " ".join(text[: text.index("\n## ")].split())
    r = _need(readme, rf"bf16 .*? but q = ({NUM}) for both of those steps", "README.md", "bf16 q")
    if Quoted.parse(r[1]) != Quoted.parse(m[7]):
        raise ValueError(f"README.md and {where} quote the bf16 steps' q as {r[1]} and {m[7]}")
    return "bf16", out


# --- the run's figures --------------------------------------------------------------------------
def measured_figures(results: dict, wall_minutes: float | None) -> dict[str, float]:
    """The same keys as `readme_figures`, from a `dse edf --json` document (every space, pair
    and reference: the comparison picks the ones the README quotes)."""
    out: dict[str, float] = {}
    spaces = results["spaces"]
    refs = results.get("references", {})
    out["trials"] = float(
        sum(
            s["n"] + s["n_failed"] + s.get("n_cancelled", 0) + s["n_pending"]
            for s in spaces.values()
        )
        + sum(r["n"] + r["n_failed"] + r["n_pending"] for r in refs.values())
    )
    if wall_minutes is not None:
        out["wall_minutes"] = wall_minutes
    out["at_chance"] = float(sum(s.get("n_not_learned", 0) for s in spaces.values()))
    for name, s in spaces.items():
        for key in ("mean", "min"):
            if s[key] is not None:
                out[f"{key}:{name}"] = s[key]
    for k in results["ks"]:
        pair = _pair(k["a"], k["b"])
        for key in ("D", "p", "q"):
            if k.get(key) is not None:
                out[f"{key}:{pair}"] = k[key]
        if k.get("q") is not None:  # the bounds the README states
            out[f"q<:{pair}"] = out[f"q>=:{pair}"] = k["q"]
    flops = {
        n: s["x"] for n, s in results.get("params", {}).get("flops", {}).get("spaces", {}).items()
    }
    for name, x in flops.items():  # in millions, as quoted; "not S": every other space
        rest = [v for n, xs in flops.items() if n != name for v in xs]
        out[f"flops_lo:{name}"], out[f"flops_hi:{name}"] = min(x) / 1e6, max(x) / 1e6
        if rest:
            out[f"flops_lo:not {name}"], out[f"flops_hi:not {name}"] = (
                min(rest) / 1e6,
                max(rest) / 1e6,
            )
    for name, r in refs.items():
        if r["mean"] is not None:
            out[f"error:{name}"] = r["mean"]
        for space, share in r["percentile"].items():
            if share is not None:
                out[f"beats:{name}:{space}"] = share
    return out


@dataclass(frozen=True)
class Row:
    figure: str
    quoted: float
    measured: float | None
    ok: bool  # within the tolerance
    same: bool  # equal to the digits quoted (what a rerun on the quoting machine gives)
    tolerance: str


def tolerance(figure: str, quoted: float, measured: float) -> tuple[bool, str]:
    """Whether `measured` agrees with the quoted figure, and the rule applied."""
    kind = figure.split(":")[0]
    if kind == "wall_minutes":
        return measured <= quoted * 2, "at most x2"
    if kind in ("mean", "min", "error"):
        return abs(measured - quoted) <= 0.02 + 1e-9, "±0.02"
    if kind == "D":
        return abs(measured - quoted) <= 0.13, "±0.13"
    if kind in ("p", "q"):
        ok = abs(math.log10(max(measured, 1e-12)) - math.log10(max(quoted, 1e-12))) <= 1
        if kind == "q":  # and the same verdict (docs/method.md §6: q < 0.05)
            return ok and (measured < VERDICT_Q) == (quoted < VERDICT_Q), "x10, same side of 0.05"
        return ok, "x10"
    if kind == "q<":
        return measured < quoted, f"< {quoted:g}"
    if kind == "q>=":
        return measured >= quoted, f">= {quoted:g}"
    if kind == "beats":
        return abs(measured - quoted) <= 0.13 + 1e-9, "±13 points"
    if kind == "at_chance":
        return abs(measured - quoted) <= 1, "±1"
    if kind in ("flops_lo", "flops_hi"):  # sampled, not trained: the same on every machine
        return same_digits(figure, quoted, measured), "the digits quoted (M)"
    return measured == quoted, "exact"


def same_digits(figure: str, quoted: float, measured: float) -> bool:
    """`measured` rounds to `quoted` at the decimals quoted (bounds: within them; the wall
    time: always, it moves with the load)."""
    kind = figure.split(":")[0]
    if kind == "wall_minutes":
        return True
    if kind in ("q<", "q>="):
        return tolerance(figure, quoted, measured)[0]
    decimals = getattr(quoted, "decimals", 12)
    return abs(measured - quoted) <= 0.5 * 10.0**-decimals * (1 + 1e-9) + 1e-12


def compare(quoted: dict[str, float], measured: dict[str, float]) -> list[Row]:
    """One row per figure quoted; a figure the run lacks fails."""
    rows = []
    for figure, q in quoted.items():
        m = measured.get(figure)
        if m is None:
            rows.append(Row(figure, q, None, False, False, "missing"))
            continue
        ok, tol = tolerance(figure, q, m)
        rows.append(Row(figure, q, m, ok, same_digits(figure, q, m), tol))
    return rows


# --- running the example -------------------------------------------------------------------------
def _dse(*args: str) -> list[str]:
    """`dse ARGS` of this checkout (the console script is `python -m api.cli`)."""
    return [sys.executable, "-m", "api.cli", *args]


def _git(*args: str) -> str:
    """The output of `git ARGS` in this checkout (CalledProcessError when it fails)."""
    cmd = ["git", "-C", str(REPO), *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()


def machine() -> dict:
    """What the figures depend on: the CPU, cores, load, torch, the commit."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = _git("rev-parse", "--short", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
        commit += "+changes" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    import torch

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "loadavg": [round(x, 1) for x in os.getloadavg()],
        "torch": torch.__version__,
        "commit": commit,
        "date": time.strftime("%Y-%m-%d"),
    }


def run_example(example: str, workdir: Path, log=print) -> tuple[dict, float, str | None]:
    """Create, train and analyse the example in `workdir`; (`dse edf --json`, wall minutes,
    the precision its trials ran in: None when they ran in more than one)."""
    env = {**os.environ, "DSE_DB": f"sqlite:///{workdir / 'dse.db'}"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))

    def dse(*args: str, **kw) -> subprocess.CompletedProcess:
        log(f"$ dse {' '.join(args)}")
        done = subprocess.run(_dse(*args), cwd=workdir, env=env, text=True, **kw)
        if done.returncode:
            raise SystemExit(f"dse {' '.join(args)} exited {done.returncode}: {done.stderr}")
        return done

    t0 = time.monotonic()
    if example == "demo":  # creates study 1, one worker per core, waits, prints the table
        with open(workdir / "demo.log", "w") as f:
            dse("demo", "--no-serve", stdout=f, stderr=subprocess.STDOUT)
        wall, study = (time.monotonic() - t0) / 60, "1"
    else:
        spec = workdir / ("first.json" if example == "first" else SPECS[example].name)
        shutil.copyfile(SPECS[example], spec)
        study = dse("study", "create", spec.name, capture_output=True).stdout.strip()
        log(f"study {study} created in {time.monotonic() - t0:.1f} s")
        logs = [open(workdir / f"worker{i}.log", "w") for i in range(2)]  # noqa: SIM115
        log("$ dse worker --exit-when-idle &  (x2)")
        workers = [
            subprocess.Popen(
                _dse("worker", "--exit-when-idle"),
                cwd=workdir,
                env=env,
                stdout=f,
                stderr=subprocess.STDOUT,
            )
            for f in logs
        ]
        try:
            dse("study", "wait", study, "--report", "60", stdout=subprocess.PIPE)
            wall = (time.monotonic() - t0) / 60
        finally:
            for w in workers:
                try:
                    w.wait(timeout=120)
                except subprocess.TimeoutExpired:
                    w.terminate()
                    w.wait()
            for f in logs:
                f.close()
    out = dse("edf", study, "--json", capture_output=True).stdout
    (workdir / "edf.json").write_text(out)
    shown = json.loads(dse("study", "show", study, "--json", capture_output=True).stdout)
    ran = shown.get("ran_with", {}).get("precision", {})  # {"bf16": 36}
    return json.loads(out), wall, next(iter(ran)) if len(ran) == 1 else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--example", choices=sorted(SPECS), default="first")
    ap.add_argument("--keep", metavar="DIR", help="run in DIR (kept: database, logs, edf.json)")
    ap.add_argument("--results", metavar="FILE", help="check a saved `dse edf --json` instead")
    ap.add_argument("--wall-minutes", type=float, default=None, help="with --results")
    ap.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        help="with --results: the precision that run trained in (default: the one the text "
        "quotes first)",
    )
    ap.add_argument(
        "--exact",
        action="store_true",
        help="fail unless every figure but the wall time equals the digits quoted (a rerun on "
        "the machine that measured them)",
    )
    ap.add_argument("--json", action="store_true", help="one JSON document on stdout")
    args = ap.parse_args(argv)
    log = (lambda s: print(s, file=sys.stderr, flush=True)) if args.json else print
    try:
        quoted = readme_figures(README.read_text(), args.example)
    except ValueError as e:  # still run: the figures measured are what an edit of the text needs
        log(f"warning: {e}; printing the figures measured only")
        quoted = {}
    info = machine()
    log(f"machine: {info}")
    if args.results:
        results, wall = json.loads(Path(args.results).read_text()), args.wall_minutes
        precision = args.precision
    elif args.keep:
        Path(args.keep).mkdir(parents=True, exist_ok=True)
        results, wall, precision = run_example(args.example, Path(args.keep).resolve(), log)
    else:
        with tempfile.TemporaryDirectory(prefix="dse-readme-") as tmp:
            results, wall, precision = run_example(args.example, Path(tmp), log)
    info["loadavg_after"] = [round(x, 1) for x in os.getloadavg()]
    info["precision"] = precision
    checked = PRECISION[args.example]
    if quoted and precision is not None and precision != checked:
        try:  # the figures the text quotes for a run in this precision
            quoted = readme_figures(README.read_text(), args.example, precision=precision)
            checked = precision
        except ValueError as e:
            log(f"warning: {e}")
    if quoted:
        log(f"the run trained in {precision or 'more than one precision'}: checking the "
            f"figures quoted for the {checked} run")  # fmt: skip
    measured = measured_figures(results, wall)
    if not quoted:
        for figure, value in measured.items():
            if not figure.startswith(("q<", "q>=")):  # the same as q
                log(f"{figure:40} {value:.4g}")
        return 1
    rows = compare(quoted, measured)
    if args.json:
        print(json.dumps({"example": args.example, "machine": info, "checked": checked,
                          "figures": [r.__dict__ for r in rows]}))  # fmt: skip
    else:
        log(f"\n{'figure':40} {'quoted':>9} {'measured':>9}  same digits  tolerance")
        for r in rows:
            m = "-" if r.measured is None else f"{r.measured:.4g}"
            flag = "" if r.ok else "   <-- outside"
            log(f"{r.figure:40} {r.quoted:>9.4g} {m:>9}  {'yes' if r.same else 'no':>11}"
                f"  {r.tolerance}{flag}")  # fmt: skip
    bad = [r.figure for r in rows if not (r.same if args.exact else r.ok)]
    how = "the digits quoted" if args.exact else "their tolerance"
    if bad:
        log(f"{len(bad)} of {len(rows)} figures differ from {how}: {', '.join(bad)}")
        return 1
    log(f"all {len(rows)} figures agree with {how}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
