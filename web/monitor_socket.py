"""A supervisor on a call: ``/ws/calls/{call_id}/monitor?mode=listen|whisper|barge[&monitor=ID]``.

The server sends the call's mix (the operator and the far end, see
``dialer.telephony.monitor_hub``) as binary messages of one 20 ms frame each (320 bytes of
8 kHz 16-bit little-endian mono PCM), and takes the supervisor's microphone the same way; the
microphone is heard by the operator only in ``whisper`` mode and by everyone in ``barge`` mode
(ignored while listening). Text messages are JSON::

    server: {"type": "monitoring", "call_id": 12, "monitor_id": "...", "mode": "listen",
             "frame_bytes": 320, "sample_rate": 8000}
    client: {"type": "mode", "mode": "whisper"}      switch (audited as monitor.whisper)
    server: {"type": "mode", "mode": "whisper"}      the switch took effect
    server: {"type": "ended"}                        the call is over (then close 1000)
    server: {"type": "error", "code": "call_not_found" | "call_not_live" | ..., "message": ...}

``monitor=ID`` claims a monitor granted by ``POST /api/calls/{id}/monitor`` (already audited);
without it the socket joins the call itself and audits ``monitor.<mode>``.

The handshake runs the checks of ``web.socket_session`` (Origin, session cookie) and is denied
(HTTP 403) for operators and for an unknown ``mode``. A call the supervisor may not see closes
with 4404, one not in progress with 4409, no call service with 4503.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.routing import BaseRoute, WebSocketRoute
from starlette.websockets import WebSocket

from dialer.actors import Actor
from dialer.call_control import FRAME_BYTES
from dialer.errors import DialerError
from dialer.floor.monitoring import MonitorDesk, change_monitor_mode, start_monitoring
from dialer.telephony.monitor_hub import CallMonitor, MonitorMode, is_monitor_mode
from web.api.floor import monitor_desk_of
from web.socket_session import (
    POLICY_VIOLATION,
    authenticate_socket,
    close_socket,
    pump_both_ways,
    refuse_call_service_unavailable,
    refuse_for_call_error,
)

logger = logging.getLogger(__name__)

SAMPLE_RATE = 8000
MAX_TEXT_MESSAGE = 1000


class _MonitorConnection:
    """One accepted monitor socket."""

    def __init__(
        self,
        websocket: WebSocket,
        actor: Actor,
        monitor: CallMonitor,
        session_factory: async_sessionmaker[AsyncSession],
    ) -> None:
        self.websocket = websocket
        self.actor = actor
        self.monitor = monitor
        self.session_factory = session_factory
        self._send_lock = asyncio.Lock()
        self.frames_in = 0
        self.frames_out = 0

    async def send_json(self, message: object) -> None:
        async with self._send_lock:
            await self.websocket.send_text(json.dumps(message))

    async def forward_mix(self) -> None:
        async for frame in self.monitor.frames():
            async with self._send_lock:
                await self.websocket.send_bytes(frame)
            self.frames_out += 1
        await self.send_json({"type": "ended"})

    async def read_client(self) -> None:
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            frame = message.get("bytes")
            if frame is not None:
                self.frames_in += 1
                self.monitor.push_frame(frame)
                continue
            text = message.get("text")
            if text is not None and len(text) <= MAX_TEXT_MESSAGE:
                await self._on_text(text)

    async def _on_text(self, text: str) -> None:
        try:
            request = json.loads(text)
        except ValueError:
            return
        if not isinstance(request, dict) or request.get("type") != "mode":
            return
        mode = request.get("mode")
        if not is_monitor_mode(mode):
            await self.send_json(
                {"type": "error", "code": "bad_mode", "message": "use listen, whisper or barge"}
            )
            return
        await switch_mode(self.session_factory, self.actor, self.monitor, mode)  # type: ignore[arg-type]
        await self.send_json({"type": "mode", "mode": self.monitor.mode})


async def switch_mode(
    session_factory: async_sessionmaker[AsyncSession],
    actor: Actor,
    monitor: CallMonitor,
    mode: MonitorMode,
) -> None:
    """Change the mode and commit its audit row."""
    async with session_factory() as database:
        if await change_monitor_mode(database, actor, monitor, mode):
            await database.commit()


async def _join(
    websocket: WebSocket,
    desk: MonitorDesk,
    session_factory: async_sessionmaker[AsyncSession],
    actor: Actor,
    call_id: int,
    mode: MonitorMode,
    monitor_id: str | None,
) -> CallMonitor | None:
    try:
        if monitor_id is not None:
            monitor = desk.claim(actor, call_id, monitor_id)
            try:
                await switch_mode(session_factory, actor, monitor, mode)
            except BaseException:
                monitor.detach()
                raise
            return monitor
        async with session_factory() as database:
            monitor = await start_monitoring(database, desk.calls, actor, call_id, mode)
            try:
                await database.commit()
            except BaseException:
                monitor.detach()
                raise
            return monitor
    except DialerError as error:
        await refuse_for_call_error(websocket, call_id, error)
    return None


async def monitor_socket(websocket: WebSocket) -> None:
    session = await authenticate_socket(websocket)
    if session is None:
        return
    actor = session.actor
    mode = websocket.query_params.get("mode", "listen")
    if not (actor.is_admin or actor.is_supervisor) or not is_monitor_mode(mode):
        await websocket.close(code=POLICY_VIOLATION)
        return
    call_id = int(websocket.path_params["call_id"])
    monitor_id = websocket.query_params.get("monitor") or None
    await websocket.accept()
    desk = monitor_desk_of(websocket.app.state)
    if desk is None:
        await refuse_call_service_unavailable(websocket)
        return
    session_factory: async_sessionmaker[AsyncSession] = websocket.app.state.session_factory
    monitor = await _join(
        websocket,
        desk,
        session_factory,
        actor,
        call_id,
        mode,  # type: ignore[arg-type]  # checked by is_monitor_mode
        monitor_id,
    )
    if monitor is None:
        return
    connection = _MonitorConnection(websocket, actor, monitor, session_factory)
    await connection.send_json(
        {
            "type": "monitoring",
            "call_id": call_id,
            "monitor_id": monitor.monitor_id,
            "mode": monitor.mode,
            "frame_bytes": FRAME_BYTES,
            "sample_rate": SAMPLE_RATE,
        }
    )
    try:
        call_over = await pump_both_ways(connection.read_client(), connection.forward_mix())
    finally:
        monitor.detach()
    logger.info(
        "monitor of call %d by user %d: %d frames in, %d out",
        call_id,
        actor.user_id,
        connection.frames_in,
        connection.frames_out,
    )
    await close_socket(websocket, 1000, "call ended" if call_over else "")


def routes(app: Starlette) -> Sequence[BaseRoute]:
    """The monitor socket (listed in ``web.app.ROUTE_MODULES``)."""
    del app
    return [WebSocketRoute("/ws/calls/{call_id:int}/monitor", monitor_socket, name="call_monitor")]
