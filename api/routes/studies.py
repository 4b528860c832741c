"""The /api/studies resource: create, list, show, cancel, trials, results (EDF), export."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field

from api.deps import (
    YAML_TYPES,
    SpecLimits,
    UnsupportedMediaType,
    get_limits,
    get_store,
    json_safe,
    not_found,
    parse_spec_body,
    require_token,
)

router = APIRouter(prefix="/api/studies", tags=["studies"])

Normalize = Literal["none", "flops", "params", "acts"]
# ids are database integers: bounded here so an absurd id is a 422, not a driver overflow
StudyId = Annotated[int, Path(ge=1, le=2_147_483_647, description="study id")]


class CreationProgress(BaseModel):
    """How far a study's creation got: spaces sampled, trials stored."""

    spaces: int = Field(description="spaces to sample")
    sampled: int = Field(description="spaces sampled so far")
    total: int | None = Field(description="trials to store (known once all are sampled)")
    stored: int = Field(description="trials stored so far")
    budget_seconds: float | None = Field(description="the creation's time budget")
    sampling_seconds: float | None = Field(None, description="how long sampling took")
    storing_seconds: float | None = Field(None, description="how long storing took")


class StudyCreated(BaseModel):
    """A new study: 201 once its trials are stored, 202 while it is still being created."""

    id: int
    status: str = Field(description="running, or creating (poll GET /api/studies/{id})")
    creation: CreationProgress | None = None


class StudySummary(BaseModel):
    """One study in the listing."""

    id: int
    name: str
    status: str
    created: datetime | str | None = None
    spaces: list[str]
    samples: int
    fidelities: list[int]
    reason: str | None = Field(None, description="why it failed, when it did")
    creation: CreationProgress | None = Field(None, description="while creating: how far")


class StudyDetail(StudySummary):
    """One study: its spec and its progress per space and fidelity."""

    spec: dict[str, Any]
    progress: Any = Field(description="per space and fidelity level: waiting, running, done, …")
    sampling: dict[str, Any] = Field(
        default_factory=dict, description="per space: rejection-sampler draws and acceptance"
    )
    version: str


class TrialsPage(BaseModel):
    """One page of a study's trials."""

    study_id: int
    total: int
    offset: int
    limit: int
    trials: list[dict[str, Any]]


ERRORS = {
    404: {"description": "unknown study"},
    422: {"description": "invalid input; the body names the field and the reason"},
}
MUTATING = {401: {"description": "DSE_TOKEN is set and the bearer token is missing or wrong"}}


def study_or_404(store, study_id: int):
    """The study, or a 404 naming the id."""
    try:
        study = store.get_study(study_id)
    except (KeyError, LookupError):
        raise not_found("study", study_id) from None
    if study is None:
        raise not_found("study", study_id)
    return study


def _summary(study) -> dict[str, Any]:
    spec = study.spec
    return {
        "id": study.id,
        "name": study.name,
        "status": study.status,
        "created": study.created,
        "spaces": list(space_names(spec)),
        "samples": spec.samples,
        "fidelities": list(spec.fidelities),
        "reason": study.reason,
        "creation": _creation(study),
    }


def _creation(study) -> dict | None:
    progress = study.creation
    return None if progress is None else progress.to_json()


def space_names(spec) -> list[str]:
    """The label of every space of a study, in spec order."""
    names = getattr(spec, "space_names", None)
    if names is not None:
        return list(names() if callable(names) else names)
    out = []
    for i, space in enumerate(spec.spaces):
        out.append(getattr(space, "name", None) or getattr(space, "preset", None) or f"space{i}")
    return out


SPEC_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/StudySpec"}},
            **{t: {"schema": {"type": "string"}} for t in YAML_TYPES[:1]},
        },
    }
}


@router.post(
    "",
    status_code=201,
    response_model=StudyCreated,
    dependencies=[Depends(require_token)],
    responses={
        **ERRORS,
        **MUTATING,
        202: {"model": StudyCreated, "description": "accepted; the study is being created"},
        413: {"description": "body too large"},
        415: {},
        503: {"description": "too many studies are being created; retry later"},
    },
    openapi_extra=SPEC_BODY,
)
async def create_study(
    request: Request, store=Depends(get_store), limits: SpecLimits = Depends(get_limits)
):
    """Create a study from a JSON or YAML spec; its networks are sampled in the background.

    201 when sampling and storing finished within the server's wait (a few seconds), else
    202 with status `creating`; GET /api/studies/{id} then shows the progress, and the
    study ends `running`, or `failed` with the reason. A creation that fails within the
    wait is a 422 naming the space, and leaves nothing stored.
    """
    from search.creator import CreatorBusy
    from search.spec import StudySpec
    from search.status import StudyStatus

    try:
        data = parse_spec_body(await request.body(), request.headers.get("content-type"))
    except UnsupportedMediaType as e:
        raise HTTPException(415, detail=str(e)) from None
    spec = StudySpec.model_validate(data)
    limits.check(spec)
    creator = request.app.state.creator
    busy = HTTPException(
        503, detail="creation: too many studies are being created; retry in a few seconds",
        headers={"Retry-After": "5"},
    )  # fmt: skip
    if creator.busy():
        raise busy
    study_id = await run_in_threadpool(store.begin_study, spec)  # never on the event loop
    try:  # starting a child may wait for the forkserver: off the event loop too
        job = await run_in_threadpool(creator.submit, study_id)
    except CreatorBusy:
        await run_in_threadpool(store.discard_study, study_id)
        raise busy from None
    finished = await run_in_threadpool(creator.wait, job, request.app.state.create_wait)
    study = await run_in_threadpool(store.get_study, study_id)
    if finished and study.status == StudyStatus.FAILED:
        await run_in_threadpool(store.discard_study, study_id)
        raise ValueError(study.reason or "creation failed")  # a 422 naming the space
    body = StudyCreated(id=study_id, status=study.status, creation=_creation(study))
    return JSONResponse(
        body.model_dump(mode="json"),
        status_code=201 if finished else 202,
        headers={"Location": f"/api/studies/{study_id}"},
    )


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
        "spec": study.spec.model_dump(mode="json"),
        "progress": store.progress(study_id),
        "sampling": getattr(study, "sampling", None) or {},
        "version": str(store.version(study_id)),
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
    """A page of trials (JSON), or the trial table as CSV."""
    study_or_404(store, study_id)
    if format == "csv":
        frame = store.trial_frame(study_id).iloc[offset : offset + limit].copy()
        nested = frame.map(lambda v: isinstance(v, dict | list))
        for column in frame.columns[nested.any()]:  # nested specs as JSON, not Python repr
            frame[column] = [
                json.dumps(v) if isinstance(v, dict | list) else v for v in frame[column]
            ]
        return PlainTextResponse(frame.to_csv(index=False), media_type="text/csv")
    rows = store.trials(study_id, offset=offset, limit=limit)
    return {
        "study_id": study_id,
        "total": store.count(study_id),
        "offset": offset,
        "limit": limit,
        "trials": [json_safe(r) for r in rows],
    }


@router.get("/{study_id}/edf", responses={**ERRORS, 304: {"description": "unchanged"}})
def study_edf(
    study_id: StudyId,
    request: Request,
    fidelity: int | None = Query(None, ge=1, le=100_000, description="epochs; None = lowest"),
    normalize: Normalize = "none",
    store=Depends(get_store),
) -> dict[str, Any]:
    """The study's results: EDFs per space, KS table, parameter plots, rank correlation, fit."""
    study = study_or_404(store, study_id)
    if fidelity is None:  # one cache entry and ETag for "the lowest level" however it is asked
        fidelity = study.spec.fidelities[0]
    norm = None if normalize == "none" else normalize
    etag, body = request.app.state.results.get(store, study_id, fidelity, norm)
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers={"ETag": etag})
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    return Response(body, media_type="application/json", headers=headers)
