"""Users and teams: management (admins, or the system via the CLI) and authentication.

``authenticate`` verifies an argon2id password with throttling per login name and source IP,
the optional TOTP second factor, and the allow-lists, and audits every outcome. It raises the
same ``AuthenticationFailed`` (same message) for an unknown login, a wrong password and a
disabled account, and verifies a dummy hash for unknown logins so the work done is the same.

Failed attempts change ``LoginThrottle`` rows and append audit events before raising: the
caller must commit the session even when ``authenticate`` raises.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dialer import throttling
from dialer.actors import Actor, Role
from dialer.allowlists import parse_networks, source_allowed
from dialer.audit import append_audit_event
from dialer.errors import (
    AccountLocked,
    AuthenticationFailed,
    Conflict,
    NotFound,
    PermissionDenied,
    SecondFactorRequired,
    SourceNotAllowed,
    ValidationFailed,
)
from dialer.models import Team, User, WebSession, utc_now
from dialer.passwords import (
    dummy_hash,
    hash_password_in_thread,
    needs_rehash,
    password_hasher,
    verify_password_in_thread,
)
from dialer.settings import Settings
from dialer.totp import (
    decrypt_totp_secret,
    encrypt_totp_secret,
    new_totp_secret,
    provisioning_uri,
    totp_code_valid,
)

MAXIMUM_LOGIN_LENGTH = 100


def _require_admin(actor: Actor | None) -> None:
    if actor is not None and not actor.is_admin:
        raise PermissionDenied("only admins manage users")


def _login_key(login: str) -> str:
    return login.strip().casefold()


# --- teams -------------------------------------------------------------------------------------


async def create_team(session: AsyncSession, actor: Actor | None, name: str) -> Team:
    """A new team (admin or system). Conflict if the name exists (case-insensitive)."""
    _require_admin(actor)
    name = name.strip()
    if not name:
        raise ValidationFailed("name", "is empty")
    if await find_team(session, name) is not None:
        raise Conflict(f"team {name!r} exists")
    team = Team(name=name, created_at=utc_now())
    session.add(team)
    await session.flush()
    await append_audit_event(session, actor, "team.create", f"team:{team.id}", {"name": name})
    return team


async def find_team(session: AsyncSession, name: str) -> Team | None:
    return (
        await session.scalars(select(Team).where(func.lower(Team.name) == name.strip().lower()))
    ).first()


async def list_teams(session: AsyncSession) -> Sequence[Team]:
    return (await session.scalars(select(Team).order_by(Team.name))).all()


# --- users -------------------------------------------------------------------------------------


async def create_user(
    session: AsyncSession,
    actor: Actor | None,
    settings: Settings,
    *,
    login: str,
    password: str,
    display_name: str,
    role: Role,
    team_id: int | None = None,
    phone_extension: str | None = None,
    allowed_networks: Iterable[str] = (),
) -> User:
    """A new user (admin or system). Login is unique case-insensitively (Conflict)."""
    _require_admin(actor)
    login = login.strip()
    if not login or len(login) > MAXIMUM_LOGIN_LENGTH or any(c.isspace() for c in login):
        raise ValidationFailed("login", "1 to 100 characters without spaces")
    role = Role(role)
    if await find_user_by_login(session, login) is not None:
        raise Conflict(f"login {login!r} is taken")
    if team_id is not None and await session.get(Team, team_id) is None:
        raise ValidationFailed("team_id", f"no team {team_id}")
    now = utc_now()
    user = User(
        login=login,
        login_key=_login_key(login),
        display_name=display_name.strip() or login,
        role=role.value,
        team_id=team_id,
        password_hash=await hash_password_in_thread(password, settings),
        password_changed_at=now,
        allowed_networks=parse_networks(allowed_networks),
        disabled=False,
        phone_extension=phone_extension,
        created_at=now,
        updated_at=now,
    )
    session.add(user)
    await session.flush()
    await append_audit_event(
        session,
        actor,
        "user.create",
        f"user:{user.id}",
        {"login": login, "role": role.value, "team_id": team_id},
    )
    return user


async def find_user_by_login(session: AsyncSession, login: str) -> User | None:
    return (
        await session.scalars(select(User).where(User.login_key == _login_key(login)))
    ).one_or_none()


async def get_user(session: AsyncSession, actor: Actor | None, user_id: int) -> User:
    """A user visible to the actor: self, own team for supervisors, anyone for admins."""
    user = await session.get(User, user_id)
    if user is None or not _may_see_user(actor, user):
        raise NotFound(f"user {user_id}")
    return user


def _may_see_user(actor: Actor | None, user: User) -> bool:
    if actor is None or actor.is_admin or actor.user_id == user.id:
        return True
    return actor.is_supervisor and actor.team_id is not None and actor.team_id == user.team_id


async def list_users(
    session: AsyncSession, actor: Actor | None, *, include_disabled: bool = True
) -> Sequence[User]:
    """Users by login: all for admins, the team for supervisors, oneself for operators."""
    statement = select(User).order_by(User.login_key)
    if actor is not None and not actor.is_admin:
        if actor.is_supervisor and actor.team_id is not None:
            statement = statement.where(User.team_id == actor.team_id)
        else:
            statement = statement.where(User.id == actor.user_id)
    if not include_disabled:
        statement = statement.where(User.disabled.is_(False))
    return (await session.scalars(statement)).all()


async def update_user(
    session: AsyncSession,
    actor: Actor | None,
    user_id: int,
    *,
    display_name: str | None = None,
    role: Role | None = None,
    team_id: int | None = None,
    clear_team: bool = False,
    phone_extension: str | None = None,
) -> User:
    """Change profile fields (admin or system); None leaves a field unchanged."""
    _require_admin(actor)
    user = await get_user(session, actor, user_id)
    changes: dict[str, object] = {}
    if display_name is not None and display_name.strip() != user.display_name:
        user.display_name = display_name.strip()
        changes["display_name"] = user.display_name
    if role is not None and Role(role).value != user.role:
        user.role = Role(role).value
        changes["role"] = user.role
    if clear_team or (team_id is not None and team_id != user.team_id):
        if team_id is not None and await session.get(Team, team_id) is None:
            raise ValidationFailed("team_id", f"no team {team_id}")
        user.team_id = None if clear_team else team_id
        changes["team_id"] = user.team_id
    if phone_extension is not None and phone_extension != user.phone_extension:
        user.phone_extension = phone_extension or None
        changes["phone_extension"] = user.phone_extension
    if changes:
        user.updated_at = utc_now()
        await append_audit_event(session, actor, "user.update", f"user:{user.id}", changes)
    return user


async def end_user_sessions(
    session: AsyncSession, user_id: int, now: datetime, reason: str
) -> None:
    """End every live web session of a user."""
    await session.execute(
        update(WebSession)
        .where(WebSession.user_id == user_id, WebSession.ended_at.is_(None))
        .values(ended_at=now, end_reason=reason)
    )


async def disable_user(
    session: AsyncSession, actor: Actor | None, user_id: int, *, disabled: bool = True
) -> User:
    """Disable (or with ``disabled=False`` re-enable) a user; disabling ends their sessions."""
    _require_admin(actor)
    user = await get_user(session, actor, user_id)
    if actor is not None and actor.user_id == user_id and disabled:
        raise Conflict("admins cannot disable themselves")
    now = utc_now()
    user.disabled = disabled
    user.updated_at = now
    if disabled:
        await end_user_sessions(session, user_id, now, "user_disabled")
    action = "user.disable" if disabled else "user.enable"
    await append_audit_event(session, actor, action, f"user:{user.id}", {"login": user.login})
    return user


async def unlock_user(session: AsyncSession, actor: Actor | None, user_id: int) -> User:
    """Clear the failed-login lock and counters of a user (admin or system; audited)."""
    _require_admin(actor)
    user = await get_user(session, actor, user_id)
    had_failures = await throttling.clear_account_throttle(session, user.login)
    await append_audit_event(
        session,
        actor,
        "user.unlock",
        f"user:{user.id}",
        {"login": user.login, "had_failures": had_failures},
    )
    return user


async def reset_password(
    session: AsyncSession, actor: Actor | None, settings: Settings, user_id: int, password: str
) -> User:
    """Set a new password (admin or system), end the user's sessions, clear the lock."""
    _require_admin(actor)
    user = await get_user(session, actor, user_id)
    now = utc_now()
    user.password_hash = await hash_password_in_thread(password, settings)
    user.password_changed_at = now
    user.updated_at = now
    await end_user_sessions(session, user_id, now, "password_reset")
    await throttling.clear_account_throttle(session, user.login)
    await append_audit_event(
        session, actor, "user.reset_password", f"user:{user.id}", {"login": user.login}
    )
    return user


async def change_own_password(
    session: AsyncSession,
    actor: Actor,
    settings: Settings,
    current_password: str,
    new_password: str,
) -> User:
    """A user changes their own password; AuthenticationFailed if ``current_password`` is wrong."""
    user = await get_user(session, actor, actor.user_id)
    if not await verify_password_in_thread(user.password_hash, current_password, settings):
        raise AuthenticationFailed()
    now = utc_now()
    user.password_hash = await hash_password_in_thread(new_password, settings)
    user.password_changed_at = now
    user.updated_at = now
    await append_audit_event(session, actor, "user.change_password", f"user:{user.id}", {})
    return user


async def enroll_totp(
    session: AsyncSession, actor: Actor | None, settings: Settings, user_id: int
) -> tuple[str, str]:
    """Give a user a new TOTP secret (self, admin or system): returns (secret, otpauth URI)."""
    if actor is not None and actor.user_id != user_id:
        _require_admin(actor)
    user = await get_user(session, actor, user_id)
    secret = new_totp_secret()
    user.totp_secret_encrypted = encrypt_totp_secret(settings, secret)
    user.updated_at = utc_now()
    await append_audit_event(session, actor, "user.totp_enroll", f"user:{user.id}", {})
    return secret, provisioning_uri(secret, user.login)


async def remove_totp(session: AsyncSession, actor: Actor | None, user_id: int) -> User:
    """Remove a user's second factor (admin or system)."""
    _require_admin(actor)
    user = await get_user(session, actor, user_id)
    user.totp_secret_encrypted = None
    user.updated_at = utc_now()
    await append_audit_event(session, actor, "user.totp_remove", f"user:{user.id}", {})
    return user


# --- authentication ----------------------------------------------------------------------------


async def authenticate(
    session: AsyncSession,
    settings: Settings,
    login: str,
    password: str,
    source_ip: str | None,
    now: datetime | None = None,
    totp_code: str | None = None,
) -> User:
    """The user whose ``login`` and ``password`` (and TOTP code, if enrolled) match.

    Raises (after recording the attempt in the session; commit it anyway):

    - ``SourceThrottled`` / ``AccountLocked(until)``: too many failures, even for the right
      password (and for unknown logins alike);
    - ``AuthenticationFailed``: unknown login, wrong password, disabled account, wrong TOTP code;
    - ``SecondFactorRequired``: password right, TOTP enrolled, no code given (not a failure);
    - ``SourceNotAllowed``: right credentials from outside the user's or role's allow-list.
    """
    now = now if now is not None else utc_now()
    try:
        await throttling.check_not_throttled(session, login, source_ip, now)
    except AccountLocked as locked:
        await append_audit_event(
            session,
            None,
            "user.login_refused",
            f"login:{throttling.login_key(login)}",
            {"reason": "locked", "until": locked.until.isoformat()},
            source_ip,
            now=now,
            actor_login=login[:MAXIMUM_LOGIN_LENGTH],
        )
        raise
    user = await find_user_by_login(session, login)
    if user is None:
        await verify_password_in_thread(dummy_hash(settings), password, settings)
        await _fail(session, settings, login, source_ip, now, None, "unknown_login")
    elif not await verify_password_in_thread(user.password_hash, password, settings):
        await _fail(session, settings, login, source_ip, now, user, "wrong_password")
    elif user.disabled:
        await _fail(session, settings, login, source_ip, now, user, "disabled")
    assert user is not None
    if user.totp_secret_encrypted is not None:
        if not totp_code or not totp_code.strip():
            raise SecondFactorRequired()
        secret = decrypt_totp_secret(settings, user.totp_secret_encrypted)
        if not totp_code_valid(secret, totp_code, now):
            await _fail(session, settings, login, source_ip, now, user, "wrong_totp_code")
    if not await source_allowed(session, user, source_ip):
        await append_audit_event(
            session,
            None,
            "user.login_refused",
            f"user:{user.id}",
            {"reason": "source_not_allowed"},
            source_ip,
            now=now,
            actor_login=user.login,
        )
        raise SourceNotAllowed(source_ip)
    await throttling.record_success(session, login)
    if needs_rehash(user.password_hash, settings):
        # the password already in use: no policy check (a stricter policy applies to new ones)
        user.password_hash = await asyncio.to_thread(password_hasher(settings).hash, password)
    user.last_login_at = now
    await append_audit_event(
        session,
        Actor.for_user(user, source_ip),
        "user.login",
        f"user:{user.id}",
        {},
        source_ip,
        now=now,
        actor_login=user.login,
    )
    return user


async def _fail(
    session: AsyncSession,
    settings: Settings,
    login: str,
    source_ip: str | None,
    now: datetime,
    user: User | None,
    reason: str,
) -> None:
    locked_until = await throttling.record_failure(session, settings, login, source_ip, now)
    target = f"user:{user.id}" if user is not None else f"login:{throttling.login_key(login)}"
    await append_audit_event(
        session,
        None,
        "user.login_failed",
        target,
        {"reason": reason},
        source_ip,
        now=now,
        actor_login=login[:MAXIMUM_LOGIN_LENGTH],
    )
    if locked_until is not None:
        await append_audit_event(
            session,
            None,
            "user.locked",
            target,
            {"until": locked_until.isoformat()},
            source_ip,
            now=now,
            actor_login=login[:MAXIMUM_LOGIN_LENGTH],
        )
        raise AccountLocked(locked_until)
    raise AuthenticationFailed()


async def user_locked_until(session: AsyncSession, user: User, now: datetime) -> datetime | None:
    """When the user's failed-login lock ends, or None if not locked at ``now``."""
    return await throttling.account_locked_until(session, user.login, now)
