"""The operator's own phone as the audio leg: called first, then bridged to the customer."""

from __future__ import annotations

import asyncio
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.actors import Role
from dialer.call_control import AudioLeg, CallRequest
from dialer.errors import Conflict
from dialer.live_events import InProcessEventBus
from dialer.settings import Settings
from dialer.telephony import AccountChoice, CallService
from sip.phone import Call
from sip.testline import TestLine, load_prompt
from tests.audio import decode_stereo, spectral_correlation
from tests.conftest import PersonMaker
from tests.dialer.test_telephony_support import (
    call_row,
    event_log,
    recordings_of,
    sweep,
)
from tests.sip import peers


@pytest.fixture
async def customer_line() -> AsyncIterator[TestLine]:
    line = await TestLine.start(host="127.0.0.1", port=0)
    yield line
    await line.aclose()


@pytest.fixture
def operator_voice() -> bytes:
    return sweep(1.5)


@pytest.fixture
async def operator_phone(tmp_path: Path, operator_voice: bytes) -> AsyncIterator[TestLine]:
    """The operator's desk phone: says a tone sweep when answered, then echoes."""
    path = tmp_path / "operator.wav"
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(8000)
        writer.writeframes(operator_voice)
    line = await TestLine.start(host="127.0.0.1", port=0, prompt_wav=path)
    yield line
    await line.aclose()


async def answered_call(line: TestLine) -> Call:
    """The line's first answered call, as soon as it is answered (polled every 2 ms)."""
    async with asyncio.timeout(5):
        while not line.answered_calls:  # noqa: ASYNC110 (the test line offers no event)
            await asyncio.sleep(0.002)
    return line.answered_calls[0]


def received_by(call: Call) -> bytearray:
    heard = bytearray()
    call.audio.add_tap(
        lambda direction, frame, _: heard.extend(frame) if direction == "received" else None
    )
    return heard


async def test_operator_phone_is_called_first_then_bridged_and_recorded(
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    make_person: PersonMaker,
    customer_line: TestLine,
    operator_phone: TestLine,
    operator_voice: bytes,
) -> None:
    operator = await make_person(
        Role.OPERATOR,
        "north",
        login="desk-phone",
        phone_extension=f"sip:desk@127.0.0.1:{operator_phone.port}",
    )
    bus = InProcessEventBus()
    service = await CallService.start(
        settings, session_factory, bus, accounts=AccountChoice.single(customer_line.account())
    )
    try:
        async with event_log(bus, operator.user.id) as log:
            live = await service.place_call(
                operator.actor, CallRequest(number="+79165550150", audio_leg=AudioLeg.PHONE)
            )
            with pytest.raises(Conflict):
                await service.attach_browser_audio(operator.actor, live.call_id)
            operator_heard = received_by(await answered_call(operator_phone))
            customer_heard = received_by(await answered_call(customer_line))
            await log.wait_for("call.answered")
            await asyncio.sleep(customer_line.prompt_seconds + 0.5)
            await service.hang_up(operator.actor, live.call_id)
            await log.wait_for("call.ended")
            await log.wait_for("call.recording", seconds=30)
    finally:
        await service.close()

    # The customer heard the operator, the operator heard the customer (G.711 both ways).
    voice = peers.pcm_to_samples(operator_voice)
    prompt = peers.pcm_to_samples(load_prompt())
    hops = peers.g711_ulaw_round_trip
    assert (
        peers.chunked_correlation(hops(voice), peers.pcm_to_samples(bytes(customer_heard))) >= 0.8
    )
    assert (
        peers.chunked_correlation(hops(prompt), peers.pcm_to_samples(bytes(operator_heard))) >= 0.8
    )

    row = await call_row(session_factory, live.call_id)
    assert (row.state, row.end_cause, row.hangup_by) == ("ended", "local_hangup", "operator")
    assert row.answered_at is not None
    assert row.talk_seconds is not None
    (recording,) = await recordings_of(session_factory, live.call_id)
    left, right = decode_stereo(settings.recordings_dir / recording.path)
    assert spectral_correlation(voice, left) >= 0.5  # left: what the operator's leg said
    assert spectral_correlation(prompt, right) >= 0.5  # right: what the customer said
    assert spectral_correlation(voice, right) < 0.3
    assert not operator_phone.phone.calls
    assert not customer_line.phone.calls


async def test_unanswered_operator_phone_fails_the_call_without_calling_the_customer(
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    make_person: PersonMaker,
    customer_line: TestLine,
    tmp_path: Path,
) -> None:
    async with peers.sipp("busy", tmp_path / "sipp") as desk:
        operator = await make_person(
            Role.OPERATOR, "north", login="busy-desk", phone_extension=f"sip:desk@{desk.uri_host}"
        )
        bus = InProcessEventBus()
        service = await CallService.start(
            settings, session_factory, bus, accounts=AccountChoice.single(customer_line.account())
        )
        try:
            async with event_log(bus, operator.user.id) as log:
                live = await service.place_call(
                    operator.actor, CallRequest(number="+79165550151", audio_leg=AudioLeg.PHONE)
                )
                ended = await log.wait_for("call.ended")
        finally:
            await service.close()
    assert ended.payload["cause"] == "operator_busy"
    row = await call_row(session_factory, live.call_id)
    assert (row.state, row.end_cause) == ("failed", "operator_busy")
    assert customer_line.calls_answered == 0
