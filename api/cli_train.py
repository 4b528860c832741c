"""`dse train` (one network, one budget, on a dataset) and `dse bench` (engine vs naive loop)."""

from __future__ import annotations

import sys

from api.cli import CliError, emit_json
from api.cli_kit import network


def register(subparsers) -> None:
    """Add the train and bench subcommands."""
    p = subparsers.add_parser("train", help="train one network briefly and report its error")
    net = p.add_mutually_exclusive_group(required=True)
    net.add_argument("--regnet", metavar="D,W0,WA,WM,G", help="a RegNet by its parameters")
    net.add_argument("--spec", metavar="FILE", help="a NetSpec JSON/YAML file")
    net.add_argument("--space", metavar="NAME", help="sample one network of a preset space")
    p.add_argument("--seed", type=int, default=0, help="sampling and training seed")
    p.add_argument("--dataset", required=True, help="digits, synthetic, cifar10, ...")
    p.add_argument("--data-root", metavar="DIR", help="local folder of the dataset files")
    p.add_argument("--download", action="store_true", help="allow torchvision to download")
    p.add_argument("--resolution", type=int, help="image side (default: the dataset's)")
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--precision", choices=("auto", "bf16", "fp16", "fp32"))
    p.add_argument("--threads", type=int, help="torch threads (default: $DSE_THREADS or all)")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.set_defaults(func=cmd_train)

    b = subparsers.add_parser("bench", help="training engine vs a naive loop on this machine")
    b.add_argument(
        "--quick", action="store_true", help="one network, short runs (~1.5 min; full: ~12 min)"
    )
    b.add_argument("--json", action="store_true", help="one JSON document on stdout")
    b.set_defaults(func=cmd_bench)


def cmd_train(args) -> int:
    """Load the dataset, build the network, train it and report."""
    from anynet.complexity import complexity
    from search.spec import DatasetSpec, Recipe
    from worker.allocator import malloc_tuned
    from worker.data import load_dataset
    from worker.train import train

    if args.epochs < 1:
        raise CliError(f"--epochs: must be >= 1, got {args.epochs}")
    if args.spec and args.resolution is None:
        args.resolution = network(spec=args.spec)[1].resolution
    data = load_dataset(DatasetSpec(name=args.dataset, root=args.data_root,
                                    resolution=args.resolution, download=args.download))  # fmt: skip
    # the network at the dataset's size; small images take the cifar stem (no stride 2, NDS)
    _, spec = network(regnet=args.regnet, spec=args.spec, space=args.space, seed=args.seed,
                      resolution=data.resolution, num_classes=data.num_classes,
                      stem_type="cifar" if data.resolution <= 64 else "simple")  # fmt: skip
    overrides = {k: v for k, v in (("batch_size", args.batch_size), ("lr", args.lr),
                                   ("precision", args.precision)) if v is not None}  # fmt: skip
    recipe = Recipe(**overrides)
    counts = complexity(spec)
    progress = Progress(args.epochs)
    print(f"dse train: {data.name} {data.sizes()} at {data.resolution}px, "
          f"{counts['flops'] / 1e6:.1f} MF, {counts['params'] / 1e6:.3f} M params, "
          f"stages {spec.stage_depths} x {spec.stage_widths}", file=sys.stderr)  # fmt: skip
    result = train(spec, data, recipe, args.epochs, device=args.device, seed=args.seed,
                   on_epoch=progress.update, eval_test=True, threads=args.threads)  # fmt: skip
    progress.close()
    if args.json:
        emit_json({
            "status": result.status, "val_error": result.val_error,
            "test_error": result.test_error, "epochs": result.epochs,
            "images_per_s": result.images_per_s, "seconds": result.seconds,
            "flops": counts["flops"], "params": counts["params"], "acts": counts["acts"],
            "message": result.message, "precision": result.precision,
            "malloc": "tuned" if malloc_tuned() else "default",
            "spec": spec.to_dict(), "recipe": recipe,
        })  # fmt: skip
    else:
        err = "n/a" if result.val_error is None else f"{result.val_error:.4f}"
        print(f"{result.status}: val error {err}, {result.images_per_s:.0f} images/s, "
              f"{result.seconds:.1f} s")  # fmt: skip
    if result.status != "done":
        print(f"dse train: {result.status}: {result.message}", file=sys.stderr)
        return 1
    return 0


class Progress:
    """Per-epoch progress on stderr: a bar redrawn in place on a terminal, lines otherwise."""

    def __init__(self, epochs: int):
        self.epochs, self.tty = epochs, sys.stderr.isatty()

    def update(self, rec: dict) -> None:
        """Show one finished epoch."""
        text = (f"epoch {rec['epoch']}/{self.epochs} loss {rec['train_loss']:.4f} "
                f"val error {rec['val_error']:.4f} {rec['images_per_s']:.0f} img/s")  # fmt: skip
        if self.tty:
            done = int(30 * rec["epoch"] / self.epochs)
            sys.stderr.write(f"\r[{'#' * done}{'.' * (30 - done)}] {text}")
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        """End the bar's line."""
        if self.tty:
            sys.stderr.write("\n")


def cmd_bench(args) -> int:
    """Run the engine-vs-baseline benchmark and print its figures."""
    from worker.bench import format_report, run_bench

    report = run_bench(quick=args.quick, log=lambda s: print(s, file=sys.stderr, flush=True))
    if args.json:
        emit_json(report)
    else:
        print(format_report(report))
    return 0
