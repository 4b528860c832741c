"""`dse model`: one network's stages and exact complexity, or the reference networks."""

from __future__ import annotations

from api.cli.kit import network_args, network_of, one_line_errors, only_with, si
from api.cli.parser import CliError, emit_json, json_option


def register(subparsers) -> None:
    """Add the model subcommand."""
    m = subparsers.add_parser("model", help="stages and exact complexity of one network")
    network_args(m).add_argument(
        "--references", action="store_true", help="list the reference networks"
    )
    json_option(m)
    m.set_defaults(func=cmd_model)
    one_line_errors(m)


def cmd_model(args) -> int:
    """Print a network's stages and exact complexity (or the list of reference networks)."""
    from anynet.complexity import complexity
    from anynet.layer_table import layer_table
    from anynet.network import describe_network

    if args.references:
        return _references(args)
    regnet, spec = network_of(args)
    if args.reference:
        return _reference_model(args, spec)
    cx = complexity(spec)
    out = {
        "stage_depths": spec.stage_depths,
        "stage_widths": spec.stage_widths,
        "group_widths": spec.group_widths,
        **{k: int(cx[k]) for k in ("flops", "params", "acts")},
        "spec": spec.to_dict(),
        "regnet": regnet.model_dump() if regnet else None,
        "layers": layer_table(describe_network(spec)),
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
        f"flops {si(cx['flops'])} ({cx['flops']})  params {si(cx['params'])} "
        f"({cx['params']})  acts {si(cx['acts'])} ({cx['acts']})"
    )
    print(f"spec {spec.to_json()}")
    return 0


def _reference_model(args, spec) -> int:
    """`dse model --reference`: the same JSON keys as a NetSpec's where they apply (flops,
    params, acts, spec, layers), plus the reference's name, source and parts."""
    from anynet.layer_table import layer_table, part_table
    from anynet.network import network_complexity

    net, cx = spec.net, network_complexity(spec)
    out = {
        "reference": spec.reference,
        "source": spec.source,
        **cx,
        "spec": spec.to_dict(),
        "parts": part_table(net),
        "layers": layer_table(net),
    }
    if args.json:
        emit_json(out)
        return 0
    print(f"{spec.reference}: {spec.source}; {spec.in_channels}x{spec.resolution}x"
          f"{spec.resolution} in, {spec.num_classes} classes")  # fmt: skip
    print(f"{'part':<9} {'layers':>6} {'size':>5} {'flops':>8} {'params':>8} {'acts':>8}")
    for p in out["parts"]:
        size = "" if p["size"] is None else p["size"]
        print(f"{p['part']:<9} {p['layers']:>6} {size:>5} {si(p['flops']):>8} "
              f"{si(p['params']):>8} {si(p['acts']):>8}")  # fmt: skip
    print(
        f"flops {si(cx['flops'])} ({cx['flops']})  params {si(cx['params'])} "
        f"({cx['params']})  acts {si(cx['acts'])} ({cx['acts']})"
    )
    print(f"spec {spec.to_json()}")
    return 0


def _references(args) -> int:
    """`dse model --references`: every reference network with its complexity at its native
    input and the least input side its strides allow."""
    from anynet.reference import catalogue

    if args.regnet or args.spec or args.reference:
        raise CliError("--references: lists every reference network; give no other network")
    only_with(args, {"resolution": args.resolution, "classes": args.classes,
                     "in-channels": args.in_channels, "option": args.option,
                     "se": args.se, "bot-mul": args.bot_mul, "rounding": args.rounding},
              "one network, not --references")  # fmt: skip
    rows = catalogue()
    if args.json:
        emit_json({"references": rows})
        return 0
    print(f"{'name':<20} {'input':<14} {'flops':>8} {'params':>8} {'acts':>8} {'least':>5}  source")
    for r in rows:
        size = f"{r['in_channels']}x{r['resolution']}x{r['resolution']}"
        print(f"{r['name']:<20} {size:<14} {si(r['flops']):>8} {si(r['params']):>8} "
              f"{si(r['acts']):>8} {r['least_resolution']:>5}  {r['source']}")  # fmt: skip
    return 0
