"""The route table and the one dispatcher every API request goes through.

An ``Endpoint`` declares method, path, who may call it (``web.permissions.Access``), its body and
query schemas and its handler. ``Dispatcher`` turns a request into a ``Call`` in a
fixed order:

1. Origin check on state-changing methods (``web.csrf``);
2. resume the server-side session from the cookie (``dialer.sessions.resume_session``, which also
   enforces the idle/absolute lifetime and the IP allow-lists);
3. role check (``web.permissions.authorise``);
4. CSRF token check on state-changing methods with a session;
5. query string and body validation (size limit, JSON only, schema) -> 400/413/415/422;
6. the handler, in one database transaction committed on success and rolled back on error
   (a handler sets ``commit_on_error`` to keep what a failed login recorded); a read-only
   transaction for an endpoint declared ``read_only``.

Domain errors become JSON errors via ``web.errors.api_error_from_dialer``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dialer.actors import Actor
from dialer.errors import DialerError, SessionExpired, SourceNotAllowed
from dialer.sessions import resume_session_reading_first
from dialer.storage import begin_read_only
from web.client_address import arrived_over_https, client_address
from web.csrf import CSRF_HEADER, STATE_CHANGING_METHODS, check_csrf_token, check_origin, own_origin
from web.errors import (
    ApiError,
    BodyTooLarge,
    ConflictingState,
    MalformedRequest,
    ResourceNotFound,
    UnsupportedMediaType,
    api_error_from_dialer,
)
from web.permissions import Access, authorise
from web.validation import BIG_INTEGER_COLUMN_MAXIMUM, ObjectSchema, QuerySchema, Values

if TYPE_CHECKING:
    from dialer.models import User, WebSession
    from web.settings import WebSettings

logger = logging.getLogger(__name__)

Handler = Callable[["Call"], Awaitable["object | Response"]]

NO_VALUES = Values({})


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    access: Access
    summary: str
    tag: str
    body: ObjectSchema | None = None
    query: QuerySchema | None = None
    status: int = 200
    # Extra documented error statuses for OpenAPI, besides those every endpoint may return.
    errors: tuple[int, ...] = ()
    # Only login sets this: it runs before there is a session whose token could be sent (an old
    # session's cookie may still be present). The Origin check still applies.
    csrf_exempt: bool = False
    # The handler only reads: it runs in a read-only transaction, which on SQLite never waits
    # for the one write lock (``dialer.storage.begin_read_only``); a write in it fails loudly.
    read_only: bool = False

    @property
    def name(self) -> str:
        return f"{self.method} {self.path}"


@dataclass
class Call:
    """Everything a handler needs about the request it serves."""

    request: Request
    settings: WebSettings
    database: AsyncSession
    now: datetime
    source_ip: str | None
    over_https: bool
    actor: Actor | None
    user: User | None
    web_session: WebSession | None
    session_token: str | None
    body: Values = NO_VALUES
    query: Values = NO_VALUES
    # Set by a handler to keep the transaction's changes even though it raises (login failures
    # update throttling counters and the audit chain).
    commit_on_error: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    # Work that must only happen once the transaction is durable (publishing live events).
    after_commit: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def path_id(self, name: str = "id", maximum: int = BIG_INTEGER_COLUMN_MAXIMUM) -> int:
        """An ``{id:int}`` path parameter; past the column's range nothing can match (404)."""
        value = self.request.path_params[name]
        assert isinstance(value, int)
        if value > maximum:
            raise ResourceNotFound(f"no {name} {value}")
        return value

    def require_actor(self) -> Actor:
        if self.actor is None:  # authorise() has refused anonymous calls before this point
            raise ApiError("no actor for a signed-in endpoint")
        return self.actor


def json_response(
    payload: object, status: int = 200, headers: dict[str, str] | None = None
) -> JSONResponse:
    merged = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
    if headers:
        merged.update(headers)
    return JSONResponse(payload, status_code=status, headers=merged)


def error_response(error: ApiError, headers: dict[str, str] | None = None) -> JSONResponse:
    return json_response(error.as_json(), error.status, headers)


async def read_limited_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) anything over ``limit`` bytes without reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"request body over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"request body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def decode_json_body(raw: bytes, content_type: str | None) -> object:
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise UnsupportedMediaType("send the body as application/json")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedRequest("the body is not UTF-8") from None
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise MalformedRequest("the body is not valid JSON") from None


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


class Dispatcher:
    """Wraps one endpoint into a Starlette request handler."""

    def __init__(
        self,
        endpoint: Endpoint,
        settings: WebSettings,
        session_factory: async_sessionmaker[AsyncSession],
    ) -> None:
        self.endpoint = endpoint
        self.settings = settings
        self.session_factory = session_factory

    async def handle(self, request: Request) -> Response:
        settings = self.settings
        peer = request.client.host if request.client else None
        source_ip = client_address(
            peer, request.headers.get("x-forwarded-for"), settings.trusted_proxies
        )
        over_https = arrived_over_https(
            request.url.scheme,
            peer,
            request.headers.get("x-forwarded-proto"),
            settings.trusted_proxies,
        )
        state_changing = request.method in STATE_CHANGING_METHODS
        try:
            if state_changing:
                scheme = "https" if over_https else "http"
                check_origin(
                    request.headers.get("origin"),
                    own_origin(scheme, request.headers.get("host")),
                    settings.allowed_origins,
                )
        except ApiError as error:
            return error_response(error)
        async with self.session_factory() as database:
            return await self._serve(request, database, source_ip, over_https, state_changing)

    async def _serve(
        self,
        request: Request,
        database: AsyncSession,
        source_ip: str | None,
        over_https: bool,
        state_changing: bool,
    ) -> Response:
        settings = self.settings
        endpoint = self.endpoint
        now = settings.clock()
        token = request.cookies.get(settings.session_cookie_name) or None
        call = Call(
            request=request,
            settings=settings,
            database=database,
            now=now,
            source_ip=source_ip,
            over_https=over_https,
            actor=None,
            user=None,
            web_session=None,
            session_token=None,
        )
        try:
            if token is not None:
                await self._resume(call, token)
            authorise(endpoint.access, call.actor)
            if state_changing and not endpoint.csrf_exempt and call.web_session is not None:
                check_csrf_token(request.headers.get(CSRF_HEADER), call.web_session.csrf_token)
            if endpoint.query is not None:
                call.query = endpoint.query.validate(request.query_params.multi_items())
            elif request.query_params:
                call.query = QuerySchema().validate(request.query_params.multi_items())
            raw = await read_limited_body(request, settings.max_body_bytes)
            if endpoint.body is not None:
                call.body = endpoint.body.validate(
                    decode_json_body(raw, request.headers.get("content-type"))
                )
            elif raw.strip():
                raise MalformedRequest("this endpoint takes no request body")
            if endpoint.read_only:
                await begin_read_only(database)
            result = await endpoint.handler(call)
            await database.commit()
        except DialerError as error:
            await self._finish_failed(call)
            return error_response(api_error_from_dialer(error), call.headers)
        except ApiError as error:
            await self._finish_failed(call)
            return error_response(error, call.headers)
        except IntegrityError:
            # A concurrent request won a race the use case had checked for (same login twice).
            logger.info("integrity error on %s", endpoint.name, exc_info=True)
            await database.rollback()
            conflict = ConflictingState("conflicts with a concurrent change; try again")
            return error_response(conflict, call.headers)
        for follow_up in call.after_commit:
            # The change is already durable: a follow-up that fails is logged, and the answer
            # still reports the change that was made.
            try:
                await follow_up()
            except DialerError:
                logger.warning("after-commit step of %s failed", endpoint.name, exc_info=True)
        if isinstance(result, Response):
            result.headers.setdefault("Cache-Control", "no-store")
            result.headers.setdefault("X-Content-Type-Options", "nosniff")
            return result
        return json_response(result, endpoint.status, call.headers)

    async def _resume(self, call: Call, token: str) -> None:
        """Attach the session's user; an unusable token on a signed-in endpoint is a 401.

        Resumed in a read-only transaction (no wait for SQLite's write lock), again in an
        ordinary one only when resuming writes: the idle timer is due (once a minute), or the
        session ends or is refused."""
        try:
            user, web_session = await resume_session_reading_first(
                call.database, token, call.source_ip, call.now, self.settings.core
            )
        except (SessionExpired, SourceNotAllowed):
            # The session row may have been ended; keep that, and forget the cookie.
            await call.database.commit()
            call.headers["Set-Cookie"] = expired_cookie(self.settings)
            if self.endpoint.access.public:
                return
            raise
        await call.database.commit()
        call.user = user
        call.web_session = web_session
        call.session_token = token
        call.actor = Actor.for_user(user, call.source_ip)

    async def _finish_failed(self, call: Call) -> None:
        if call.commit_on_error:
            await call.database.commit()
        else:
            await call.database.rollback()


def expired_cookie(settings: WebSettings) -> str:
    return (
        f"{settings.session_cookie_name}=; Max-Age=0; Path=/; HttpOnly; SameSite=lax"
        "; Expires=Thu, 01 Jan 1970 00:00:00 GMT"
    )


def build_routes(
    endpoints: Sequence[Endpoint],
    settings: WebSettings,
    session_factory: async_sessionmaker[AsyncSession],
) -> list[Route]:
    """One Starlette route per endpoint, each behind the dispatcher."""
    return [
        Route(
            endpoint.path,
            Dispatcher(endpoint, settings, session_factory).handle,
            methods=[endpoint.method],
            name=endpoint.name,
        )
        for endpoint in endpoints
    ]
