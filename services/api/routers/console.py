"""The web console: static pages served at /ui (no data and no secret in them: their scripts call the JSON API
from the browser), `/` leading to it, and the `.../stream` pages of the live-logs contract leading to its
execution and job pages."""

from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

from services.api.errors import NotFound

router = APIRouter()

CONSOLE_DIR = Path(__file__).resolve().parents[1] / "console"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# The asset names are listed once: a request names one of them or gets a 404, so no path reaches outside.
ASSETS = {p.name: p for p in sorted(CONSOLE_DIR.iterdir()) if p.is_file() and p.suffix in MEDIA_TYPES}
# The scripts and styles change with the code: the browser asks again (a 304 when unchanged) rather than
# running an older app.js against a newer API.
# The page runs only its own files and talks only to this API: a value that slipped into markup still could not
# load or run anything (the scripts put every value on the page as text in the first place).
NO_STALE = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none';"
    " form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def console_page(fragment: str) -> RedirectResponse:
    return RedirectResponse(f"/ui/#{fragment}", status_code=307)


def segment(value: str) -> str:
    return quote(value, safe="")


@router.get("/", include_in_schema=False)
def root() -> RedirectResponse:
    return console_page("/")


@router.get("/ui", include_in_schema=False)
@router.get("/ui/", include_in_schema=False)
def index() -> FileResponse:
    return FileResponse(ASSETS["index.html"], media_type=MEDIA_TYPES[".html"], headers=NO_STALE)


@router.get("/ui/static/{name}", include_in_schema=False)
def asset(name: str) -> FileResponse:
    path = ASSETS.get(name)
    if path is None:
        raise NotFound(f"no console file named {name!r}")
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers=NO_STALE)


@router.get("/tasks/{task_id}/jobs/{job_id}/executions/{execution_id}/stream", include_in_schema=False)
@router.get("/tasks/{task_id}/jobs/{job_id}/executions/{execution_id}/stream/", include_in_schema=False)
def execution_stream_page(task_id: str, job_id: str, execution_id: str) -> RedirectResponse:
    """The execution's page in the console, with its live log."""
    return console_page(f"/tasks/{segment(task_id)}/jobs/{segment(job_id)}/executions/{segment(execution_id)}")


@router.get("/tasks/{task_id}/jobs/{job_id}/stream", include_in_schema=False)
@router.get("/tasks/{task_id}/jobs/{job_id}/stream/", include_in_schema=False)
def job_stream_page(task_id: str, job_id: str) -> RedirectResponse:
    """The job's page in the console."""
    return console_page(f"/tasks/{segment(task_id)}/jobs/{segment(job_id)}")
