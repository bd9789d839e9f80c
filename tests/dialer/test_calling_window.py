"""The calling window: outbound calls only in the callee's local calling hours."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from dialer.calling_window import CallingWindow
from dialer.calls import create_call
from dialer.contacts import ContactInput, PhoneInput, create_contact
from dialer.errors import OutsideCallingWindow, ValidationFailed
from dialer.settings import load_settings
from tests.conftest import People

NINE_TO_NINE = CallingWindow.parse("09:00-21:00")
# 19:30 UTC is 22:30 in Moscow (UTC+3) and 02:30 in Novosibirsk (UTC+7): too late in both.
EVENING_UTC = datetime(2026, 11, 26, 19, 30, tzinfo=UTC)
# 07:00 UTC is 10:00 in Moscow and 14:00 in Novosibirsk.
MORNING_UTC = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)


def test_a_window_is_read_from_text_and_may_run_past_midnight() -> None:
    assert CallingWindow(time(9), time(21)) == NINE_TO_NINE
    assert str(NINE_TO_NINE) == "09:00-21:00"
    assert NINE_TO_NINE.allows(time(9, 0))
    assert NINE_TO_NINE.allows(time(20, 59))
    assert not NINE_TO_NINE.allows(time(21, 0))
    assert not NINE_TO_NINE.allows(time(3, 30))
    night_shift = CallingWindow.parse(" 22:00 - 06:30 ")
    assert night_shift.allows(time(23, 15))
    assert night_shift.allows(time(6, 0))
    assert not night_shift.allows(time(12, 0))


@pytest.mark.parametrize("text", ["9-21", "09:00-24:00", "10:00-10:00", "nine to nine", ""])
def test_a_bad_window_is_refused_with_its_reason(text: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        CallingWindow.parse(text)
    assert refused.value.field == "calling_window"


def test_the_window_comes_from_the_environment_and_a_bad_one_stops_the_start() -> None:
    assert load_settings({}).calling_window is None
    assert load_settings({"DIALER_CALLING_WINDOW": "09:00-21:00"}).calling_window == NINE_TO_NINE
    with pytest.raises(ValidationFailed):
        load_settings({"DIALER_CALLING_WINDOW": "9am-9pm"})


async def test_a_call_outside_the_callees_hours_is_refused_and_leaves_no_call(
    session: AsyncSession, people: People
) -> None:
    anna = people.north_operator
    moscow = await create_contact(
        session, anna.actor, ContactInput(name="Office", phones=[PhoneInput("+74951234567")])
    )
    assert moscow.timezone == "Europe/Moscow"  # from the landline's range

    with pytest.raises(OutsideCallingWindow) as refused:
        await create_call(
            session,
            anna.actor,
            "8 (495) 123-45-67",
            contact_id=moscow.id,
            calling_window=NINE_TO_NINE,
            now=EVENING_UTC,
        )
    assert (refused.value.local_time, refused.value.timezone) == ("22:30", "Europe/Moscow")
    assert "09:00-21:00" in str(refused.value)

    # A number typed without a contact: the zone of its range (Novosibirsk, 02:30).
    with pytest.raises(OutsideCallingWindow):
        await create_call(
            session, anna.actor, "+73832123456", calling_window=NINE_TO_NINE, now=EVENING_UTC
        )

    placed = await create_call(
        session,
        anna.actor,
        "+74951234567",
        contact_id=moscow.id,
        calling_window=NINE_TO_NINE,
        now=MORNING_UTC,
    )
    assert placed.contact_id == moscow.id


async def test_the_contacts_own_zone_wins_and_an_unknown_zone_is_not_held_back(
    session: AsyncSession, people: People
) -> None:
    anna = people.north_operator
    # A mobile number spans the country: no zone of its own, so it is not checked ...
    roaming = await create_contact(
        session, anna.actor, ContactInput(name="Mobile", phones=[PhoneInput("+79161234567")])
    )
    assert roaming.timezone is None
    await create_call(
        session, anna.actor, "+79161234567", calling_window=NINE_TO_NINE, now=EVENING_UTC
    )
    # ... unless the operator noted where the contact lives (Kaliningrad, UTC+2: 21:30).
    moved = await create_contact(
        session,
        anna.actor,
        ContactInput(
            name="Mobile in Kaliningrad",
            phones=[PhoneInput("+79167654321")],
            timezone="Europe/Kaliningrad",
        ),
    )
    with pytest.raises(OutsideCallingWindow) as refused:
        await create_call(
            session,
            anna.actor,
            "+79167654321",
            contact_id=moved.id,
            calling_window=NINE_TO_NINE,
            now=EVENING_UTC,
        )
    assert refused.value.timezone == "Europe/Kaliningrad"
    # Inbound calls are never held back, nor is anything without a window.
    await create_call(session, None, "+79167654321", direction="inbound", now=EVENING_UTC)  # type: ignore[arg-type]
    await create_call(session, anna.actor, "+79167654321", contact_id=moved.id, now=EVENING_UTC)
