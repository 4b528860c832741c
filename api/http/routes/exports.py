"""GET /api/studies/{id}/export: a space's winner or fitted RegNet, for a full run elsewhere."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from api.http.deps import ERRORS, StudyId, error_body, get_store, study_or_404
from api.http.schemas import ExportFormat, ExportOut
from search.exports import FormatUnavailable, NothingToExport, full_run_recipe, plan_export

router = APIRouter(prefix="/api/studies", tags=["export"])


@router.get(
    "/{study_id}/export",
    response_model=ExportOut,
    responses={**ERRORS, 409: error_body("no finished trial yet")},
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
