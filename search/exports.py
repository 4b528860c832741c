"""What leaves a study: its winning network for a full run elsewhere, and its trial table as CSV.

`plan_export` offers two networks side by side (`candidates`): the best trial as trained
and the RegNet fitted to the winners (when they are X-block networks and it builds), each
with its flops, params, e_fit and the formats that build it (a format that cannot is a
FormatUnavailable naming the format, the family and why). Both get the input the study
trained at (`study_inputs`: its data's classes and side, not the space's defaults). It
exports the asked one (default: the fit when it builds), scales it to a flop budget when
asked (anynet.scaling) and renders it with anynet.export; `full_run_recipe` is the recipe
of that full run (DDS §5). `trials_csv` writes one page of trials as CSV with every text
cell that a spreadsheet would run as a formula neutralised (OWASP "CSV injection").
"""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

from anynet.complexity import complexity
from anynet.export import FORMATS, export_dict, own_rules, render
from anynet.network import with_input
from anynet.regnet import RegNetParams
from anynet.scaling import scale_to
from anynet.spec import NetSpec
from search.analysis.fits import efits
from search.estimate import data_sizes
from search.store.reads import FRAME_COLUMNS

# timm's and torchvision's RegNet classes have only the simple (ImageNet) stem
SIMPLE_STEM_ONLY = ("timm", "torchvision")
# DDS §5: final models are retrained 100 epochs, lr scaled linearly (0.1 per 128 images),
# with 5 warm-up epochs
FULL_RUN_EPOCHS = 100
FULL_RUN_LR_PER_128 = 0.1
FULL_RUN_WARMUP = 5
# a cell starting with one of these is a formula to Excel, LibreOffice and Google Sheets
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class NothingToExport(LookupError):
    """The study (or space) has no finished trial yet."""

    def __init__(self, space: str | None):
        of = f" of {space}" if space else ""
        super().__init__(f"space: no finished trial{of} to export yet")
        self.field = "space"
        self.reason = f"no finished trial{of} to export yet"


def full_run_recipe(recipe) -> dict[str, Any]:
    """The study's recipe for a full run: 100 epochs, lr 0.1 per 128 images, 5 warm-up (DDS §5)."""
    batch = recipe.batch_size or 128  # unset in the study: DDS §5's batch
    out = recipe.model_dump(mode="json")
    out.update(
        epochs=FULL_RUN_EPOCHS,
        batch_size=batch,
        lr=round(FULL_RUN_LR_PER_128 * batch / 128, 10),
        warmup_epochs=FULL_RUN_WARMUP,
    )
    return out


def _winner_net(store, study_id: int, space: str | None, trial_id: int | None):
    """(NetSpec, trial_id, error) of trial_id, or of the lowest-error done trial of the space."""
    frame = store.trial_frame(study_id)
    done = frame[(frame["status"] == "done") & frame["error"].notna() & frame["reference"].isna()]
    if space is not None:
        done = done[done["space"] == space]
    if trial_id is not None:
        done = done[done["trial_id"] == trial_id]
    if done.empty:
        return None
    row = done.loc[done["error"].idxmin()]
    return NetSpec.from_dict(row["spec"]), int(row["trial_id"]), float(row["error"])


def study_inputs(spec) -> dict[str, int]:
    """The input the study's trials trained at: resolution, num_classes, in_channels.

    A trial's stored NetSpec keeps the space's input (e.g. 1000 classes); the worker fits it
    to the dataset (worker.loop.fit_to_data: its classes and side, always 3 channels, worker/
    data.py), so an export of the study must do the same. An image folder's side and classes
    are known only once loaded: those keys are left out (the stored values are kept).
    """
    sizes = data_sizes(spec.dataset)
    out = {"resolution": sizes.resolution, "num_classes": sizes.classes, "in_channels": 3}
    return {k: int(v) for k, v in out.items() if v is not None}


def _as_trained(net, inputs: dict, notes: list[str]):
    """The winner with the study's input (as the worker trained it), saying what changed."""
    changed = {k: (getattr(net, k), v) for k, v in inputs.items() if getattr(net, k) != v}
    if not changed:
        return net
    said = ", ".join(f"{k} {old} → {new}" for k, (old, new) in changed.items())
    notes.append(f"the study's data set the input the networks trained at: {said}")
    return with_input(net, **inputs)


def _simple_stem(net, notes: list[str], fmt: str):
    """The same network with the simple stem (the only one timm's and torchvision's RegNet have)."""
    if net.stem.type == "simple":
        return net
    notes.append(
        f"{fmt}'s RegNet has only the simple stem (3x3 conv, stride 2): the study's "
        f"{net.stem.type} stem is replaced for the full run, the stages are unchanged"
    )
    data = net.to_dict()
    data["stem"] = {**data["stem"], "type": "simple"}
    return NetSpec.from_dict(data)


class FormatUnavailable(ValueError):
    """The format cannot build this network (the API's 422 names the format and family)."""

    def __init__(self, fmt: str, network: str, family: str, reason: str):
        super().__init__(f"format: {fmt} cannot build the {network} ({family}): {reason}")
        self.fmt, self.family, self.reason = fmt, family, reason


NETWORKS = ("winner", "fit")  # what a space's export can be: the trained winner, the fitted RegNet


def _family(candidate: dict) -> str:
    return "a RegNet" if candidate["network"] == "fit" else f"{candidate['block']} blocks"


def _candidate_export(candidate: dict, fmt: str, notes: list[str] | None = None):
    """(structured export, exported NetSpec) of a candidate in `fmt` (ValueError: cannot)."""
    notes = [] if notes is None else notes
    net = candidate["net"]
    if fmt in SIMPLE_STEM_ONLY:
        net = _simple_stem(net, notes, fmt)
    if candidate["network"] == "fit":
        kw = _regnet_kw(net)
        return export_dict(candidate["regnet"], fmt, **kw), candidate["regnet"].spec(**kw)
    return export_dict(net, fmt), net


def _regnet_kw(net) -> dict:
    keys = ("resolution", "num_classes", "in_channels")
    return {"stem_width": net.stem.width, "stem_type": net.stem.type,
            **{k: getattr(net, k) for k in keys}}  # fmt: skip


def _formats(candidate: dict) -> dict[str, str | None]:
    """Per format: None when it builds this candidate, else why not (one line)."""
    out = {}
    for fmt in FORMATS:
        try:
            with own_rules():  # no torchvision/timm import just to ask (seconds cold)
                _candidate_export(candidate, fmt)
            out[fmt] = None
        except ValueError as e:
            out[fmt] = " ".join(str(e).split())
    return out


def _candidates(fit: dict | None, net, trial_id: int, error: float, notes: list[str]) -> list:
    """The trained winner and (when it builds) the RegNet fitted to the winners."""
    # e_fit (DDS §3.3) says how far a network is from a RegNet: only X-block networks have one
    e_win = float(efits([net.to_dict()])[0]) if net.block == "res_bottleneck" else math.nan
    out = [{
        "network": "winner", "net": net, "block": net.block, "trial_id": trial_id,
        "error": error, "e_fit": e_win if math.isfinite(e_win) else None,
        "source": f"best trial {trial_id} (its NetSpec as trained)",
    }]  # fmt: skip
    if fit and net.block != "res_bottleneck":  # a RegNet has X blocks: not this family
        notes.append(f"the winners are {net.block} networks, not RegNets: no RegNet is offered")
    elif fit and fit.get("invalid"):
        notes.append(f"the fitted RegNet is invalid ({fit['invalid']}); the best trial is exported")
    elif fit and fit.get("params"):
        try:
            regnet = RegNetParams(**fit["params"])
            regnet.spec(**_regnet_kw(net))  # valid for the study's input
            e_fit = fit.get("e_fit")
            out.append({
                "network": "fit", "net": net, "regnet": regnet, "block": "res_bottleneck",
                "trial_id": trial_id, "error": None, "e_fit": e_fit, "k": fit.get("k", 1),
                "source": f"RegNet fitted to the top {fit.get('k', 1)} networks (DDS §3.3, "
                f"e_fit={float('nan') if e_fit is None else e_fit:.3f}); winner: trial {trial_id}",
            })  # fmt: skip
        except ValueError as e:
            notes.append(f"the fitted RegNet is not buildable ({e}); the best trial is exported")
    for c in out:
        spec = c["regnet"].spec(**_regnet_kw(net)) if c["network"] == "fit" else net
        c["spec"] = spec
        c["complexity"] = {k: int(v) for k, v in complexity(spec).items()}
        c["formats"] = _formats(c)
    return out


def candidate_view(c: dict) -> dict:
    """A candidate as the API and CLI show it: what, flops/params/acts, e_fit, formats."""
    spec = c["spec"]
    return {
        "network": c["network"],
        "source": c["source"],
        "trial_id": c["trial_id"],
        "error": c["error"],
        "e_fit": c["e_fit"],
        "family": _family(c),
        "regnet": c["regnet"].model_dump() if c["network"] == "fit" else None,
        "stage_depths": spec.stage_depths,
        "stage_widths": spec.stage_widths,
        "complexity": c["complexity"],
        "formats": c["formats"],
    }


def plan_export(
    store,
    study_id: int,
    fit: dict | None,
    space: str | None,
    fmt: str,
    scale_flops: str | None = None,
    rule: str | None = None,
    network: str | None = None,
    spec=None,
) -> dict:
    """What to export: the fitted RegNet of the winners (`fit`) when it builds, else the best trial.

    network: "winner" (the best trial as trained) or "fit" (the fitted RegNet); None picks
    the fit when it builds. Both are listed in `candidates` with their complexity, e_fit and
    the formats that build them. The network has the input the study trained at
    (`study_inputs` of `spec`, the study's spec; read from the store when None).
    scale_flops ('4x', '1.6G'): export that network scaled to the budget by `rule`
    (anynet.scaling; None: dds for a RegNet, efficientnet for a trial's network).
    """
    if network not in (None, *NETWORKS):
        raise ValueError(f"network: must be one of {', '.join(NETWORKS)}, got {network!r}")
    if spec is None:
        spec = store.get_study(study_id).spec
    notes: list[str] = []
    winner = _winner_net(store, study_id, space, fit.get("trial_id") if fit else None)
    if winner is None:
        raise NothingToExport(space)
    net, trial_id, error = winner
    net = _as_trained(net, study_inputs(spec), notes)
    candidates = _candidates(fit, net, trial_id, error, notes)
    by_name = {c["network"]: c for c in candidates}
    if network == "fit" and "fit" not in by_name:
        why = "; ".join(notes) or "no RegNet was fitted to this space's winners"
        raise ValueError(f"network: no fitted RegNet to export ({why})")
    chosen = by_name[network] if network else candidates[-1]
    reason = chosen["formats"].get(fmt)
    if reason is not None and not scale_flops:
        raise FormatUnavailable(fmt, chosen["network"], _family(chosen), reason)
    if not scale_flops:
        structured, exported = _candidate_export(chosen, fmt, notes)
        source = chosen["source"]
    else:
        base = _simple_stem(net, notes, fmt) if fmt in SIMPLE_STEM_ONLY else net
        if chosen["network"] == "fit":
            target, kw = chosen["regnet"], _regnet_kw(base)
        else:
            target, kw = base, {}
        scaled = scale_to(target, scale_flops, rule, **kw)
        target = scaled.regnet if scaled.regnet is not None else scaled.spec
        kw = kw if scaled.regnet is not None else {}
        try:
            structured = export_dict(target, fmt, **kw)
        except ValueError as e:
            raise FormatUnavailable(
                fmt, f"scaled {chosen['network']}", _family(chosen), " ".join(str(e).split())
            ) from None
        exported = target.spec(**kw) if isinstance(target, RegNetParams) else target
        source = chosen["source"] + (
            f", scaled by the {scaled.rule} rule to {scaled.complexity['flops']} flops "
            f"({scaled.deviation:+.2%} from the target {scaled.target_flops:.4g})"
        )
    notes.append(structured.get("note", ""))
    return {
        "scaled": scaled.to_dict() if scale_flops else None,
        "network": chosen["network"],
        "source": source,
        "trial_id": trial_id,
        "error": error,
        "text": render(structured),
        "structured": structured,
        "complexity": {k: int(v) for k, v in complexity(exported).items()},
        "candidates": [candidate_view(c) for c in candidates],
        "notes": [n for n in dict.fromkeys(notes) if n],
    }


def trials_csv(rows: list[dict]) -> str:
    """Trials (as Store.trials gives them) as CSV: the frame's columns, the spec, p_* values."""
    sampled: dict[str, None] = {}
    for row in rows:
        sampled.update(dict.fromkeys(f"p_{k}" for k in row.get("params_sampled") or {}))
    columns = [*FRAME_COLUMNS, "spec", *sampled]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        values = {c: row.get(c) for c in FRAME_COLUMNS}
        values["spec"] = json.dumps(row.get("spec"), separators=(",", ":"))
        values.update({f"p_{k}": v for k, v in (row.get("params_sampled") or {}).items()})
        writer.writerow([csv_cell(values.get(c)) for c in columns])
    return out.getvalue()


def csv_cell(value: Any) -> Any:
    """A CSV cell: numbers as they are, text that a spreadsheet would run as a formula quoted."""
    if value is None:
        return ""
    if isinstance(value, dict | list):
        value = json.dumps(value, separators=(",", ":"))
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value  # OWASP: a leading apostrophe makes the cell text
    return value
