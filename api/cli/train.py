"""`dse train`: one network, one budget, on a dataset; its error against chance."""

from __future__ import annotations

import argparse
import sys

from api.cli.kit import network, reference_network
from api.cli.parser import CliError, emit_json, json_option


def register(subparsers) -> None:
    """Add the train subcommand."""
    from search.spec import recipe as defaults

    p = subparsers.add_parser(
        "train",
        help="train one network briefly and report its error",
        description="Train one network for one short schedule and report its validation error "
        "against the chance error of the validation split. Unset recipe options take the "
        "dataset's defaults (docs/method.md §5), printed before training starts; SGD with "
        "momentum 0.9 and weight decay 5e-4, linear warm-up then half-period cosine.",
    )
    net = p.add_mutually_exclusive_group(required=True)
    net.add_argument("--regnet", metavar="D,W0,WA,WM,G", help="a RegNet by its parameters")
    net.add_argument("--spec", metavar="FILE", help="a NetSpec JSON/YAML file")
    net.add_argument("--space", metavar="NAME", help="sample one network of a preset space")
    net.add_argument("--reference", metavar="NAME",
                     help="a reference network (dse model --references lists them)")  # fmt: skip
    p.add_argument("--option", action="append", metavar="KEY=VALUE",
                   help="a reference network's option, e.g. shortcut=projection (repeatable)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="sampling and training seed")
    p.add_argument("--dataset", required=True, help="digits, synthetic, cifar10, ...")
    p.add_argument("--data-root", metavar="DIR", help="local folder of the dataset files")
    p.add_argument("--download", action="store_true", help="allow torchvision to download")
    p.add_argument("--resolution", type=int, help="image side (default: the dataset's)")
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=int, help=f"default: {defaults.BATCH_RULE}")
    p.add_argument("--lr", type=float, help=f"peak learning rate; default {defaults.LR_RULE}")
    p.add_argument("--warmup-epochs", type=float, help=f"default: {defaults.WARMUP_RULE}")
    p.add_argument("--crop-padding", type=int, help=f"pixels; default {defaults.CROP_RULE}")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction,
                   help=f"random horizontal flips; default {defaults.FLIP_RULE}")  # fmt: skip
    p.add_argument("--precision", choices=("auto", "bf16", "fp16", "fp32"),
                   help="default auto: bf16 where the device gains (CUDA, AVX512-BF16 CPUs "
                   "without AMX), else fp32")  # fmt: skip
    p.add_argument("--threads", type=int,
                   help="torch threads (default: $DSE_THREADS or 1: one training per core)")  # fmt: skip
    json_option(p)
    p.set_defaults(func=cmd_train)


def cmd_train(args) -> int:
    """Load the dataset, build the network, train it and report."""
    from anynet.network import network_complexity, with_input
    from search.spec.learning import CAUSES, learned
    from search.spec.recipe import resolve_recipe
    from search.spec.study import DatasetSpec, Recipe
    from worker.allocator import malloc_tuned
    from worker.check import stem_for
    from worker.data import load_dataset
    from worker.train import train

    if args.epochs < 1:
        raise CliError(f"--epochs: must be >= 1, got {args.epochs}")
    if args.option and not args.reference:
        raise CliError("--option: applies to --reference only")
    if args.spec and args.resolution is None:
        args.resolution = network(spec=args.spec)[1].resolution
    data = load_dataset(DatasetSpec(name=args.dataset, root=args.data_root,
                                    resolution=args.resolution, download=args.download))  # fmt: skip
    if args.reference:  # the reference network as its paper defines it, at the dataset's input
        spec = with_input(reference_network(args.reference, args.option),
                          num_classes=data.num_classes, in_channels=data.in_channels,
                          resolution=data.resolution)  # fmt: skip
    else:  # at the dataset's size; small images take the cifar stem (no stride 2, NDS)
        _, spec = network(regnet=args.regnet, spec=args.spec, space=args.space, seed=args.seed,
                          resolution=data.resolution, num_classes=data.num_classes,
                          stem_type=stem_for(data.resolution))  # fmt: skip
    given = {
        "batch_size": args.batch_size,
        "lr": args.lr,
        "warmup_epochs": args.warmup_epochs,
        "crop_padding": args.crop_padding,
        "flip": args.flip,
        "precision": args.precision,
    }
    recipe = Recipe(**{k: v for k, v in given.items() if v is not None})  # fmt: skip
    counts = network_complexity(spec)
    progress = Progress(args.epochs)
    shape = (spec.reference if args.reference
             else f"stages {spec.stage_depths} x {spec.stage_widths}")  # fmt: skip
    print(f"dse train: {data.name} {data.sizes()} at {data.resolution}px, "
          f"{counts['flops'] / 1e6:.1f} MF, {counts['params'] / 1e6:.3f} M params, "
          f"{shape}", file=sys.stderr)  # fmt: skip
    resolved = resolve_recipe(recipe, data.name, data.sizes()["train"], data.resolution,
                              args.epochs)  # fmt: skip
    print(f"dse train: recipe {recipe_text(resolved, recipe)}", file=sys.stderr)
    result = train(spec, data, recipe, args.epochs, device=args.device, seed=args.seed,
                   on_epoch=progress.update, eval_test=True, threads=args.threads)  # fmt: skip
    progress.close()
    verdict = learned(result.val_error, result.chance_error, result.val_size)
    if args.json:
        emit_json({
            "status": result.status, "val_error": result.val_error,
            "test_error": result.test_error, "epochs": result.epochs,
            "chance_error": result.chance_error, "val_size": result.val_size,
            "learned": verdict,
            "images_per_s": result.images_per_s, "seconds": result.seconds,
            "flops": counts["flops"], "params": counts["params"], "acts": counts["acts"],
            "message": result.message, "precision": result.precision,
            "malloc": "tuned" if malloc_tuned() else "default",
            "spec": spec.to_dict(), "recipe": result.recipe,
        })  # fmt: skip
    else:
        err = "n/a" if result.val_error is None else f"{result.val_error:.4f}"
        chance = "" if result.chance_error is None else f" (chance {result.chance_error:.4f})"
        print(f"{result.status}: val error {err}{chance}, {result.images_per_s:.0f} images/s, "
              f"{result.seconds:.1f} s, {result.precision}")  # fmt: skip
    if result.status != "done":
        print(f"dse train: {result.status}: {result.message}", file=sys.stderr)
        return 1
    if verdict is False:
        print(f"dse train: warning: val error {result.val_error:.4f} is not clearly below "
              f"chance {result.chance_error:.4f} on {result.val_size} images; {CAUSES}",
              file=sys.stderr)  # fmt: skip
    return 0


def recipe_text(resolved, given) -> str:
    """The resolved recipe in one line; fields that took their default are marked so."""
    keys = ("batch_size", "lr", "warmup_epochs", "crop_padding", "flip", "weight_decay",
            "momentum", "precision")  # fmt: skip
    unset = {k for k in keys if getattr(given, k) is None}
    return " ".join(f"{k}={getattr(resolved, k)}{' (default)' if k in unset else ''}"
                    for k in keys)  # fmt: skip


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
