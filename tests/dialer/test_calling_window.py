"""The calling window: outbound calls only in the callee's local calling hours."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dialer.calling_window import CallingHours, CallingWindow
from dialer.calls import create_call
from dialer.contacts import ContactInput, PhoneInput, create_contact
from dialer.errors import OutsideCallingWindow, ValidationFailed
from dialer.models import Call
from dialer.settings import load_settings
from tests.conftest import People

NINE_TO_NINE = CallingHours.parse("09:00-21:00")
# Thursday 26 November 2026. 19:30 UTC is 22:30 in Moscow (UTC+3) and 02:30 on Friday in
# Novosibirsk (UTC+7): too late in both.
EVENING_UTC = datetime(2026, 11, 26, 19, 30, tzinfo=UTC)
# 07:00 UTC is 10:00 in Moscow and 14:00 in Novosibirsk.
MORNING_UTC = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)


def local(day: int, hour: int, minute: int = 0) -> datetime:
    """A wall-clock moment in the week of 23 November 2026 (``day`` 0 = Monday)."""
    return datetime(2026, 11, 23 + day, hour, minute)


def test_a_window_is_read_from_text_and_may_run_past_midnight() -> None:
    nine_to_nine = CallingWindow.parse("09:00-21:00")
    assert CallingWindow(time(9), time(21)) == nine_to_nine
    assert str(nine_to_nine) == "09:00-21:00"
    assert nine_to_nine.allows(time(9, 0))
    assert nine_to_nine.allows(time(20, 59))
    assert not nine_to_nine.allows(time(21, 0))
    assert not nine_to_nine.allows(time(3, 30))
    night_shift = CallingWindow.parse(" 22:00 - 06:30 ")
    assert night_shift.allows(time(23, 15))
    assert night_shift.allows(time(6, 0))
    assert not night_shift.allows(time(12, 0))


def test_hours_by_day_of_the_week_as_debt_collection_rules_have_them() -> None:
    hours = CallingHours.parse("mon-fri 08:00-22:00; sat-sun 09:00-20:00")
    assert hours.allows(local(0, 8, 0))  # Monday 08:00
    assert hours.allows(local(4, 21, 59))  # Friday 21:59
    assert not hours.allows(local(5, 8, 30))  # Saturday 08:30: weekend hours start at 9
    assert hours.allows(local(6, 19, 0))
    assert not hours.allows(local(6, 20, 0))
    assert (hours.describe(2), hours.describe(6)) == ("08:00-22:00", "09:00-20:00")

    office = CallingHours.parse("MON-FRI 09:00-18:00")  # no rule for the weekend: no calls
    assert office.allows(local(3, 12))
    assert not office.allows(local(5, 12))
    assert office.describe(5) == "no calls"

    # A rule without days covers the others; a day range may wrap round the week.
    mixed = CallingHours.parse("10:00-19:00; fri-mon 11:00-16:00")
    assert [mixed.describe(day) for day in range(7)] == [
        "11:00-16:00",
        "10:00-19:00",
        "10:00-19:00",
        "10:00-19:00",
        "11:00-16:00",
        "11:00-16:00",
        "11:00-16:00",
    ]
    assert NINE_TO_NINE.days == (CallingWindow.parse("09:00-21:00"),) * 7


@pytest.mark.parametrize(
    "text",
    [
        "9-21",
        "09:00-24:00",
        "10:00-10:00",
        "nine to nine",
        "",
        " ; ",
        "mon-fry 09:00-18:00",
        "mon 09:00-18:00; mon 10:00-12:00",
        "09:00-18:00; 10:00-12:00",
    ],
)
def test_bad_hours_are_refused_with_their_reason(text: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        CallingHours.parse(text)
    assert refused.value.field == "calling_window"


def test_the_hours_come_from_the_environment_and_bad_ones_stop_the_start() -> None:
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
    assert (refused.value.local_time, refused.value.timezone) == ("Thu 22:30", "Europe/Moscow")
    assert "09:00-21:00" in str(refused.value)

    # A number typed without a contact: the zone of its range (Novosibirsk, Friday 02:30).
    with pytest.raises(OutsideCallingWindow) as refused:
        await create_call(
            session, anna.actor, "+73832123456", calling_window=NINE_TO_NINE, now=EVENING_UTC
        )
    assert refused.value.local_time == "Fri 02:30"
    assert await session.scalar(select(func.count()).select_from(Call)) == 0

    placed = await create_call(
        session,
        anna.actor,
        "+74951234567",
        contact_id=moscow.id,
        calling_window=NINE_TO_NINE,
        now=MORNING_UTC,
    )
    assert placed.contact_id == moscow.id
    # Weekdays only: the same morning hour on a Saturday is refused.
    with pytest.raises(OutsideCallingWindow) as refused:
        await create_call(
            session,
            anna.actor,
            "+74951234567",
            contact_id=moscow.id,
            calling_window=CallingHours.parse("mon-fri 09:00-21:00"),
            now=datetime(2026, 11, 28, 7, 0, tzinfo=UTC),
        )
    assert "no calls" in str(refused.value)


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
