"""Listen, whisper and barge on real calls to the test line (its prompt is a 450 Hz tone).

The operator speaks 700 Hz, the supervisor 1300 Hz; each test finds the tones by FFT in what
the supervisor, the operator's browser, the far end and the recording got.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.call_control import CallRequest, LiveCall
from dialer.errors import NotFound, PermissionDenied
from dialer.floor.monitoring import change_monitor_mode, start_monitoring
from dialer.live_events import InProcessEventBus
from dialer.models import AuditEvent
from dialer.settings import Settings
from dialer.telephony import CallAudioBridge, CallService
from dialer.telephony.monitor_hub import CallMonitor, MonitorMode
from sip.phone import Call
from sip.testline import TestLine
from tests.audio import decode_stereo, push_paced
from tests.conftest import People, Person
from tests.dialer.test_floor_support import (
    FAR_END_HZ,
    OPERATOR_HZ,
    SUPERVISOR_HZ,
    collect_mix,
    samples_of,
    tone,
    tone_strength,
    write_prompt,
)
from tests.dialer.test_telephony_support import (
    answered_browser_call,
    collect_frames,
    event_log,
    wait_for_recording,
)

PRESENT = 1000.0  # the tones are sent at amplitude 4000
ABSENT = 150.0


@pytest.fixture
def test_line_prompt(tmp_path: Path) -> Path:
    return write_prompt(tmp_path / "prompt.wav")


class OnCall:
    """An answered browser call: what the operator's browser and the far end received."""

    def __init__(self, live: LiveCall, bridge: CallAudioBridge, line_call: Call) -> None:
        self.live = live
        self.bridge = bridge
        self.browser_heard = bytearray()
        self.line_heard = bytearray()
        self.reader = asyncio.get_running_loop().create_task(
            collect_frames(bridge, self.browser_heard)
        )
        line_call.audio.add_tap(
            lambda direction, frame, _: (
                self.line_heard.extend(frame) if direction == "received" else None
            )
        )


async def answered_call(
    service: CallService, bus: InProcessEventBus, test_line: TestLine, operator: Person, number: str
) -> OnCall:
    async with event_log(bus, operator.user.id) as log:
        live, bridge = await answered_browser_call(
            service, log, operator, CallRequest(number=number)
        )
    return OnCall(live, bridge, test_line.answered_calls[-1])


async def monitor(
    session_factory: async_sessionmaker[AsyncSession],
    service: CallService,
    person: Person,
    call_id: int,
    mode: MonitorMode,
) -> CallMonitor:
    async with session_factory() as session:
        joined = await start_monitoring(session, service, person.actor, call_id, mode)
        await session.commit()
    return joined


async def audit_rows(session_factory: async_sessionmaker[AsyncSession]) -> list[AuditEvent]:
    async with session_factory() as session:
        statement = (
            select(AuditEvent).where(AuditEvent.action.like("monitor.%")).order_by(AuditEvent.id)
        )
        return list((await session.scalars(statement)).all())


async def finish(service: CallService, on_call: OnCall, operator: Person) -> None:
    await service.hang_up(operator.actor, on_call.live.call_id)
    await on_call.reader


async def test_listen_then_whisper_reaches_the_operator_only(
    service: CallService,
    session_factory: async_sessionmaker[AsyncSession],
    bus: InProcessEventBus,
    test_line: TestLine,
    people: People,
    settings: Settings,
) -> None:
    anna, boss = people.north_operator, people.north_supervisor
    on_call = await answered_call(service, bus, test_line, anna, "+79165550401")
    call_id = on_call.live.call_id
    listener = await monitor(session_factory, service, boss, call_id, "listen")
    heard = bytearray()
    reader = asyncio.get_running_loop().create_task(collect_mix(listener, heard))

    # Listen: the operator speaks while the far end still plays its prompt.
    operator_speaks = asyncio.get_running_loop().create_task(
        push_paced(on_call.bridge.push_operator_frame, tone(OPERATOR_HZ, 1.0))
    )
    # The supervisor's microphone goes nowhere while listening.
    await push_paced(listener.push_frame, tone(SUPERVISOR_HZ, 1.0))
    await operator_speaks
    await asyncio.sleep(0.2)
    listened = samples_of(bytes(heard))
    assert tone_strength(listened, OPERATOR_HZ) > PRESENT
    assert tone_strength(listened, FAR_END_HZ) > PRESENT
    assert tone_strength(listened, SUPERVISOR_HZ) < ABSENT

    # Whisper: the operator's browser hears the supervisor; the far end does not.
    async with session_factory() as session:
        assert await change_monitor_mode(session, boss.actor, listener, "whisper")
        await session.commit()
    browser_before = len(on_call.browser_heard)
    await push_paced(listener.push_frame, tone(SUPERVISOR_HZ, 1.2))
    await asyncio.sleep(0.3)
    whispered_to_operator = samples_of(bytes(on_call.browser_heard[browser_before:]))
    assert tone_strength(whispered_to_operator, SUPERVISOR_HZ) > PRESENT
    assert tone_strength(samples_of(bytes(on_call.line_heard)), OPERATOR_HZ) > PRESENT
    assert tone_strength(samples_of(bytes(on_call.line_heard)), SUPERVISOR_HZ) < ABSENT

    await finish(service, on_call, anna)
    await reader  # the supervisor's stream ends with the call
    assert listener.detached

    # The recording (operator left, far end right) never had the whisper.
    recording = await wait_for_recording(session_factory, call_id)
    left, right = decode_stereo(settings.recordings_dir / recording.path)
    assert tone_strength(left, OPERATOR_HZ) > PRESENT
    assert tone_strength(right, FAR_END_HZ) > PRESENT
    assert tone_strength(left, SUPERVISOR_HZ) < ABSENT
    assert tone_strength(right, SUPERVISOR_HZ) < ABSENT

    rows = await audit_rows(session_factory)
    assert [(row.action, row.target, row.actor_user_id) for row in rows] == [
        ("monitor.listen", f"call:{call_id}", boss.user.id),
        ("monitor.whisper", f"call:{call_id}", boss.user.id),
    ]
    assert rows[0].summary["operator_id"] == anna.user.id
    assert rows[1].summary["switched_from"] == "listen"


async def test_barge_reaches_the_far_end_and_comes_back_in_its_echo(
    service: CallService,
    session_factory: async_sessionmaker[AsyncSession],
    bus: InProcessEventBus,
    test_line: TestLine,
    people: People,
    settings: Settings,
) -> None:
    anna, admin = people.north_operator, people.admin
    on_call = await answered_call(service, bus, test_line, anna, "+79165550402")
    call_id = on_call.live.call_id
    barger = await monitor(session_factory, service, admin, call_id, "barge")
    heard = bytearray()
    reader = asyncio.get_running_loop().create_task(collect_mix(barger, heard))
    await asyncio.sleep(test_line.prompt_seconds + 0.1)  # the line echoes from here on
    browser_before = len(on_call.browser_heard)
    await push_paced(barger.push_frame, tone(SUPERVISOR_HZ, 1.2))
    await asyncio.sleep(0.4)

    assert tone_strength(samples_of(bytes(on_call.line_heard)), SUPERVISOR_HZ) > PRESENT
    # The operator hears the supervisor (mixed in) and the far end's echo of it.
    operator_heard = samples_of(bytes(on_call.browser_heard[browser_before:]))
    assert tone_strength(operator_heard, SUPERVISOR_HZ) > PRESENT
    # The supervisor hears the echo, i.e. the far end really got the voice.
    assert tone_strength(samples_of(bytes(heard)), SUPERVISOR_HZ) > PRESENT

    await finish(service, on_call, anna)
    await reader
    recording = await wait_for_recording(session_factory, call_id)
    left, right = decode_stereo(settings.recordings_dir / recording.path)
    assert tone_strength(left, SUPERVISOR_HZ) > PRESENT  # sent to the customer
    assert tone_strength(right, SUPERVISOR_HZ) > PRESENT  # the echo

    rows = await audit_rows(session_factory)
    assert [(row.action, row.target, row.actor_user_id) for row in rows] == [
        ("monitor.barge", f"call:{call_id}", admin.user.id)
    ]


async def test_only_supervisors_of_the_team_and_admins_may_monitor(
    service: CallService,
    session_factory: async_sessionmaker[AsyncSession],
    bus: InProcessEventBus,
    test_line: TestLine,
    people: People,
) -> None:
    anna = people.north_operator
    on_call = await answered_call(service, bus, test_line, anna, "+79165550403")
    call_id = on_call.live.call_id
    for operator in (anna, people.north_operator_2, people.south_operator):
        with pytest.raises(PermissionDenied):
            await monitor(session_factory, service, operator, call_id, "listen")
    with pytest.raises(NotFound):
        await monitor(session_factory, service, people.south_supervisor, call_id, "listen")
    # The operator's own side keeps working without supervisors: nothing is mixed in.
    await push_paced(on_call.bridge.push_operator_frame, tone(OPERATOR_HZ, 0.6))
    await asyncio.sleep(0.2)
    line_heard = samples_of(bytes(on_call.line_heard))
    assert tone_strength(line_heard, OPERATOR_HZ) > PRESENT
    await finish(service, on_call, anna)
    assert await audit_rows(session_factory) == []
    assert np.count_nonzero(samples_of(bytes(on_call.browser_heard))) > 0
