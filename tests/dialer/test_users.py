"""Users and authentication: lockout, hourly cap, indistinguishable failures, allow-lists, TOTP."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.actors import Actor, Role
from dialer.allowlists import set_role_allow_list, set_user_allow_list
from dialer.audit import verify_audit_chain
from dialer.errors import (
    AccountLocked,
    AuthenticationFailed,
    Conflict,
    DialerError,
    NotFound,
    PermissionDenied,
    SecondFactorRequired,
    SourceNotAllowed,
    SourceThrottled,
    ValidationFailed,
)
from dialer.models import AuditEvent, User
from dialer.settings import Settings
from dialer.totp import totp_code_at
from dialer.users import (
    authenticate,
    create_user,
    disable_user,
    enroll_totp,
    get_user,
    list_users,
    reset_password,
    unlock_user,
)
from tests.conftest import People, Person, PersonMaker, with_settings

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
OFFICE_IP = "10.1.2.3"


async def _attempt(
    session: AsyncSession,
    settings: Settings,
    login: str,
    password: str,
    now: datetime,
    source_ip: str = OFFICE_IP,
    totp_code: str | None = None,
) -> User | DialerError:
    """One login attempt, committed whatever happens (as the web layer must)."""
    try:
        user = await authenticate(session, settings, login, password, source_ip, now, totp_code)
    except DialerError as error:
        await session.commit()
        return error
    await session.commit()
    return user


async def _actions(session: AsyncSession) -> list[str]:
    return list(await session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


async def test_right_password_logs_in_case_insensitively_and_is_audited(
    session: AsyncSession, settings: Settings, people: People
) -> None:
    result = await _attempt(session, settings, "ANNA", people.north_operator.password, START)
    assert isinstance(result, User)
    assert result.id == people.north_operator.user.id
    assert result.last_login_at == START
    assert (await _actions(session))[-1] == "user.login"


async def test_ten_failures_lock_even_the_right_password_until_the_period_ends(
    session: AsyncSession, settings: Settings, people: People
) -> None:
    anna = people.north_operator
    outcomes = [
        await _attempt(
            session, settings, anna.login, "wrong password", START + timedelta(seconds=i)
        )
        for i in range(10)
    ]
    assert all(type(outcome) is AuthenticationFailed for outcome in outcomes[:9])
    locked = outcomes[9]
    assert isinstance(locked, AccountLocked)
    assert locked.until == START + timedelta(seconds=9, minutes=settings.lockout_minutes)

    during = await _attempt(
        session, settings, anna.login, anna.password, START + timedelta(minutes=5)
    )
    assert isinstance(during, AccountLocked)

    after = await _attempt(session, settings, anna.login, anna.password, locked.until)
    assert isinstance(after, User)
    actions = await _actions(session)
    assert actions.count("user.login_failed") == 10
    assert "user.locked" in actions
    assert "user.login_refused" in actions


async def test_lock_counts_afresh_after_it_expires(
    session: AsyncSession, settings: Settings, people: People
) -> None:
    anna = people.north_operator
    for i in range(10):
        await _attempt(session, settings, anna.login, "nope-nope", START + timedelta(seconds=i))
    later = START + timedelta(minutes=30)
    first_after = await _attempt(session, settings, anna.login, "nope-nope", later)
    assert type(first_after) is AuthenticationFailed


async def test_admin_unlock_lets_the_user_in_at_once(
    session: AsyncSession, settings: Settings, people: People
) -> None:
    anna = people.north_operator
    for i in range(10):
        await _attempt(session, settings, anna.login, "wrong!wrong", START + timedelta(seconds=i))
    assert isinstance(
        await _attempt(session, settings, anna.login, anna.password, START + timedelta(minutes=1)),
        AccountLocked,
    )
    with pytest.raises(PermissionDenied):
        await unlock_user(session, people.north_supervisor.actor, anna.user.id)
    await unlock_user(session, people.admin.actor, anna.user.id)
    await session.commit()
    result = await _attempt(
        session, settings, anna.login, anna.password, START + timedelta(minutes=1)
    )
    assert isinstance(result, User)
    assert "user.unlock" in await _actions(session)


async def test_hourly_cap_locks_to_the_end_of_the_window(
    session: AsyncSession, settings: Settings, people: People
) -> None:
    # With a lockout threshold out of reach, only the per-hour cap applies.
    capped = with_settings(settings, lockout_threshold=10_000, max_failures_per_hour=100)
    anna = people.north_operator
    outcomes = [
        await _attempt(
            session, capped, anna.login, "bad-password", START + timedelta(seconds=20 * i)
        )
        for i in range(100)
    ]
    assert all(type(outcome) is AuthenticationFailed for outcome in outcomes[:99])
    assert isinstance(outcomes[99], AccountLocked)
    assert outcomes[99].until == START + timedelta(hours=1)
    right_but_capped = await _attempt(
        session, capped, anna.login, anna.password, START + timedelta(minutes=59)
    )
    assert isinstance(right_but_capped, AccountLocked)
    next_window = await _attempt(
        session, capped, anna.login, anna.password, START + timedelta(hours=1)
    )
    assert isinstance(next_window, User)


async def test_unknown_login_is_indistinguishable_from_a_wrong_password(
    session: AsyncSession, settings: Settings, people: People
) -> None:
    wrong = await _attempt(session, settings, "anna", "not her password", START)
    unknown = await _attempt(session, settings, "nobody-here", "not her password", START)
    assert type(wrong) is type(unknown) is AuthenticationFailed
    assert str(wrong) == str(unknown)
    # Unknown logins lock the same way, so locking reveals nothing either.
    outcomes = [
        await _attempt(session, settings, "nobody-here", "x" * 12, START + timedelta(seconds=i))
        for i in range(9)
    ]
    assert isinstance(outcomes[-1], AccountLocked)


async def test_disabled_account_fails_like_a_wrong_password(
    session: AsyncSession, settings: Settings, people: People
) -> None:
    anna = people.north_operator
    await disable_user(session, people.admin.actor, anna.user.id)
    await session.commit()
    disabled = await _attempt(session, settings, anna.login, anna.password, START)
    wrong = await _attempt(session, settings, "boris", "wrong password", START)
    assert type(disabled) is type(wrong) is AuthenticationFailed
    assert str(disabled) == str(wrong)
    await disable_user(session, people.admin.actor, anna.user.id, disabled=False)
    await session.commit()
    assert isinstance(await _attempt(session, settings, anna.login, anna.password, START), User)


async def test_source_ip_throttle_covers_every_login_from_that_address(
    session: AsyncSession, settings: Settings, people: People
) -> None:
    throttled = with_settings(settings, max_failures_per_source_per_hour=5)
    for index in range(5):
        await _attempt(
            session, throttled, f"guess-{index}", "password?", START, source_ip="203.0.113.9"
        )
    refused = await _attempt(
        session, throttled, "anna", people.north_operator.password, START, source_ip="203.0.113.9"
    )
    assert isinstance(refused, SourceThrottled)
    elsewhere = await _attempt(session, throttled, "anna", people.north_operator.password, START)
    assert isinstance(elsewhere, User)


async def test_user_and_role_allow_lists_are_checked_at_login(
    session: AsyncSession, settings: Settings, people: People
) -> None:
    anna = people.north_operator
    await set_user_allow_list(session, people.admin.actor, anna.user.id, ["10.1.0.0/16"])
    await session.commit()
    assert isinstance(await _attempt(session, settings, "anna", anna.password, START), User)
    refused = await _attempt(session, settings, "anna", anna.password, START, source_ip="192.0.2.1")
    assert isinstance(refused, SourceNotAllowed)

    await set_role_allow_list(session, people.admin.actor, Role.OPERATOR, ["10.1.2.0/24"])
    await session.commit()
    boris = people.north_operator_2
    assert isinstance(await _attempt(session, settings, "boris", boris.password, START), User)
    outside_role = await _attempt(
        session, settings, "boris", boris.password, START, source_ip="10.1.9.9"
    )
    assert isinstance(outside_role, SourceNotAllowed)
    # Another role has no list: any address.
    admin = await _attempt(
        session, settings, "admin", people.admin.password, START, source_ip="192.0.2.1"
    )
    assert isinstance(admin, User)
    with pytest.raises(ValidationFailed):
        await set_role_allow_list(session, people.admin.actor, Role.OPERATOR, ["not-a-network"])
    with pytest.raises(PermissionDenied):
        await set_role_allow_list(session, people.north_supervisor.actor, Role.OPERATOR, [])


async def test_totp_second_factor(
    session: AsyncSession, settings: Settings, people: People
) -> None:
    anna = people.north_operator
    secret, uri = await enroll_totp(session, anna.actor, settings, anna.user.id)
    await session.commit()
    assert uri.startswith("otpauth://totp/")
    stored = await session.get(User, anna.user.id)
    assert stored is not None
    assert stored.totp_secret_encrypted is not None
    assert secret not in stored.totp_secret_encrypted
    assert settings.secret_key_path.stat().st_mode & 0o777 == 0o600

    needs_code = await _attempt(session, settings, "anna", anna.password, START)
    assert isinstance(needs_code, SecondFactorRequired)
    wrong_code = await _attempt(session, settings, "anna", anna.password, START, totp_code="000000")
    right_code = totp_code_at(secret, START)
    if right_code == "000000":  # one chance in a million
        pytest.skip("the right code happened to be 000000")
    assert type(wrong_code) is AuthenticationFailed
    ok = await _attempt(session, settings, "anna", anna.password, START, totp_code=right_code)
    assert isinstance(ok, User)


async def test_user_management_rules(
    session: AsyncSession, settings: Settings, people: People, make_person: PersonMaker
) -> None:
    with pytest.raises(Conflict):
        await create_user(
            session,
            people.admin.actor,
            settings,
            login="Anna",
            password="long enough pw",
            display_name="Anna again",
            role=Role.OPERATOR,
        )
    await session.rollback()
    with pytest.raises(PermissionDenied):
        await create_user(
            session,
            people.north_supervisor.actor,
            settings,
            login="new-op",
            password="long enough pw",
            display_name="New",
            role=Role.OPERATOR,
        )
    with pytest.raises(ValidationFailed):
        await create_user(
            session,
            people.admin.actor,
            settings,
            login="short-pw",
            password="short",
            display_name="Short",
            role=Role.OPERATOR,
        )
    supervisor_view = {u.login for u in await list_users(session, people.north_supervisor.actor)}
    assert supervisor_view == {"north-boss", "anna", "boris"}
    operator_view = [u.login for u in await list_users(session, people.north_operator.actor)]
    assert operator_view == ["anna"]
    with pytest.raises(NotFound):
        await get_user(session, people.north_supervisor.actor, people.south_operator.user.id)

    # A reset password works at once and the old one stops working.
    anna = people.north_operator
    await reset_password(session, people.admin.actor, settings, anna.user.id, "brand new secret")
    await session.commit()
    assert isinstance(
        await _attempt(session, settings, "anna", anna.password, START), AuthenticationFailed
    )
    assert isinstance(await _attempt(session, settings, "anna", "brand new secret", START), User)
    assert await verify_audit_chain(session) == []


def test_actor_for_user_reads_role_and_team(people: People) -> None:
    actor = Actor.for_user(people.north_supervisor.user, "10.0.0.1")
    assert actor.role is Role.SUPERVISOR
    assert actor.team_id == people.north_operator.user.team_id
    assert isinstance(people.admin, Person)


async def test_concurrent_failures_are_all_counted(
    session_factory: async_sessionmaker[AsyncSession], settings: Settings, people: People
) -> None:
    async def fail_once(second: int) -> DialerError | User:
        async with session_factory() as session:
            return await _attempt(
                session, settings, "anna", "guess", START + timedelta(seconds=second)
            )

    outcomes = await asyncio.gather(*(fail_once(second) for second in range(10)))
    assert all(isinstance(outcome, AuthenticationFailed | AccountLocked) for outcome in outcomes)
    async with session_factory() as session:
        refused = await _attempt(
            session, settings, "anna", people.north_operator.password, START + timedelta(minutes=1)
        )
    assert isinstance(refused, AccountLocked)
