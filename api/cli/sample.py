"""`dse sample`: networks sampled from a design space within complexity bounds."""

from __future__ import annotations

from pathlib import Path

from api.cli.kit import one_line_errors, parse_bounds, read_data, si
from api.cli.parser import CliError, emit_json, json_option


def register(subparsers) -> None:
    """Add the sample subcommand."""
    s = subparsers.add_parser("sample", help="sample networks of a design space")
    s.add_argument("--space", required=True, metavar="NAME|FILE", help="preset name or JSON file")
    s.add_argument("--n", type=int, required=True, help="number of networks")
    for key in ("flops", "params", "acts"):
        s.add_argument(f"--{key}", metavar="LO:HI", help=f"{key} bounds, e.g. 360M:400M")
    s.add_argument(
        "--complexity", metavar="NAME", help="named bounds, e.g. nds_r56 (NDS: ResNet-56 size)"
    )
    s.add_argument("--resolution", type=int, help="input side (default: the space's)")
    s.add_argument("--classes", type=int, help="number of classes (default: the space's)")
    s.add_argument("--seed", type=int, required=True)
    s.add_argument("--max-draws", type=int, help="attempt limit of the rejection sampler")
    json_option(s)
    s.set_defaults(func=cmd_sample)
    one_line_errors(s)


def _space(text: str):
    from anynet.spaces import DesignSpace, get_space
    from search.spec.space import SpaceSpec

    if not (Path(text).suffix in (".json", ".yaml", ".yml") or "/" in text):
        return get_space(text)
    data = read_data(text, "--space")
    if not isinstance(data, dict):
        raise CliError(f"--space: {text} holds no JSON object")
    if "preset" in data or "space" in data:
        return SpaceSpec.model_validate(data).resolve()
    return DesignSpace.model_validate(data)


def cmd_sample(args) -> int:
    """Sample networks of a space within complexity bounds."""
    from anynet.spaces import complexity_preset
    from anynet.spaces.sampling import sample

    space = _space(args.space)
    bounds = complexity_preset(args.complexity) if args.complexity else {}
    bounds |= {  # explicit --flops/--params/--acts refine the named bounds
        key: parse_bounds(getattr(args, key), f"--{key}")
        for key in ("flops", "params", "acts")
        if getattr(args, key)
    }
    result = sample(
        space,
        args.n,
        seed=args.seed,
        bounds=bounds or None,
        resolution=args.resolution,
        num_classes=args.classes,
        max_draws=args.max_draws,
    )
    samples = [
        {"spec": s.spec.to_dict(), "complexity": dict(s.complexity), "params": dict(s.params)}
        for s in result.samples
    ]
    out = {
        "space": space.name,
        "samples": samples,
        "draws": result.draws,
        "acceptance": result.acceptance,
    }
    if args.json:
        emit_json(out)
        return 0
    print(f"{'#':>4} {'depths':<20} {'widths':<26} {'flops':>8} {'params':>8} {'acts':>8}")
    for i, s in enumerate(result.samples):
        cx = s.complexity
        print(
            f"{i:>4} {str(s.spec.stage_depths):<20} {str(s.spec.stage_widths):<26} "
            f"{si(cx['flops']):>8} {si(cx['params']):>8} {si(cx['acts']):>8}"
        )
    print(
        f"{space.name}: {len(samples)} networks from {result.draws} draws, "
        f"acceptance {result.acceptance:.4f}"
    )
    return 0
