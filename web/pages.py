"""The browser UI: the HTML shell and the files under ``/static``.

The UI is one HTML shell (``web/static/index.html``) and plain ES modules; the shell is served at
every page address the client-side router knows (``/``, ``/login``, ``/contacts/{id}``,
``/self-test``), so a reload or a bookmark lands on the right view.

Static files are served only from ``web/static``, only with a known extension (each with an exact
``Content-Type``), never hidden files, with an ETag so unchanged files answer 304. Every answer
carries a Content-Security-Policy that allows scripts, styles, workers and connections from this
origin only: no inline scripts, no CDN.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

STATIC_DIRECTORY = Path(__file__).parent / "static"
SHELL_FILE = "index.html"

CONTENT_TYPES: dict[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".wav": "audio/wav",
    ".woff2": "font/woff2",
    ".txt": "text/plain; charset=utf-8",
}

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "worker-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Permissions-Policy": "microphone=(self), camera=(), geolocation=()",
}

# Addresses of the client-side router's pages; each answers with the shell.
PAGE_PATHS: tuple[str, ...] = (
    "/",
    "/login",
    "/contacts/{contact_id:int}",
    "/self-test",
    "/library",
    "/calls/{call_id:int}/player",
    "/floor",
    "/reports",
)


def _static_path(relative: str) -> Path | None:
    """The file under the static directory named by ``relative``, or None if not servable."""
    if not relative or "\\" in relative or "\x00" in relative:
        return None
    parts = relative.split("/")
    if any(part in ("", ".", "..") or part.startswith(".") for part in parts):
        return None
    candidate = STATIC_DIRECTORY.joinpath(*parts)
    if candidate.suffix.lower() not in CONTENT_TYPES:
        return None
    try:
        resolved = candidate.resolve(strict=True)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not resolved.is_relative_to(STATIC_DIRECTORY.resolve()) or not resolved.is_file():
        return None
    return resolved


def _entity_tag(path: Path) -> str:
    status = path.stat()
    return f'"{status.st_mtime_ns:x}-{status.st_size:x}"'


def _not_found() -> Response:
    return Response(
        "not found", status_code=404, media_type="text/plain", headers=dict(SECURITY_HEADERS)
    )


async def file_response(request: Request, path: Path) -> Response:
    """``path`` with its content type and an ETag; 304 when the client's copy is current."""
    tag = await run_in_threadpool(_entity_tag, path)
    headers = {**SECURITY_HEADERS, "ETag": tag, "Cache-Control": "no-cache"}
    if tag in (value.strip() for value in request.headers.get("if-none-match", "").split(",")):
        return Response(status_code=304, headers=headers)
    content = await run_in_threadpool(path.read_bytes)
    headers["Content-Type"] = CONTENT_TYPES[path.suffix.lower()]
    return Response(content, headers=headers)


async def static_file(request: Request) -> Response:
    path = _static_path(str(request.path_params["path"]))
    if path is None:
        return _not_found()
    return await file_response(request, path)


async def shell(request: Request) -> Response:
    path = _static_path(SHELL_FILE)
    if path is None:
        return _not_found()
    return await file_response(request, path)


def routes(app: Starlette) -> Sequence[BaseRoute]:
    """The UI's routes (listed in ``web.app.ROUTE_MODULES``)."""
    del app
    page_routes: list[BaseRoute] = [
        Route(path, shell, methods=["GET", "HEAD"]) for path in PAGE_PATHS
    ]
    return [
        *page_routes,
        Route("/static/{path:path}", static_file, methods=["GET", "HEAD"], name="static"),
    ]
