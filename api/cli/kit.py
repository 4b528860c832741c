"""The CLI's toolkit: what several `dse` commands parse the same way.

Numbers with SI suffixes and LO:HI bounds, one RegNet from `D,W0,WA,WM,G`, a JSON or YAML file
(search.spec.text's safe reader), and `network`: the one network a command is asked for by
--regnet, --spec or --space, at a resolution and number of classes; `network_args` and
`network_of`: the network options `dse model` and `dse export` share; `si`: counts as 360M.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from api.cli.parser import CliError

_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}
_NUMBER = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?)\s*([kmgt]?)f?\s*$", re.I)


def one_line_errors(parser) -> None:
    """Argparse errors of a subcommand as one line on stderr, exit 2 (the CLI contract)."""

    def error(message: str):
        print(f"{parser.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)

    parser.error = error


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


def parse_regnet(text: str, se: float = 0.0, bot_mul: float = 1.0, rounding: str = "pycls"):
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
    from search.spec.text import TextError, load_text

    p = Path(path)
    if not p.is_file():
        raise CliError(f"{name}: no such file {path}")
    fmt = "yaml" if p.suffix in (".yaml", ".yml") else "json"
    try:
        return load_text(p.read_text(), fmt, name)
    except TextError as e:
        raise CliError(f"{name}: malformed {fmt.upper()} in {path}: {e.reason}") from None


def network(
    *,
    regnet: str | None = None,
    spec: str | None = None,
    space: str | None = None,
    seed: int = 0,
    se: float = 0.0,
    bot_mul: float = 1.0,
    rounding: str = "pycls",
    resolution: int | None = None,
    num_classes: int | None = None,
    stem_type: str | None = None,
):
    """(RegNetParams | None, NetSpec) asked for by --regnet, --spec (a NetSpec or dse JSON
    export file) or --space (one network sampled with `seed`), at the given resolution and
    classes (None: the network's own); stem_type applies to --regnet only (None: simple)."""
    from anynet.export import regnet_kw
    from anynet.regnet import RegNetParams
    from anynet.spec import NetSpec

    kw = {k: v for k, v in (("resolution", resolution), ("num_classes", num_classes)) if v}
    if regnet:
        params = parse_regnet(regnet, se, bot_mul, rounding)
        return params, params.spec(**kw, **({"stem_type": stem_type} if stem_type else {}))
    if space:
        from anynet.spaces import get_space
        from anynet.spaces.sampling import sample

        return None, sample(get_space(space), 1, seed, **kw).samples[0].spec
    data = read_data(spec, "--spec")
    if not isinstance(data, dict):
        raise CliError(f"--spec: {spec} holds no JSON object")
    params = None
    if "spec" in data:  # a dse JSON export: the NetSpec plus the RegNet it came from
        if data.get("regnet"):
            params = RegNetParams.model_validate(data["regnet"])
        data = data["spec"]
    net = NetSpec.from_dict(data)
    if kw:
        net = NetSpec.from_dict(net.to_dict() | kw)
        if params is not None and params.spec(**regnet_kw(net)) != net:
            params = None
    return params, net


def parse_options(pairs: list[str] | None) -> dict:
    """--option KEY=VALUE pairs → {key: value}; a value is read as JSON where it parses
    (0.3, [6, 12, 24, 16], true), else kept as text (projection)."""
    options = {}
    for pair in pairs or ():
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise CliError(f"--option: expected KEY=VALUE like dropout=0.3, got {pair!r}")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        options[key.strip()] = value
    return options


def reference_network(
    name: str,
    options: list[str] | None = None,
    resolution: int | None = None,
    num_classes: int | None = None,
    in_channels: int | None = None,
):
    """The ReferenceSpec asked for by --reference NAME (+ --option KEY=VALUE), at the given
    input (None: the network's native one); bad input names the field."""
    from anynet.reference import ReferenceSpec

    inputs = {"resolution": resolution, "num_classes": num_classes, "in_channels": in_channels}
    given = {k: v for k, v in inputs.items() if v is not None}
    return ReferenceSpec(reference=name, options=parse_options(options), **given)


def network_args(p):
    """The network options of `dse model` and `dse export`; returns the exclusive group."""
    net = p.add_mutually_exclusive_group(required=True)
    net.add_argument("--regnet", metavar="D,W0,WA,WM,G", help="a RegNet by its parameters")
    net.add_argument("--spec", metavar="FILE", help="a NetSpec (or dse JSON export) file")
    net.add_argument("--reference", metavar="NAME", help="a reference network (resnet56, ...)")
    p.add_argument("--se", type=float, help="SE ratio (RegNetY: 0.25)")
    p.add_argument("--bot-mul", type=float, help="bottleneck multiplier b")
    p.add_argument("--rounding", metavar="pycls|torchvision", help="RegNet rule (default pycls)")
    p.add_argument("--resolution", type=int, help="input side (default: RegNet 224, a "
                   "reference its native input)")  # fmt: skip
    p.add_argument("--classes", type=int, help="number of classes (RegNet default 1000)")
    p.add_argument("--in-channels", type=int, help="input channels (--reference only)")
    p.add_argument("--option", action="append", metavar="KEY=VALUE",
                   help="a reference network's option, e.g. shortcut=projection (repeatable)")  # fmt: skip
    return net


def only_with(args, flags: dict, allowed: str) -> None:
    """A CliError naming the first flag given that only `allowed` takes."""
    for flag, value in flags.items():
        if value is not None:
            raise CliError(f"--{flag}: applies to {allowed} only")


def network_of(args):
    """The network of `dse model` / `dse export`: (RegNetParams | None, NetSpec) for
    --regnet/--spec (RegNets at 224 px, 1000 classes by default), (None, ReferenceSpec)
    for --reference (its native input by default)."""
    if args.reference:
        only_with(args, {"se": args.se, "bot-mul": args.bot_mul, "rounding": args.rounding},
                  "--regnet")  # fmt: skip
        spec = reference_network(args.reference, args.option, args.resolution, args.classes,
                                 args.in_channels)  # fmt: skip
        return None, spec
    only_with(args, {"in-channels": args.in_channels, "option": args.option}, "--reference")
    return network(
        regnet=args.regnet,
        spec=args.spec,
        se=args.se or 0.0,
        bot_mul=1.0 if args.bot_mul is None else args.bot_mul,
        rounding=args.rounding or "pycls",
        resolution=args.resolution,
        num_classes=args.classes,
    )


def si(x: float) -> str:
    """A count in 3 significant digits with k, M or G: 360e6 → '360M'."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:g}"
