"""GET /api/studies/{id}/export: a space's winner or fitted RegNet, for a full run elsewhere."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from api.http.deps import ERRORS, StudyId, get_store, study_or_404
from api.http.schemas import ErrorBody
from search.exports import FormatUnavailable, NothingToExport, full_run_recipe, plan_export
from search.spec.study import Recipe

router = APIRouter(prefix="/api/studies", tags=["export"])

ExportFormat = Literal["pycls", "timm", "torchvision", "json"]


class FullRunRecipe(Recipe):
    """The study's recipe scaled for a full run (DDS §5)."""

    epochs: int


class ExportCandidate(BaseModel):
    """One network a space's export offers: the trained winner or the fitted RegNet."""

    network: Literal["winner", "fit"]
    source: str
    trial_id: int | None = None
    error: float | None = Field(None, description="validation error (the winner only: trained)")
    e_fit: float | None = Field(
        None, description="winner: its distance to the nearest RegNet; fit: the winner's to it"
    )
    family: str = Field(description="'a RegNet', or the winner's block family")
    regnet: dict[str, Any] | None = Field(None, description="the fit's RegNet parameters")
    stage_depths: list[int]
    stage_widths: list[int]
    complexity: dict[str, int] = Field(description="flops, params, acts at the study's input")
    formats: dict[str, str | None] = Field(
        description="per format: null when it builds this network, else why not"
    )


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
    recipe: FullRunRecipe = Field(description="training recipe of the full run (DDS §5)")
    scaled: dict[str, Any] | None = Field(
        None, description="anynet.scaling's account when scale_flops was given: rule, factors"
    )
    notes: list[str]
    network: Literal["winner", "fit"] = Field(
        "winner", description="which candidate was exported: the trained winner or the fit"
    )
    candidates: list[ExportCandidate] = Field(
        default_factory=list, description="the winner and the fitted RegNet, side by side"
    )


@router.get(
    "/{study_id}/export",
    response_model=ExportOut,
    responses={**ERRORS, 409: {"model": ErrorBody, "description": "no finished trial yet"}},
)
def export_network(
    study_id: StudyId,
    request: Request,
    space: str | None = Query(None, max_length=200, description="a space of the study"),
    format: ExportFormat = "json",
    fidelity: int | None = Query(None, ge=1, le=100_000, description="epochs; None = lowest"),
    scale_flops: str | None = Query(
        None, max_length=32, description="scale it to a budget: '4x' its flops, or '1.6G'"
    ),
    rule: Literal["efficientnet", "dds"] | None = Query(
        None, description="scaling rule; None: dds for a fitted RegNet, else efficientnet"
    ),
    network: Literal["winner", "fit"] | None = Query(
        None, description="the trained winner or the fitted RegNet; None: the fit when it builds"
    ),
    store=Depends(get_store),
):
    """The fitted (else best) RegNet of a space, in pycls/timm/torchvision/json, with its recipe."""
    study = study_or_404(store, study_id)
    if space is not None and space not in study.spec.space_names():
        raise HTTPException(422, detail=f"space: {space!r} is not a space of study {study_id}")
    if rule is not None and not scale_flops:
        raise HTTPException(422, detail="rule: give scale_flops too (the rule scales the export)")
    level = fidelity or study.spec.fidelities[0]  # the page's cache entry for the lowest level
    results = request.app.state.results.results(store, study_id, level, None)
    fit = results.regnet.get(space or "overall")
    try:
        plan = plan_export(
            store,
            study_id,
            fit and fit.model_dump(),
            space,
            format,
            scale_flops,
            rule,
            network,
            study.spec,
        )
    except NothingToExport as e:
        raise HTTPException(409, detail=str(e)) from None
    except FormatUnavailable as e:  # names the format, the family and why
        raise HTTPException(422, detail=" ".join(str(e).split())) from None
    except ValueError as e:  # the target cannot build this network, or a bad budget
        detail = " ".join(str(e).split())
        if detail.startswith("flops: "):  # the budget is this query's scale_flops
            detail = "scale_flops: " + detail.removeprefix("flops: ")
        raise HTTPException(422, detail=detail) from None
    return {
        "study_id": study_id,
        "space": space,
        "format": format,
        **plan,
        "recipe": full_run_recipe(study.spec.recipe),
    }
