"""Who is on the other end of a WebSocket: the checks every socket of the UI runs first.

A WebSocket handshake is a GET that a page on any site can start, and the browser attaches our
session cookie to it. So before accepting, a socket:

1. checks ``Origin`` against this server's own origin (or one listed in the settings): a
   browser always sends it on a WebSocket handshake, so a foreign page is refused here
   (a client that sends no Origin at all is not a browser and cannot ride on a victim's cookie);
2. resumes the server-side session from the cookie (``dialer.sessions.resume_session``, which
   enforces lifetimes and allow-lists exactly as for HTTP requests).

A refused handshake is denied (the client sees HTTP 403) and never accepted. While a socket is
open, ``session_is_live`` re-reads the session without refreshing its idle timer: an open socket
alone does not keep a session alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from dialer.actors import Actor
from dialer.errors import (
    Conflict,
    DialerError,
    NotFound,
    PermissionDenied,
    SessionExpired,
    SourceNotAllowed,
)
from dialer.models import User, WebSession
from dialer.sessions import hash_token, resume_session_reading_first
from dialer.storage import begin_read_only
from web.client_address import arrived_over_https, client_address
from web.csrf import check_origin, own_origin
from web.errors import Forbidden
from web.settings import WebSettings

logger = logging.getLogger(__name__)

POLICY_VIOLATION = 1008
"""Close code used to deny a handshake before it is accepted (seen by clients as HTTP 403)."""

SESSION_ENDED = 4401
"""Close code of an open socket whose web session expired or ended: log in again."""

# Close codes of the sockets that join a call (audio, monitoring), after an ``error`` message.
CALL_SERVICE_UNAVAILABLE = 4503
CALL_NOT_FOUND = 4404
CALL_REFUSED = 4403
CALL_NOT_LIVE = 4409


@dataclass(frozen=True)
class SocketSession:
    """The signed-in user of an accepted socket."""

    actor: Actor
    login: str
    session_token: str


def socket_settings(websocket: WebSocket) -> WebSettings:
    settings = websocket.app.state.settings
    assert isinstance(settings, WebSettings)
    return settings


def _session_factory(websocket: WebSocket) -> async_sessionmaker[AsyncSession]:
    factory: async_sessionmaker[AsyncSession] = websocket.app.state.session_factory
    return factory


def origin_allowed(websocket: WebSocket) -> bool:
    """Whether the handshake's ``Origin`` is this server (or an allowed origin)."""
    settings = socket_settings(websocket)
    peer = websocket.client.host if websocket.client else None
    over_https = arrived_over_https(
        websocket.url.scheme,
        peer,
        websocket.headers.get("x-forwarded-proto"),
        settings.trusted_proxies,
    )
    expected = own_origin("https" if over_https else "http", websocket.headers.get("host"))
    try:
        check_origin(websocket.headers.get("origin"), expected, settings.allowed_origins)
    except Forbidden:
        return False
    return True


async def authenticate_socket(websocket: WebSocket) -> SocketSession | None:
    """The socket's user, or None after denying the handshake (foreign Origin, no session)."""
    settings = socket_settings(websocket)
    if not origin_allowed(websocket):
        logger.info("socket %s refused: foreign origin", websocket.url.path)
        await websocket.close(code=POLICY_VIOLATION)
        return None
    token = websocket.cookies.get(settings.session_cookie_name)
    if not token:
        await websocket.close(code=POLICY_VIOLATION)
        return None
    peer = websocket.client.host if websocket.client else None
    source_ip = client_address(
        peer, websocket.headers.get("x-forwarded-for"), settings.trusted_proxies
    )
    async with _session_factory(websocket)() as database:
        try:
            user, _web_session = await resume_session_reading_first(
                database, token, source_ip, settings.clock(), settings.core
            )
        except (SessionExpired, SourceNotAllowed):
            await database.commit()  # keeps the session's end (and the audit row)
            await websocket.close(code=POLICY_VIOLATION)
            return None
        session = SocketSession(Actor.for_user(user, source_ip), user.login, token)
        await database.commit()
    return session


def _expired(web_session: WebSession, user: User | None, settings: WebSettings) -> bool:
    now: datetime = settings.clock()
    idle_limit = timedelta(minutes=settings.core.session_idle_minutes)
    return (
        web_session.ended_at is not None
        or now >= web_session.expires_at
        or now - web_session.last_seen_at >= idle_limit
        or user is None
        or user.disabled
    )


async def session_is_live(websocket: WebSocket, session: SocketSession) -> bool:
    """Whether the socket's web session is still usable (read only: no idle-timer refresh)."""
    settings = socket_settings(websocket)
    async with _session_factory(websocket)() as database:
        await begin_read_only(database)
        web_session = (
            await database.scalars(
                select(WebSession).where(WebSession.token_hash == hash_token(session.session_token))
            )
        ).one_or_none()
        if web_session is None:
            return False
        user = await database.get(User, web_session.user_id)
        return not _expired(web_session, user, settings)


async def close_socket(websocket: WebSocket, code: int, reason: str) -> None:
    """Close the socket if both sides still have it open; a peer already gone is fine."""
    if (
        websocket.application_state is WebSocketState.CONNECTED
        and websocket.client_state is WebSocketState.CONNECTED
    ):
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
            await websocket.close(code=code, reason=reason)


async def refuse_socket(websocket: WebSocket, close_code: int, code: str, message: str) -> None:
    """Say in words why (a JSON ``error`` message), then close with ``close_code``."""
    await websocket.send_text(json.dumps({"type": "error", "code": code, "message": message}))
    await close_socket(websocket, close_code, message[:120])


async def refuse_call_service_unavailable(websocket: WebSocket) -> None:
    """Refuse a socket that needs the call service on a server that does not run it."""
    await refuse_socket(
        websocket,
        CALL_SERVICE_UNAVAILABLE,
        "call_service_unavailable",
        "the call service is not running on this server",
    )


async def refuse_for_call_error(websocket: WebSocket, call_id: int, error: DialerError) -> None:
    """Refuse a socket that could not join call ``call_id``, saying why in words."""
    if isinstance(error, NotFound):
        await refuse_socket(
            websocket, CALL_NOT_FOUND, "call_not_found", f"no call {call_id} for you"
        )
    elif isinstance(error, PermissionDenied):
        message = str(error) or "not allowed to join this call"
        await refuse_socket(websocket, CALL_REFUSED, "call_refused", message)
    elif isinstance(error, Conflict):
        message = str(error) or "call has ended"
        await refuse_socket(websocket, CALL_NOT_LIVE, "call_not_live", message)
    else:
        await refuse_socket(websocket, CALL_NOT_LIVE, "call_failed", str(error) or "call failed")


async def pump_both_ways(
    from_client: Coroutine[object, object, None], to_client: Coroutine[object, object, None]
) -> bool:
    """Run the two halves of an audio socket until either ends; cancel the other.

    Returns True when ``to_client`` finished by itself (the call is over), False when the
    client went away first. A closed socket ends quietly; any other error is raised.
    """
    reader = asyncio.ensure_future(from_client)
    forwarder = asyncio.ensure_future(to_client)
    try:
        done, _pending = await asyncio.wait(
            (reader, forwarder), return_when=asyncio.FIRST_COMPLETED
        )
        forwarder_finished = forwarder in done and forwarder.exception() is None
        for task in done:
            error = task.exception()
            if error is not None and not isinstance(error, WebSocketDisconnect | OSError):
                raise error
    finally:
        for task in (reader, forwarder):
            task.cancel()
        await asyncio.gather(reader, forwarder, return_exceptions=True)
    return forwarder_finished
