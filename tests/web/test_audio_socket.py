"""The audio WebSockets against a real uvicorn server.

``/ws/calls/{id}/audio`` is driven end to end with the real call service calling the built-in
test line (as ``dialer serve`` does without SIP accounts), and, for the socket's own rules (sizes,
refusals, detaching), with a tiny in-test call service that records what the browser pushed and
plays what the test queues as the far end. ``/ws/echo`` is the self-test loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field

import httpx
import pytest
from starlette.applications import Starlette
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin

from dialer.actors import Actor
from dialer.call_control import FRAME_BYTES, CallRequest, LiveCall
from dialer.errors import NotFound
from dialer.telephony.bridge import CallAudioBridge, OperatorFramePacer
from sip.media.clock import MediaClock
from sip.testline import load_prompt
from tests.audio import push_paced
from tests.conftest import People, Person
from tests.dialer.test_telephony_support import sweep
from tests.sip import peers
from tests.web.browser import log_in_over_http, serve
from web.bootstrap import call_service

WAIT = 10.0  # hang guard only

Server = Callable[[Starlette], AbstractAsyncContextManager[str]]


def serve_as_dialer_serve(app: Starlette) -> AbstractAsyncContextManager[str]:
    """``app`` under uvicorn with ``dialer serve``'s WebSocket settings (sans-I/O protocol, no
    compression), where audio frames are read and written on the transport directly."""
    return serve(app, ws="websockets-sansio", ws_per_message_deflate=False)


@pytest.fixture(params=["uvicorn defaults", "as dialer serve"])
def server(request: pytest.FixtureRequest) -> Server:
    """Both ways audio reaches the socket: through ASGI messages, and straight off the
    transport under ``dialer serve``'s settings."""
    return serve if request.param == "uvicorn defaults" else serve_as_dialer_serve


@dataclass
class RecordingBridge:
    """A bridge that keeps the operator's frames and plays queued far-end frames."""

    pushed: list[bytes] = field(default_factory=list)
    far_end: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    detached: asyncio.Event = field(default_factory=asyncio.Event)

    def push_operator_frame(self, frame: bytes) -> None:
        self.pushed.append(frame)

    async def far_end_frames(self) -> AsyncIterator[bytes]:
        while (frame := await self.far_end.get()) is not None:
            yield frame

    def detach(self) -> None:
        self.detached.set()


@dataclass
class OneCallService:
    """Just enough of ``CallControl``: one call, owned by one operator."""

    call_id: int
    operator_id: int
    bridge: RecordingBridge = field(default_factory=RecordingBridge)

    async def place_call(self, actor: Actor, request: CallRequest) -> LiveCall:
        raise NotImplementedError

    async def hang_up(self, actor: Actor, call_id: int) -> None:
        raise NotImplementedError

    async def set_muted(self, actor: Actor, call_id: int, muted: bool) -> LiveCall:
        raise NotImplementedError

    async def set_held(self, actor: Actor, call_id: int, held: bool) -> LiveCall:
        raise NotImplementedError

    async def send_dtmf(self, actor: Actor, call_id: int, digits: str) -> None:
        raise NotImplementedError

    async def attach_browser_audio(self, actor: Actor, call_id: int) -> RecordingBridge:
        if call_id != self.call_id or actor.user_id != self.operator_id:
            raise NotFound(f"call {call_id}")
        return self.bridge

    def current_call(self, operator_id: int) -> LiveCall | None:
        return None


def tone_frame(index: int) -> bytes:
    """A distinct 20 ms frame: a 400 Hz tone whose amplitude encodes ``index``."""
    amplitude = 1000 + 100 * index
    samples = [
        round(amplitude * math.sin(2 * math.pi * 400 * (n + 160 * index) / 8000))
        for n in range(160)
    ]
    return struct.pack("<160h", *samples)


@asynccontextmanager
async def audio_socket(
    base_url: str, person: Person | None, path: str, origin: str | None = None
) -> AsyncIterator[ClientConnection]:
    headers: dict[str, str] = {}
    if person is not None:
        session = await log_in_over_http(base_url, person.login, person.password)
        headers["Cookie"] = session.cookie_header
    async with connect(
        "ws" + base_url.removeprefix("http") + path,
        origin=Origin(origin or base_url),
        additional_headers=headers,
        proxy=None,
        ping_interval=None,
    ) as websocket:
        yield websocket


async def receive(websocket: ClientConnection) -> str | bytes:
    async with asyncio.timeout(WAIT):
        return await websocket.recv()


async def receive_json(websocket: ClientConnection) -> dict[str, object]:
    message = await receive(websocket)
    assert isinstance(message, str), "expected a JSON text message"
    decoded = json.loads(message)
    assert isinstance(decoded, dict)
    return decoded


async def wait_until_closed(websocket: ClientConnection) -> int:
    """Read until the server closes; its close code."""
    with contextlib.suppress(ConnectionClosed):
        while True:
            await receive(websocket)
    assert websocket.close_code is not None
    return websocket.close_code


async def test_the_operator_hears_the_line_and_their_own_voice_through_the_real_service(
    app: Starlette, people: People, server: Server
) -> None:
    anna = people.north_operator
    settings = app.state.settings
    async with call_service(app, settings.core, environ={}) as service, server(app) as base_url:
        line = service.test_line
        assert line is not None
        session = await log_in_over_http(base_url, anna.login, anna.password)
        async with httpx.AsyncClient(base_url=base_url, trust_env=False) as client:
            placed = await client.post(
                "/api/calls",
                json={"number": "+7 916 555-12-34", "audio_leg": "browser"},
                headers={"Cookie": session.cookie_header, "X-CSRF-Token": session.csrf_token},
            )
            assert placed.status_code == 201, placed.text
            call_id = placed.json()["call_id"]
            heard = bytearray()
            async with connect(
                f"ws{base_url.removeprefix('http')}/ws/calls/{call_id}/audio",
                origin=Origin(base_url),
                additional_headers={"Cookie": session.cookie_header},
                proxy=None,
                ping_interval=None,
            ) as websocket:
                assert (await receive_json(websocket))["type"] == "attached"

                async def listen() -> dict[str, object]:
                    async for message in websocket:
                        if isinstance(message, bytes):
                            heard.extend(message)
                        else:
                            return dict(json.loads(message))
                    raise AssertionError("the socket closed without saying the call ended")

                listener = asyncio.get_running_loop().create_task(listen())
                await asyncio.sleep(line.prompt_seconds + 0.5)  # the line speaks first
                spoken = sweep(1.5)
                await push_paced(websocket.send, spoken, burst=2)  # then echoes our voice
                await asyncio.sleep(1.0)
                hung_up = await client.post(
                    f"/api/calls/{call_id}/hangup",
                    headers={"Cookie": session.cookie_header, "X-CSRF-Token": session.csrf_token},
                )
                assert hung_up.status_code == 202, hung_up.text
                async with asyncio.timeout(WAIT):
                    ended = await listener
                assert await wait_until_closed(websocket) == 1000

    assert ended["type"] == "ended"
    assert ended["frames_in"] == len(spoken) // FRAME_BYTES
    assert ended["frames_dropped"] == 0
    heard_samples = peers.pcm_to_samples(bytes(heard))
    prompt = peers.g711_ulaw_round_trip(peers.pcm_to_samples(load_prompt()))
    assert peers.best_correlation(prompt, heard_samples)[0] >= 0.9
    # Our sweep came back (after the prompt) through the pacer, RTP, the line's echo and the
    # jitter buffer.
    echoed = peers.g711_ulaw_round_trip(peers.g711_ulaw_round_trip(peers.pcm_to_samples(spoken)))
    assert peers.chunked_correlation(echoed, heard_samples[prompt.size :]) >= 0.8


async def test_without_a_call_service_the_socket_says_so(
    app: Starlette, people: People, server: Server
) -> None:
    async with (
        server(app) as base_url,
        audio_socket(base_url, people.north_operator, "/ws/calls/1/audio") as websocket,
    ):
        error = await receive_json(websocket)
        assert error["type"] == "error"
        assert error["code"] == "call_service_unavailable"
        with pytest.raises(ConnectionClosed) as closed:
            await receive(websocket)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4503
        assert "call service" in closed.value.rcvd.reason


@pytest.mark.parametrize("path", ["/ws/calls/1/audio", "/ws/echo"])
async def test_audio_sockets_need_a_session_and_our_origin(
    app: Starlette, people: People, path: str
) -> None:
    async with serve(app) as base_url:
        with pytest.raises(InvalidStatus) as anonymous:
            async with audio_socket(base_url, None, path):
                pass
        assert anonymous.value.response.status_code == 403
        with pytest.raises(InvalidStatus) as foreign:
            async with audio_socket(
                base_url, people.north_operator, path, origin="https://evil.example"
            ):
                pass
        assert foreign.value.response.status_code == 403


async def test_call_audio_flows_both_ways_until_the_call_ends(
    app: Starlette, people: People, server: Server
) -> None:
    anna = people.north_operator
    service = OneCallService(call_id=41, operator_id=anna.user.id)
    app.state.call_control = service
    async with (
        server(app) as base_url,
        audio_socket(base_url, anna, "/ws/calls/41/audio") as websocket,
    ):
        attached = await receive_json(websocket)
        assert attached == {
            "type": "attached",
            "call_id": 41,
            "frame_bytes": FRAME_BYTES,
            "sample_rate": 8000,
        }
        operator_frames = [tone_frame(index) for index in range(10)]
        for index, frame in enumerate(operator_frames):
            await websocket.send(frame)
            if index == 4:
                await websocket.send(frame[:100])  # a torn frame is dropped, not passed on
        far_end_frames = [tone_frame(index) for index in range(20, 25)]
        for frame in far_end_frames:
            service.bridge.far_end.put_nowait(frame)
        received = [await receive(websocket) for _ in far_end_frames]
        assert received == far_end_frames

        service.bridge.far_end.put_nowait(None)  # the call ends
        ended = await receive_json(websocket)
        assert ended["type"] == "ended"
        assert await wait_until_closed(websocket) == 1000

    assert service.bridge.pushed == operator_frames
    assert ended["frames_in"] == 10
    assert ended["frames_dropped"] == 1
    assert ended["frames_out"] == 5
    assert not service.bridge.detached.is_set()


async def test_a_dropped_audio_socket_detaches_from_the_call(
    app: Starlette, people: People, server: Server
) -> None:
    anna = people.north_operator
    service = OneCallService(call_id=41, operator_id=anna.user.id)
    app.state.call_control = service
    async with server(app) as base_url:
        async with audio_socket(base_url, anna, "/ws/calls/41/audio") as websocket:
            assert (await receive_json(websocket))["type"] == "attached"
            await websocket.send(tone_frame(1))
        async with asyncio.timeout(WAIT):
            await service.bridge.detached.wait()
    assert service.bridge.pushed == [tone_frame(1)]


async def test_someone_elses_call_is_refused(
    app: Starlette, people: People, server: Server
) -> None:
    service = OneCallService(call_id=41, operator_id=people.north_operator.user.id)
    app.state.call_control = service
    async with (
        server(app) as base_url,
        audio_socket(base_url, people.north_operator_2, "/ws/calls/41/audio") as websocket,
    ):
        error = await receive_json(websocket)
        assert error["code"] == "call_not_found"
        assert await wait_until_closed(websocket) == 4404


async def test_echo_returns_every_frame_and_shows_it_to_the_taps(
    app: Starlette, people: People
) -> None:
    seen: list[bytes] = []
    app.state.echo_taps.append(seen.append)
    frames = [tone_frame(index) for index in range(25)]
    async with (
        serve(app) as base_url,
        audio_socket(base_url, people.north_operator, "/ws/echo") as websocket,
    ):
        attached = await receive_json(websocket)
        assert attached["echo"] is True
        for frame in frames:
            await websocket.send(frame)
        await websocket.send(b"\x00" * (FRAME_BYTES + 2))  # wrong size: not echoed
        await websocket.send(frames[0])
        echoed = [await receive(websocket) for _ in range(len(frames) + 1)]
    assert echoed == [*frames, frames[0]]
    assert seen == [*frames, frames[0]]


async def test_far_end_frames_reach_the_browser_in_order_through_the_call_bridge(
    app: Starlette, people: People, server: Server
) -> None:
    """With the service's own bridge (which may write frames straight onto the socket):
    every far-end frame arrives once and in order, around a burst the socket has to queue,
    then the end of the call; the operator's frames reach the pacer."""
    anna = people.north_operator
    clock = MediaClock(asyncio.get_running_loop())
    pacer = OperatorFramePacer(clock)
    detached: list[CallAudioBridge] = []
    bridge = CallAudioBridge(41, pacer, detached.append)
    service = OneCallService(call_id=41, operator_id=anna.user.id)

    async def attach(actor: Actor, call_id: int) -> CallAudioBridge:
        if call_id != 41 or actor.user_id != anna.user.id:
            raise NotFound(f"call {call_id}")
        return bridge

    app.state.call_control = service
    service.attach_browser_audio = attach  # type: ignore[method-assign,assignment]
    frames = [tone_frame(index) for index in range(30)]
    try:
        async with (
            server(app) as base_url,
            audio_socket(base_url, anna, "/ws/calls/41/audio") as websocket,
        ):
            assert (await receive_json(websocket))["type"] == "attached"
            for frame in frames[:10]:
                await websocket.send(frame)
            for frame in frames[:5]:
                bridge.deliver_far_end(frame)
            received = [await receive(websocket) for _ in range(5)]
            for frame in frames[5:]:  # more at once than the bridge holds: the oldest go
                bridge.deliver_far_end(frame)
            async with asyncio.timeout(WAIT):
                async for message in websocket:
                    if isinstance(message, str):
                        break
                    received.append(message)
                    if message == frames[-1]:
                        break
            bridge.end()
            ended = await receive_json(websocket)
            assert await wait_until_closed(websocket) == 1000
    finally:
        pacer.close()
    assert received[:5] == frames[:5]
    positions = [frames.index(message) for message in received]  # type: ignore[arg-type]
    assert positions == sorted(set(positions)), "each frame once, in order"
    assert received[-1] == frames[-1]
    assert ended["type"] == "ended"
    assert ended["frames_out"] == len(received)
    assert ended["frames_in"] == 10
    assert pacer.statistics.frames_pushed == 10
    assert detached == []
    if server is serve_as_dialer_serve:  # the path this test is about: straight to the socket
        assert bridge.frames_written_directly > 0
