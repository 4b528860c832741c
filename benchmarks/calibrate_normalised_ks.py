"""Calibration of the NDS-normalised KS test (docs/method.md §6; issue 21): a seeded table.

Run: PYTHONPATH=. .venv/bin/python benchmarks/calibrate_normalised_ks.py [--null 1000]
[--power 200] [--reps 39] [--sizes 32,200,1000] [--bins data,5,10,20,40]

Two spaces whose complexity spreads differently (4·Beta(1.5, 2.5) against 4·Beta(2.5, 1.5),
so inside a wide bin one space sits lower than the other) and one error law given
complexity, error = 0.3 − fall·log(1 + c)/log 5 + N(0, sd²): weak (fall 0.05, sd 0.03) and
strong (fall 0.2, sd 0.01). For each bin count (the data-chosen default, 5, 10, 20, 40) and
networks a space (32, 200, 1000): how often search.analysis.normalize refuses (an empty bin, or
ks_refusal: fewer than MIN_PER_BIN networks of a space in a bin); among the rest (drawn
until `--null` of them are tested, at most DRAWS× as many), the rejection rate at nominal 5% under the null of the test dse uses (residuals of the
error-vs-complexity fit permuted within bins), of the within-bin label permutation alone
(the test before issue 21), and the power of dse's test against a shift of space b's
error by half the noise sd. `reps` permutations a test (p <= 0.05 is exactly 5% for
exchangeable data when reps + 1 is a multiple of 20).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from search.analysis import statistics as A
from search.analysis.normalize import ks_refusal, normalise

SLOPES = {"weak": (0.05, 0.03), "strong": (0.2, 0.01)}  # (fall across the range, noise sd)
SIZES = (32, 200, 1000)
BINS = (None, 5, 10, 20, 40)  # None: chosen from the data (the default)
TEST_SEEDS = 10**8  # the tests' seeds start here (the data's at 0 and 10**6)
DRAWS = 5  # a cell draws at most DRAWS × the studies it tests (the rest are refused)


def spaces(rng, n: int, slope: str, shift: float = 0.0):
    """(errors a, complexity a, errors b, complexity b) of one simulated study."""
    fall, sd = SLOPES[slope]
    c = 4 * np.stack([rng.beta(1.5, 2.5, n), rng.beta(2.5, 1.5, n)])
    e = 0.3 - fall * np.log1p(c) / np.log(5.0) + rng.normal(0.0, sd, c.shape)
    e[1] += shift
    return e[0], c[0], e[1], c[1]


def one(rng, n, slope, bins, shift, reps, seed, plain: bool):
    """(refused, p of dse's test, p of the label permutation or None, bins used).

    The tests' permutations are seeded with `seed` + TEST_SEEDS, never the data's own seed:
    two default_rng(i) give the same stream, which would tie the permutations to the data.
    """
    seed += TEST_SEEDS
    ea, ca, eb, cb = spaces(rng, n, slope, shift)
    try:
        norm = normalise({"a": ca, "b": cb}, "flops", bins)
    except ValueError:
        return True, None, None, bins
    if ks_refusal(norm, "a", "b") is not None:
        return True, None, None, norm.bins
    ia, ib = norm.inside["a"], norm.inside["b"]
    ka, kb = norm.bin_of["a"], norm.bin_of["b"]
    args = (ea[ia], ka, eb[ib], kb)
    p = A.stratified_ks_test(*args, reps=reps, seed=seed, complexity_a=ca[ia], complexity_b=cb[ib])
    p_plain = A.stratified_ks_test(*args, reps=reps, seed=seed)[1] if plain else None
    return False, p[1], p_plain, norm.bins


def cell(n, slope, bins, sims_null, sims_power, reps) -> dict:
    """One row of the table: simulations until `sims_null` are tested (at most DRAWS× as many)."""
    refused, rej, rej_plain, tested, used, i = 0, 0, 0, 0, [], 0
    while tested < sims_null and i < DRAWS * sims_null:
        out, p, p_plain, b = one(np.random.default_rng(i), n, slope, bins, 0.0, reps, i, True)
        used.append(b)
        i += 1
        if out:
            refused += 1
            continue
        tested += 1
        rej += p <= 0.05
        rej_plain += p_plain <= 0.05
    power, tested_power, j = 0, 0, 0
    shift = SLOPES[slope][1] / 2
    while tested_power < sims_power and j < DRAWS * sims_power:
        rng = np.random.default_rng(10**6 + j)
        out, p, _, _ = one(rng, n, slope, bins, shift, reps, j, False)
        j += 1
        if not out:
            tested_power += 1
            power += p <= 0.05
    return {
        "refused": refused / i,
        "tested": tested,
        "null": rej / tested if tested else None,
        "null_plain": rej_plain / tested if tested else None,
        "power": power / tested_power if tested_power else None,
        "bins": (int(np.median(used)), min(used), max(used)) if bins is None else None,
    }


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.1f}%"


def main() -> None:
    """Print the calibration table as markdown."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--null", type=int, default=1000, help="null simulations a cell")
    ap.add_argument("--power", type=int, default=200, help="shifted simulations a cell")
    ap.add_argument("--reps", type=int, default=39, help="permutations a test")
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)), help="networks a space")
    every = ",".join("data" if b is None else str(b) for b in BINS)
    ap.add_argument("--bins", default=every, help="bin counts ('data': chosen from the data)")
    args = ap.parse_args()
    start = time.perf_counter()
    print(
        f"per cell: simulations until {args.null} null and {args.power} shifted ones are tested"
        f" (at most {DRAWS}× as many), {args.reps} permutations a test; rates among those tested,"
        " ± a 95% binomial half-width\n"
    )
    print(
        "| bins | networks a space | slope | refused | tested | null, dse | null, labels only"
        " | power |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for n in (int(v) for v in args.sizes.split(",")):
        for bins in (None if v == "data" else int(v) for v in args.bins.split(",")):
            for slope in SLOPES:
                r = cell(n, slope, bins, args.null, args.power, args.reps)
                b = str(bins) if bins else "data: {} ({}–{})".format(*r["bins"])
                half = 1.96 * np.sqrt(0.05 * 0.95 / r["tested"]) if r["tested"] else None
                null = _pct(r["null"]) + (f" ± {100 * half:.1f}" if half else "")
                print(
                    f"| {b} | {n} | {slope} | {_pct(r['refused'])} | {r['tested']} | {null} |"
                    f" {_pct(r['null_plain'])} | {_pct(r['power'])} |",
                    flush=True,
                )
    print(f"\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
