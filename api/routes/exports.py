"""GET /api/studies/{id}/export: the fitted (or best) RegNet of a space, for a full run elsewhere."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field

from api.deps import get_store
from api.routes.studies import ERRORS, StudyId, space_names, study_or_404

router = APIRouter(prefix="/api/studies", tags=["export"])

ExportFormat = Literal["pycls", "timm", "torchvision", "json"]
# timm's and torchvision's RegNet classes have only the simple (ImageNet) stem
SIMPLE_STEM_ONLY = ("timm", "torchvision")
# DDS §5: final models are retrained 100 epochs, lr scaled linearly (0.1 per 128 images),
# with 5 warm-up epochs
FULL_RUN_EPOCHS = 100
FULL_RUN_LR_PER_128 = 0.1
FULL_RUN_WARMUP = 5


class ExportOut(BaseModel):
    """A network ready for a full run in another code base, and how to train it."""

    study_id: int
    space: str | None = Field(description="the space exported; None = best over all spaces")
    format: ExportFormat
    source: str = Field(description="what was exported: the RegNet fit of winners, or a trial")
    trial_id: int | None = None
    error: float | None = Field(None, description="validation error of the winning trial")
    text: str = Field(description="the export itself: YAML, Python or JSON text")
    structured: dict[str, Any] = Field(description="anynet.export.export_dict of the network")
    complexity: dict[str, int] = Field(description="flops, params, acts of the exported network")
    recipe: dict[str, Any] = Field(description="training recipe of the full run (DDS §5)")
    notes: list[str]


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


def _winner_net(store, study_id: StudyId, space: str | None, trial_id: int | None):
    """(NetSpec, trial_id, error) of trial_id, or of the lowest-error done trial of the space."""
    from anynet.spec import NetSpec

    frame = store.trial_frame(study_id)
    done = frame[(frame["status"] == "done") & frame["error"].notna()]
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


def plan_export(store, study, space: str | None, fmt: str, fidelity: int | None) -> dict:
    """What to export: the fitted RegNet of the winners when it is valid, else the best trial."""
    from anynet.complexity import complexity
    from anynet.export import export_dict, render
    from anynet.regnet import RegNetParams
    from search.results import results_for

    results = results_for(store, study.id, fidelity, None)
    fit = (results.get("regnet") or {}).get(space or "overall")
    notes: list[str] = []
    winner = _winner_net(store, study.id, space, fit.get("trial_id") if fit else None)
    if winner is None:
        raise HTTPException(
            409, detail=f"space: no finished trial{' of ' + space if space else ''} to export yet"
        )
    net, trial_id, error = winner
    if fmt in SIMPLE_STEM_ONLY:
        net = _simple_stem(net, notes, fmt)
    target, source = net, f"best trial {trial_id} (its NetSpec as trained)"
    if fit and "invalid" not in fit and fit.get("params"):
        try:
            regnet = RegNetParams(**fit["params"])
            regnet.spec(stem_width=net.stem.width, stem_type=net.stem.type)  # valid for the target
            target = regnet
            source = (
                f"RegNet fitted to the top {fit.get('k', 1)} networks (DDS §3.3, "
                f"e_fit={fit.get('e_fit', float('nan')):.3f}); winner: trial {trial_id}"
            )
        except ValueError as e:
            notes.append(f"the fitted RegNet is not buildable ({e}); the best trial is exported")
    elif fit and "invalid" in fit:
        notes.append(f"the fitted RegNet is invalid ({fit['invalid']}); the best trial is exported")
    if isinstance(target, RegNetParams):
        kw = {
            "stem_width": net.stem.width,
            "stem_type": net.stem.type,
            "resolution": net.resolution,
            "num_classes": net.num_classes,
            "in_channels": net.in_channels,
        }
        structured, exported = export_dict(target, fmt, **kw), target.spec(**kw)
    else:
        structured, exported = export_dict(target, fmt), target
    notes.append(structured.get("note", ""))
    return {
        "source": source,
        "trial_id": trial_id,
        "error": error,
        "text": render(structured),
        "structured": structured,
        "complexity": {k: int(v) for k, v in complexity(exported).items()},
        "notes": [n for n in notes if n],
    }


@router.get(
    "/{study_id}/export",
    response_model=ExportOut,
    responses={**ERRORS, 409: {"description": "no finished trial to export yet"}},
)
def export_network(
    study_id: StudyId,
    space: str | None = Query(None, max_length=200, description="a space of the study"),
    format: ExportFormat = "json",
    fidelity: int | None = Query(None, ge=1, le=100_000, description="epochs; None = lowest"),
    store=Depends(get_store),
):
    """The fitted (else best) RegNet of a space, in pycls/timm/torchvision/json, with its recipe."""
    study = study_or_404(store, study_id)
    if space is not None and space not in space_names(study.spec):
        raise HTTPException(422, detail=f"space: {space!r} is not a space of study {study_id}")
    plan = plan_export(store, study, space, format, fidelity)
    return {
        "study_id": study_id,
        "space": space,
        "format": format,
        **plan,
        "recipe": full_run_recipe(study.spec.recipe),
    }
