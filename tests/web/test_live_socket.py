"""The live events WebSocket against a real uvicorn server: who may connect, order, replay after
a dropped connection, gaps, heartbeats and session expiry."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta

import pytest
from starlette.applications import Starlette
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin

from dialer.live_events import InProcessEventBus
from tests.conftest import People, Person
from tests.web.browser import HttpSession, log_in_over_http, serve
from tests.web.conftest import ManualClock
from web.live import LiveSocketOptions, text_frame

# Guards against a hang only; no assertion depends on how long anything takes.
WAIT = 10.0


Server = Callable[[Starlette], AbstractAsyncContextManager[str]]


def serve_as_dialer_serve(app: Starlette) -> AbstractAsyncContextManager[str]:
    """``app`` under uvicorn with the WebSocket settings of ``dialer serve`` (sans-I/O protocol,
    no compression), where the bus writes events straight onto idle sockets."""
    return serve(app, ws="websockets-sansio", ws_per_message_deflate=False)


@pytest.fixture(params=["uvicorn defaults", "as dialer serve"])
def server(request: pytest.FixtureRequest) -> Server:
    """Both ways the events reach a socket: through the ASGI ``send`` of any server, and
    written directly by the bus under ``dialer serve``'s settings."""
    return serve if request.param == "uvicorn defaults" else serve_as_dialer_serve


def socket_url(base_url: str, path: str) -> str:
    return "ws" + base_url.removeprefix("http") + path


@asynccontextmanager
async def events_socket(
    base_url: str,
    person: Person | None,
    after: int | None = None,
    origin: str | None = None,
    session: HttpSession | None = None,
    frozen: bool = False,
) -> AsyncIterator[ClientConnection]:
    """A tab's events socket: ``person`` logs in first, or the tab shares ``session``.

    A ``frozen`` tab stops reading the socket as soon as one message waits unread, and its
    socket's receive buffer is small: TCP soon pushes back on the server."""
    headers: dict[str, str] = {}
    if session is None and person is not None:
        session = await log_in_over_http(base_url, person.login, person.password)
    if session is not None:
        headers["Cookie"] = session.cookie_header
    path = "/ws/events" if after is None else f"/ws/events?after={after}"
    tcp_socket: socket.socket | None = None
    if frozen:
        tcp_socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp_socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        tcp_socket.setblocking(False)
        port = int(base_url.rsplit(":", 1)[1])
        await asyncio.get_running_loop().sock_connect(tcp_socket, ("127.0.0.1", port))
    async with connect(
        socket_url(base_url, path),
        origin=Origin(origin or base_url),
        additional_headers=headers,
        proxy=None,
        ping_interval=None,
        max_queue=1 if frozen else 16,
        max_size=None,
        sock=tcp_socket,
    ) as websocket:
        yield websocket


async def receive(websocket: ClientConnection) -> dict[str, object]:
    async with asyncio.timeout(WAIT):
        message = json.loads(await websocket.recv())
    assert isinstance(message, dict)
    return message


async def receive_events(websocket: ClientConnection, count: int) -> list[dict[str, object]]:
    events: list[dict[str, object]] = []
    while len(events) < count:
        message = await receive(websocket)
        if message["type"] == "event":
            events.append(message)
    return events


async def messages_until_closed(websocket: ClientConnection) -> list[dict[str, object]]:
    """Every message until the server closes the socket."""
    messages: list[dict[str, object]] = []
    with contextlib.suppress(ConnectionClosed):
        while True:
            messages.append(await receive(websocket))
    return messages


def sequences(events: list[dict[str, object]]) -> list[object]:
    return [event["sequence"] for event in events]


async def publish(app: Starlette, person: Person, count: int, start: int = 1) -> None:
    for number in range(start, start + count):
        await app.state.event_bus.publish(
            [person.user.id], "contact.updated", {"contact_id": number}
        )


async def test_connecting_needs_a_session(app: Starlette, people: People) -> None:
    async with serve(app) as base_url:
        with pytest.raises(InvalidStatus) as refused:
            async with events_socket(base_url, None):
                pass
        assert refused.value.response.status_code == 403

        with pytest.raises(InvalidStatus) as forged:
            async with connect(
                socket_url(base_url, "/ws/events"),
                origin=Origin(base_url),
                additional_headers={"Cookie": "dialer_session=made-up-token"},
                proxy=None,
            ):
                pass
        assert forged.value.response.status_code == 403


async def test_a_page_on_another_origin_cannot_connect(app: Starlette, people: People) -> None:
    async with serve(app) as base_url:
        with pytest.raises(InvalidStatus) as refused:
            async with events_socket(base_url, people.north_operator, origin="http://evil.example"):
                pass
        assert refused.value.response.status_code == 403

        async with events_socket(base_url, people.north_operator) as websocket:
            hello = await receive(websocket)
        assert hello["type"] == "hello"
        assert hello["user_id"] == people.north_operator.user.id


async def test_events_arrive_in_order_and_only_to_their_user(
    app: Starlette, people: People, server: Server
) -> None:
    anna, boris = people.north_operator, people.north_operator_2
    async with (
        server(app) as base_url,
        events_socket(base_url, anna) as anna_socket,
        events_socket(base_url, boris) as boris_socket,
    ):
        assert (await receive(anna_socket))["last_sequence"] == 0
        assert (await receive(boris_socket))["type"] == "hello"
        bus = app.state.event_bus
        await bus.publish([anna.user.id], "call.ringing", {"call_id": 5, "state": "ringing"})
        await bus.publish([boris.user.id], "call.ringing", {"call_id": 6, "state": "ringing"})
        await bus.publish([anna.user.id, boris.user.id], "followup.due", {"contact_id": 9})
        await bus.publish([anna.user.id], "call.answered", {"call_id": 5, "state": "answered"})

        anna_events = await receive_events(anna_socket, 3)
        assert [(event["sequence"], event["kind"]) for event in anna_events] == [
            (1, "call.ringing"),
            (2, "followup.due"),
            (3, "call.answered"),
        ]
        assert anna_events[0]["payload"] == {"call_id": 5, "state": "ringing"}
        boris_events = await receive_events(boris_socket, 2)
        assert [(event["sequence"], event["kind"]) for event in boris_events] == [
            (1, "call.ringing"),
            (2, "followup.due"),
        ]
        assert boris_events[0]["payload"] == {"call_id": 6, "state": "ringing"}


async def test_reconnecting_with_the_last_sequence_replays_exactly_what_was_missed(
    app: Starlette, people: People, server: Server
) -> None:
    anna = people.north_operator
    async with server(app) as base_url:
        async with events_socket(base_url, anna) as websocket:
            await receive(websocket)  # hello
            await publish(app, anna, 5)
            seen = await receive_events(websocket, 2)
            assert sequences(seen) == [1, 2]
            # The connection drops mid-stream: events 3-5 were sent or queued but not read.
        await publish(app, anna, 3, start=6)  # published while nobody listens

        async with events_socket(base_url, anna, after=2) as websocket:
            hello = await receive(websocket)
            assert hello["last_sequence"] == 8
            replayed = await receive_events(websocket, 6)
            assert sequences(replayed) == [3, 4, 5, 6, 7, 8]
            assert [event["payload"] for event in replayed] == [
                {"contact_id": number} for number in range(3, 9)
            ]
            await publish(app, anna, 1, start=9)
            (live,) = await receive_events(websocket, 1)
            assert live["sequence"] == 9


async def test_a_gap_is_announced_when_the_missed_events_are_gone(
    app: Starlette, people: People
) -> None:
    anna = people.north_operator
    app.state.event_bus = InProcessEventBus(history_per_user=3)
    await publish(app, anna, 6)
    async with serve(app) as base_url:
        async with events_socket(base_url, anna, after=1) as websocket:
            assert (await receive(websocket))["type"] == "hello"
            gap = await receive(websocket)
            assert gap == {"type": "gap", "requested_after": 1, "resume_from": 6}
            await publish(app, anna, 1, start=7)
            (event,) = await receive_events(websocket, 1)
            assert event["sequence"] == 7

        # Numbers this server never issued (it restarted): reload as well.
        async with events_socket(base_url, anna, after=500) as websocket:
            await receive(websocket)
            assert (await receive(websocket))["type"] == "gap"

        with pytest.raises(InvalidStatus):
            async with events_socket(base_url, anna, after=-1):
                pass


async def test_heartbeats_are_answered_and_an_expired_session_closes_the_socket(
    app: Starlette, people: People, clock: ManualClock
) -> None:
    app.state.live_socket_options = LiveSocketOptions(heartbeat_seconds=0.05)
    async with (
        serve(app) as base_url,
        events_socket(base_url, people.north_operator) as websocket,
    ):
        await receive(websocket)
        for _ in range(5):  # more pings than the allowance: answered ones keep it open
            ping = await receive(websocket)
            assert ping["type"] == "ping"
            await websocket.send(json.dumps({"type": "pong"}))
        clock.advance(timedelta(minutes=31))  # past the 30-minute idle limit
        remaining = await messages_until_closed(websocket)
        assert [message for message in remaining if message["type"] != "ping"] == [
            {"type": "session_expired"}
        ]
        assert websocket.close_code == 4401


async def test_unanswered_heartbeats_close_the_socket(app: Starlette, people: People) -> None:
    app.state.live_socket_options = LiveSocketOptions(
        heartbeat_seconds=0.05, unanswered_pings_allowed=2
    )
    async with (
        serve(app) as base_url,
        events_socket(base_url, people.north_operator) as websocket,
    ):
        messages = await messages_until_closed(websocket)
        assert [message["type"] for message in messages] == ["hello", "ping", "ping"]
        assert websocket.close_code == 4408


async def test_every_tab_of_an_expired_session_is_closed(
    app: Starlette, people: People, clock: ManualClock
) -> None:
    app.state.live_socket_options = LiveSocketOptions(heartbeat_seconds=0.05)
    anna = people.north_operator
    async with serve(app) as base_url:
        session = await log_in_over_http(base_url, anna.login, anna.password)
        async with (
            events_socket(base_url, None, session=session) as first_tab,
            events_socket(base_url, None, session=session) as second_tab,
        ):
            for tab in (first_tab, second_tab):
                assert (await receive(tab))["type"] == "hello"
            for _ in range(3):  # both tabs are checked and pinged while the session lives
                for tab in (first_tab, second_tab):
                    assert (await receive(tab))["type"] == "ping"
                    await tab.send(json.dumps({"type": "pong"}))
            clock.advance(timedelta(minutes=31))  # past the 30-minute idle limit
            for tab in (first_tab, second_tab):
                remaining = await messages_until_closed(tab)
                assert [message for message in remaining if message["type"] != "ping"] == [
                    {"type": "session_expired"}
                ]
                assert tab.close_code == 4401


async def test_a_tab_that_stops_reading_does_not_hold_up_the_others(
    app: Starlette, people: People, server: Server
) -> None:
    """One tab stops reading (a frozen page): TCP pushes back on the server, its queue fills
    up and it is told to reconnect, while the user's other tab gets every event, in order."""
    anna = people.north_operator
    app.state.event_bus = InProcessEventBus(queue_per_subscriber=10)
    # Large events that do not compress (permessage-deflate) fill the socket buffers quickly.
    bulk = secrets.token_urlsafe(192 * 1024)
    count = 120
    async with (
        server(app) as base_url,
        events_socket(base_url, anna, frozen=True) as frozen_tab,
        events_socket(base_url, anna) as reading_tab,
    ):
        assert (await receive(frozen_tab))["type"] == "hello"
        assert (await receive(reading_tab))["type"] == "hello"
        delivered: list[dict[str, object]] = []
        for number in range(1, count + 1):
            await app.state.event_bus.publish(
                [anna.user.id], "contact.updated", {"contact_id": number, "note": bulk}
            )
            delivered.extend(await receive_events(reading_tab, 1))
        assert sequences(delivered) == list(range(1, count + 1))

        # The frozen tab reads again: a prefix of the stream, in order, then "reconnect".
        late = await messages_until_closed(frozen_tab)
        late_events = [message for message in late if message["type"] == "event"]
        assert sequences(late_events) == list(range(1, len(late_events) + 1))
        assert len(late_events) < count
        assert frozen_tab.close_code == 4429

        # Reconnecting with the last number it saw brings exactly the rest.
        async with events_socket(base_url, anna, after=len(late_events)) as reconnected:
            assert (await receive(reconnected))["type"] == "hello"
            rest = await receive_events(reconnected, count - len(late_events))
        assert sequences(rest) == list(range(len(late_events) + 1, count + 1))


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 200_000])
def test_a_directly_written_frame_reads_as_one_text_message(size: int) -> None:
    """What the bus writes onto a socket is a text message any WebSocket client reads."""
    from websockets.frames import Frame, Opcode
    from websockets.protocol import Protocol, Side, State

    client = Protocol(Side.CLIENT, state=State.OPEN, max_size=None)  # after the handshake
    payload = ("é" * (size // 2) + "x" * (size % 2)).encode()  # ``size`` bytes of UTF-8
    assert len(payload) == size
    client.receive_data(text_frame(payload) + text_frame(b'{"type": "ping"}'))
    frames = [item for item in client.events_received() if isinstance(item, Frame)]
    assert [(frame.opcode, frame.fin, bytes(frame.data)) for frame in frames] == [
        (Opcode.TEXT, True, payload),
        (Opcode.TEXT, True, b'{"type": "ping"}'),
    ]
