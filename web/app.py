"""``create_app(settings)``: the Starlette application.

The JSON API is assembled from route modules (``API_MODULES``), each exposing ``ENDPOINTS``: a
sequence of ``web.routing.Endpoint``. Other parts of the web layer (the browser UI, websockets)
add their own Starlette routes through ``extra_routes`` or by listing a module in
``ROUTE_MODULES`` that exposes ``routes(app) -> Sequence[BaseRoute]`` (the app's ``state``
carries ``settings``, ``engine``, ``session_factory`` and ``audit_appender``, the
``dialer.audit_appender.AuditAppender`` for standalone audit events).
"""

from __future__ import annotations

import gc
import importlib
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from dialer.audit_appender import AuditAppender
from dialer.reports import refresher as rollup_refresher
from dialer.storage import create_engine, create_session_factory
from web import bootstrap, openapi
from web.errors import ApiError, MethodNotAllowed, ResourceNotFound
from web.permissions import PUBLIC
from web.routing import Call, Endpoint, build_routes, error_response
from web.settings import WebSettings

logger = logging.getLogger(__name__)

API_TITLE = "dialer"
API_VERSION = "0.1.0"

# Modules exposing ``ENDPOINTS: Sequence[Endpoint]``, in the order they appear in the schema.
API_MODULES: tuple[str, ...] = (
    "web.api.session",
    "web.api.contacts",
    "web.api.calls",
    "web.api.statuses",
    "web.api.users",
    "web.api.teams",
    "web.api.allow_lists",
    "web.api.audit",
    "web.api.telephony",
    "web.api.recordings",
    "web.api.library",
    "web.api.reports",
    "web.api.floor",
)

# Modules exposing ``routes(app: Starlette) -> Sequence[BaseRoute]`` (UI, websockets, ...);
# a module that does not exist yet is skipped, so areas can be added independently.
ROUTE_MODULES: tuple[str, ...] = ("web.pages", "web.live", "web.audio_socket", "web.monitor_socket")


def api_endpoints() -> list[Endpoint]:
    """Every endpoint of the JSON API, ``/api/openapi.json`` included."""
    endpoints: list[Endpoint] = []
    for module_name in API_MODULES:
        module = importlib.import_module(module_name)
        endpoints.extend(module.ENDPOINTS)
    endpoints.append(
        Endpoint(
            "GET",
            "/api/openapi.json",
            _openapi_schema,
            PUBLIC,
            "The OpenAPI 3.1 description of this API",
            tag="meta",
        )
    )
    return endpoints


async def _openapi_schema(call: Call) -> object:
    endpoints: Sequence[Endpoint] = call.request.app.state.endpoints
    return openapi.openapi_document(endpoints, API_TITLE, API_VERSION)


def _extension_routes(app: Starlette) -> list[BaseRoute]:
    routes: list[BaseRoute] = []
    for module_name in ROUTE_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:
                raise
            continue
        routes.extend(module.routes(app))
    return routes


async def _http_exception(request: Request, exception: Exception) -> Response:
    assert isinstance(exception, HTTPException)
    error: ApiError
    if exception.status_code == 404:
        error = ResourceNotFound(f"no such path: {request.url.path}")
    elif exception.status_code == 405:
        error = MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}")
    else:
        error = ApiError(str(exception.detail))
        error.status = exception.status_code
        error.code = "http_error"
    return error_response(error)


async def _unexpected(request: Request, exception: Exception) -> Response:
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exception)
    return error_response(ApiError("internal error"))


def _freeze_objects_alive(settings: WebSettings) -> None:
    """With ``settings.freeze_objects_after_start``: collect once, then freeze what is left
    (see ``WebSettings``); objects made later are collected as usual."""
    if settings.freeze_objects_after_start:
        gc.collect()
        gc.freeze()
        logger.info("%d objects alive after start frozen out of collections", gc.get_freeze_count())


def create_app(settings: WebSettings, extra_routes: Sequence[BaseRoute] = ()) -> Starlette:
    """The application; its database engine is ``app.state.engine`` (disposed at shutdown,
    after the audit appender has committed what was queued)."""
    engine = create_engine(settings.core.database_url)
    session_factory = create_session_factory(engine)
    appender = AuditAppender(session_factory)
    endpoints = api_endpoints()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            if settings.upgrade_database_on_start:
                # ``dialer serve``: migrations, the first-start admin, the call service, then
                # the background refresher of the report rollups.
                async with (
                    bootstrap.serving(app, settings),
                    rollup_refresher.running_refresher(
                        session_factory, rollup_refresher.options_from_environment()
                    ),
                ):
                    _freeze_objects_alive(settings)
                    yield
            else:
                _freeze_objects_alive(settings)
                yield
        finally:
            try:
                await appender.close()
            finally:
                await engine.dispose()

    app = Starlette(
        routes=[*build_routes(endpoints, settings, session_factory), *extra_routes],
        exception_handlers={HTTPException: _http_exception, Exception: _unexpected},
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = session_factory
    app.state.audit_appender = appender
    app.state.endpoints = endpoints
    app.router.routes.extend(_extension_routes(app))
    return app
