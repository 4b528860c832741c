"""The FastAPI app: one router per resource, request guards, JSON errors that name the field."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from api.errors import error_items
from api.http.deps import DEFAULT_MAX_BODY, SpecLimits
from api.http.middleware import LOOPBACK_NAMES, BodyLimit, HostOriginGuard
from api.http.results_cache import ResultsBusy, ResultsCache
from api.http.routes import exports, form, health, pages, refine, studies
from search.creator import Creator
from search.spec.study import StudySpec
from search.store import Store
from search.store.creation import CreationBudget

STATIC_DIR = Path(__file__).parent / "static"
log = logging.getLogger("dse.api")


def _error_response(status: int, items: list[dict[str, str]], headers=None) -> JSONResponse:
    detail = "; ".join(f"{i['field']}: {i['reason']}" for i in items)
    return JSONResponse({"detail": detail, "errors": items}, status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _request_invalid(request: Request, exc: RequestValidationError):
        return _error_response(422, error_items(exc))

    @app.exception_handler(ValidationError)
    async def _spec_invalid(request: Request, exc: ValidationError):
        return _error_response(422, error_items(exc))

    @app.exception_handler(ValueError)
    async def _value_error(request: Request, exc: ValueError):
        return _error_response(422, error_items(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        head, sep, tail = detail.partition(": ")
        item = {"field": head, "reason": tail} if sep else {"field": "request", "reason": detail}
        return _error_response(exc.status_code, [item], headers=getattr(exc, "headers", None))

    @app.exception_handler(ResultsBusy)
    async def _busy(request: Request, exc: ResultsBusy):
        # hostile or heavy reads: refused now rather than holding the server's threads
        item = {"field": "results", "reason": f"busy ({exc}); retry in a few seconds"}
        return _error_response(503, [item], headers={"Retry-After": "2"})

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, exc: ClientDisconnect):
        # the client left (or was timed out) mid-body: nobody reads the answer, nothing failed
        return Response(status_code=400)

    @app.exception_handler(Exception)
    async def _server_error(request: Request, exc: Exception):
        # the details (which may hold database hosts or paths) go to the log, not the client
        log.exception("%s %s failed", request.method, request.url.path)
        return _error_response(500, [{"field": "server", "reason": "internal error (logged)"}])


def _offline_openapi(app: FastAPI) -> None:
    """Put the StudySpec model into the schema: POST /api/studies reads JSON or YAML itself."""

    def openapi():
        if app.openapi_schema:
            return app.openapi_schema

        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        spec_schema = StudySpec.model_json_schema(ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(spec_schema.pop("$defs", {}))
        components["StudySpec"] = spec_schema
        app.openapi_schema = schema
        return schema

    app.openapi = openapi


def create_app(
    db_url: str | None = None,
    token: str | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    limits: SpecLimits | None = None,
    store=None,
    allowed_hosts: Iterable[str] | None = LOOPBACK_NAMES,
    allowed_origins: Iterable[str] = (),
    create_wait: float = 2.0,
) -> FastAPI:
    """The dse HTTP app on one database (default $DSE_DB; a Store may be passed instead).

    allowed_hosts: the Host names answered (default loopback only; None = any name).
    allowed_origins: origins other than the server's own that may send mutating requests.
    create_wait: seconds a POST of a study waits for its creation before answering 202.
    """
    if store is None:
        store = Store(db_url)
    creator = Creator(store, CreationBudget.from_env())
    results = ResultsCache(pool=creator.pool)  # analyses in forkserver children

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        creator.start()  # reaps dead creations now and periodically (issue 15 finding 6)
        try:
            yield
        finally:
            results.close()
            creator.close()

    app = FastAPI(
        title="dse",
        version="0.1.0",
        description="Design-space exploration of CNNs: studies, live EDFs, RegNet export.",
        docs_url=None,  # the default /docs pulls Swagger UI from a CDN; ours is offline
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.store = store
    app.state.creator = creator
    app.state.create_wait = create_wait
    app.state.token = token or None
    app.state.limits = limits or SpecLimits()
    app.state.results = results
    app.state.speed_probe = form.SpeedProbe(creator)
    _install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(form.router)  # before studies: /api/studies/estimate
    app.include_router(studies.router)
    app.include_router(refine.router)
    app.include_router(exports.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _offline_openapi(app)
    app.add_middleware(BodyLimit, max_body=max_body)
    # added last: runs first, so a refused Host or Origin reaches no route and reads no body
    app.add_middleware(
        HostOriginGuard, allowed_hosts=allowed_hosts, allowed_origins=allowed_origins
    )
    return app
