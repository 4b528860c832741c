"""The HTML pages (study listing, one study, offline API docs) and Plotly served from its package."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse, HTMLResponse

from api.http.deps import StudyId, get_store, study_or_404

router = APIRouter(include_in_schema=False)

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


@lru_cache(maxsize=1)
def plotly_js_path() -> Path:
    """plotly.min.js as shipped inside the installed plotly package (no CDN)."""
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise FileNotFoundError(f"plotly.min.js: not found in the plotly package at {path}")
    return path


def _page(name: str, title: str) -> HTMLResponse:
    """static/page.html (the head every page shares) around the body in static/{name}.body.html."""
    frame = (STATIC_DIR / "page.html").read_text(encoding="utf-8")
    body = (STATIC_DIR / f"{name}.body.html").read_text(encoding="utf-8")
    return HTMLResponse(frame.replace("{title}", title).replace("{body}", body))


@router.get("/vendor/plotly.min.js")
def plotly_js():
    """Plotly's JavaScript from the installed package, cacheable for a day."""
    return FileResponse(
        plotly_js_path(),
        media_type="application/javascript",
        headers={"Cache-Control": "public, max-age=86400"},
    )


@router.get("/", response_class=HTMLResponse)
def index_page():
    """The study listing with a form to post a new study."""
    return _page("index", "studies")


@router.get("/studies/{study_id}", response_class=HTMLResponse)
def study_page(study_id: StudyId, store=Depends(get_store)):
    """The live page of one study (404 for an unknown id)."""
    study_or_404(store, study_id)
    return _page("study", "study")


@router.get("/docs", response_class=HTMLResponse)
def docs_page():
    """API reference rendered in the browser from /openapi.json, with no CDN."""
    return _page("docs", "API")
