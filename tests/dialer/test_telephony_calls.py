"""The call service end to end: real Phone, the built-in test line, real databases."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.call_control import CallRequest
from dialer.contacts import ContactInput, PhoneInput, create_contact, find_contacts_by_phone
from dialer.errors import Conflict, DoNotCall, PermissionDenied
from dialer.live_events import InProcessEventBus
from dialer.models import Call
from dialer.settings import Settings
from dialer.telephony import AccountChoice, CallService
from dialer.telephony.service import DEFAULT_BROWSER_GRACE_SECONDS
from dialer.transcripts.models import TranscriptionJob
from recordings.hashing import sha256_of_file
from sip.testline import TestLine, load_prompt
from tests.audio import decode_stereo, push_paced, spectral_correlation
from tests.conftest import People
from tests.dialer.test_telephony_support import (
    answered_browser_call,
    call_row,
    collect_frames,
    event_log,
    recordings_of,
    sweep,
)
from tests.sip import peers


@pytest.fixture
def browser_grace_seconds() -> float:
    """Short, so that a closed tab ends its call within the test."""
    return 0.6


async def test_answered_browser_call_is_recorded_and_published_in_order(
    service: CallService,
    session_factory: async_sessionmaker[AsyncSession],
    bus: InProcessEventBus,
    test_line: TestLine,
    people: People,
    settings: Settings,
) -> None:
    anna = people.north_operator
    async with (
        event_log(bus, anna.user.id) as operator_log,
        event_log(bus, people.north_supervisor.user.id) as supervisor_log,
        event_log(bus, people.admin.user.id) as admin_log,
        event_log(bus, people.south_supervisor.user.id) as other_team_log,
    ):
        live = await service.place_call(anna.actor, CallRequest(number="8 (916) 555-01-02"))
        assert live.state == "created"
        bridge = await service.attach_browser_audio(anna.actor, live.call_id)
        heard = bytearray()
        reader = asyncio.get_running_loop().create_task(collect_frames(bridge, heard))
        await operator_log.wait_for("call.answered")
        await asyncio.sleep(test_line.prompt_seconds + 0.2)
        ours = sweep(1.0)
        await push_paced(bridge.push_operator_frame, ours)
        await asyncio.sleep(1.0)
        await service.hang_up(anna.actor, live.call_id)
        ended = await operator_log.wait_for("call.ended")
        recorded = await operator_log.wait_for("call.recording", seconds=30)
        await reader

    # The typed number became a contact of the operator's, and the call is on it.
    async with session_factory() as session:
        (contact,) = await find_contacts_by_phone(session, "+79165550102")
        assert contact.owner_id == anna.user.id
    row = await call_row(session_factory, live.call_id)
    assert row.contact_id == contact.id == live.contact_id
    assert (row.state, row.end_cause, row.hangup_by) == ("ended", "local_hangup", "operator")
    assert row.dialing_at is not None
    assert row.answered_at is not None
    assert row.ended_at is not None
    assert row.dialing_at <= row.answered_at < row.ended_at
    assert row.talk_seconds is not None
    assert row.talk_seconds > 4.0
    assert row.sip_call_id
    assert row.account_name == "testline"
    assert ended.payload["state"] == "ended"
    assert ended.payload["cause"] == "local_hangup"
    assert ended.payload["call_id"] == live.call_id

    # Events in order, to the operator, the team's supervisor and admins, not the other team.
    expected = ["call.created", "call.dialing", "call.answered", "call.ended", "call.recording"]
    assert operator_log.kinds() == expected
    assert supervisor_log.kinds() == expected
    assert admin_log.kinds() == expected
    assert other_team_log.kinds() == []
    assert operator_log.operator_states() == ["dialing", "dialing", "talking", "wrap-up"]
    assert service.current_call(anna.user.id) is None

    # The browser heard the prompt, then its own sweep echoed (two G.711 hops).
    heard_samples = peers.pcm_to_samples(bytes(heard))
    prompt = peers.g711_ulaw_round_trip(peers.pcm_to_samples(load_prompt()))
    sent = peers.g711_ulaw_round_trip(peers.pcm_to_samples(ours))
    assert peers.best_correlation(prompt, heard_samples)[0] >= 0.9
    # (>= 0.8, not 0.9: the bursty pushes may leave a 20 ms gap while the pacer adapts.)
    assert peers.chunked_correlation(peers.g711_ulaw_round_trip(sent), heard_samples) >= 0.8

    # One compressed stereo recording: left = what we pushed, right = what the line sent.
    (recording,) = await recordings_of(session_factory, live.call_id)
    assert recorded.payload["recording_id"] == recording.id
    path = settings.recordings_dir / recording.path
    assert path.suffix == ".ogg"
    assert recording.codec == "opus"
    assert recording.channels == 2
    assert recording.sha256 == sha256_of_file(path)
    assert recording.size_bytes == path.stat().st_size
    assert abs(recording.duration_seconds - row.talk_seconds) < 1.0
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # the WAV is gone
    left, right = decode_stereo(path)
    pushed = peers.pcm_to_samples(ours)
    assert spectral_correlation(pushed, left) >= 0.5
    assert spectral_correlation(pushed, right) >= 0.5  # the echo
    assert spectral_correlation(prompt, right) >= 0.5
    assert spectral_correlation(prompt, left) < 0.3  # the operator never said it

    # The stored recording is queued for transcription.
    async with session_factory() as session:
        jobs = (
            await session.execute(
                select(TranscriptionJob.state).where(TranscriptionJob.call_id == live.call_id)
            )
        ).all()
    assert [tuple(job) for job in jobs] == [("queued",)]


async def test_a_second_call_while_one_runs_is_refused_even_on_a_double_click(
    service: CallService,
    session_factory: async_sessionmaker[AsyncSession],
    test_line: TestLine,
    people: People,
) -> None:
    # No browser attaches in this test: the module's short grace would end the calls (cause
    # browser_disconnected) while a slow machine is still running it.
    service.browser_grace_seconds = DEFAULT_BROWSER_GRACE_SECONDS
    anna = people.north_operator
    results = await asyncio.gather(
        service.place_call(anna.actor, CallRequest(number="+79165550103")),
        service.place_call(anna.actor, CallRequest(number="+79165550104")),
        return_exceptions=True,
    )
    placed = [result for result in results if not isinstance(result, BaseException)]
    refused = [result for result in results if isinstance(result, BaseException)]
    assert len(placed) == 1
    assert len(refused) == 1
    assert isinstance(refused[0], Conflict)
    with pytest.raises(Conflict):
        await service.place_call(anna.actor, CallRequest(number="+79165550105"))
    # Another operator may call at the same time.
    boris_call = await service.place_call(
        people.north_operator_2.actor, CallRequest(number="+79165550106")
    )
    for _ in range(600):  # a liveness wait (up to 30 s on a loaded machine), not a timing
        if test_line.calls_answered >= 2:
            break
        await asyncio.sleep(0.05)
    async with session_factory() as session:
        count = await session.scalar(
            select(func.count()).select_from(Call).where(Call.operator_id == anna.user.id)
        )
    assert count == 1
    assert test_line.calls_answered == 2
    await service.hang_up(anna.actor, placed[0].call_id)
    await service.hang_up(people.north_operator_2.actor, boris_call.call_id)


async def test_do_not_call_contact_is_refused_at_dial_time(
    service: CallService,
    session_factory: async_sessionmaker[AsyncSession],
    test_line: TestLine,
    people: People,
) -> None:
    anna = people.north_operator
    async with session_factory() as session:
        contact = await create_contact(
            session,
            anna.actor,
            ContactInput(name="Stop", phones=[PhoneInput("+79165550107")], status="do_not_call"),
        )
        await session.commit()
    with pytest.raises(DoNotCall):
        await service.place_call(anna.actor, CallRequest(contact_id=contact.id))
    # Typing the number does not get around it either.
    with pytest.raises(DoNotCall):
        await service.place_call(anna.actor, CallRequest(number="8 916 555 01 07"))
    async with session_factory() as session:
        assert await session.scalar(select(func.count()).select_from(Call)) == 0
    assert service.current_call(anna.user.id) is None
    await asyncio.sleep(0.1)
    assert test_line.calls_answered == 0


async def test_closed_tab_ends_the_call_after_the_grace_period(
    service: CallService,
    session_factory: async_sessionmaker[AsyncSession],
    bus: InProcessEventBus,
    people: People,
) -> None:
    anna = people.north_operator
    async with event_log(bus, anna.user.id) as log:
        live, bridge = await answered_browser_call(
            service, log, anna, CallRequest(number="+79165550108")
        )
        # A reconnect within the grace period keeps the call.
        bridge.detach()
        await asyncio.sleep(0.2)
        bridge = await service.attach_browser_audio(anna.actor, live.call_id)
        await asyncio.sleep(0.8)
        current = service.current_call(anna.user.id)
        assert current is not None
        assert current.state == "answered"
        # Gone for good: the call ends once the grace period is over.
        bridge.detach()
        ended = await log.wait_for("call.ended", seconds=5)
    assert ended.payload["cause"] == "browser_disconnected"
    row = await call_row(session_factory, live.call_id)
    assert (row.state, row.end_cause, row.hangup_by) == ("ended", "browser_disconnected", "system")


async def test_mute_sends_silence_and_only_the_operator_controls_audio(
    service: CallService,
    bus: InProcessEventBus,
    test_line: TestLine,
    people: People,
) -> None:
    anna = people.north_operator
    async with event_log(bus, anna.user.id) as log:
        live, bridge = await answered_browser_call(
            service, log, anna, CallRequest(number="+79165550109")
        )
        with pytest.raises(PermissionDenied):
            await service.set_muted(people.north_supervisor.actor, live.call_id, True)
        muted = await service.set_muted(anna.actor, live.call_id, True)
        assert muted.muted
        (line_call,) = test_line.answered_calls
        line_heard = bytearray()
        line_call.audio.add_tap(
            lambda direction, frame, _: (
                line_heard.extend(frame) if direction == "received" else None
            )
        )
        await push_paced(bridge.push_operator_frame, sweep(1.0))
        await asyncio.sleep(0.2)
        assert not any(line_heard)  # digital silence only
        unmuted = await service.set_muted(anna.actor, live.call_id, False)
        assert not unmuted.muted
        line_heard.clear()
        ours = sweep(1.0)
        await push_paced(bridge.push_operator_frame, ours)
        await asyncio.sleep(0.3)
        correlation = peers.chunked_correlation(
            peers.pcm_to_samples(ours), peers.pcm_to_samples(bytes(line_heard))
        )
        assert correlation >= 0.9
        await service.send_dtmf(anna.actor, live.call_id, "12#")
        await asyncio.sleep(0.8)
        assert line_call.dtmf_received == ["1", "2", "#"]
        # A supervisor of the team may hang the call up.
        await service.hang_up(people.north_supervisor.actor, live.call_id)
        ended = await log.wait_for("call.ended")
    assert ended.payload["hangup_by"] == "system"


async def test_close_hangs_up_every_call(
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    bus: InProcessEventBus,
    test_line: TestLine,
    people: People,
    tmp_path: Path,
) -> None:
    service = await CallService.start(
        settings, session_factory, bus, accounts=AccountChoice.single(test_line.account())
    )
    anna = people.north_operator
    async with event_log(bus, anna.user.id) as log:
        live, _ = await answered_browser_call(
            service, log, anna, CallRequest(number="+79165550110")
        )
        await service.close()
    row = await call_row(session_factory, live.call_id)
    assert (row.state, row.end_cause, row.hangup_by) == ("ended", "local_hangup", "system")
    with pytest.raises(Conflict):
        await service.place_call(anna.actor, CallRequest(number="+79165550111"))


async def test_calls_placed_and_hung_up_together_each_keep_every_transition(
    service: CallService,
    session_factory: async_sessionmaker[AsyncSession],
    bus: InProcessEventBus,
    test_line: TestLine,
    people: People,
) -> None:
    """Transitions of calls that wait for the database together are written together; each
    call still gets its own times, state and events, in order."""
    operators = [people.north_operator, people.north_operator_2, people.south_operator]
    async with contextlib.AsyncExitStack() as stack:
        logs = [
            await stack.enter_async_context(event_log(bus, operator.user.id))
            for operator in operators
        ]
        placed = await asyncio.gather(
            *(
                answered_browser_call(
                    service, log, operator, CallRequest(number=f"+7916555014{index}")
                )
                for index, (operator, log) in enumerate(zip(operators, logs, strict=True))
            )
        )
        await asyncio.gather(
            *(
                service.hang_up(operator.actor, live.call_id)
                for operator, (live, _bridge) in zip(operators, placed, strict=True)
            )
        )
        for log in logs:
            await log.wait_for("call.ended")
    for operator, log, (live, _bridge) in zip(operators, logs, placed, strict=True):
        row = await call_row(session_factory, live.call_id)
        assert (row.state, row.end_cause, row.hangup_by) == ("ended", "local_hangup", "operator")
        assert row.operator_id == operator.user.id
        assert row.dialing_at is not None
        assert row.answered_at is not None
        assert row.ended_at is not None
        assert row.dialing_at <= row.answered_at < row.ended_at
        kinds = [kind for kind in log.kinds() if kind != "call.recording"]
        assert kinds == ["call.created", "call.dialing", "call.answered", "call.ended"]
        assert all(
            event.payload["call_id"] == live.call_id
            for event in log.events
            if event.kind.startswith("call.")
        )
