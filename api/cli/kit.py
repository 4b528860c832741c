"""The CLI's toolkit: what several `dse` commands parse the same way.

Numbers with SI suffixes and LO:HI bounds, one RegNet from `D,W0,WA,WM,G`, a JSON or YAML file
(search.spec.text's safe reader), and `network`: the one network a command is asked for by
--regnet, --spec or --space, at a resolution and number of classes.
"""

from __future__ import annotations

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
    import json

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
