"""The FastAPI app: one router per resource, a body-size guard, JSON errors that name the field."""

from __future__ import annotations

import json
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.deps import DEFAULT_MAX_BODY, ResultsCache, SpecLimits, error_items
from api.routes import exports, health, pages, studies

STATIC_DIR = Path(__file__).parent / "static"


class BodyLimit:
    """ASGI middleware: refuse request bodies over max_body bytes with 413 (declared or streamed)."""

    def __init__(self, app, max_body: int):
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.max_body
            except ValueError:
                too_big = False
            if too_big:
                return await self._refuse(send)
        seen = 0
        started = False

        async def counted_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise _TooLarge()
            return message

        async def tracked_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except _TooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send):
        body = json.dumps(
            {
                "detail": f"body: request body exceeds {self.max_body} bytes",
                "errors": [
                    {"field": "body", "reason": f"request body exceeds {self.max_body} bytes"}
                ],
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


def _error_response(status: int, items: list[dict[str, str]], headers=None) -> JSONResponse:
    detail = "; ".join(f"{i['field']}: {i['reason']}" for i in items)
    return JSONResponse({"detail": detail, "errors": items}, status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _request_invalid(request: Request, exc: RequestValidationError):
        items = []
        for e in exc.errors():
            loc = [str(x) for x in e.get("loc", ())]
            if loc and loc[0] in ("query", "path", "body", "header"):
                loc = loc[1:]
            items.append({"field": ".".join(loc) or "request", "reason": str(e.get("msg"))})
        return _error_response(422, items)

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


def _offline_openapi(app: FastAPI) -> None:
    """Put the StudySpec model into the schema: POST /api/studies reads JSON or YAML itself."""
    from search.spec import StudySpec

    def openapi():
        if app.openapi_schema:
            return app.openapi_schema
        from fastapi.openapi.utils import get_openapi

        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        spec_schema = StudySpec.model_json_schema(ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(spec_schema.pop("$defs", {}))
        components["StudySpec"] = spec_schema
        app.openapi_schema = schema
        return schema

    app.openapi = openapi


def create_app(
    db_url: str = "sqlite:///dse.db",
    token: str | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    limits: SpecLimits | None = None,
    store=None,
    create_wait: float = 2.0,
) -> FastAPI:
    """The dse HTTP app on one database (a Store may be passed in instead of a URL).

    `create_wait`: seconds a POST of a study waits for its creation before answering 202.
    """
    from search.creation import CreationBudget
    from search.creator import Creator

    if store is None:
        from search.store import Store

        store = Store(db_url)
    creator = Creator(store, CreationBudget.from_env())

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        creator.start()  # reaps dead creations now and periodically (issue 15 finding 6)
        try:
            yield
        finally:
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
    app.state.results = ResultsCache()
    _install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(studies.router)
    app.include_router(exports.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _offline_openapi(app)
    app.add_middleware(BodyLimit, max_body=max_body)
    return app
