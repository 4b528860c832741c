"""Does bf16 give fp32's answers here? The rule of docs/method.md §5 (issue 24).

    .venv/bin/python benchmarks/bench_precision.py [--anynet 40] [--regnet 20] [--json]

Networks sampled from AnyNetX_E and RegNetX at 16 px on digits (1-12 MF), 2 epochs, one
thread: each trained in fp32 at seeds s and s+1 (the seed-to-seed spread) and in bf16 at s
(worker.bench.precision_agreement). The rule: bf16 diverges on none that fp32 trains, and
the paired differences are within the spread. Where the CPU has no native bf16 it is
emulated (~10x slower than fp32) and the full rule takes hours on one core: 6 AnyNetX_E
networks of 0.5-3 MF (the figures in docs/method.md §5) took ~20 minutes on a loaded
2-core AMD EPYC.
"""

from __future__ import annotations

import argparse
import json
import sys

from search.spec.study import DatasetSpec
from worker.bench import precision_agreement
from worker.data import load_dataset
from worker.train import set_threads


def main() -> None:
    """Run the rule on both spaces and print each verdict (or one JSON document)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--anynet", type=int, default=40, help="AnyNetX_E networks")
    ap.add_argument("--regnet", type=int, default=20, help="RegNetX networks")
    ap.add_argument("--precision", default="bf16", help="the precision compared with fp32")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    set_threads(1)
    data = load_dataset(DatasetSpec(name="digits", resolution=16))
    log = (lambda s: print(s, file=sys.stderr, flush=True)) if args.json else print
    reports = [
        precision_agreement(
            space,
            n,
            data,
            epochs=2,
            seed=1,
            bounds={"flops": (1e6, 12e6)},
            precision=args.precision,
            log=log,
        )  # fmt: skip
        for space, n in (("AnyNetX_E", args.anynet), ("RegNetX", args.regnet))
        if n > 0
    ]
    if args.json:
        print(json.dumps(reports))
        return
    for r in reports:
        print(f"{r['space']}: {r['fp32_done']} trained in fp32, "
              f"{r['diverged_where_fp32_trains']} of them diverged in {r['precision']}; "
              f"mean paired difference {r['mean_paired_difference']}, seed spread "
              f"{r['mean_seed_spread']}, signed {r['mean_signed_difference']}: "
              f"{'agree' if r['agree'] else 'DISAGREE'}")  # fmt: skip


if __name__ == "__main__":
    main()
