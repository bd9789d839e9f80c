"""The call service against SIPp callees: busy, and a callee that rings before it answers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.call_control import CallRequest
from dialer.live_events import InProcessEventBus
from dialer.settings import Settings
from dialer.telephony import AccountChoice, CallService
from sip.account import Account
from tests.conftest import People
from tests.dialer.test_telephony_support import call_row, event_log, recordings_of
from tests.sip import peers

pytestmark = pytest.mark.peers


def sipp_account(peer: peers.SippPeer) -> Account:
    return Account(
        name="sipp", host=peers.LOOPBACK, port=peer.sip_port, username="dialer", register=False
    )


async def test_busy_callee_fails_the_call_with_cause_busy(
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    people: People,
    tmp_path: Path,
) -> None:
    bus = InProcessEventBus()
    anna = people.north_operator
    async with peers.sipp("busy", tmp_path / "sipp") as peer:
        service = await CallService.start(
            settings, session_factory, bus, accounts=AccountChoice.single(sipp_account(peer))
        )
        try:
            async with event_log(bus, anna.user.id) as log:
                live = await service.place_call(anna.actor, CallRequest(number="+79165550140"))
                await service.attach_browser_audio(anna.actor, live.call_id)
                ended = await log.wait_for("call.ended")
        finally:
            await service.close()
    assert log.kinds() == ["call.created", "call.dialing", "call.ringing", "call.ended"]
    assert (ended.payload["state"], ended.payload["cause"]) == ("failed", "busy")
    assert ended.payload["sip_code"] == 486
    assert log.operator_states() == ["dialing", "dialing", "ringing", "wrap-up"]
    row = await call_row(session_factory, live.call_id)
    assert (row.state, row.end_cause, row.sip_code, row.hangup_by) == (
        "failed",
        "busy",
        486,
        "remote",
    )
    assert row.ringing_at is not None
    assert row.ended_at is not None
    assert row.answered_at is None
    assert row.talk_seconds == 0.0
    assert row.ring_seconds is not None
    assert await recordings_of(session_factory, live.call_id) == []  # no audio, no recording


async def test_ringing_then_answered_call_has_ring_and_talk_times(
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    people: People,
    tmp_path: Path,
) -> None:
    bus = InProcessEventBus()
    anna = people.north_operator
    async with peers.sipp("answer_echo", tmp_path / "sipp", rtp_echo=True) as peer:
        service = await CallService.start(
            settings, session_factory, bus, accounts=AccountChoice.single(sipp_account(peer))
        )
        try:
            async with event_log(bus, anna.user.id) as log:
                live = await service.place_call(anna.actor, CallRequest(number="+79165550141"))
                await service.attach_browser_audio(anna.actor, live.call_id)
                await log.wait_for("call.answered")
                await asyncio.sleep(1.0)
                await service.hang_up(anna.actor, live.call_id)
                await log.wait_for("call.ended")
        finally:
            await service.close()
    assert log.kinds()[:5] == [
        "call.created",
        "call.dialing",
        "call.ringing",
        "call.answered",
        "call.ended",
    ]
    row = await call_row(session_factory, live.call_id)
    assert (row.state, row.end_cause, row.hangup_by) == ("ended", "local_hangup", "operator")
    assert row.ringing_at is not None
    assert row.answered_at is not None
    assert row.ended_at is not None
    assert row.ringing_at <= row.answered_at < row.ended_at
    assert row.ring_seconds is not None
    assert row.ring_seconds >= 0.0
    assert row.talk_seconds is not None
    assert 0.9 <= row.talk_seconds < 5.0
    assert row.sip_code == 200
