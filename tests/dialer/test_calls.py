"""Calls: lifecycle from creation, matching by number, outcomes, visibility, interruption."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from dialer.calls import (
    CallQuery,
    attach_recording,
    create_call,
    find_call_by_sip_call_id,
    get_call,
    list_calls,
    mark_unfinished_calls_interrupted,
    purge_call,
    record_call_transition,
    set_call_outcome,
    soft_delete_call,
)
from dialer.contacts import ContactInput, PhoneInput, create_contact, get_contact
from dialer.errors import (
    Conflict,
    DoNotCall,
    InvalidTransition,
    NotFound,
    PermissionDenied,
    ValidationFailed,
)
from dialer.models import CallState
from tests.conftest import People

T0 = datetime(2026, 3, 2, 11, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


async def test_answered_call_lifecycle(session: AsyncSession, people: People) -> None:
    anna = people.north_operator
    contact = await create_contact(
        session, anna.actor, ContactInput(name="Клиент", phones=[PhoneInput("+7 916 123-45-67")])
    )
    call = await create_call(
        session, anna.actor, "8 (916) 123-45-67", account_name="trunk-1", campaign_id=7, now=at(0)
    )
    await session.commit()
    assert call.state == "created"
    assert call.contact_id == contact.id  # matched by number
    assert call.phone_e164 == "+79161234567"
    assert call.phone_raw == "8 (916) 123-45-67"
    assert call.operator_id == anna.user.id

    await record_call_transition(
        session, call.id, CallState.DIALING, at(0.1), sip_call_id="abc@host"
    )
    await record_call_transition(session, call.id, "ringing", at(1), sip_code=180)
    await record_call_transition(session, call.id, "ringing", at(1.5), sip_code=183)
    await record_call_transition(session, call.id, "answered", at(9), sip_code=200)
    await record_call_transition(
        session, call.id, "ended", at(69), hangup_by="remote", end_cause="normal_clearing"
    )
    await session.commit()
    session.expunge_all()
    ended = await get_call(session, anna.actor, call.id)
    assert ended.state == "ended"
    assert ended.ringing_at == at(1)
    assert ended.ring_seconds == pytest.approx(8.0)
    assert ended.talk_seconds == pytest.approx(60.0)
    assert ended.sip_code == 200
    assert ended.hangup_by == "remote"
    found = await find_call_by_sip_call_id(session, "abc@host")
    assert found is not None
    assert found.id == call.id
    with pytest.raises(InvalidTransition):
        await record_call_transition(session, call.id, "ringing", at(70))


async def test_failed_call_keeps_cause_and_code(session: AsyncSession, people: People) -> None:
    call = await create_call(session, people.north_operator.actor, "+79035550101", now=at(0))
    await record_call_transition(session, call.id, "ringing", at(2))
    await record_call_transition(
        session, call.id, "failed", at(32), sip_code=486, sip_reason="Busy Here", end_cause="busy"
    )
    await session.commit()
    assert call.state == "failed"
    assert call.ring_seconds == pytest.approx(30.0)
    assert call.talk_seconds == 0.0
    assert (call.sip_code, call.sip_reason, call.end_cause) == (486, "Busy Here", "busy")
    with pytest.raises(ValidationFailed):
        await record_call_transition(session, call.id, "exploded", at(33))


async def test_outcome_updates_the_contact(session: AsyncSession, people: People) -> None:
    anna = people.north_operator
    contact = await create_contact(
        session, anna.actor, ContactInput(name="Lead", phones=[PhoneInput("+79035550202")])
    )
    call = await create_call(session, anna.actor, "+79035550202", now=at(0))
    await record_call_transition(session, call.id, "answered", at(5))
    await record_call_transition(session, call.id, "ended", at(50))
    with pytest.raises(ValidationFailed):  # a callback needs a time
        await set_call_outcome(session, anna.actor, call.id, "callback", "перезвонить")
    follow_up = T0 + timedelta(days=1)
    await set_call_outcome(session, anna.actor, call.id, "callback", "перезвонить", follow_up)
    await session.commit()
    session.expunge_all()
    updated = await get_contact(session, anna.actor, contact.id)
    assert updated.status == "callback"
    assert updated.follow_up_at == follow_up
    assert updated.follow_up_note == "перезвонить"
    stored = await get_call(session, anna.actor, call.id)
    assert stored.outcome == "callback"
    assert stored.follow_up_at == follow_up


async def test_do_not_call_is_enforced_when_dialling(session: AsyncSession, people: People) -> None:
    anna = people.north_operator
    await create_contact(
        session,
        anna.actor,
        ContactInput(name="Refuser", phones=[PhoneInput("+79035550303")], status="do_not_call"),
    )
    with pytest.raises(DoNotCall):
        await create_call(session, anna.actor, "8 903 555-03-03")
    inbound = await create_call(session, None, "+79035550303", direction="inbound")  # type: ignore[arg-type]
    assert inbound.direction == "inbound"


async def test_call_visibility_per_role(session: AsyncSession, people: People) -> None:
    anna_call = await create_call(session, people.north_operator.actor, "+79035550401", now=at(0))
    boris_call = await create_call(
        session, people.north_operator_2.actor, "+79035550402", now=at(1)
    )
    vera_call = await create_call(session, people.south_operator.actor, "+79035550403", now=at(2))
    await session.commit()

    async def visible(who: str) -> list[int]:
        person = getattr(people, who)
        page = await list_calls(session, person.actor, CallQuery())
        return [call.id for call in page.items]

    assert await visible("north_operator") == [anna_call.id]
    assert await visible("north_supervisor") == [boris_call.id, anna_call.id]
    assert await visible("admin") == [vera_call.id, boris_call.id, anna_call.id]
    with pytest.raises(NotFound):
        await get_call(session, people.north_operator.actor, boris_call.id)
    since = await list_calls(session, people.admin.actor, CallQuery(since=at(1)))
    assert [call.id for call in since.items] == [vera_call.id, boris_call.id]


async def test_unfinished_calls_become_interrupted(session: AsyncSession, people: People) -> None:
    anna = people.north_operator
    talking = await create_call(session, anna.actor, "+79035550501", now=at(0))
    await record_call_transition(session, talking.id, "answered", at(3))
    ringing = await create_call(session, anna.actor, "+79035550502", now=at(0))
    await record_call_transition(session, ringing.id, "ringing", at(1))
    done = await create_call(session, anna.actor, "+79035550503", now=at(0))
    await record_call_transition(session, done.id, "ended", at(4))
    await session.commit()

    interrupted = await mark_unfinished_calls_interrupted(session, at(63))
    await session.commit()
    assert sorted(interrupted) == sorted([talking.id, ringing.id])
    session.expunge_all()
    talking_after = await get_call(session, anna.actor, talking.id)
    assert talking_after.state == "interrupted"
    assert talking_after.ended_at == at(63)
    assert talking_after.talk_seconds == pytest.approx(60.0)
    assert (await get_call(session, anna.actor, done.id)).state == "ended"
    assert await mark_unfinished_calls_interrupted(session, at(64)) == []


async def test_recordings_attach_to_calls(session: AsyncSession, people: People) -> None:
    call = await create_call(session, people.north_operator.actor, "+79035550601", now=at(0))
    await attach_recording(
        session,
        call.id,
        path="2026/03/02/1.ogg",
        codec="opus",
        size_bytes=1000,
        duration_seconds=60.0,
    )
    await session.commit()
    session.expunge_all()
    loaded = await get_call(session, people.north_operator.actor, call.id)
    assert [(r.path, r.codec) for r in loaded.recordings] == [("2026/03/02/1.ogg", "opus")]


async def test_delete_and_purge_are_for_admins(session: AsyncSession, people: People) -> None:
    anna = people.north_operator
    call = await create_call(session, anna.actor, "+79035550701", now=at(0))
    await record_call_transition(session, call.id, "ended", at(5))
    await attach_recording(
        session, call.id, path="x/1.ogg", codec="opus", size_bytes=10, duration_seconds=1.0
    )
    await session.commit()
    with pytest.raises(PermissionDenied):
        await soft_delete_call(session, anna.actor, call.id)
    await soft_delete_call(session, people.admin.actor, call.id)
    await session.commit()
    assert (await list_calls(session, anna.actor)).total == 0
    with pytest.raises(NotFound):
        await get_call(session, people.admin.actor, call.id)
    with pytest.raises(PermissionDenied):
        await purge_call(session, people.north_supervisor.actor, call.id)
    assert await purge_call(session, people.admin.actor, call.id) == ["x/1.ogg"]
    await session.commit()
    live = await create_call(session, anna.actor, "+79035550702", now=at(0))
    with pytest.raises(Conflict):
        await purge_call(session, people.admin.actor, live.id)
