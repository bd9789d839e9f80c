"""Server-side web sessions.

The browser holds a random token; the database holds only its SHA-256. Each session has a CSRF
token, an absolute lifetime (12 h by default) and an idle limit (30 min by default); the
allow-lists are checked again on every resume.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dialer.actors import Actor
from dialer.allowlists import source_allowed
from dialer.audit import append_audit_event
from dialer.errors import SessionExpired, SourceNotAllowed
from dialer.models import User, WebSession, utc_now
from dialer.storage import begin_read_only

TOKEN_BYTES = 32
# How stale a session's last_seen_at may be before a request writes it again.
LAST_SEEN_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class SessionLimits:
    """Lifetimes; ``dialer.settings.Settings`` has the same two attributes and may be passed."""

    session_absolute_hours: float = 12
    session_idle_minutes: float = 30


DEFAULT_SESSION_LIMITS = SessionLimits()


class SessionLimitsLike(Protocol):
    @property
    def session_absolute_hours(self) -> float: ...
    @property
    def session_idle_minutes(self) -> float: ...


class ResumeNeedsWriteError(Exception):
    """``resume_session(..., read_only=True)`` would write: resume in a write transaction."""


def hash_token(token: str) -> str:
    """The SHA-256 hex digest stored for a session token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


async def start_session(
    session: AsyncSession,
    user: User,
    source_ip: str | None,
    now: datetime | None = None,
    limits: SessionLimitsLike = DEFAULT_SESSION_LIMITS,
) -> tuple[str, str]:
    """Open a session for an authenticated user: returns (token for the cookie, csrf_token)."""
    now = now if now is not None else utc_now()
    token = secrets.token_urlsafe(TOKEN_BYTES)
    csrf_token = secrets.token_urlsafe(TOKEN_BYTES)
    session.add(
        WebSession(
            token_hash=hash_token(token),
            csrf_token=csrf_token,
            user_id=user.id,
            source_ip=source_ip,
            created_at=now,
            last_seen_at=now,
            expires_at=now + timedelta(hours=limits.session_absolute_hours),
        )
    )
    return token, csrf_token


async def _find(session: AsyncSession, token: str) -> WebSession | None:
    return (
        await session.scalars(select(WebSession).where(WebSession.token_hash == hash_token(token)))
    ).one_or_none()


async def resume_session(
    session: AsyncSession,
    token: str,
    source_ip: str | None,
    now: datetime | None = None,
    limits: SessionLimitsLike = DEFAULT_SESSION_LIMITS,
    *,
    read_only: bool = False,
) -> tuple[User, WebSession]:
    """The user and session of a cookie token, refreshing its idle timer.

    The timer is written at most once per ``LAST_SEEN_RESOLUTION``: most requests then write
    nothing, so on SQLite they never queue for the one write lock behind calls being recorded
    (a session may go idle up to that much early, never late).

    Raises SessionExpired (unknown, ended, idle past the limit, past its absolute lifetime, or the
    user is disabled) or SourceNotAllowed (the allow-lists refuse ``source_ip``). An expired or
    refused session is ended in the session: commit after these errors too.

    ``read_only``: for a read-only transaction (``dialer.storage.begin_read_only``), which never
    waits for SQLite's write lock: raises ResumeNeedsWriteError, before changing anything, when
    resuming would write (the idle timer is due, or the session ends or is refused); resume
    again in an ordinary transaction then.
    """
    now = now if now is not None else utc_now()
    web_session = await _find(session, token) if token else None
    if web_session is None or web_session.ended_at is not None:
        raise SessionExpired()
    idle_limit = timedelta(minutes=limits.session_idle_minutes)
    reason: str | None = None
    if now >= web_session.expires_at:
        reason = "absolute_timeout"
    elif now - web_session.last_seen_at >= idle_limit:
        reason = "idle_timeout"
    user = await session.get(User, web_session.user_id)
    if reason is None and (user is None or user.disabled):
        reason = "user_disabled"
    if reason is not None:
        if read_only:
            raise ResumeNeedsWriteError()
        web_session.ended_at = now
        web_session.end_reason = reason
        raise SessionExpired()
    assert user is not None
    if not await source_allowed(session, user, source_ip):
        if read_only:
            raise ResumeNeedsWriteError()
        await append_audit_event(
            session,
            Actor.for_user(user, source_ip),
            "session.refused",
            f"user:{user.id}",
            {"reason": "source_not_allowed", "session_id": web_session.id},
            source_ip,
            now=now,
            actor_login=user.login,
        )
        raise SourceNotAllowed(source_ip)
    if now - web_session.last_seen_at >= LAST_SEEN_RESOLUTION:
        if read_only:
            raise ResumeNeedsWriteError()
        web_session.last_seen_at = now
    return user, web_session


async def resume_session_reading_first(
    session: AsyncSession,
    token: str,
    source_ip: str | None,
    now: datetime,
    limits: SessionLimitsLike = DEFAULT_SESSION_LIMITS,
) -> tuple[User, WebSession]:
    """``resume_session`` in a read-only transaction (no wait for SQLite's write lock), again
    in an ordinary one only when resuming writes (the idle timer is due, or the session ends or
    is refused). ``session`` must have no transaction under way; the caller commits, after
    SessionExpired and SourceNotAllowed too."""
    await begin_read_only(session)
    try:
        return await resume_session(session, token, source_ip, now, limits, read_only=True)
    except ResumeNeedsWriteError:
        await session.rollback()
        return await resume_session(session, token, source_ip, now, limits)


def csrf_token_matches(web_session: WebSession, submitted: str | None) -> bool:
    """Constant-time comparison of a submitted CSRF token with the session's."""
    if not submitted:
        return False
    return hmac.compare_digest(web_session.csrf_token.encode(), submitted.encode())


async def end_session(session: AsyncSession, token: str, now: datetime | None = None) -> bool:
    """Log out: end the session of ``token``. False if there was no live session."""
    now = now if now is not None else utc_now()
    result = await session.execute(
        update(WebSession)
        .where(WebSession.token_hash == hash_token(token), WebSession.ended_at.is_(None))
        .values(ended_at=now, end_reason="logout")
    )
    return bool(getattr(result, "rowcount", 0))
