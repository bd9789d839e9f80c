"""Server-side web sessions: hashed tokens, idle and absolute expiry, logout, allow-lists."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dialer.allowlists import set_user_allow_list
from dialer.errors import SessionExpired, SourceNotAllowed
from dialer.models import WebSession
from dialer.sessions import (
    LAST_SEEN_RESOLUTION,
    csrf_token_matches,
    end_session,
    resume_session,
    start_session,
)
from dialer.settings import Settings
from dialer.users import disable_user
from tests.conftest import People

LOGIN_TIME = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
IP = "10.0.0.5"


async def test_token_is_stored_hashed_and_resumes(
    session: AsyncSession, settings: Settings, people: People
) -> None:
    anna = people.north_operator.user
    token, csrf = await start_session(session, anna, IP, LOGIN_TIME, settings)
    await session.commit()
    stored = (await session.scalars(select(WebSession))).one()
    assert token not in stored.token_hash
    assert stored.token_hash != token
    user, web_session = await resume_session(
        session, token, IP, LOGIN_TIME + timedelta(minutes=5), settings
    )
    assert user.id == anna.id
    assert csrf_token_matches(web_session, csrf)
    assert not csrf_token_matches(web_session, csrf + "x")
    assert not csrf_token_matches(web_session, None)
    with pytest.raises(SessionExpired):
        await resume_session(session, token + "x", IP, LOGIN_TIME, settings)


async def test_idle_limit_is_measured_from_the_last_request(
    session: AsyncSession, settings: Settings, people: People
) -> None:
    token, _ = await start_session(session, people.north_operator.user, IP, LOGIN_TIME, settings)
    await session.commit()
    moment = LOGIN_TIME
    for _ in range(4):  # active every 25 minutes: stays alive for 100 minutes
        moment += timedelta(minutes=25)
        await resume_session(session, token, IP, moment, settings)
        await session.commit()
    with pytest.raises(SessionExpired):
        await resume_session(session, token, IP, moment + timedelta(minutes=30), settings)
    await session.commit()
    # Once expired it stays ended.
    with pytest.raises(SessionExpired):
        await resume_session(session, token, IP, moment + timedelta(minutes=1), settings)


async def test_requests_close_together_write_nothing_and_never_stretch_the_idle_limit(
    session: AsyncSession, settings: Settings, people: People
) -> None:
    """A page's many requests in a minute leave the session row alone (no write transaction
    for every request); the idle limit still runs from at most a minute before the last one."""
    token, _ = await start_session(session, people.north_operator.user, IP, LOGIN_TIME, settings)
    await session.commit()
    moment = LOGIN_TIME + timedelta(seconds=30)
    _, web_session = await resume_session(session, token, IP, moment, settings)
    assert not session.dirty
    assert web_session.last_seen_at == LOGIN_TIME
    moment = LOGIN_TIME + LAST_SEEN_RESOLUTION
    await resume_session(session, token, IP, moment, settings)
    assert web_session in session.dirty
    await session.commit()
    assert web_session.last_seen_at == moment
    # Requests every 50 s for an hour keep it alive; 30 minutes after the last one it is over.
    for _ in range(72):
        moment += timedelta(seconds=50)
        await resume_session(session, token, IP, moment, settings)
        await session.commit()
    with pytest.raises(SessionExpired):
        await resume_session(session, token, IP, moment + timedelta(minutes=30), settings)


async def test_absolute_lifetime_ends_even_an_active_session(
    session: AsyncSession, settings: Settings, people: People
) -> None:
    token, _ = await start_session(session, people.north_operator.user, IP, LOGIN_TIME, settings)
    await session.commit()
    for step in range(1, 36):  # a request every 20 minutes up to 11 h 40 min
        await resume_session(
            session, token, IP, LOGIN_TIME + step * timedelta(minutes=20), settings
        )
    with pytest.raises(SessionExpired):
        await resume_session(session, token, IP, LOGIN_TIME + timedelta(hours=12), settings)


async def test_logout_ends_the_session(
    session: AsyncSession, settings: Settings, people: People
) -> None:
    token, _ = await start_session(session, people.north_operator.user, IP, LOGIN_TIME, settings)
    await session.commit()
    assert await end_session(session, token, LOGIN_TIME + timedelta(minutes=1))
    await session.commit()
    assert not await end_session(session, token)
    with pytest.raises(SessionExpired):
        await resume_session(session, token, IP, LOGIN_TIME + timedelta(minutes=2), settings)


async def test_disabling_a_user_ends_their_sessions(
    session: AsyncSession, settings: Settings, people: People
) -> None:
    token, _ = await start_session(session, people.north_operator.user, IP, LOGIN_TIME, settings)
    await session.commit()
    await disable_user(session, people.admin.actor, people.north_operator.user.id)
    await session.commit()
    with pytest.raises(SessionExpired):
        await resume_session(session, token, IP, LOGIN_TIME + timedelta(minutes=1), settings)


async def test_allow_list_is_checked_on_resume(
    session: AsyncSession, settings: Settings, people: People
) -> None:
    anna = people.north_operator.user
    token, _ = await start_session(session, anna, IP, LOGIN_TIME, settings)
    await set_user_allow_list(session, people.admin.actor, anna.id, ["10.0.0.0/24"])
    await session.commit()
    await resume_session(session, token, "10.0.0.77", LOGIN_TIME, settings)
    with pytest.raises(SourceNotAllowed):
        await resume_session(session, token, "198.51.100.7", LOGIN_TIME, settings)
