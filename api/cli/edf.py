"""`dse edf STUDY`: a study's error EDFs per space, as a table, JSON or a PNG (docs/method.md §6)."""

from __future__ import annotations

import shlex
import sys

from api.cli.parser import CliError, db_option, emit_json, json_option

NORMALIZE = ("flops", "params", "acts")


def register(subparsers) -> None:
    """Add the `edf` subcommand."""
    p = subparsers.add_parser(
        "edf", help="compare a study's design spaces: EDFs, min/mean error, KS tests"
    )
    p.add_argument("study", help="study id (or its name: the newest study of that name)")
    db_option(p)
    p.add_argument(
        "--fidelity", type=int, default=None, help="epochs of the level to show (default lowest)"
    )
    p.add_argument(
        "--normalize", choices=NORMALIZE, default=None, help="NDS complexity-normalised EDFs"
    )
    p.add_argument(
        "--bins",
        type=int,
        default=None,
        help="equal complexity bins of --normalize (default: chosen from the data, the most up"
        " to 40 that leave every space 3 networks a bin)",
    )
    p.add_argument(
        "--range",
        dest="c_range",
        metavar="LO:HI",
        default=None,
        help="complexity range of --normalize, e.g. 2M:12M (default: the spaces' overlap)",
    )
    out = p.add_mutually_exclusive_group()
    json_option(out, "the full results as one JSON document")
    out.add_argument("--png", metavar="FILE", default=None, help="draw the EDFs to a PNG file")
    p.set_defaults(func=cmd_edf)


def _study_id(store, study: str) -> int:
    """An id from the STUDY argument: a number, else the newest study of that name."""
    from search.store import StudyNotFound

    if study.isdigit():
        try:
            return store.get_study(int(study)).id
        except StudyNotFound as e:
            raise CliError(str(e)) from None
    for record in store.list_studies():  # newest first
        if record.name == study:
            return record.id
    raise CliError(f"study: no study with id or name {study!r}")


def _fmt(v, spec: str = ".4f") -> str:
    return "-" if v is None else format(v, spec)


def _median(values) -> float | None:
    xs = sorted(v for v in values if v is not None)
    return xs[len(xs) // 2] if xs else None


def table(results: dict) -> str:
    """The results as plain text: one row per space, the KS table, warnings, the RegNet fit."""
    lines = [_heading(results), "", *_space_rows(results)]
    if results.get("failures"):
        from api.cli.study import failure_lines

        lines += ["", *failure_lines(results["failures"])]
    lines += _ks_lines(results["ks"])
    lines += _efit_lines(results.get("e_fit", {}).get("spaces", {}))
    lines += _reference_lines(results.get("references", {}))
    lines += _rank_lines(results["rank_correlation"])
    lines += _best_lines(results["regnet"]["overall"])
    lines += _finding_lines(results["refinement"], results.get("study_id"))
    lines += [f"warning: {w}" for w in results["warnings"]]
    lines += [f"warning: {w['text']}" for w in results.get("not_learned", [])]
    return "\n".join(lines)


def _heading(results: dict) -> str:
    """The first line: study, fidelity level, and the normalisation if any."""
    fid = results["fidelity"]
    norm = results["normalize"]
    sid = results.get("study_id")
    head = f"study {'' if sid is None else f'{sid} '}{results['study']!r}: {fid['epochs']} epochs"
    head += f" (level {fid['level']} of {fid['levels']})"
    if norm:
        lo, hi = results["complexity_range"]
        chosen = " chosen from the data" if results.get("bins_auto") else ""
        head += f", normalised by {norm} ({results['bins']} bins{chosen} over [{lo:.4g}, {hi:.4g}])"
    return head


def _space_rows(results: dict) -> list[str]:
    """One aligned row per space: trial counts, min, mean and median error, DKW band."""
    norm = results["normalize"]
    cols = ("space", "n", "at chance", "diverged", "failed", "pending", "min", "mean", "median",
            "DKW ±")  # fmt: skip
    if norm:
        cols += ("outside",)
    rows = [
        (
            s["name"],
            str(s["n"]),
            str(s.get("n_not_learned", 0)),
            str(s["n_diverged"]),
            str(s["n_failed"]),
            str(s["n_pending"]),
            _fmt(s["min"]),
            _fmt(s["mean"]),
            _fmt(s["median"]),
            _fmt(s["edf"]["band"]["epsilon"], ".3f"),
            *((str(s["n_outside"]),) if norm else ()),
        )
        for s in results["spaces"].values()
    ]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
    return [
        "  ".join(
            v.ljust(w) if i == 0 else v.rjust(w)
            for i, (v, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in (cols, *rows)
    ]


def _ks_lines(ks: list[dict]) -> list[str]:
    """The KS table: D, p and q of each pair, or why no p was given."""
    if not ks:
        return []
    test = ks[0].get("test", "two-sample KS")
    lines = ["", f"KS tests ({test}; D, p, Benjamini–Hochberg q over the pairs):"]
    if ks[0].get("adjusted"):
        lines.append("  (p: residuals of an error-vs-complexity fit permuted within bins)")
    for k in ks:
        line = f"  {k['a']} vs {k['b']}: D={_fmt(k['D'], '.3f')}"
        if k.get("refused"):  # no p to trust: say why (search.analysis.normalize.ks_refusal)
            lines.append(f"{line} p refused: {k['refused']}")
            continue
        lines.append(f"{line} p={_fmt(k['p'], '.3g')} q={_fmt(k.get('q'), '.3g')}")
    return lines


def _efit_lines(fits: dict) -> list[str]:
    """Each space's e_fit: of its best networks (bootstrap band) and median of all."""
    if not fits:
        return []
    lines = ["", "e_fit, distance to the nearest RegNet (DDS Fig. 8; --png draws it):"]
    for name, f in fits.items():
        b = f["best"]
        lines.append(
            f"  {name}: best networks' e_fit {_fmt(b['median'], '.3f')}"
            f" (95% bootstrap [{_fmt(b['lo'], '.3f')}, {_fmt(b['hi'], '.3f')}]),"
            f" all {f['n']}: median {_fmt(_median(f['x']), '.3f')}"
        )
    return lines


def _rank_lines(rank_correlation: list[dict]) -> list[str]:
    """Spearman and Kendall between consecutive levels, over all spaces."""
    rank = [r for r in rank_correlation if r["space"] == "all" and r["n"]]
    if not rank:
        return []
    lines = ["", "rank correlation between levels (networks trained at both):"]
    for r in rank:
        lines.append(
            f"  {r['from_epochs']} → {r['to_epochs']} epochs: n={r['n']}"
            f" Spearman {_fmt(r['spearman'], '.3f')} Kendall {_fmt(r['kendall'], '.3f')}"
        )
    return lines


def _best_lines(best: dict | None) -> list[str]:
    """The best network's RegNet fit, export-ready parameters."""
    if not best:
        return []
    p = best["params"]
    return [
        "",
        f"best network ({best['space']}, error {best['error']:.4f}) as a RegNet: "
        f"depth={p['depth']} w0={p['w0']} wa={p['wa']:g} wm={p['wm']:g} "
        f"group_width={p['group_width']} b={p['bottleneck_multiplier']:g} "
        f"se={p['se_ratio']:g}, e_fit={best['e_fit']:.3f}",
    ]


def _finding_lines(refinement: list[dict], sid) -> list[str]:
    """The refinement findings (q < 0.05), each with its `dse study refine` command."""
    found = [r for r in refinement if r.get("verdict") in ("better", "worse")]
    if not found:
        return []
    lines = ["", f"what the data say (q < 0.05; {len(found)} findings, --json for all):"]
    for r in found:
        lines.append(f"  - {r['text']}")
        if r.get("applies") and sid is not None:  # the refine loop (search.refine)
            lines.append(f"    try it: dse study refine {sid} {shlex.quote(r['id'])}")
    return lines


def _reference_lines(refs: dict) -> list[str]:
    """Each reference network's error over its seeds and its percentile in each space."""
    if not refs:
        return []
    lines = ["", "reference networks (mean error over seeds, band min–max; beats = the share "
             "of a space's networks with a higher error):"]  # fmt: skip
    for r in refs.values():
        size = f"{_fmt(r['flops'] and r['flops'] / 1e6, '.3g')} MF"
        size += f", {_fmt(r['params'] and r['params'] / 1e6, '.3g')} M params"
        if r["mean"] is None:
            lines.append(f"  {r['name']} ({size}): no finished seed yet ({r['n_pending']} pending)")
            continue
        lines.append(
            f"  {r['name']} ({size}): error {r['mean']:.4f} [{r['lo']:.4f}, {r['hi']:.4f}]"
            f" over {r['n']} of {r['seeds']} seeds"
            + (f" ({r['n_pending']} pending)" if r["n_pending"] else "")
        )
        shares = [f"{t}" for t in r["text"].values()]
        lines += [f"    {t}" for t in shares]
        if r.get("reused"):  # a refine child's seeds copied from its parent
            lines.append(f"    {r['reused']}")
    return lines


def _plot_references(ax, refs: dict, top: float = 0.98) -> None:
    """Each reference as a vertical line at its mean error, its band shaded, and a label.

    A label starts at its line and runs towards the wider side of the axes (leftwards for a
    line right of the middle), one "beats" per line, so it stays inside the axes.
    """
    lo_x, hi_x = ax.get_xlim()
    y = top
    for i, r in enumerate(refs.values()):
        if r["mean"] is None:
            continue
        color = f"C{(i + 6) % 10}"
        ax.axvspan(r["lo"], r["hi"], color=color, alpha=0.15, lw=0)
        label = f"{r['name']} (reference, error {r['mean']:.3f} [{r['lo']:.3f}, {r['hi']:.3f}])"
        ax.axvline(r["mean"], color=color, lw=1.5, ls="--", label=label)
        head = f"{r['name']} beats "
        beats = [  # the server's words, as the page and the table give them
            t.removeprefix(head)
            for space, t in r.get("text", {}).items()
            if r["percentile"].get(space) is not None
        ]
        lines = [f"{r['name']} {r['mean']:.3f}" + (": beats" if beats else ""), *beats]
        right = (r["mean"] - lo_x) > 0.5 * (hi_x - lo_x)
        ax.text(r["mean"], y, "\n".join(lines), color=color, fontsize=7,
                ha="right" if right else "left", va="top", transform=ax.get_xaxis_transform(),
                bbox={"facecolor": "white", "alpha": 0.7, "lw": 0, "pad": 1})  # fmt: skip
        y -= 0.045 * len(lines) + 0.02


def plot(results: dict, path: str) -> None:
    """EDFs with DKW 95% bands, and e_fit vs error (DDS Fig. 8), to a PNG (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, fx) = plt.subplots(1, 2, figsize=(12, 4.5), dpi=120, width_ratios=(3, 2))
    refs = results.get("references", {})
    trained = [x for s in results["spaces"].values() for x in s["edf"]["x"] if x < 1.0]
    trained += [v for r in refs.values() for v in (r["lo"], r["hi"]) if v is not None and v < 1.0]
    colors = {}
    for s in results["spaces"].values():
        e = s["edf"]
        if not e["x"]:
            continue
        x = [e["x"][0], *e["x"]]
        label = f"{s['name']} (n={s['n']}, min {s['min']:.3f}, mean {s['mean']:.3f}"
        label += f", {s['n_diverged']} diverged)" if s["n_diverged"] else ")"
        (line,) = ax.step(x, [0.0, *e["F"]], where="post", label=label)
        colors[s["name"]] = line.get_color()
        band = e["band"]
        lo, hi = [0.0, *band["lo"]], [band["epsilon"] or 0.0, *band["hi"]]
        ax.fill_between(x, lo, hi, step="post", alpha=0.1, color=line.get_color(), lw=0)
    if trained:  # diverged trials sit at error 1.0; keep the axis on the trained ones
        pad = 0.05 * (max(trained) - min(trained) or 1.0)
        ax.set_xlim(min(trained) - pad, max(trained) + pad)
    _plot_references(ax, refs)
    norm = results["normalize"]
    ax.set_xlabel("error")
    ax.set_ylabel(f"cumulative prob. ({'normalised by ' + norm if norm else 'unnormalised'})")
    ax.set_ylim(0, 1)
    ax.set_title(f"{results['study']}: {results['fidelity']['epochs']} epochs")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="lower right")
    else:
        ax.text(0.5, 0.5, "no finished trials yet", ha="center", transform=ax.transAxes)
    ax.grid(alpha=0.3)
    _plot_efit(fx, results.get("e_fit", {}).get("spaces", {}), colors)
    fig.tight_layout()
    try:
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)


def _plot_efit(ax, fits: dict, colors: dict) -> None:
    """DDS Fig. 8: e_fit against error per space; the best networks' e_fit range (bootstrap
    95%) as a strip of the space's own at the foot (stacked: overlapping shades mix), named."""
    for i, (name, f) in enumerate(fits.items()):
        pts = [(x, e) for x, e in zip(f["x"], f["error"], strict=True) if x is not None]
        if not pts:
            continue
        xs, es = zip(*pts, strict=True)
        c = colors.get(name)
        ax.scatter(xs, es, s=6, alpha=0.5, color=c, label=name)
        b = f["best"]
        if b["lo"] is not None:
            y0 = 0.035 * i
            ax.axvspan(b["lo"], b["hi"], ymin=y0, ymax=y0 + 0.028, color=c, alpha=0.45, lw=0,
                       label=f"{name}: best 95% range, median {b['median']:.3f}")  # fmt: skip
            ax.axvline(b["median"], ymin=y0, ymax=y0 + 0.028, color=c, lw=1.5)
    ax.set_xlabel("e_fit (distance to the nearest RegNet)")
    ax.set_ylabel("error")
    ax.set_title("e_fit vs error (DDS Fig. 8)")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)


def cmd_edf(args) -> int:
    """Print, dump or plot a study's results."""
    from search.analysis.results import results_for
    from search.store import Store

    if (args.bins is not None or args.c_range) and not args.normalize:
        raise CliError("--bins/--range: they set up --normalize; give --normalize too")
    c_range = None
    if args.c_range:
        from api.cli.kit import parse_bounds

        c_range = parse_bounds(args.c_range, "--range")
    store = Store(args.db, create=False)
    try:
        study_id = _study_id(store, args.study)
        results = results_for(store, study_id, args.fidelity, args.normalize, args.bins, c_range)
    finally:
        store.close()
    if args.json:
        emit_json(results)
    elif args.png:
        plot(results, args.png)
        print(f"wrote {args.png}")
    else:
        print(table(results))
    if args.json or args.png:  # the table shows them; elsewhere they go to stderr
        for w in results["warnings"]:
            print(f"dse edf: warning: {w}", file=sys.stderr)
        for w in results.get("not_learned", []):
            print(f"dse edf: warning: {w['text']}", file=sys.stderr)
    return 0
