"""GET /healthz: the process is up and its database answers."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from api.http.deps import get_store
from api.http.schemas import Health

router = APIRouter(tags=["health"])
log = logging.getLogger("dse.api")


@router.get("/healthz", response_model=Health, responses={503: {"model": Health}})
def healthz(store=Depends(get_store)):
    """200 when the database answers a listing, 503 with the reason otherwise."""
    try:
        count = store.count_studies()
    except Exception as e:  # any database failure is the answer, not a crash
        # the error names the database's host, port and name: the log gets it, not the client
        log.warning("healthz: the database does not answer: %s", e)
        body = Health(status="unavailable", database=f"unreachable ({type(e).__name__})")
        return JSONResponse(body.model_dump(), status_code=503)
    return Health(status="ok", database="ok", studies=count)
