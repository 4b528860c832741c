"""POST /api/studies/{id}/refine: try a refinement suggestion as a child study (the refine loop,
docs/method.md §6)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from api.http import deps
from api.http.schemas import RefineBody, StudyCreated
from search import refine
from search.create import refine_plan

router = APIRouter(prefix="/api/studies", tags=["studies"])


@router.post(
    "/{study_id}/refine",
    **deps.creating_route(
        "accepted; the child is being created",
        {
            200: {"model": StudyCreated, "description": "this suggestion's child exists: it"},
            404: deps.error_body("unknown study or suggestion"),
            409: deps.error_body(
                "the parent is being created, failed or has no results yet, or the "
                "suggestion no longer applies"
            ),
        },
    ),
)
async def refine_study(
    study_id: deps.StudyId,
    body: RefineBody,
    request: Request,
    store=Depends(deps.get_store),
    limits: deps.SpecLimits = Depends(deps.get_limits),
):
    """Try a refinement suggestion: a child study, the parent's spec with it applied.

    The child has the parent's dataset, recipe, samples, fidelities and seed, and one space:
    the suggestion's space with that constraint added or that range narrowed. Idempotent:
    if a child trying this suggestion exists (and did not fail), it is answered (200).
    """
    deps.study_or_404(store, study_id)
    try:
        refine.parse_id(body.suggestion)
    except refine.UnknownSuggestion as e:
        raise HTTPException(404, detail=str(e)) from None
    existing = await run_in_threadpool(store.child_trying, study_id, body.suggestion)
    if existing is not None:
        child = await run_in_threadpool(store.get_study, existing)
        done = StudyCreated(id=existing, status=child.status, creation=deps.creation_of(child))
        headers = {"Location": f"/api/studies/{existing}"}
        return JSONResponse(done.model_dump(mode="json"), status_code=200, headers=headers)
    parent = await run_in_threadpool(store.get_study, study_id)
    results = None
    if parent.status not in ("creating", "failed"):
        fidelity = body.fidelity or parent.spec.fidelities[0]
        norm = None if body.normalize == "none" else body.normalize
        try:  # the store's current version: a suggestion is read as it stands now
            typed = await run_in_threadpool(
                request.app.state.results.results, store, study_id, fidelity, norm
            )
        except ValueError as e:  # e.g. a fidelity not of this study
            raise HTTPException(422, detail=str(e)) from None
        results = typed.model_dump(mode="json", by_alias=True)
    try:
        spec, record = await run_in_threadpool(
            refine_plan, store, study_id, body.suggestion, results
        )
    except refine.UnknownSuggestion as e:
        raise HTTPException(404, detail=str(e)) from None
    except refine.NotApplicable as e:
        raise HTTPException(409, detail=str(e)) from None
    limits.check(spec)
    return await deps.create_from_spec(request, store, spec, study_id, record)
