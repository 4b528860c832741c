"""The /api/studies resource: create, list, show, cancel, trials, results (EDF), export."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.responses import PlainTextResponse
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


class StudyCreated(BaseModel):
    """The id of a new study."""

    id: int


class StudySummary(BaseModel):
    """One study in the listing."""

    id: int
    name: str
    status: str
    created: datetime | str | None = None
    spaces: list[str]
    samples: int
    fidelities: list[int]


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
    }


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
    responses={**ERRORS, **MUTATING, 413: {"description": "body too large"}, 415: {}},
    openapi_extra=SPEC_BODY,
)
async def create_study(
    request: Request, store=Depends(get_store), limits: SpecLimits = Depends(get_limits)
):
    """Create a study from a JSON or YAML spec; every network is sampled now."""
    from search.spec import StudySpec

    try:
        data = parse_spec_body(await request.body(), request.headers.get("content-type"))
    except UnsupportedMediaType as e:
        raise HTTPException(415, detail=str(e)) from None
    spec = StudySpec.model_validate(data)
    limits.check(spec)
    return StudyCreated(id=store.create_study(spec))


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
    bins: int | None = Query(
        None, ge=1, le=1000, description="equal complexity bins of the normalisation (NDS: 40)"
    ),
    c_range: str | None = Query(
        None,
        alias="range",
        description="'lo,hi': complexity range of the normalisation "
        "(default: the overlap of the spaces' complexity)",
        max_length=100,
    ),
    store=Depends(get_store),
) -> dict[str, Any]:
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
