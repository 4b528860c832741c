"""`dse model`, `dse sample`, `dse export`: one network, samples of a space, exports."""

from __future__ import annotations

import sys
from pathlib import Path

from api.cli.kit import network, one_line_errors, parse_bounds, read_data, reference_network
from api.cli.parser import CliError, db_option, emit_json


def register(subparsers) -> None:
    """Add the model, sample and export subcommands."""
    m = subparsers.add_parser("model", help="stages and exact complexity of one network")
    _network_args(m).add_argument(
        "--references", action="store_true", help="list the reference networks"
    )
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
    net = _network_args(e)
    net.add_argument("--study", metavar="ID|NAME", help="a study's winner or fitted RegNet")
    e.add_argument("--space", help="--study: the space (default: the best over all spaces)")
    e.add_argument("--network", choices=("winner", "fit"),
                   help="--study: the trained winner or the fitted RegNet (default: the fit "
                   "when it builds)")  # fmt: skip
    e.add_argument("--fidelity", type=int, help="--study: epochs of the level (default lowest)")
    e.add_argument("--trials", action="store_true",
                   help="--study: every trial as CSV on stdout (no --format)")  # fmt: skip
    db_option(e)
    e.add_argument("--format", metavar="pycls|timm|torchvision|json")
    e.add_argument("--json", action="store_true", help="the structured export as JSON")
    e.add_argument("--scale-flops", metavar="4x|1.6G", help="export it scaled (dse scale)")
    e.add_argument("--rule", choices=("efficientnet", "dds"), help="the scaling rule")
    e.set_defaults(func=cmd_export)
    for p in (m, s, e):
        one_line_errors(p)


def _network_args(p):
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


# --- handlers ------------------------------------------------------------------------------
def _only_with(args, flags: dict, allowed: str) -> None:
    """A CliError naming the first flag given that only `allowed` takes."""
    for flag, value in flags.items():
        if value is not None:
            raise CliError(f"--{flag}: applies to {allowed} only")


def _network(args):
    """The network of `dse model` / `dse export`: (RegNetParams | None, NetSpec) for
    --regnet/--spec (RegNets at 224 px, 1000 classes by default), (None, ReferenceSpec)
    for --reference (its native input by default)."""
    if args.reference:
        _only_with(args, {"se": args.se, "bot-mul": args.bot_mul, "rounding": args.rounding},
                   "--regnet")  # fmt: skip
        spec = reference_network(args.reference, args.option, args.resolution, args.classes,
                                 args.in_channels)  # fmt: skip
        return None, spec
    _only_with(args, {"in-channels": args.in_channels, "option": args.option}, "--reference")
    return network(
        regnet=args.regnet,
        spec=args.spec,
        se=args.se or 0.0,
        bot_mul=1.0 if args.bot_mul is None else args.bot_mul,
        rounding=args.rounding or "pycls",
        resolution=args.resolution,
        num_classes=args.classes,
    )


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


def _fmt(x: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:g}"


def cmd_model(args) -> int:
    """Print a network's stages and exact complexity (or the list of reference networks)."""
    from anynet.complexity import complexity
    from anynet.layer_table import layer_table
    from anynet.network import describe_network

    if args.references:
        return _references(args)
    regnet, spec = _network(args)
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
        f"flops {_fmt(cx['flops'])} ({cx['flops']})  params {_fmt(cx['params'])} "
        f"({cx['params']})  acts {_fmt(cx['acts'])} ({cx['acts']})"
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
        print(f"{p['part']:<9} {p['layers']:>6} {size:>5} {_fmt(p['flops']):>8} "
              f"{_fmt(p['params']):>8} {_fmt(p['acts']):>8}")  # fmt: skip
    print(
        f"flops {_fmt(cx['flops'])} ({cx['flops']})  params {_fmt(cx['params'])} "
        f"({cx['params']})  acts {_fmt(cx['acts'])} ({cx['acts']})"
    )
    print(f"spec {spec.to_json()}")
    return 0


def _references(args) -> int:
    """`dse model --references`: every reference network with its complexity at its native
    input and the least input side its strides allow."""
    from anynet.reference import catalogue

    if args.regnet or args.spec or args.reference:
        raise CliError("--references: lists every reference network; give no other network")
    _only_with(args, {"resolution": args.resolution, "classes": args.classes,
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
        print(f"{r['name']:<20} {size:<14} {_fmt(r['flops']):>8} {_fmt(r['params']):>8} "
              f"{_fmt(r['acts']):>8} {r['least_resolution']:>5}  {r['source']}")  # fmt: skip
    return 0


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

    if args.study:
        return _export_study(args)
    _only_with(args, {"space": args.space, "network": args.network, "fidelity": args.fidelity,
                      "trials": args.trials or None}, "--study")  # fmt: skip
    if not args.format:
        raise CliError("--format: give one of pycls, timm, torchvision, json")
    regnet, spec = _network(args)
    if args.scale_flops:
        from anynet.scaling import scale_to

        kw = regnet_kw(spec) if regnet is not None else {}
        scaled = scale_to(regnet if regnet is not None else spec, args.scale_flops, args.rule, **kw)
        regnet, spec = scaled.regnet, scaled.spec
    elif args.rule:
        raise CliError("--rule: give --scale-flops too (the rule scales the exported network)")
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


STUDY_ONLY = {"se": "se", "bot-mul": "bot_mul", "rounding": "rounding", "resolution": "resolution",
              "classes": "classes", "in-channels": "in_channels", "option": "option"}  # fmt: skip


def _export_study(args) -> int:
    """`dse export --study ID [--space S] --format F`: as GET /api/studies/{id}/export;
    `dse export --study ID --trials`: every trial as CSV (GET .../trials?format=csv)."""
    from api.cli.edf import _study_id
    from search.analysis.results import results_for
    from search.exports import NothingToExport, full_run_recipe, plan_export, trials_csv
    from search.store import Store

    for flag, attr in STUDY_ONLY.items():
        if getattr(args, attr) is not None:
            raise CliError(f"--{flag}: a study's network has its study's input and options")
    if args.trials:
        _only_with(args, {"format": args.format, "space": args.space, "network": args.network,
                          "scale-flops": args.scale_flops}, "a network export, not --trials")  # fmt: skip
    elif not args.format:
        raise CliError("--format: give one of pycls, timm, torchvision, json (or --trials)")
    if args.rule and not args.scale_flops:
        raise CliError("--rule: give --scale-flops too (the rule scales the exported network)")
    store = Store(args.db)
    try:
        study_id = _study_id(store, args.study)
        study = store.get_study(study_id)
        if args.trials:
            n = store.count(study_id, include_retried=True)
            sys.stdout.write(trials_csv(store.trials(study_id, limit=n, include_retried=True)))
            return 0
        if args.space is not None and args.space not in study.spec.space_names():
            raise CliError(
                f"--space: {args.space!r} is not a space of study {study_id} "
                f"({', '.join(study.spec.space_names())})"
            )
        results = results_for(store, study_id, args.fidelity)
        fit = results["regnet"].get(args.space or "overall")
        try:
            plan = plan_export(store, study_id, fit, args.space, args.format, args.scale_flops,
                               args.rule, args.network, study.spec)  # fmt: skip
        except NothingToExport as e:
            raise CliError(str(e)) from None
    finally:
        store.close()
    if args.json:
        emit_json({"study_id": study_id, "space": args.space, "format": args.format, **plan,
                   "recipe": full_run_recipe(study.spec.recipe)})  # fmt: skip
        return 0
    # stdout is the export alone (a JSON export stays JSON); what was chosen goes to stderr
    for c in plan["candidates"]:
        mark = "*" if c["network"] == plan["network"] else " "
        cx = c["complexity"]
        e_fit = "-" if c["e_fit"] is None else f"{c['e_fit']:.3f}"
        print(f"# {mark} {c['network']:<6} flops {_fmt(cx['flops']):>7} params "
              f"{_fmt(cx['params']):>7} e_fit {e_fit:>6} depths {c['stage_depths']} "
              f"widths {c['stage_widths']}: {c['source']}", file=sys.stderr)  # fmt: skip
    for note in plan["notes"]:
        if note != plan["structured"].get("note"):  # the export's own note heads its text
            print(f"# {note}", file=sys.stderr)
    sys.stdout.write(plan["text"])
    return 0
