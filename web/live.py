"""The live events WebSocket ``/ws/events?after=N``: one per browser tab.

The socket streams the signed-in user's ``dialer.live_events`` events (call transitions, contact
updates, follow-ups due, operator state) from the ``EventBus`` in ``app.state.event_bus``
(``routes`` puts an ``InProcessEventBus`` there when nothing else did).

Messages from the server, all JSON text::

    {"type": "hello", "user_id": 7, "last_sequence": 41, "heartbeat_seconds": 15,
     "current_call": {...LiveCall...} | null}
    {"type": "event", "sequence": 42, "kind": "call.ringing", "payload": {...},
     "published_at": "..."}
    {"type": "gap", "requested_after": 12, "resume_from": 41}
    {"type": "ping", "at": "..."}                       every heartbeat; answer {"type": "pong"}
    {"type": "session_expired"}                         then close code 4401

``after=N`` asks for every event after sequence ``N`` first (a reconnecting tab sends the last
number it saw) and then the live stream, in order and without duplicates. When those events are
no longer held (or the server restarted), a ``gap`` message says so: the tab reloads what it
shows and continues after ``resume_from``. Without ``after`` only new events are sent.

Each event is encoded once per user and the same text goes to every socket (tab) of that user.
Under uvicorn's sans-I/O WebSocket protocol without compression (``dialer serve``), the bus
writes an event's frame straight onto a socket's transport while it publishes, as long as that
socket is idle and its transport takes more (see ``_frame_writer``): one write per socket, no
task to wake. Otherwise (the transport pushes back, events are already queued, another server)
events wait in the socket's bounded queue and its own task sends them. A socket that stops
reading first fills its transport's buffer (up to the transport's high-water mark), then its
queue (``InProcessEventBus(queue_per_subscriber=...)``), and is then closed with 4429, without
holding up the others. Heartbeats start at a random phase per socket, and the session check
they make is shared by the sockets of one session (see ``SessionChecks``).

Close codes: 4401 the session expired or ended (log in again); 4408 heartbeats went unanswered;
4429 the tab fell too far behind (reconnect with ``after``). A handshake with a foreign
``Origin``, without a session or with a malformed ``after`` is denied (HTTP 403).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import random
import struct
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.applications import Starlette
from starlette.routing import BaseRoute, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from dialer.live_events import EventBus, InProcessEventBus, LiveEvent, Subscription
from web.socket_session import (
    POLICY_VIOLATION,
    SESSION_ENDED,
    SocketSession,
    authenticate_socket,
    session_is_live,
)

logger = logging.getLogger(__name__)

HEARTBEAT_TIMEOUT = 4408
FELL_BEHIND = 4429

SERVER_SEND_KEY = "dialer.live.server_send"
"""Scope key of the server's own ASGI ``send`` of a WebSocket (``KeepServerSend``)."""


@dataclass(frozen=True)
class LiveSocketOptions:
    """Timing of the events socket; tests put a faster one in ``app.state.live_socket_options``."""

    heartbeat_seconds: float = 15.0
    # Close the socket when this many pings in a row went unanswered.
    unanswered_pings_allowed: int = 3


class SessionChecks:
    """Whether web sessions are still live, shared by every socket (tab) of a session.

    Each socket re-checks its session every heartbeat; a user with ten tabs has ten sockets on
    one session, so a result younger than ``max_age_seconds`` is reused, and sockets asking
    while a check runs (or waits to run) wait for that one. Checks run one at a time: on SQLite
    every transaction takes the write lock first, so a burst of concurrent checks would queue
    inside the database, hold up the writes of calls, and time out when the server is busy.
    One per application (``app.state``).
    """

    def __init__(self) -> None:
        self._checks: dict[str, tuple[float, asyncio.Future[bool]]] = {}
        self._one_at_a_time = asyncio.Lock()

    async def is_live(
        self, websocket: WebSocket, session: SocketSession, max_age_seconds: float
    ) -> bool:
        loop = asyncio.get_running_loop()
        now = loop.time()
        known = self._checks.get(session.session_token)
        if known is not None:
            started_at, check = known
            if not check.done():
                return await asyncio.shield(check)
            if (
                now - started_at < max_age_seconds
                and not check.cancelled()
                and check.exception() is None
            ):
                return check.result()
        self._forget_older_than(now - max_age_seconds)
        # A task of its own: a socket closing mid-check does not cancel it for the others.
        check = loop.create_task(self._check(websocket, session))
        check.add_done_callback(_retrieve_outcome)
        self._checks[session.session_token] = (now, check)
        return await asyncio.shield(check)

    async def _check(self, websocket: WebSocket, session: SocketSession) -> bool:
        async with self._one_at_a_time:
            return await session_is_live(websocket, session)

    def _forget_older_than(self, moment: float) -> None:
        stale = [
            token
            for token, (started_at, check) in self._checks.items()
            if check.done() and started_at < moment
        ]
        for token in stale:
            del self._checks[token]


def _retrieve_outcome(check: asyncio.Future[bool]) -> None:
    """Marks a failed check's error as seen: every socket waiting on it got it already."""
    if not check.cancelled():
        check.exception()


def json_text(message: object) -> str:
    return json.dumps(message, default=_json_default, ensure_ascii=False)


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


def parse_after(raw: str | None) -> int | bool | None:
    """``after`` as an int, None when absent, False when malformed."""
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 18:
        return False
    return int(raw)


def current_call_json(websocket: WebSocket, user_id: int) -> object:
    """The user's call in progress as ``LiveCall`` JSON, if a call service is running."""
    call_control = getattr(websocket.app.state, "call_control", None)
    if call_control is None:
        return None
    live_call = call_control.current_call(user_id)
    return None if live_call is None else dataclasses.asdict(live_call)


class KeepServerSend:
    """ASGI middleware: notes each WebSocket's ``send`` as the server gave it in the scope.

    Starlette wraps ``send`` on the way in; the events socket needs the server's own to tell
    whether it may write frames directly (``_frame_writer``). Added by ``routes``; the outermost
    layer of the application's own middleware, under Starlette's error middleware, which passes
    WebSockets through untouched.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Hands on the inner application's awaitable: no extra coroutine per HTTP request.
        if scope["type"] == "websocket":
            scope[SERVER_SEND_KEY] = send
        return self.app(scope, receive, send)


def text_frame(payload: bytes) -> bytes:
    """An unmasked, final WebSocket text frame (RFC 6455 section 5.2), as a server sends it."""
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x81, length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, length)
    else:
        header = struct.pack("!BBQ", 0x81, 127, length)
    return header + payload


@dataclass(frozen=True, slots=True)
class DirectConnection:
    """An accepted socket's uvicorn sans-I/O protocol and transport, to write frames onto."""

    protocol: Any
    transport: asyncio.Transport
    writable: asyncio.Event

    def can_write(self) -> bool:
        """Whether uvicorn's own ``send`` would write now: not when it would refuse (close
        sent, peer gone, transport closing: uvicorn closes it as soon as the peer's close frame
        or a protocol error arrives) or wait (``writable`` cleared by back-pressure)."""
        protocol = self.protocol
        return not (
            protocol.close_sent
            or protocol.disconnected
            or not self.writable.is_set()
            or self.transport.is_closing()
        )


def direct_connection(websocket: WebSocket, purpose: str) -> DirectConnection | None:
    """The connection under an accepted socket when frames may be written straight onto it.

    Only under uvicorn's sans-I/O protocol (``ws="websockets-sansio"``, as ``dialer serve``)
    with no extension negotiated: a frame built here is then the same bytes the websockets
    library would produce, and a write after ``can_write`` is what uvicorn's own ``send`` does.
    None when not applicable; ``purpose`` names the socket in the warning logged when uvicorn
    has renamed something used here (that socket then keeps the ordinary path).
    """
    try:
        from uvicorn.protocols.websockets.websockets_sansio_impl import (
            WebSocketsSansIOProtocol,
        )
    except ImportError:  # pragma: no cover (uvicorn is a dependency)
        return None
    protocol: Any = getattr(websocket.scope.get(SERVER_SEND_KEY), "__self__", None)
    if not isinstance(protocol, WebSocketsSansIOProtocol):
        return None
    try:
        # Everything ``can_write`` reads, read once here.
        if protocol.conn.extensions or not protocol.handshake_complete:
            return None
        connection = DirectConnection(protocol, protocol.transport, protocol.writable)
        _ = (protocol.close_sent, protocol.disconnected, connection.writable.is_set)
        _ = connection.transport.is_closing
    except AttributeError:
        logger.warning("%s: unknown uvicorn protocol, frames take the ordinary path", purpose)
        return None
    return connection


def _frame_writer(websocket: WebSocket) -> Callable[[bytes], bool] | None:
    """Writes a text frame straight onto the socket's transport, if the server allows it
    (see ``direct_connection``). The writer returns False, writing nothing, whenever uvicorn's
    ``send`` would wait or refuse: the event then takes the ordinary, queued path."""
    connection = direct_connection(websocket, "events socket")
    if connection is None:
        return None
    can_write = connection.can_write
    transport = connection.transport

    def write(frame: bytes) -> bool:
        if not can_write():
            return False
        transport.write(frame)
        return True

    return write


class _EventsConnection:
    """One accepted events socket: three loops share it until the first one finishes."""

    def __init__(
        self,
        websocket: WebSocket,
        session: SocketSession,
        subscription: Subscription,
        options: LiveSocketOptions,
    ) -> None:
        self.websocket = websocket
        self.session = session
        self.subscription = subscription
        self.options = options
        self.unanswered_pings = 0
        self._send_lock = asyncio.Lock()
        self._write_frame: Callable[[bytes], bool] | None = None

    def start_direct_delivery(self) -> None:
        """From now on (hello and gap sent) the bus may write events without the queue."""
        self._write_frame = _frame_writer(self.websocket)
        if self._write_frame is not None:
            self.subscription.deliver_directly(self.write_directly)

    def write_directly(self, event: LiveEvent) -> bool:
        """Write ``event`` now, called by the bus while it publishes; False: queue it instead.

        Not while another message is being sent (a ping waiting for the transport)."""
        if self._write_frame is None or self._send_lock.locked():
            return False
        return self._write_frame(text_frame(event.message_bytes))

    async def send(self, message: object) -> None:
        async with self._send_lock:
            await self.websocket.send_text(json_text(message))

    async def send_events(self, events: Sequence[LiveEvent]) -> None:
        async with self._send_lock:
            for event in events:
                # Encoded once per user (``message_text``), shared by all the user's sockets.
                await self.websocket.send_text(event.message_text)

    async def close(self, code: int, reason: str) -> None:
        async with self._send_lock:
            websocket = self.websocket
            if (
                websocket.application_state is WebSocketState.CONNECTED
                and websocket.client_state is WebSocketState.CONNECTED
            ):
                with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
                    await websocket.close(code=code, reason=reason)

    async def forward_events(self) -> None:
        while events := await self.subscription.next_events():
            await self.send_events(events)
        # The bus closed the subscription: this tab could not keep up.
        await self.close(FELL_BEHIND, "too far behind; reconnect with after=N")

    async def read_replies(self) -> None:
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None or len(text) > 1000:
                continue
            try:
                reply = json.loads(text)
            except ValueError:
                continue
            if isinstance(reply, dict) and reply.get("type") == "pong":
                self.unanswered_pings = 0

    async def beat(self) -> None:
        period = self.options.heartbeat_seconds
        # Tabs that (re)connect together do not beat together: the first beat comes after
        # half to one period, the next ones one period apart.
        await asyncio.sleep(period * random.uniform(0.5, 1.0))
        while True:
            if not await self.session_still_live():
                await self.send({"type": "session_expired"})
                await self.close(SESSION_ENDED, "session expired")
                return
            if self.unanswered_pings >= self.options.unanswered_pings_allowed:
                await self.close(HEARTBEAT_TIMEOUT, "heartbeat unanswered")
                return
            self.unanswered_pings += 1
            await self.send({"type": "ping", "at": datetime.now(UTC).isoformat()})
            await asyncio.sleep(period)

    async def session_still_live(self) -> bool:
        """The session check of a heartbeat; a database that cannot answer now counts as yes
        (logged): the next heartbeat asks again, and a busy database does not close sockets."""
        checks: SessionChecks = self.websocket.app.state.live_session_checks
        try:
            return await checks.is_live(
                self.websocket, self.session, max_age_seconds=0.9 * self.options.heartbeat_seconds
            )
        except (OperationalError, InterfaceError) as error:
            logger.warning("events socket: session check failed, asking again next time: %s", error)
            return True


async def _first_to_finish(loops: Sequence[Callable[[], Awaitable[None]]]) -> None:
    """Run the loops until one returns (or the peer goes away), then cancel the rest."""

    async def run(loop: Callable[[], Awaitable[None]]) -> None:
        await loop()

    tasks = [asyncio.ensure_future(run(loop)) for loop in loops]
    try:
        done, _pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            error = task.exception()
            if error is not None and not isinstance(error, WebSocketDisconnect | OSError):
                raise error
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def events_socket(websocket: WebSocket) -> None:
    session = await authenticate_socket(websocket)
    if session is None:
        return
    after = parse_after(websocket.query_params.get("after"))
    if after is False:
        await websocket.close(code=POLICY_VIOLATION)
        return
    assert after is None or isinstance(after, int)
    state = websocket.app.state
    bus: EventBus = state.event_bus
    options: LiveSocketOptions = getattr(state, "live_socket_options", LiveSocketOptions())
    user_id = session.actor.user_id
    # Subscribe and read the last number with no await in between: nothing slips past.
    subscription = bus.subscribe(user_id, after)
    last_sequence = bus.last_sequence(user_id)
    connection = _EventsConnection(websocket, session, subscription, options)
    try:
        await websocket.accept()
        await connection.send(
            {
                "type": "hello",
                "user_id": user_id,
                "last_sequence": last_sequence,
                "heartbeat_seconds": options.heartbeat_seconds,
                "current_call": current_call_json(websocket, user_id),
            }
        )
        gap = subscription.gap
        if gap is not None:
            await connection.send(
                {
                    "type": "gap",
                    "requested_after": gap.requested_after,
                    "resume_from": gap.resume_from,
                }
            )
        connection.start_direct_delivery()
        await _first_to_finish(
            (connection.forward_events, connection.read_replies, connection.beat)
        )
    except WebSocketDisconnect:
        pass
    finally:
        subscription.deliver_directly(None)
        subscription.close()
    await connection.close(1000, "")


def routes(app: Starlette) -> Sequence[BaseRoute]:
    """The events socket (listed in ``web.app.ROUTE_MODULES``); makes the bus if missing."""
    if getattr(app.state, "event_bus", None) is None:
        app.state.event_bus = InProcessEventBus()
    app.state.live_session_checks = SessionChecks()
    app.add_middleware(KeepServerSend)
    return [WebSocketRoute("/ws/events", events_socket, name="live_events")]
