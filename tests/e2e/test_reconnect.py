"""The events socket drops in the middle of a call; reconnecting with the last sequence number
seen brings exactly the events that were missed, in order, and nothing twice."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

from tests.e2e.server import (
    cookie_header,
    first_start_credentials,
    signed_in,
    start_server,
    wait_for_call,
)

WAIT = 15.0  # hang guard only


@dataclass
class EventsSocket:
    """One events socket: its hello, and every event it received, in order."""

    socket: ClientConnection
    hello: dict[str, object]
    events: list[dict[str, object]] = field(default_factory=list)

    async def until(self, kind: str, call_id: int) -> dict[str, object]:
        """Read until an event of ``kind`` about ``call_id`` arrives."""
        async with asyncio.timeout(WAIT):
            while True:
                message: dict[str, object] = json.loads(await self.socket.recv())
                if message["type"] == "ping":
                    await self.socket.send(json.dumps({"type": "pong"}))
                    continue
                assert message["type"] == "event", message
                self.events.append(message)
                payload = message["payload"]
                assert isinstance(payload, dict)
                if message["kind"] == kind and payload["call_id"] == call_id:
                    return message

    @property
    def last_sequence(self) -> int:
        return sequence_of(self.events[-1]) if self.events else sequence_of(self.hello, "last_")


def sequence_of(message: dict[str, object], prefix: str = "") -> int:
    sequence = message[f"{prefix}sequence"]
    assert isinstance(sequence, int)
    return sequence


@asynccontextmanager
async def events_socket(
    port: int, cookie: str, after: int | None = None
) -> AsyncIterator[EventsSocket]:
    query = "" if after is None else f"?after={after}"
    async with connect(
        f"ws://127.0.0.1:{port}/ws/events{query}", additional_headers={"Cookie": cookie}
    ) as socket:
        hello = json.loads(await socket.recv())
        assert hello["type"] == "hello", hello
        yield EventsSocket(socket, hello)


def _kinds(events: list[dict[str, object]]) -> list[object]:
    return [event["kind"] for event in events]


async def test_reconnecting_with_the_last_sequence_brings_exactly_the_missed_events(
    tmp_path: Path,
) -> None:
    server = await start_server(tmp_path / "data", tmp_path / "server.log")
    try:
        login, password = first_start_credentials(server.console())
        async with signed_in(server.base_url, login, password) as client:
            cookie = cookie_header(client)
            contact = (await client.get("/api/contacts")).json()["items"][0]
            # A second tab stays connected all along: what it gets is the truth.
            async with events_socket(server.port, cookie) as witness:
                async with events_socket(server.port, cookie) as tab:
                    placed = await client.post(
                        "/api/calls", json={"contact_id": contact["id"], "audio_leg": "browser"}
                    )
                    assert placed.status_code == 201, placed.text
                    call_id = placed.json()["call_id"]
                    await tab.until("call.answered", call_id)
                    seen = tab.last_sequence
                # The tab's connection is gone; the call goes on and ends meanwhile.
                assert (await client.post(f"/api/calls/{call_id}/hangup")).status_code == 202
                await wait_for_call(client, call_id, states=("ended",))
                await witness.until("call.recording", call_id)

                async with events_socket(server.port, cookie, after=seen) as back:
                    assert back.hello["last_sequence"] == witness.last_sequence
                    await back.until("call.recording", call_id)
                    missed = [event for event in witness.events if sequence_of(event) > seen]
                    assert back.events == missed
                    assert [sequence_of(event) for event in back.events] == list(
                        range(seen + 1, witness.last_sequence + 1)
                    )
                    call_kinds = [kind for kind in _kinds(back.events) if kind != "operator.state"]
                    assert call_kinds == ["call.ended", "call.recording"]
                    # Nothing else was queued: the next event is the next new one.
                    replayed_up_to = back.last_sequence
                    again = await client.post(
                        "/api/calls", json={"contact_id": contact["id"], "audio_leg": "browser"}
                    )
                    next_call_id = again.json()["call_id"]
                    created = await back.until("call.created", next_call_id)
                    assert sequence_of(created) == replayed_up_to + 1
                    assert back.events[-1] is created
                    await client.post(f"/api/calls/{next_call_id}/hangup")
                    await back.until("call.ended", next_call_id)
    finally:
        await server.stop()
