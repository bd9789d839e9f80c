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
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Sequence

from starlette.applications import Starlette
from starlette.routing import BaseRoute, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from dialer.actors import Actor
from dialer.call_control import FRAME_BYTES, BrowserAudioBridge, CallControl
from dialer.errors import DialerError
from web.socket_session import (
    authenticate_socket,
    close_socket,
    pump_both_ways,
    refuse_call_service_unavailable,
    refuse_for_call_error,
)

logger = logging.getLogger(__name__)

SAMPLE_RATE = 8000

EchoTap = Callable[[bytes], None]


class _Counters:
    def __init__(self) -> None:
        self.frames_in = 0
        self.frames_out = 0
        self.frames_dropped = 0

    def as_json(self) -> dict[str, object]:
        return {
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
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
        counters.frames_in += 1
        sink(frame)


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
    call_control: CallControl | None = getattr(websocket.app.state, "call_control", None)
    if call_control is None:
        await refuse_call_service_unavailable(websocket)
        return
    bridge = await _attach(websocket, call_control, call_id, session.actor)
    if bridge is None:
        return
    counters = _Counters()
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
    far_end_finished = False
    try:
        far_end_finished = await pump_both_ways(
            _read_frames(websocket, bridge.push_operator_frame, counters),
            _forward_far_end(websocket, bridge, counters),
        )
    finally:
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
