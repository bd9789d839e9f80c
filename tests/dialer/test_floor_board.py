"""The wallboard: snapshot from the database, live events from the real call service."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.actors import Actor, Role
from dialer.call_control import CallRequest
from dialer.calls import create_call, record_call_transition, set_call_outcome
from dialer.contacts import ContactInput, PhoneInput, create_contact
from dialer.errors import PermissionDenied, ValidationFailed
from dialer.floor.board import FloorBoard, OperatorLine, board_snapshot
from dialer.live_events import InProcessEventBus
from dialer.models import CallState, HangupParty
from dialer.sessions import end_session, start_session
from dialer.telephony import CallService
from tests.conftest import People, Person, PersonMaker
from tests.dialer.test_floor_support import write_prompt
from tests.dialer.test_telephony_support import call_row, collect_frames, event_log


@pytest.fixture
def test_line_prompt(tmp_path: Path) -> Path:
    return write_prompt(tmp_path / "prompt.wav")


def state_of(line: OperatorLine) -> str:
    """The line's state, read afresh (events change it behind mypy's back)."""
    return line.state


async def log_in(session_factory: async_sessionmaker[AsyncSession], person: Person) -> str:
    async with session_factory() as session:
        token, _ = await start_session(session, person.user, "127.0.0.1")
        await session.commit()
    return token


async def snapshot(
    session_factory: async_sessionmaker[AsyncSession], actor: Actor, **options: object
) -> FloorBoard:
    async with session_factory() as session:
        return await board_snapshot(session, actor, **options)  # type: ignore[arg-type]


async def test_a_call_moves_the_board_from_idle_to_talking_to_wrap_up_to_idle(
    service: CallService,
    session_factory: async_sessionmaker[AsyncSession],
    bus: InProcessEventBus,
    people: People,
) -> None:
    anna, supervisor = people.north_operator, people.north_supervisor
    await log_in(session_factory, anna)
    async with session_factory() as session:
        contact = await create_contact(
            session,
            anna.actor,
            ContactInput(name="Ivan Smirnov", phones=[PhoneInput("+79165550201")]),
        )
        await session.commit()

    board = await snapshot(session_factory, supervisor.actor)
    assert set(board.lines) == {anna.user.id, people.north_operator_2.user.id}
    line = board.lines[anna.user.id]
    assert (line.state, line.calls_today, line.talk_seconds_today) == ("idle", 0, 0.0)
    assert board.lines[people.north_operator_2.user.id].state == "offline"

    seen: list[str] = []
    async with event_log(bus, supervisor.user.id) as log:
        applied = 0

        def catch_up() -> None:
            nonlocal applied
            for event in log.events[applied:]:
                changed = board.apply(event.kind, event.payload)
                if (
                    changed
                    and event.kind == "operator.state"
                    and (not seen or seen[-1] != line.state)
                ):
                    seen.append(line.state)
            applied = len(log.events)

        live = await service.place_call(anna.actor, CallRequest(contact_id=contact.id))
        bridge = await service.attach_browser_audio(anna.actor, live.call_id)
        reader = asyncio.get_running_loop().create_task(collect_frames(bridge, bytearray()))
        await log.wait_for("call.answered")
        catch_up()
        assert line.state == "talking"
        assert (line.call_id, line.contact_id) == (live.call_id, contact.id)
        assert line.contact_name == "Ivan Smirnov"
        assert line.calls_today == 1
        # A snapshot taken now agrees with the board the events built.
        during = (await snapshot(session_factory, supervisor.actor)).lines[anna.user.id]
        assert (during.state, during.call_id, during.contact_name) == (
            "talking",
            live.call_id,
            "Ivan Smirnov",
        )
        assert during.state_since == line.state_since

        await asyncio.sleep(1.0)
        await service.hang_up(anna.actor, live.call_id)
        await log.wait_for("call.ended")
        await reader
        catch_up()
        assert state_of(line) == "wrap-up"
        row = await call_row(session_factory, live.call_id)
        assert row.talk_seconds is not None
        assert row.talk_seconds > 0.9
        assert line.talk_seconds_today == pytest.approx(row.talk_seconds, abs=0.01)
        after_call = (await snapshot(session_factory, supervisor.actor)).lines[anna.user.id]
        assert (after_call.state, after_call.calls_today) == ("wrap-up", 1)
        assert after_call.talk_seconds_today == pytest.approx(row.talk_seconds, abs=0.01)

        # The outcome is saved; the operator is free again.
        async with session_factory() as session:
            await set_call_outcome(session, anna.actor, live.call_id, "no_answer")
            await session.commit()
        await service.finish_wrap_up(anna.user.id)
        await asyncio.sleep(0.05)
        catch_up()
    assert seen == ["dialing", "talking", "wrap-up", "idle"]
    assert (line.state, line.call_id, line.calls_today) == ("idle", None, 1)
    final = (await snapshot(session_factory, supervisor.actor)).lines[anna.user.id]
    assert (final.state, final.calls_today) == ("idle", 1)
    assert final.talk_seconds_today == pytest.approx(line.talk_seconds_today, abs=0.01)

    # Events seen twice (a reconnect's replay) change nothing.
    before = (line.calls_today, line.talk_seconds_today, line.state, line.state_since)
    for event in log.events:
        board.apply(event.kind, event.payload)
    assert (line.calls_today, line.talk_seconds_today, line.state, line.state_since) == before


async def _finished_call(
    session_factory: async_sessionmaker[AsyncSession],
    operator: Person,
    created: datetime,
    talk: float | None,
    *,
    outcome: str | None = "no_answer",
) -> int:
    """A call row of ``operator`` made at ``created``; answered for ``talk`` seconds or failed."""
    async with session_factory() as session:
        call = await create_call(session, operator.actor, "+79165550300", now=created)
        await record_call_transition(session, call.id, CallState.DIALING, created)
        if talk is None:
            await record_call_transition(
                session, call.id, CallState.FAILED, created + timedelta(seconds=20)
            )
        else:
            answered = created + timedelta(seconds=5)
            await record_call_transition(session, call.id, CallState.ANSWERED, answered)
            await record_call_transition(
                session,
                call.id,
                CallState.ENDED,
                answered + timedelta(seconds=talk),
                hangup_by=HangupParty.REMOTE,
            )
        if outcome is not None:
            await set_call_outcome(
                session, operator.actor, call.id, outcome, now=created + timedelta(minutes=2)
            )
        await session.commit()
        return call.id


async def test_counts_and_talk_time_are_those_of_today_in_the_boards_time_zone(
    session_factory: async_sessionmaker[AsyncSession], people: People
) -> None:
    anna, supervisor = people.north_operator, people.north_supervisor
    now = datetime(2024, 5, 10, 12, 0, tzinfo=UTC)
    await _finished_call(session_factory, anna, now - timedelta(days=1), 50.0)
    # 22:30 UTC the day before is already 01:30 today in Moscow.
    await _finished_call(session_factory, anna, datetime(2024, 5, 9, 22, 30, tzinfo=UTC), 40.0)
    await _finished_call(session_factory, anna, now - timedelta(hours=3), 30.0)
    last = await _finished_call(session_factory, anna, now - timedelta(hours=1), None, outcome=None)

    utc = await snapshot(session_factory, supervisor.actor, now=now)
    line = utc.lines[anna.user.id]
    assert utc.day_started_at == datetime(2024, 5, 10, tzinfo=UTC)
    assert (line.calls_today, line.talk_seconds_today) == (2, 30.0)
    # Not logged in: offline, even with an outcome still to give.
    assert (line.state, line.state_since, line.call_id) == ("offline", None, None)

    moscow = await snapshot(session_factory, supervisor.actor, now=now, timezone="Europe/Moscow")
    line = moscow.lines[anna.user.id]
    assert moscow.day_started_at == datetime(2024, 5, 9, 21, 0, tzinfo=UTC)
    assert (line.calls_today, line.talk_seconds_today) == (3, 70.0)

    async with session_factory() as session:
        await start_session(session, anna.user, "127.0.0.1", now - timedelta(minutes=5))
        await session.commit()
    logged_in = (await snapshot(session_factory, supervisor.actor, now=now)).lines[anna.user.id]
    assert (logged_in.state, logged_in.call_id) == ("wrap-up", last)
    assert logged_in.state_since == now - timedelta(hours=1) + timedelta(seconds=20)

    with pytest.raises(ValidationFailed):
        await snapshot(session_factory, supervisor.actor, timezone="Mars/Olympus")


async def test_supervisors_see_their_team_admins_everyone_operators_nothing(
    session_factory: async_sessionmaker[AsyncSession],
    people: People,
    make_person: PersonMaker,
) -> None:
    north = {people.north_operator.user.id, people.north_operator_2.user.id}
    south = {people.south_operator.user.id}
    loner = await make_person(Role.OPERATOR)  # in no team
    teamless_supervisor = await make_person(Role.SUPERVISOR)
    assert set((await snapshot(session_factory, people.north_supervisor.actor)).lines) == north
    assert set((await snapshot(session_factory, people.south_supervisor.actor)).lines) == south
    everyone = set((await snapshot(session_factory, people.admin.actor)).lines)
    assert everyone == north | south | {loner.user.id}
    assert (await snapshot(session_factory, teamless_supervisor.actor)).lines == {}
    with pytest.raises(PermissionDenied):
        await snapshot(session_factory, people.north_operator.actor)


async def test_a_logged_out_operator_is_offline_and_stale_events_are_ignored(
    session_factory: async_sessionmaker[AsyncSession], people: People
) -> None:
    anna, supervisor = people.north_operator, people.north_supervisor
    token = await log_in(session_factory, anna)
    board = await snapshot(session_factory, supervisor.actor)
    line = board.lines[anna.user.id]
    assert line.state == "idle"
    assert line.state_since is not None
    # An event from before the snapshot does not move the board back in time.
    stale = (line.state_since - timedelta(seconds=5)).isoformat()
    assert not board.apply(
        "operator.state",
        {"operator_id": anna.user.id, "state": "talking", "call_id": 5, "at": stale},
    )
    assert line.state == "idle"
    # Events about operators of another team are not for this board.
    assert not board.apply(
        "operator.state",
        {
            "operator_id": people.south_operator.user.id,
            "state": "talking",
            "at": datetime.now(UTC).isoformat(),
        },
    )
    async with session_factory() as session:
        await end_session(session, token)
        await session.commit()
    assert (await snapshot(session_factory, supervisor.actor)).lines[anna.user.id].state == (
        "offline"
    )
