"""`dse export`: a network, or a study's winner or fitted RegNet, in pycls, timm, torchvision
or JSON form; a study's trials as CSV."""

from __future__ import annotations

import sys

from api.cli.kit import network_args, network_of, one_line_errors, only_with, si
from api.cli.parser import CliError, db_option, emit_json, json_option


def register(subparsers) -> None:
    """Add the export subcommand."""
    e = subparsers.add_parser("export", help="pycls YAML, timm, torchvision or JSON")
    net = network_args(e)
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
    json_option(e, "the structured export as JSON")
    e.add_argument("--scale-flops", metavar="4x|1.6G", help="export it scaled (dse scale)")
    e.add_argument("--rule", choices=("efficientnet", "dds"), help="the scaling rule")
    e.set_defaults(func=cmd_export)
    one_line_errors(e)


def cmd_export(args) -> int:
    """Print a network in a target's format (text), or the structured export (--json)."""
    from anynet.export import export_dict, regnet_kw, render

    if args.study:
        return _export_study(args)
    only_with(args, {"space": args.space, "network": args.network, "fidelity": args.fidelity,
                     "trials": args.trials or None}, "--study")  # fmt: skip
    if not args.format:
        raise CliError("--format: give one of pycls, timm, torchvision, json")
    regnet, spec = network_of(args)
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
        only_with(args, {"format": args.format, "space": args.space, "network": args.network,
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
        print(f"# {mark} {c['network']:<6} flops {si(cx['flops']):>7} params "
              f"{si(cx['params']):>7} e_fit {e_fit:>6} depths {c['stage_depths']} "
              f"widths {c['stage_widths']}: {c['source']}", file=sys.stderr)  # fmt: skip
    for note in plan["notes"]:
        if note != plan["structured"].get("note"):  # the export's own note heads its text
            print(f"# {note}", file=sys.stderr)
    sys.stdout.write(plan["text"])
    return 0
