"""The /api/studies resource: create, list, show, cancel, trials, results (EDF), export."""

from __future__ import annotations

import threading
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse

from api.http.deps import (
    ERRORS,
    MUTATING,
    SPEC_BODY,
    SpecLimits,
    StudyId,
    create_from_spec,
    creating_route,
    creation_of,
    error_body,
    get_limits,
    get_store,
    posted_spec,
    require_token,
    study_or_404,
)
from api.http.schemas import (
    Normalize,
    Results,
    StudyDetail,
    StudySummary,
    TrialsPage,
)
from search.exports import trials_csv
from worker.check import check_recipe

router = APIRouter(prefix="/api/studies", tags=["studies"])


def _summary(study) -> dict:
    spec = study.spec
    return {
        "id": study.id,
        "name": study.name,
        "status": study.status,
        "created": study.created,
        "spaces": spec.space_names(),
        "samples": spec.samples,
        "fidelities": list(spec.fidelities),
        "reason": study.reason,
        "creation": creation_of(study),
    }


@router.post(
    "",
    **creating_route(
        "accepted; the study is being created",
        {
            413: error_body("body too large"),
            415: error_body("neither JSON nor YAML"),
            429: error_body("check=true while another recipe check is training"),
        },
    ),
    openapi_extra=SPEC_BODY,
)
async def create_study(
    request: Request,
    store=Depends(get_store),
    limits: SpecLimits = Depends(get_limits),
    check: bool = Query(
        False,
        description="first train the spec's first reference network (else RegNetX-200MF) once "
        "at the lowest fidelity with the study's recipe and data; a check that stays at chance "
        "refuses the study (422, with the numbers)",
    ),
):
    """Create a study from a JSON or YAML spec; its networks are sampled in the background.

    201 when sampling and storing finished within the server's wait (a few seconds), else
    202 with status `creating`; GET /api/studies/{id} then shows the progress, and the
    study ends `running`, or `failed` with the reason. A creation that fails within the
    wait is a 422 naming the space, and leaves nothing stored.
    """
    spec = await posted_spec(request, limits)
    if check:
        await _check_recipe(spec)
    return await create_from_spec(request, store, spec)


_CHECKING = threading.Semaphore(1)  # a check is a training in this process: one at a time


async def _check_recipe(spec) -> None:
    """Train the recipe check off the event loop; 422 with its numbers if it stays at chance."""

    if not _CHECKING.acquire(blocking=False):
        raise HTTPException(429, detail="check: another recipe check is training; retry later")
    try:
        result = await run_in_threadpool(check_recipe, spec)
    finally:
        _CHECKING.release()
    if not result.learned:
        raise HTTPException(422, detail=f"recipe: the check failed: {result.text()}")


@router.get("", response_model=list[StudySummary])
def list_studies(store=Depends(get_store)):
    """Every study, newest first."""
    return [_summary(s) for s in store.list_studies()]


@router.get("/{study_id}", response_model=StudyDetail, responses=ERRORS)
def show_study(study_id: StudyId, store=Depends(get_store)):
    """One study with its progress per space and fidelity level."""
    study = study_or_404(store, study_id)
    return {
        **_summary(study),
        "spec": study.spec,
        "progress": store.progress(study_id),
        "sampling": study.sampling,
        "version": str(store.version(study_id)),
        **store.family(study),
    }


@router.post(
    "/{study_id}/cancel",
    response_model=StudySummary,
    dependencies=[Depends(require_token)],
    responses={**ERRORS, **MUTATING},
)
def cancel_study(study_id: StudyId, store=Depends(get_store)):
    """Cancel a study: waiting trials are dropped, running ones stop at their next epoch."""
    study_or_404(store, study_id)
    store.cancel_study(study_id)
    return _summary(study_or_404(store, study_id))


@router.get(
    "/{study_id}/trials",
    response_model=TrialsPage,
    responses={**ERRORS, 200: {"content": {"text/csv": {}}}},
)
def list_trials(
    study_id: StudyId,
    offset: int = Query(0, ge=0, le=10_000_000),
    limit: int = Query(100, ge=1, le=1000),
    format: Literal["json", "csv"] = "json",
    store=Depends(get_store),
):
    """A page of trials (JSON), or the same page as CSV; never more rows than `limit` are read."""
    study_or_404(store, study_id)
    rows = store.trials(study_id, offset=offset, limit=limit)
    if format == "csv":
        return PlainTextResponse(trials_csv(rows), media_type="text/csv")
    return {
        "study_id": study_id,
        "total": store.count(study_id),
        "offset": offset,
        "limit": limit,
        "trials": rows,
    }


@router.get(
    "/{study_id}/edf",
    response_class=Response,
    responses={
        **ERRORS,
        200: {"model": Results, "description": "the study's results at one fidelity level"},
        304: {"description": "unchanged"},
        503: error_body("too many analyses outstanding; Retry-After"),
    },
)
def study_edf(
    study_id: StudyId,
    request: Request,
    fidelity: int | None = Query(None, ge=1, le=100_000, description="epochs; None = lowest"),
    normalize: Normalize = "none",
    bins: int | None = Query(
        None,
        ge=1,
        le=1000,
        description="equal complexity bins of the normalisation (default: chosen from the data,"
        " the most up to NDS' 40 that leave every space 3 networks a bin)",
    ),
    c_range: str | None = Query(
        None,
        alias="range",
        description="'lo,hi': complexity range of the normalisation "
        "(default: the overlap of the spaces' complexity)",
        max_length=100,
    ),
    store=Depends(get_store),
) -> Response:
    """The study's results: EDFs per space, KS table, parameter plots, rank correlation, fit."""
    study = study_or_404(store, study_id)
    if fidelity is None:  # one cache entry and ETag for "the lowest level" however it is asked
        fidelity = study.spec.fidelities[0]
    norm = None if normalize == "none" else normalize
    bounds = _range(c_range) if norm else None
    etag, body = request.app.state.results.get(
        store, study_id, fidelity, norm, bins if norm else None, bounds
    )
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers={"ETag": etag})
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    return Response(body, media_type="application/json", headers=headers)


def _range(text: str | None) -> tuple[float, float] | None:
    """'lo,hi' → (lo, hi); ValueError naming `range` (a 422) otherwise."""
    if not text:
        return None
    try:
        lo, hi = (float(v) for v in text.replace(":", ",").split(","))
    except ValueError:
        raise ValueError(f"range: expected 'lo,hi' (two numbers), got {text!r}") from None
    return lo, hi
