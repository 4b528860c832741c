"""What the routes are handed and share: the store, the operator's limits, the token check, the
spec body, a study by its id (or a 404), the error responses they document, and a study's
creation answered in HTTP (POST /api/studies and its refine children)."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from api.http.limits import SpecLimits
from api.http.schemas import ErrorBody, StudyCreated
from search.create import create_study
from search.creator import CreatorBusy
from search.spec.study import StudySpec
from search.spec.text import load_text
from search.store.studies import StudyNotFound

# A spec is a few kB; the operator's other limits (SpecLimits) bound what it may ask for.
DEFAULT_MAX_BODY = 256 * 1024

# ids are database integers: bounded here so an absurd id is a 422, not a driver overflow
StudyId = Annotated[int, Path(ge=1, le=2_147_483_647, description="study id")]


# the error answers the routes document (OpenAPI): those of a study id, those of a mutation
def error_body(description: str) -> dict:
    """An OpenAPI response entry whose body is an ErrorBody saying `description`."""
    return {"model": ErrorBody, "description": description}


ERRORS = {
    404: error_body("unknown study"),
    422: error_body("invalid input; the body names the field and why"),
}
MUTATING = {
    401: error_body("DSE_TOKEN is set and the bearer token is wrong"),
    403: error_body("a request from another origin (cross-site)"),
}


def get_store(request: Request):
    """The study store of this app (one per process, shared by all requests)."""
    return request.app.state.store


def get_limits(request: Request) -> SpecLimits:
    """The spec limits of this app."""
    return request.app.state.limits


def require_token(request: Request) -> None:
    """Mutating (and costly: the estimate) requests need `Authorization: Bearer <DSE_TOKEN>` when set."""
    token = request.app.state.token
    if not token:
        return
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), token.encode()
    ):
        raise HTTPException(
            status_code=401,
            detail="authorization: a bearer token is required for this request",
            headers={"WWW-Authenticate": "Bearer"},
        )


def not_found(what: str, ident: Any) -> HTTPException:
    """A 404 naming what was looked for."""
    return HTTPException(status_code=404, detail=f"{what}: no {what} with id {ident}")


def study_or_404(store, study_id: int):
    """The study, or a 404 naming the id."""
    try:
        return store.get_study(study_id)
    except StudyNotFound:
        raise not_found("study", study_id) from None


YAML_TYPES = ("application/x-yaml", "application/yaml", "text/yaml", "text/x-yaml")
# the request body of the routes that read a study spec themselves (JSON or YAML)
SPEC_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/StudySpec"}},
            **{t: {"schema": {"type": "string"}} for t in YAML_TYPES[:1]},
        },
    }
}


def parse_spec_body(raw: bytes, content_type: str | None) -> dict:
    """A posted study spec as a dict: JSON, or YAML by content type (search.spec.text's rules)."""
    kind = (content_type or "application/json").split(";")[0].strip().lower()
    if kind in YAML_TYPES:
        fmt = "yaml"
    elif kind == "application/json" or kind.endswith("+json"):
        fmt = "json"
    else:
        raise UnsupportedMediaType(kind)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("body: not UTF-8 text") from None
    if not text.strip():
        raise ValueError("body: empty; expected a study spec (JSON or YAML)")
    data = load_text(text, fmt)
    if not isinstance(data, dict):
        raise ValueError(f"body: expected a mapping (the study spec), got {type(data).__name__}")
    return data


async def posted_spec(request: Request, limits: SpecLimits):
    """The request's study spec, validated and within the operator's limits (415 if neither
    JSON nor YAML; a ValueError, answered 422 naming the field, if invalid)."""
    try:
        data = parse_spec_body(await request.body(), request.headers.get("content-type"))
    except UnsupportedMediaType as e:
        raise HTTPException(415, detail=str(e)) from None
    spec = StudySpec.model_validate(data)
    limits.check(spec)
    return spec


class UnsupportedMediaType(ValueError):
    """The body's content type is neither JSON nor YAML."""

    def __init__(self, kind: str):
        super().__init__(f"content-type: {kind!r} is not supported; use JSON or YAML")
        self.field = "content-type"
        self.reason = f"{kind!r} is not supported; use application/json or application/x-yaml"


def creation_of(study) -> dict | None:
    """A study's creation progress as JSON (None once created)."""
    progress = study.creation
    return None if progress is None else progress.to_json()


# search.create's outcomes as HTTP statuses
CREATED_STATUS = {"created": 201, "creating": 202, "exists": 200}


def creating_route(accepted: str, responses: dict) -> dict:
    """The decorator arguments every route that creates a study shares (201, 202, 503, token)."""
    return {
        "status_code": 201,
        "response_model": StudyCreated,
        "dependencies": [Depends(require_token)],
        "responses": {
            **ERRORS,
            **MUTATING,
            202: {"model": StudyCreated, "description": accepted},
            503: error_body("too many studies are being created; retry"),
            **responses,
        },
    }


async def create_from_spec(
    request: Request, store, spec: StudySpec, parent_id: int | None = None, suggestion=None
) -> JSONResponse:
    """The creation (search.create) in HTTP: 201 created, 202 still creating after the
    server's wait, 200 when a refine child exists already; 503 when the server is busy, and a
    creation that failed within the wait is a ValueError: 422 naming the space."""
    try:  # the database and the wait: never on the event loop
        done = await run_in_threadpool(
            create_study,
            store,
            request.app.state.creator,
            spec,
            request.app.state.create_wait,
            parent_id,
            suggestion,
        )
    except CreatorBusy:
        raise HTTPException(
            503, detail="creation: too many studies are being created; retry in a few seconds",
            headers={"Retry-After": "5"},
        ) from None  # fmt: skip
    study = done.study
    body = StudyCreated(id=study.id, status=study.status, creation=creation_of(study))
    return JSONResponse(
        body.model_dump(mode="json"),
        status_code=CREATED_STATUS[done.outcome],
        headers={"Location": f"/api/studies/{study.id}"},
    )
