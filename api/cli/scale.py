"""`dse scale`: a network scaled to a flop budget by EfficientNet's or DDS' rule (anynet.scaling)."""

from __future__ import annotations

from api.cli.kit import network, one_line_errors
from api.cli.parser import emit_json, json_option


def register(subparsers) -> None:
    """Add the scale subcommand."""
    p = subparsers.add_parser("scale", help="a network scaled to a flop budget (exact flops)")
    net = p.add_mutually_exclusive_group(required=True)
    net.add_argument("--regnet", metavar="D,W0,WA,WM,G", help="a RegNet by its parameters")
    net.add_argument("--spec", metavar="FILE", help="a NetSpec (or dse JSON export) file")
    p.add_argument("--flops", required=True, metavar="4x|1.6G", help="x the network's or a budget")
    p.add_argument("--rule", choices=("efficientnet", "dds"),
                   help="default: dds for a RegNet (--regnet, or a --spec file that is a dse "
                   "export of one), efficientnet for any other --spec")  # fmt: skip
    p.add_argument("--se", type=float, default=0.0, help="SE ratio (RegNetY: 0.25)")
    p.add_argument("--bot-mul", type=float, default=1.0, help="bottleneck multiplier b")
    p.add_argument("--rounding", default="pycls", metavar="pycls|torchvision")
    p.add_argument("--resolution", type=int, help="input side before scaling (RegNet: 224)")
    p.add_argument("--classes", type=int, help="number of classes (RegNet default 1000)")
    json_option(p)
    p.set_defaults(func=cmd_scale)
    one_line_errors(p)


def _fmt(x: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.4g}{unit}"
    return f"{x:g}"


def cmd_scale(args) -> int:
    """Print the base network and the scaled one with their exact complexity."""
    from anynet.complexity import complexity
    from anynet.export import regnet_kw
    from anynet.scaling import scale_to

    regnet, spec = network(
        regnet=args.regnet, spec=args.spec, se=args.se, bot_mul=args.bot_mul,
        rounding=args.rounding, resolution=args.resolution, num_classes=args.classes,
    )  # fmt: skip
    kw = regnet_kw(spec) if regnet is not None else {}
    out = scale_to(regnet if regnet is not None else spec, args.flops, args.rule, **kw)
    base = complexity(spec)
    if args.json:
        emit_json({**out.to_dict(), "base": {"complexity": base, "spec": spec.to_dict()}})
        return 0
    factors = ", ".join(f"{k} {v:.4g}" for k, v in out.factors.items())
    print(f"rule {out.rule} ({factors}); target {_fmt(out.target_flops)} flops")
    rows = (("base", spec, base), ("scaled", out.spec, out.complexity))
    for name, net, cx in rows:
        print(
            f"{name:<7} depths {net.stage_depths} widths {net.stage_widths} "
            f"{net.resolution} px: flops {_fmt(cx['flops'])} ({cx['flops']}) params "
            f"{_fmt(cx['params'])} acts {_fmt(cx['acts'])}"
        )
    print(f"deviation from the target {out.deviation:+.2%}")
    if out.regnet is not None:
        r = out.regnet
        print(f"RegNet d={r.depth} w0={r.w0} wa={r.wa} wm={r.wm} g={r.group_width} "
              f"b={r.bottleneck_multiplier} se={r.se_ratio} ({r.rounding} rule)")  # fmt: skip
    print(f"spec {out.spec.to_json()}")
    return 0
