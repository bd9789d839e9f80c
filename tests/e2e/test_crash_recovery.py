"""``kill -9`` in the middle of a call: after the restart the call is "interrupted" and its
recording plays, holding the audio up to (at most one second before) the kill."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

from tests.audio import SAMPLE_RATE, decode_stereo, push_paced
from tests.e2e.audio import band_energy_fraction, tone
from tests.e2e.server import (
    call_first_contact,
    cookie_header,
    first_start_credentials,
    signed_in,
    start_server,
    wait_for_call,
)

TALK_SECONDS = 4.0
OPERATOR_TONE = 700.0


async def _drain(socket: ClientConnection) -> None:
    async for _message in socket:
        pass


async def test_a_killed_server_leaves_an_interrupted_call_with_its_recording(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    server = await start_server(data_dir, tmp_path / "first.log")
    try:
        login, password = first_start_credentials(server.console())
        async with signed_in(server.base_url, login, password) as client:
            call_id = await call_first_contact(client)
            address = f"ws://127.0.0.1:{server.port}/ws/calls/{call_id}/audio"
            async with connect(
                address, additional_headers={"Cookie": cookie_header(client)}
            ) as socket:
                attached = json.loads(await socket.recv())
                assert attached["type"] == "attached"
                loop = asyncio.get_running_loop()
                speaking = loop.create_task(
                    push_paced(
                        socket.send, tone(OPERATOR_TONE, TALK_SECONDS + 10).tobytes(), burst=1
                    )
                )
                listening = loop.create_task(_drain(socket))
                await wait_for_call(client, call_id, states=("answered",))
                answered_at = loop.time()
                await asyncio.sleep(TALK_SECONDS)
                await server.kill()
                talk_seconds = loop.time() - answered_at
                for task in (speaking, listening):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
    finally:
        await server.kill()

    again = await start_server(data_dir, tmp_path / "second.log")
    try:
        async with signed_in(again.base_url, login, password) as client:
            row = (await client.get(f"/api/calls/{call_id}")).json()
            assert row["state"] == "interrupted", row
            assert row["answered_at"] is not None
            assert row["recording_url"] == f"/api/calls/{call_id}/recording"
            response = await client.get(row["recording_url"])
            assert response.status_code == 200
            assert response.headers["content-type"] == "audio/ogg"
    finally:
        await again.stop()

    left, right = decode_stereo(response.content)
    recorded_seconds = left.size / SAMPLE_RATE
    # Everything up to at most one second before the kill was kept...
    assert recorded_seconds >= talk_seconds - 1.0, (recorded_seconds, talk_seconds)
    assert recorded_seconds <= talk_seconds + 1.0, (recorded_seconds, talk_seconds)
    # ...and it is the call: the operator's tone on the left up to that last second, the test
    # line's prompt on the right.
    last_kept = left[
        int((talk_seconds - 1.5) * SAMPLE_RATE) : int((talk_seconds - 1.0) * SAMPLE_RATE)
    ]
    assert band_energy_fraction(last_kept, OPERATOR_TONE, 30) > 0.8
    assert float(abs(right[: SAMPLE_RATE * 2].astype(float)).mean()) > 100
