"""The pages and files of `archiver serve`, each read through library.py, overview.py and query.py.

Handlers are plain functions: Starlette runs them in its worker threads, and each opens its own
read-only connection (readdb.ReadDB), so a page never waits on another and never blocks a sync.
"""

from __future__ import annotations

from typing import Any, Mapping

from jinja2 import Environment
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

from ..errors import ArchiverError, TooSlow, UsageError
from ..fields import AssetKind, AssetState, Status
from ..library import archived_path, count_clips, exact_detail, list_clips, list_tasks, m3u, search
from ..overview import clips_per_month, facets, stats
from .files import file_response
from .views import (FILTERS, PAGE_SIZE, SORTS, clip_url, filter_terms, lyrics_sections, month_chart, query_terms,
                    title_of)

LIST_PARAMS = ("q", "mode", "sort", "page", *FILTERS)
STATUSES = tuple(s.value for s in Status)
TASK_PAGE = 200
QUEUE_LIMIT = 5000


def _render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    env: Environment = request.app.state.env
    html = env.get_template(template).render(path=request.url.path, **context)
    return HTMLResponse(html, status_code=status)


def _params(request: Request) -> dict[str, str]:
    return {k: request.query_params[k] for k in LIST_PARAMS if request.query_params.get(k)}


def _page_number(params: Mapping[str, str]) -> int:
    try:
        return max(1, min(int(params.get("page", "1")), 1_000_000))
    except ValueError:
        return 1


def _results(db: Any, params: Mapping[str, str], *, limit: int | None, offset: int) -> tuple[list[dict[str, Any]], int]:
    """The clips the search field, mode and filters select, one page of them, and how many in all."""
    q = params.get("q", "").strip()
    terms = filter_terms(params)
    if params.get("mode") == "text" and q:
        return search(db, q, terms=terms, limit=limit, offset=offset), count_clips(db, terms, text_=q)
    terms = query_terms(q) + terms
    sort = params.get("sort") or "created-"
    if sort not in SORTS:
        raise UsageError(f"unknown sort {sort!r}")
    return list_clips(db, terms, sort=[sort], limit=limit, offset=offset), count_clips(db, terms)


def library_page(request: Request) -> Response:
    params = _params(request)
    page = _page_number(params)
    settings = request.app.state.settings
    error, rows, total, status = None, [], 0, 200
    with settings.open_reader() as db:
        values = facets(db)
        try:
            rows, total = _results(db, params, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
        except UsageError as exc:
            error, status = str(exc), 400
    pages = max(1, -(-total // PAGE_SIZE))
    return _render(request, "library.html", status, params=params, rows=rows, total=total, page=page,
                   pages=pages, first=(page - 1) * PAGE_SIZE + 1, error=error, facets=values,
                   statuses=STATUSES, view=request.query_params.get("view", "grid"))


def playlist(request: Request) -> Response:
    """The current results (every page) as an extended M3U with the files' paths on this machine."""
    settings = request.app.state.settings
    params = _params(request)
    with settings.open_reader() as db:
        try:
            rows, _total = _results(db, params, limit=None, offset=0)
        except UsageError as exc:
            return PlainTextResponse(str(exc), status_code=400)
    return Response(m3u(rows, settings.library, None), media_type="audio/x-mpegurl; charset=utf-8",
                    headers={"content-disposition": 'attachment; filename="archiver.m3u8"'})


def queue(request: Request) -> Response:
    """What "Play all" queues: every current result with audio (all pages, up to QUEUE_LIMIT), as JSON."""
    params = _params(request)
    with request.app.state.settings.open_reader() as db:
        try:
            rows, _total = _results(db, params, limit=QUEUE_LIMIT, offset=0)
        except UsageError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
    return JSONResponse([{"src": clip_url("audio", r), "title": title_of(r), "href": clip_url("clip", r)}
                         for r in rows if r.get("audio_path")])


def _archived(clip: dict[str, Any], kind: AssetKind) -> dict[str, Any] | None:
    """The clip's downloaded file of this kind, as `exact_detail` lists it; None if there is none."""
    return next((f for f in clip["files"] if f["kind"] == kind and f["state"] == AssetState.DOWNLOADED), None)


def clip_page(request: Request) -> Response:
    source, clip_id = request.path_params["source"], request.path_params["clip_id"]
    with request.app.state.settings.open_reader() as db:
        clip = exact_detail(db, "clip", source, clip_id)
    if clip is None:
        return not_found(request, None)
    audio, image = _archived(clip, AssetKind.AUDIO), _archived(clip, AssetKind.IMAGE)
    return _render(request, "clip.html", clip=clip, audio=audio, image=image,
                   sections=lyrics_sections(clip.get("lyrics")), library=str(request.app.state.settings.library))


def task_page(request: Request) -> Response:
    source, task_id = request.path_params["source"], request.path_params["task_id"]
    with request.app.state.settings.open_reader() as db:
        task = exact_detail(db, "task", source, task_id)
    if task is None:
        return not_found(request, None)
    for clip in task["clips"]:
        for kind, key in ((AssetKind.AUDIO, "audio_path"), (AssetKind.IMAGE, "image_path")):
            clip[key] = (_archived(clip, kind) or {}).get("path")
    return _render(request, "task.html", task=task)


def tasks_page(request: Request) -> Response:
    status = request.query_params.get("status") or None
    source = request.query_params.get("source") or None
    with request.app.state.settings.open_reader() as db:
        rows = list_tasks(db, sources=[source] if source else None, statuses=[status] if status else None)
        sources = facets(db)["source"]
    order = {"failed": 0, "pending": 1, "running": 2}
    rows.sort(key=lambda r: order.get(r["status"], 3))  # what needs a look first; stable otherwise
    params = {k: v for k, v in (("status", status), ("source", source)) if v}
    page = _page_number(request.query_params)
    shown = rows[(page - 1) * TASK_PAGE: page * TASK_PAGE]
    return _render(request, "tasks.html", rows=shown, total=len(rows), page=page,
                   pages=max(1, -(-len(rows) // TASK_PAGE)), params=params, statuses=STATUSES, sources=sources)


def stats_page(request: Request) -> Response:
    with request.app.state.settings.open_reader() as db:
        data = stats(db)
        months = clips_per_month(db)
    return _render(request, "stats.html", data=data, chart=month_chart(months), statuses=STATUSES)


def _file(request: Request, kind: str, *, download: bool = False) -> Response:
    source, clip_id = request.path_params["source"], request.path_params["clip_id"]
    settings = request.app.state.settings
    with settings.open_reader() as db:
        relative = archived_path(db, source, clip_id, kind)
    return file_response(settings.library, relative, request.headers.get("range"), download=download)


def audio(request: Request) -> Response:
    return _file(request, AssetKind.AUDIO.value)


def cover(request: Request) -> Response:
    return _file(request, AssetKind.IMAGE.value)


def download(request: Request) -> Response:
    return _file(request, AssetKind.AUDIO.value, download=True)


def not_found(request: Request, exc: Exception | None) -> Response:
    return _render(request, "error.html", 404, heading="Not found",
                   message="Nothing in this library has that address.")


def server_error(request: Request, exc: Exception) -> Response:
    message = str(exc) if isinstance(exc, ArchiverError) else f"internal error: {type(exc).__name__}"
    status = 503 if isinstance(exc, TooSlow) else 500
    return _render(request, "error.html", status, heading="Cannot read the library", message=message)
