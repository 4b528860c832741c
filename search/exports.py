"""What leaves a study: its winning network for a full run elsewhere, and its trial table as CSV.

`plan_export` picks the network (the RegNet fitted to the winners when it builds and they
are X-block networks, else the best trial as trained), scales it to a flop budget when asked
(anynet.scaling) and renders it with anynet.export; `full_run_recipe` is the recipe
of that full run (DDS §5). `trials_csv` writes one page of trials as CSV with every text
cell that a spreadsheet would run as a formula neutralised (OWASP "CSV injection").
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from search.reads import FRAME_COLUMNS

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
    from anynet.spec import NetSpec

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


def _simple_stem(net, notes: list[str], fmt: str):
    """The same network with the simple stem (the only one timm's and torchvision's RegNet have)."""
    from anynet.spec import NetSpec

    if net.stem.type == "simple":
        return net
    notes.append(
        f"{fmt}'s RegNet has only the simple stem (3x3 conv, stride 2): the study's "
        f"{net.stem.type} stem is replaced for the full run, the stages are unchanged"
    )
    data = net.to_dict()
    data["stem"] = {**data["stem"], "type": "simple"}
    return NetSpec.from_dict(data)


def plan_export(
    store,
    study_id: int,
    fit: dict | None,
    space: str | None,
    fmt: str,
    scale_flops: str | None = None,
    rule: str | None = None,
) -> dict:
    """What to export: the fitted RegNet of the winners (`fit`) when it builds, else the best trial.

    scale_flops ('4x', '1.6G'): export that network scaled to the budget by `rule`
    (anynet.scaling; None: dds for a RegNet, efficientnet for a trial's network).
    """
    from anynet.complexity import complexity
    from anynet.export import export_dict, render
    from anynet.regnet import RegNetParams
    from anynet.scaling import scale_to

    notes: list[str] = []
    winner = _winner_net(store, study_id, space, fit.get("trial_id") if fit else None)
    if winner is None:
        raise NothingToExport(space)
    net, trial_id, error = winner
    if fmt in SIMPLE_STEM_ONLY:
        net = _simple_stem(net, notes, fmt)
    target, source = net, f"best trial {trial_id} (its NetSpec as trained)"
    if fit and net.block != "res_bottleneck":  # a RegNet has X blocks: not this family
        notes.append(
            f"the winners are {net.block} networks, not RegNets: the best trial is exported"
        )
    elif fit and not fit.get("invalid") and fit.get("params"):
        try:
            regnet = RegNetParams(**fit["params"])
            regnet.spec(stem_width=net.stem.width, stem_type=net.stem.type)  # valid for the target
            target = regnet
            e_fit = fit.get("e_fit")
            source = (
                f"RegNet fitted to the top {fit.get('k', 1)} networks (DDS §3.3, "
                f"e_fit={float('nan') if e_fit is None else e_fit:.3f}); winner: trial {trial_id}"
            )
        except ValueError as e:
            notes.append(f"the fitted RegNet is not buildable ({e}); the best trial is exported")
    elif fit and fit.get("invalid"):
        notes.append(f"the fitted RegNet is invalid ({fit['invalid']}); the best trial is exported")
    kw = {}
    if isinstance(target, RegNetParams):
        kw = {
            "stem_width": net.stem.width,
            "stem_type": net.stem.type,
            "resolution": net.resolution,
            "num_classes": net.num_classes,
            "in_channels": net.in_channels,
        }
    scaled = None
    if scale_flops:
        scaled = scale_to(target, scale_flops, rule, **kw)
        target = scaled.regnet if scaled.regnet is not None else scaled.spec
        kw = kw if scaled.regnet is not None else {}
        source += (
            f", scaled by the {scaled.rule} rule to {scaled.complexity['flops']} flops "
            f"({scaled.deviation:+.2%} from the target {scaled.target_flops:.4g})"
        )
    if isinstance(target, RegNetParams):
        structured, exported = export_dict(target, fmt, **kw), target.spec(**kw)
    else:
        structured, exported = export_dict(target, fmt), target
    notes.append(structured.get("note", ""))
    return {
        "scaled": scaled.to_dict() if scaled else None,
        "source": source,
        "trial_id": trial_id,
        "error": error,
        "text": render(structured),
        "structured": structured,
        "complexity": {k: int(v) for k, v in complexity(exported).items()},
        "notes": [n for n in notes if n],
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
