"""Failed-login throttling per login name and per source IP (``LoginThrottle`` rows).

Per login name (whether or not the login exists, so lockouts reveal nothing): after
``lockout_threshold`` consecutive failures the name is locked for ``lockout_minutes``; at most
``max_failures_per_hour`` failures per hour window, then locked to the window's end. Per source IP:
at most ``max_failures_per_source_per_hour`` failures per hour window. A success resets the
consecutive count of the login name only.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from dialer.errors import AccountLocked, SourceThrottled
from dialer.models import LoginThrottle
from dialer.settings import Settings

ACCOUNT = "account"
SOURCE = "source"
WINDOW = timedelta(hours=1)


def login_key(login: str) -> str:
    """The case-insensitive key of a login name."""
    return login.strip().casefold()[:100]


async def _throttle(session: AsyncSession, kind: str, key: str) -> LoginThrottle | None:
    return (
        await session.scalars(
            select(LoginThrottle).where(LoginThrottle.kind == kind, LoginThrottle.key == key)
        )
    ).one_or_none()


async def check_not_throttled(
    session: AsyncSession, login: str, source_ip: str | None, now: datetime
) -> None:
    """Raise SourceThrottled or AccountLocked if attempts are refused right now."""
    if source_ip is not None:
        source = await _throttle(session, SOURCE, source_ip)
        if source is not None and source.locked_until is not None and source.locked_until > now:
            raise SourceThrottled(source.locked_until)
    account = await _throttle(session, ACCOUNT, login_key(login))
    if account is not None and account.locked_until is not None and account.locked_until > now:
        raise AccountLocked(account.locked_until)


async def account_locked_until(session: AsyncSession, login: str, now: datetime) -> datetime | None:
    """When the login name's lock ends, or None if it is not locked at ``now``."""
    account = await _throttle(session, ACCOUNT, login_key(login))
    if account is not None and account.locked_until is not None and account.locked_until > now:
        return account.locked_until
    return None


async def _locked_throttle(session: AsyncSession, kind: str, key: str) -> LoginThrottle:
    """The counter row, created if missing, locked until the transaction ends.

    The insert-or-nothing comes first so that concurrent failures neither collide on the unique
    key nor lose increments: it takes SQLite's write lock, and on PostgreSQL the row is then
    selected FOR UPDATE.
    """
    insert = sqlite_insert if session.get_bind().dialect.name == "sqlite" else postgresql_insert
    await session.execute(
        insert(LoginThrottle)
        .values(kind=kind, key=key, consecutive_failures=0, window_failures=0)
        .on_conflict_do_nothing(index_elements=["kind", "key"])
    )
    throttle = (
        await session.scalars(
            select(LoginThrottle)
            .where(LoginThrottle.kind == kind, LoginThrottle.key == key)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).one()
    return throttle


def _count_failure(throttle: LoginThrottle, now: datetime) -> None:
    if throttle.window_started_at is None or now - throttle.window_started_at >= WINDOW:
        throttle.window_started_at = now
        throttle.window_failures = 0
    throttle.window_failures += 1
    throttle.consecutive_failures += 1
    throttle.last_failure_at = now


async def record_failure(
    session: AsyncSession, settings: Settings, login: str, source_ip: str | None, now: datetime
) -> datetime | None:
    """Count one failed attempt; returns the new lock end if this failure locked the login."""
    key = login_key(login)
    account = await _locked_throttle(session, ACCOUNT, key)
    if account.locked_until is not None and account.locked_until <= now:
        # The previous lock ran out: start counting afresh.
        account.locked_until = None
        account.consecutive_failures = 0
    _count_failure(account, now)
    locked_until: datetime | None = None
    if account.consecutive_failures >= settings.lockout_threshold:
        locked_until = now + timedelta(minutes=settings.lockout_minutes)
    if account.window_failures >= settings.max_failures_per_hour:
        assert account.window_started_at is not None
        window_end = account.window_started_at + WINDOW
        locked_until = max(locked_until or window_end, window_end)
    if locked_until is not None:
        account.locked_until = locked_until
    if source_ip is not None:
        source = await _locked_throttle(session, SOURCE, source_ip)
        _count_failure(source, now)
        if source.window_failures >= settings.max_failures_per_source_per_hour:
            assert source.window_started_at is not None
            source.locked_until = source.window_started_at + WINDOW
    await session.flush()
    return locked_until


async def record_success(session: AsyncSession, login: str) -> None:
    """Reset the consecutive-failure count of the login name (the hourly window stays)."""
    account = await _throttle(session, ACCOUNT, login_key(login))
    if account is not None:
        account.consecutive_failures = 0
        account.locked_until = None


async def clear_account_throttle(session: AsyncSession, login: str) -> bool:
    """Forget every failure of the login name (admin unlock). True if there was any."""
    result = await session.execute(
        delete(LoginThrottle).where(
            LoginThrottle.kind == ACCOUNT, LoginThrottle.key == login_key(login)
        )
    )
    return bool(getattr(result, "rowcount", 0))
