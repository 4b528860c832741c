"""`dse model`, `dse sample`, `dse export`: one network, samples of a space, exports."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from api.cli import CliError, emit_json

_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}
_NUMBER = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?)\s*([kmgt]?)f?\s*$", re.I)


def _one_line_errors(parser) -> None:
    """Argparse errors of this subcommand as one line on stderr, exit 2 (the CLI contract)."""

    def error(message: str):
        print(f"{parser.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)

    parser.error = error


def register(subparsers) -> None:
    """Add the model, sample and export subcommands."""
    m = subparsers.add_parser("model", help="stages and exact complexity of one network")
    _network_args(m)
    m.add_argument("--json", action="store_true", help="one JSON document on stdout")
    m.set_defaults(func=cmd_model)

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
    s.add_argument("--json", action="store_true", help="one JSON document on stdout")
    s.set_defaults(func=cmd_sample)

    e = subparsers.add_parser("export", help="pycls YAML, timm, torchvision or JSON")
    _network_args(e)
    e.add_argument("--format", required=True, metavar="pycls|timm|torchvision|json")
    e.add_argument("--json", action="store_true", help="the structured export as JSON")
    e.set_defaults(func=cmd_export)
    for p in (m, s, e):
        _one_line_errors(p)


def _network_args(p) -> None:
    net = p.add_mutually_exclusive_group(required=True)
    net.add_argument("--regnet", metavar="D,W0,WA,WM,G", help="a RegNet by its parameters")
    net.add_argument("--spec", metavar="FILE", help="a NetSpec (or dse JSON export) file")
    p.add_argument("--se", type=float, default=0.0, help="SE ratio (RegNetY: 0.25)")
    p.add_argument("--bot-mul", type=float, default=1.0, help="bottleneck multiplier b")
    p.add_argument("--rounding", default="pycls", metavar="pycls|torchvision")
    p.add_argument("--resolution", type=int, help="input side (RegNet default 224)")
    p.add_argument("--classes", type=int, help="number of classes (RegNet default 1000)")


# --- parsing -------------------------------------------------------------------------------
def parse_number(text: str, name: str) -> float:
    """'360e6', '360M', '0.4G', '5k' → float."""
    match = _NUMBER.match(text)
    if not match:
        raise CliError(f"{name}: expected a number like 360e6 or 360M, got {text!r}")
    return float(match.group(1)) * _SUFFIX[match.group(2).lower()]


def parse_bounds(text: str, name: str) -> tuple[float, float]:
    """'LO:HI' → (lo, hi), numbers as parse_number reads them."""
    parts = text.split(":")
    if len(parts) != 2:
        raise CliError(f"{name}: expected LO:HI like 360M:400M, got {text!r}")
    lo, hi = (parse_number(x, name) for x in parts)
    if lo > hi:
        raise CliError(f"{name}: LO {lo:g} is above HI {hi:g}")
    return lo, hi


def parse_regnet(text: str, se: float, bot_mul: float, rounding: str):
    """'D,W0,WA,WM,G' (+ options) → RegNetParams; bad values name the parameter."""
    from anynet.regnet import RegNetParams, check_regnet_params

    parts = [x.strip() for x in text.split(",")]
    if len(parts) != 5:
        raise CliError(f"--regnet: expected D,W0,WA,WM,G (5 numbers), got {text!r}")
    names = ("depth", "w0", "wa", "wm", "group_width")
    values = []
    for name, part in zip(names, parts, strict=True):
        try:
            values.append(float(part))
        except ValueError:
            raise CliError(f"--regnet: {name} must be a number, got {part!r}") from None
    d, w0, wa, wm, g = values
    check_regnet_params(d, w0, wa, wm, g, rounding)  # names the parameter and the reason
    return RegNetParams(
        depth=int(d),
        w0=int(w0),
        wa=wa,
        wm=wm,
        group_width=int(g),
        bottleneck_multiplier=bot_mul,
        se_ratio=se,
        rounding=rounding,
    )


def read_data(path: str, name: str):
    """A JSON or YAML file as data; a missing or malformed file is one clear error."""
    p = Path(path)
    if not p.is_file():
        raise CliError(f"{name}: no such file {path}")
    text = p.read_text()
    if p.suffix in (".yaml", ".yml"):
        import yaml

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise CliError(
                f"{name}: malformed YAML in {path}: {' '.join(str(e).split())}"
            ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise CliError(f"{name}: malformed JSON in {path}: {e}") from None


def network(args):
    """(RegNetParams | None, NetSpec) asked for by --regnet/--spec and the options."""
    from anynet.export import regnet_kw
    from anynet.regnet import RegNetParams
    from anynet.spec import NetSpec

    kw = {}
    if args.resolution is not None:
        kw["resolution"] = args.resolution
    if args.classes is not None:
        kw["num_classes"] = args.classes
    if args.regnet:
        regnet = parse_regnet(args.regnet, args.se, args.bot_mul, args.rounding)
        return regnet, regnet.spec(**kw)
    data = read_data(args.spec, "--spec")
    if not isinstance(data, dict):
        raise CliError(f"--spec: {args.spec} holds no JSON object")
    regnet = None
    if "spec" in data:  # a dse JSON export: the NetSpec plus the RegNet it came from
        if data.get("regnet"):
            regnet = RegNetParams.model_validate(data["regnet"])
        data = data["spec"]
    spec = NetSpec.from_dict(data)
    if kw:
        spec = NetSpec.from_dict(spec.to_dict() | kw)
        if regnet is not None and regnet.spec(**regnet_kw(spec)) != spec:
            regnet = None
    return regnet, spec


def _space(text: str):
    from anynet.spaces import DesignSpace, SpaceSpec, get_space

    if not (Path(text).suffix in (".json", ".yaml", ".yml") or "/" in text):
        return get_space(text)
    data = read_data(text, "--space")
    if not isinstance(data, dict):
        raise CliError(f"--space: {text} holds no JSON object")
    if "preset" in data or "space" in data:
        return SpaceSpec.model_validate(data).resolve()
    return DesignSpace.model_validate(data)


# --- handlers ------------------------------------------------------------------------------
def _fmt(x: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:g}"


def cmd_model(args) -> int:
    """Print a network's stages and exact complexity."""
    from anynet.complexity import complexity

    regnet, spec = network(args)
    cx = complexity(spec)
    out = {
        "stage_depths": spec.stage_depths,
        "stage_widths": spec.stage_widths,
        "group_widths": spec.group_widths,
        **{k: int(cx[k]) for k in ("flops", "params", "acts")},
        "spec": spec.to_dict(),
        "regnet": regnet.model_dump() if regnet else None,
    }
    if args.json:
        emit_json(out)
        return 0
    if regnet:
        r = regnet
        print(
            f"RegNet d={r.depth} w0={r.w0} wa={r.wa} wm={r.wm} g={r.group_width} "
            f"b={r.bottleneck_multiplier} se={r.se_ratio} ({r.rounding} rule)"
        )
    print(f"{spec.block}, {spec.stem.type} stem {spec.stem.width}, {spec.resolution} px")
    print(f"{'stage':>5} {'depth':>5} {'width':>6} {'group_w':>7} {'stride':>6} {'bot_mul':>7}")
    for i, s in enumerate(spec.stages, start=1):
        print(
            f"{i:>5} {s.depth:>5} {s.width:>6} {s.group_width:>7} {s.stride:>6} "
            f"{s.bottleneck_multiplier:>7g}"
        )
    print(
        f"flops {_fmt(cx['flops'])} ({cx['flops']})  params {_fmt(cx['params'])} "
        f"({cx['params']})  acts {_fmt(cx['acts'])} ({cx['acts']})"
    )
    print(f"spec {spec.to_json()}")
    return 0


def cmd_sample(args) -> int:
    """Sample networks of a space within complexity bounds."""
    from anynet.sampling import sample
    from anynet.spaces import complexity_preset

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
            f"{_fmt(cx['flops']):>8} {_fmt(cx['params']):>8} {_fmt(cx['acts']):>8}"
        )
    print(
        f"{space.name}: {len(samples)} networks from {result.draws} draws, "
        f"acceptance {result.acceptance:.4f}"
    )
    return 0


def cmd_export(args) -> int:
    """Print a network in a target's format (text), or the structured export (--json)."""
    from anynet.export import export_dict, regnet_kw, render

    regnet, spec = network(args)
    out = export_dict(
        regnet if regnet is not None else spec,
        args.format,
        **(regnet_kw(spec) if regnet is not None else {}),
    )
    if args.json:
        emit_json(out)
    else:
        sys.stdout.write(render(out))
    return 0
