"""The browser audio leg over WebSockets: ``/ws/calls/{call_id}/audio`` and ``/ws/echo``.

Audio is 20 ms frames of 8 kHz 16-bit little-endian mono PCM, one binary message per frame of
exactly ``FRAME_BYTES`` (320) bytes, both ways; other sizes are dropped and counted. Text
messages are JSON about the state of the leg::

    {"type": "attached", "call_id": 12, "frame_bytes": 320, "sample_rate": 8000}
    {"type": "ended", "frames_in": 1500, "frames_out": 1498, "frames_dropped": 0}
    {"type": "error", "code": "call_service_unavailable" | "call_not_found" | ..., "message": ...}

``/ws/calls/{call_id}/audio`` attaches to the call through ``app.state.call_control`` (a
``dialer.call_control.CallControl``): operator frames go to ``push_operator_frame``, the far end's
frames come back from ``far_end_frames``. When the far end's stream ends (the call ended) the
socket closes with 1000; when the socket goes away first, the bridge is detached (the call service
decides how long the call survives without its browser). Without a call service the socket is
accepted and closed at once with code 4503 and the reason in words.

``/ws/echo`` sends every frame straight back, for the audio self-test page. Each frame it receives
is also handed to the callables in ``app.state.echo_taps`` (a list, empty by default; tests append
to it to see what reached the server).

Both sockets run the checks of ``web.socket_session`` (Origin, session cookie) before accepting.

Under ``dialer serve`` (uvicorn's sans-I/O protocol, no compression) the call's audio frames skip
the ASGI round trip (:mod:`web.direct_audio`): the browser's frames reach ``push_operator_frame``
as they are read, and, with a bridge that takes a direct writer (``deliver_directly``, as
``dialer.telephony.bridge.CallAudioBridge``), the far end's frames are written onto the socket as
they arrive while nothing is queued; otherwise they take ``far_end_frames`` as above.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from starlette.applications import Starlette
from starlette.routing import BaseRoute, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from dialer.actors import Actor
from dialer.call_control import FRAME_BYTES, BrowserAudioBridge, CallControl
from dialer.errors import DialerError
from web.direct_audio import direct_audio
from web.socket_session import (
    authenticate_socket,
    close_socket,
    pump_both_ways,
    refuse_call_service_unavailable,
    refuse_for_call_error,
)

logger = logging.getLogger(__name__)

SAMPLE_RATE = 8000
EARLY_FRAMES = 10  # 200 ms sent before the socket is attached to its call

EchoTap = Callable[[bytes], None]


@runtime_checkable
class DirectDelivery(Protocol):
    """A bridge that can hand far-end frames to a writer as they arrive (see the docstring),
    and counts the frames the writer took."""

    frames_written_directly: int

    def deliver_directly(self, write: Callable[[bytes], bool] | None) -> None: ...


class _Counters:
    def __init__(self) -> None:
        self.frames_in = 0
        self.frames_out = 0  # sent the ordinary way; the bridge counts those written directly
        self.frames_dropped = 0
        self.direct: DirectDelivery | None = None

    def as_json(self) -> dict[str, object]:
        direct = self.direct
        return {
            "frames_in": self.frames_in,
            "frames_out": self.frames_out + (direct.frames_written_directly if direct else 0),
            "frames_dropped": self.frames_dropped,
        }


async def _read_frames(
    websocket: WebSocket, sink: Callable[[bytes], None], counters: _Counters
) -> None:
    """Hand every well-sized binary message to ``sink`` until the browser goes away."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        frame = message.get("bytes")
        if frame is None:
            continue  # text: nothing is expected from the browser yet
        if len(frame) != FRAME_BYTES:
            counters.frames_dropped += 1
            continue
        sink(frame)


def _deliver_directly(
    bridge: BrowserAudioBridge, write: Callable[[bytes], bool] | None, counters: _Counters
) -> None:
    """Let a bridge that can write the far end's frames straight onto the socket do so."""
    if write is None or not isinstance(bridge, DirectDelivery):
        return
    counters.direct = bridge  # no wrapper on the way: the bridge counts what ``write`` took
    bridge.deliver_directly(write)


async def _send(websocket: WebSocket, message: bytes | str) -> None:
    """Send one message; a socket that is closing counts as gone (``WebSocketDisconnect``).

    When the browser's close frame arrives, the server answers it at once and refuses any
    later send with a ``RuntimeError``, possibly before the reader has seen the disconnect.
    """
    try:
        if isinstance(message, bytes):
            await websocket.send_bytes(message)
        else:
            await websocket.send_text(message)
    except RuntimeError as error:
        raise WebSocketDisconnect(code=1006, reason=str(error)) from error


async def _forward_far_end(
    websocket: WebSocket, bridge: BrowserAudioBridge, counters: _Counters
) -> None:
    async for frame in bridge.far_end_frames():
        await _send(websocket, frame)
        counters.frames_out += 1
    await _send(websocket, json.dumps({"type": "ended", **counters.as_json()}))


async def _attach(
    websocket: WebSocket, call_control: CallControl, call_id: int, actor: Actor
) -> BrowserAudioBridge | None:
    try:
        return await call_control.attach_browser_audio(actor, call_id)
    except DialerError as error:
        await refuse_for_call_error(websocket, call_id, error)
    return None


async def call_audio_socket(websocket: WebSocket) -> None:
    session = await authenticate_socket(websocket)
    if session is None:
        return
    call_id = int(websocket.path_params["call_id"])
    await websocket.accept()
    counters = _Counters()
    # Frames that arrive before the call is attached wait here (as they would in the server's
    # queue), the newest ``EARLY_FRAMES`` of them, and go to the bridge first, in order.
    early: collections.deque[bytes] = collections.deque(maxlen=EARLY_FRAMES)
    attached: list[BrowserAudioBridge] = []

    def to_bridge(frame: bytes) -> None:
        if attached:
            counters.frames_in += 1
            attached[0].push_operator_frame(frame)
        else:
            early.append(frame)

    write = direct_audio(websocket, FRAME_BYTES, to_bridge)
    call_control: CallControl | None = getattr(websocket.app.state, "call_control", None)
    if call_control is None:
        await refuse_call_service_unavailable(websocket)
        return
    bridge = await _attach(websocket, call_control, call_id, session.actor)
    if bridge is None:
        return
    attached.append(bridge)
    for frame in early:
        to_bridge(frame)
    early.clear()
    await websocket.send_text(
        json.dumps(
            {
                "type": "attached",
                "call_id": call_id,
                "frame_bytes": FRAME_BYTES,
                "sample_rate": SAMPLE_RATE,
            }
        )
    )
    _deliver_directly(bridge, write, counters)
    far_end_finished = False
    try:
        far_end_finished = await pump_both_ways(
            _read_frames(websocket, to_bridge, counters),
            _forward_far_end(websocket, bridge, counters),
        )
    finally:
        if isinstance(bridge, DirectDelivery):
            bridge.deliver_directly(None)
        if not far_end_finished:
            bridge.detach()
    logger.info("audio of call %s: %s", call_id, counters.as_json())
    await close_socket(websocket, 1000, "call ended" if far_end_finished else "")


async def echo_socket(websocket: WebSocket) -> None:
    session = await authenticate_socket(websocket)
    if session is None:
        return
    await websocket.accept()
    await websocket.send_text(
        json.dumps(
            {"type": "attached", "echo": True, "frame_bytes": FRAME_BYTES, "sample_rate": 8000}
        )
    )
    taps: list[EchoTap] = getattr(websocket.app.state, "echo_taps", [])
    counters = _Counters()
    with contextlib.suppress(WebSocketDisconnect, OSError):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            frame = message.get("bytes")
            if frame is None:
                continue
            if len(frame) != FRAME_BYTES:
                counters.frames_dropped += 1
                continue
            counters.frames_in += 1
            for tap in taps:
                tap(frame)
            await _send(websocket, frame)
            counters.frames_out += 1
    logger.info("echo for %s: %s", session.login, counters.as_json())
    await close_socket(websocket, 1000, "")


def routes(app: Starlette) -> Sequence[BaseRoute]:
    """The audio sockets (listed in ``web.app.ROUTE_MODULES``)."""
    if getattr(app.state, "echo_taps", None) is None:
        app.state.echo_taps = []
    return [
        WebSocketRoute("/ws/calls/{call_id:int}/audio", call_audio_socket, name="call_audio"),
        WebSocketRoute("/ws/echo", echo_socket, name="audio_echo"),
    ]
