"""The floor over HTTP and WebSockets: ``GET /api/floor``, ``POST /api/calls/{id}/monitor`` and
``/ws/calls/{id}/monitor`` against a real server, a real call service and the test line."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin

from dialer.call_control import CallRequest
from dialer.calls import create_call
from dialer.models import AuditEvent
from dialer.telephony import AccountChoice, CallService
from sip.testline import TestLine
from tests.audio import push_paced
from tests.conftest import People, Person
from tests.dialer.test_floor_support import (
    FAR_END_HZ,
    OPERATOR_HZ,
    SUPERVISOR_HZ,
    samples_of,
    tone,
    tone_strength,
    write_prompt,
)
from tests.web.browser import log_in_over_http, serve
from tests.web.conftest import client_of

PRESENT = 1000.0
ABSENT = 150.0
WAIT = 10.0  # hang guard only


def operator_ids(board: dict[str, object]) -> set[object]:
    operators = board["operators"]
    assert isinstance(operators, list)
    return {line["operator_id"] for line in operators}


def line_of(board: dict[str, object], operator_id: int) -> dict[str, object]:
    operators = board["operators"]
    assert isinstance(operators, list)
    (line,) = [line for line in operators if line["operator_id"] == operator_id]
    assert isinstance(line, dict)
    return line


async def test_the_board_is_for_staff_and_scoped_to_the_team(
    app: Starlette, people: People
) -> None:
    anna, boris = people.north_operator, people.north_operator_2
    async with client_of(app, people.north_supervisor) as supervisor:
        response = await supervisor.get("/api/floor", params={"timezone": "Europe/Moscow"})
        assert response.status_code == 200, response.text
        board = response.json()
        assert board["timezone"] == "Europe/Moscow"
        assert operator_ids(board) == {anna.user.id, boris.user.id}
        assert line_of(board, anna.user.id)["state"] == "offline"
        async with client_of(app, anna):  # logging in puts anna on the floor
            board = (await supervisor.get("/api/floor")).json()
        assert line_of(board, anna.user.id)["state"] == "idle"
        assert line_of(board, anna.user.id)["name"] == "Anna"
        assert line_of(board, boris.user.id)["state"] == "offline"
        bad_zone = await supervisor.get("/api/floor", params={"timezone": "Nowhere/Land"})
        assert bad_zone.status_code == 422
    async with client_of(app, people.south_supervisor) as south:
        assert operator_ids((await south.get("/api/floor")).json()) == {
            people.south_operator.user.id
        }
    async with client_of(app, people.admin) as admin:
        assert operator_ids((await admin.get("/api/floor")).json()) == {
            anna.user.id,
            boris.user.id,
            people.south_operator.user.id,
        }
    async with client_of(app, anna) as operator:
        refused = await operator.get("/api/floor")
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "role_forbidden"


async def test_monitoring_a_call_needs_the_right_role_and_a_visible_call(
    app: Starlette, people: People
) -> None:
    async with app.state.session_factory() as session:
        call = await create_call(session, people.north_operator.actor, "+79165550501")
        await session.commit()
        call_id = call.id
    path = f"/api/calls/{call_id}/monitor"
    async with client_of(app, people.north_operator) as operator:
        refused = await operator.post(path, json={"mode": "listen"})
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "role_forbidden"
    async with client_of(app, people.south_supervisor) as other_team:
        assert (await other_team.post(path, json={"mode": "listen"})).status_code == 404
    async with client_of(app, people.north_supervisor) as supervisor:
        bad = await supervisor.post(path, json={"mode": "shout"})
        assert bad.status_code == 422
        assert bad.json()["error"]["field"] == "mode"
        # Nothing to join without a call service.
        unavailable = await supervisor.post(path, json={"mode": "listen"})
        assert unavailable.status_code == 503
        assert unavailable.json()["error"]["code"] == "call_service_unavailable"


@dataclass
class SocketLog:
    """Everything one socket received, split into audio and JSON messages."""

    audio: bytearray = field(default_factory=bytearray)
    messages: list[dict[str, object]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_for(self, kind: str) -> dict[str, object]:
        async with asyncio.timeout(WAIT):
            while True:
                for message in self.messages:
                    if message.get("type") == kind:
                        return message
                self.arrived.clear()
                await self.arrived.wait()


async def read_all(websocket: ClientConnection, log: SocketLog) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for message in websocket:
            if isinstance(message, bytes):
                log.audio.extend(message)
            else:
                log.messages.append(json.loads(message))
                log.arrived.set()


@contextlib.asynccontextmanager
async def socket_for(
    base_url: str, person: Person, path: str
) -> AsyncIterator[tuple[ClientConnection, SocketLog, asyncio.Task[None]]]:
    session = await log_in_over_http(base_url, person.login, person.password)
    async with connect(
        "ws" + base_url.removeprefix("http") + path,
        origin=Origin(base_url),
        additional_headers={"Cookie": session.cookie_header},
        proxy=None,
        ping_interval=None,
    ) as websocket:
        log = SocketLog()
        reader = asyncio.get_running_loop().create_task(read_all(websocket, log))
        try:
            yield websocket, log, reader
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


@pytest.fixture
async def call_service(app: Starlette, tmp_path: Path) -> AsyncIterator[CallService]:
    line = await TestLine.start(prompt_wav=write_prompt(tmp_path / "prompt.wav", seconds=3.0))
    service = await CallService.start(
        app.state.settings.core,
        app.state.session_factory,
        app.state.event_bus,
        accounts=AccountChoice.single(line.account()),
    )
    app.state.call_control = service
    try:
        yield service
    finally:
        app.state.call_control = None
        await service.close()
        await line.aclose()


async def test_a_supervisor_listens_then_whispers_over_the_monitor_socket(
    app: Starlette, people: People, call_service: CallService
) -> None:
    anna, boss = people.north_operator, people.north_supervisor
    live = await call_service.place_call(anna.actor, CallRequest(number="+79165550502"))
    call_id = live.call_id
    async with (
        serve(app) as base_url,
        socket_for(base_url, anna, f"/ws/calls/{call_id}/audio") as (operator, operator_log, _),
    ):
        await operator_log.wait_for("attached")
        # An operator cannot open the monitor socket at all.
        with pytest.raises(InvalidStatus) as refused:
            async with socket_for(base_url, anna, f"/ws/calls/{call_id}/monitor?mode=listen"):
                pass
        assert refused.value.response.status_code == 403

        http = await log_in_over_http(base_url, boss.login, boss.password)
        async with httpx.AsyncClient(base_url=base_url, trust_env=False) as client:
            granted = await client.post(
                f"/api/calls/{call_id}/monitor",
                json={"mode": "listen"},
                headers={
                    "Cookie": http.cookie_header,
                    "X-CSRF-Token": http.csrf_token,
                    "Origin": base_url,
                },
            )
        assert granted.status_code == 201, granted.text
        body = granted.json()
        assert body["mode"] == "listen"
        async with socket_for(base_url, boss, body["socket_path"]) as (supervisor, log, reader):
            hello = await log.wait_for("monitoring")
            assert (hello["call_id"], hello["monitor_id"], hello["mode"]) == (
                call_id,
                body["monitor_id"],
                "listen",
            )
            # Listen: the operator speaks over the far end's prompt.
            await push_paced(operator.send, tone(OPERATOR_HZ, 1.0))
            await asyncio.sleep(0.2)
            listened = samples_of(bytes(log.audio))
            assert tone_strength(listened, OPERATOR_HZ) > PRESENT
            assert tone_strength(listened, FAR_END_HZ) > PRESENT

            # Whisper: the operator's browser hears the supervisor.
            await supervisor.send(json.dumps({"type": "mode", "mode": "whisper"}))
            assert (await log.wait_for("mode"))["mode"] == "whisper"
            before = len(operator_log.audio)
            await push_paced(supervisor.send, tone(SUPERVISOR_HZ, 1.2))
            await asyncio.sleep(0.3)
            heard = samples_of(bytes(operator_log.audio[before:]))
            assert tone_strength(heard, SUPERVISOR_HZ) > PRESENT

            await call_service.hang_up(anna.actor, call_id)
            await log.wait_for("ended")
            async with asyncio.timeout(WAIT):
                await reader
            assert supervisor.close_code == 1000

    async with app.state.session_factory() as session:
        rows = (
            await session.scalars(
                select(AuditEvent)
                .where(AuditEvent.action.like("monitor.%"))
                .order_by(AuditEvent.id)
            )
        ).all()
    assert [(row.action, row.target, row.actor_user_id) for row in rows] == [
        ("monitor.listen", f"call:{call_id}", boss.user.id),
        ("monitor.whisper", f"call:{call_id}", boss.user.id),
    ]
    assert tone_strength(samples_of(bytes(log.audio)), SUPERVISOR_HZ) < ABSENT
