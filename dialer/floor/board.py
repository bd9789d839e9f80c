"""The wallboard: every operator a supervisor looks after, live.

One line per operator: state (``offline``, ``idle``, ``dialing``, ``ringing``, ``talking``,
``wrap-up``) and since when, the current (or last) call and contact, and today's calls and talk
time. :func:`board_snapshot` reads it from the database; :meth:`FloorBoard.apply` then moves it
with the live events the call service publishes to supervisors and admins (``operator.state``
and ``call.*``, see :mod:`dialer.telephony.service`), so a board never polls. The browser's
wallboard (``web/static/js/floor.js``) applies the same rules to the same events.

Where the snapshot gets the state:

- the operator's latest call is in progress: ``dialing`` (since it was created), ``ringing``
  (since it rang) or ``talking`` (since it was answered);
- else the operator has a live web session: ``wrap-up`` while that call has no outcome yet
  (since it ended), otherwise ``idle`` (since the outcome or the login, whichever is later);
- else ``offline``.

"Today" is the calendar day in the board's time zone. Calls count from their creation (failed
ones too); talk time is that of finished calls (a call in progress adds its own as it goes,
which a display computes from ``state_since``).

Applying events: a state change older than the line's ``state_since`` is stale (the snapshot
already knew better) and ignored. Calls are counted by id: an operator has one call at a time,
so their call ids only grow, and an event about a call the line has already counted (or an older
one) changes no figure; replaying events therefore never counts a call twice.

Scope: supervisors see the operators of their team, admins every operator; operators may not
see the board (``PermissionDenied``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import ColumnElement, false, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from dialer.actors import Actor, Role
from dialer.errors import PermissionDenied, ValidationFailed
from dialer.models import (
    FINISHED_CALL_STATES,
    Call,
    CallState,
    Contact,
    Team,
    User,
    WebSession,
    utc_now,
)

OperatorState = Literal["offline", "idle", "dialing", "ringing", "talking", "wrap-up"]
OPERATOR_STATES: tuple[OperatorState, ...] = get_args(OperatorState)
CALL_STATES_ON_THE_PHONE: frozenset[str] = frozenset({"dialing", "ringing", "talking"})
DEFAULT_SESSION_IDLE_MINUTES = 30


@dataclass
class OperatorLine:
    """One operator on the board."""

    operator_id: int
    name: str
    login: str
    team_id: int | None
    team_name: str | None
    state: OperatorState
    state_since: datetime | None
    call_id: int | None = None
    contact_id: int | None = None
    contact_name: str | None = None
    calls_today: int = 0
    talk_seconds_today: float = 0.0
    # The operator's latest call as far as the figures go (see the module docstring).
    last_call_id: int = 0
    last_call_today: bool = False
    last_call_answered_at: datetime | None = None
    last_call_talk_counted: bool = True

    def as_json(self) -> dict[str, object]:
        return {
            "operator_id": self.operator_id,
            "name": self.name,
            "login": self.login,
            "team_id": self.team_id,
            "team_name": self.team_name,
            "state": self.state,
            "state_since": _iso(self.state_since),
            "call_id": self.call_id,
            "contact_id": self.contact_id,
            "contact_name": self.contact_name,
            "calls_today": self.calls_today,
            "talk_seconds_today": round(self.talk_seconds_today, 3),
            "last_call_id": self.last_call_id,
            "last_call_today": self.last_call_today,
            "last_call_answered_at": _iso(self.last_call_answered_at),
            "last_call_talk_counted": self.last_call_talk_counted,
        }


@dataclass
class FloorBoard:
    """The board at ``taken_at`` plus the events applied since."""

    taken_at: datetime
    day_started_at: datetime
    timezone: str
    lines: dict[int, OperatorLine] = field(default_factory=dict)

    def line(self, operator_id: int) -> OperatorLine | None:
        return self.lines.get(operator_id)

    def apply(self, kind: str, payload: Mapping[str, object]) -> bool:
        """Apply one live event; True when the board changed."""
        operator_id = payload.get("operator_id")
        if not isinstance(operator_id, int):
            return False
        line = self.lines.get(operator_id)
        if line is None:
            return False  # not an operator on this board
        at = _parse_time(payload.get("at"))
        if at is None:
            return False
        if kind == "operator.state":
            return _apply_state(line, payload, at)
        call_id = payload.get("call_id")
        if not isinstance(call_id, int):
            return False
        if kind == "call.created":
            if call_id <= line.last_call_id:
                return False
            line.last_call_id = call_id
            line.last_call_today = at >= self.day_started_at
            line.last_call_answered_at = None
            line.last_call_talk_counted = False
            if line.last_call_today:
                line.calls_today += 1
            return True
        if call_id != line.last_call_id:
            return False
        if kind == "call.answered":
            line.last_call_answered_at = at
            return True
        if kind == "call.ended" and not line.last_call_talk_counted:
            line.last_call_talk_counted = True
            answered = line.last_call_answered_at
            if line.last_call_today and answered is not None:
                line.talk_seconds_today += max(0.0, (at - answered).total_seconds())
            return True
        return False

    def as_json(self) -> dict[str, object]:
        return {
            "taken_at": _iso(self.taken_at),
            "day_started_at": _iso(self.day_started_at),
            "timezone": self.timezone,
            "operators": [
                line.as_json()
                for line in sorted(
                    self.lines.values(),
                    key=lambda line: (line.team_name or "", line.name.casefold(), line.login),
                )
            ],
        }


def _apply_state(line: OperatorLine, payload: Mapping[str, object], at: datetime) -> bool:
    state = payload.get("state")
    if state not in OPERATOR_STATES:
        return False
    if line.state_since is not None and at < line.state_since:
        return False  # older than what the board knows
    if state != line.state:
        line.state = state
        line.state_since = at
    if state in ("idle", "offline"):
        line.call_id = line.contact_id = line.contact_name = None
        return True
    call_id = payload.get("call_id")
    if isinstance(call_id, int):
        if call_id != line.call_id:
            line.contact_id = line.contact_name = None
        line.call_id = call_id
    contact_id = payload.get("contact_id")
    if isinstance(contact_id, int):
        line.contact_id = contact_id
    contact_name = payload.get("contact_name")
    if isinstance(contact_name, str):
        line.contact_name = contact_name
    return True


def day_start(now: datetime, timezone: str) -> datetime:
    """Midnight of ``now``'s day in ``timezone``, as UTC (``ValidationFailed`` for a bad zone)."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationFailed("timezone", f"unknown time zone {timezone!r}") from None
    local = now.astimezone(zone)
    midnight = datetime(local.year, local.month, local.day, tzinfo=zone)
    return midnight.astimezone(UTC)


def _operators_in_scope(actor: Actor) -> ColumnElement[bool]:
    if actor.is_admin:
        return true()
    if actor.is_supervisor and actor.team_id is not None:
        return User.team_id == actor.team_id
    return false()


async def board_snapshot(
    session: AsyncSession,
    actor: Actor,
    *,
    now: datetime | None = None,
    timezone: str = "UTC",
    session_idle_minutes: int = DEFAULT_SESSION_IDLE_MINUTES,
) -> FloorBoard:
    """The board as the database has it at ``now`` (see the module docstring)."""
    if not (actor.is_admin or actor.is_supervisor):
        raise PermissionDenied("the floor is for supervisors and admins")
    now = now if now is not None else utc_now()
    started = day_start(now, timezone)
    board = FloorBoard(taken_at=now, day_started_at=started, timezone=timezone)
    operators = (
        await session.execute(
            select(User, Team.name)
            .outerjoin(Team, Team.id == User.team_id)
            .where(
                User.role == Role.OPERATOR.value,
                User.disabled.is_(False),
                _operators_in_scope(actor),
            )
        )
    ).all()
    if not operators:
        return board
    ids = [user.id for user, _ in operators]

    latest_ids = (
        select(func.max(Call.id))
        .where(Call.operator_id.in_(ids), Call.deleted_at.is_(None))
        .group_by(Call.operator_id)
    )
    latest_calls = {
        call.operator_id: call
        for call in (await session.scalars(select(Call).where(Call.id.in_(latest_ids)))).all()
    }
    contact_ids = {call.contact_id for call in latest_calls.values() if call.contact_id}
    contact_names: dict[int, str] = {}
    if contact_ids:
        rows = await session.execute(
            select(Contact.id, Contact.name).where(Contact.id.in_(contact_ids))
        )
        contact_names = {row.id: row.name for row in rows}

    figures = {
        operator_id: (int(count), float(talk or 0.0))
        for operator_id, count, talk in (
            await session.execute(
                select(Call.operator_id, func.count(Call.id), func.sum(Call.talk_seconds))
                .where(
                    Call.operator_id.in_(ids),
                    Call.created_at >= started,
                    Call.deleted_at.is_(None),
                )
                .group_by(Call.operator_id)
            )
        ).all()
    }

    idle_limit = now - timedelta(minutes=session_idle_minutes)
    logged_in_since: dict[int, datetime] = {}
    for user_id, created_at in (
        await session.execute(
            select(WebSession.user_id, WebSession.created_at).where(
                WebSession.user_id.in_(ids),
                WebSession.ended_at.is_(None),
                WebSession.expires_at > now,
                WebSession.last_seen_at > idle_limit,
            )
        )
    ).all():
        earlier = logged_in_since.get(user_id)
        logged_in_since[user_id] = created_at if earlier is None else min(earlier, created_at)

    for user, team_name in operators:
        call = latest_calls.get(user.id)
        calls_today, talk_today = figures.get(user.id, (0, 0.0))
        line = OperatorLine(
            operator_id=user.id,
            name=user.display_name or user.login,
            login=user.login,
            team_id=user.team_id,
            team_name=team_name,
            state="offline",
            state_since=None,
            calls_today=calls_today,
            talk_seconds_today=talk_today,
        )
        if call is not None:
            line.last_call_id = call.id
            line.last_call_today = call.created_at >= started
            line.last_call_answered_at = call.answered_at
            line.last_call_talk_counted = CallState(call.state) in FINISHED_CALL_STATES
        _place(line, call, logged_in_since.get(user.id), contact_names)
        board.lines[user.id] = line
    return board


def _place(
    line: OperatorLine,
    call: Call | None,
    logged_in_at: datetime | None,
    contact_names: Mapping[int, str],
) -> None:
    """Set the line's state from the latest call and whether the operator is logged in."""
    live = call is not None and CallState(call.state) not in FINISHED_CALL_STATES
    if call is not None and live:
        state = CallState(call.state)
        if state is CallState.ANSWERED:
            line.state, line.state_since = "talking", call.answered_at
        elif state is CallState.RINGING:
            line.state, line.state_since = "ringing", call.ringing_at
        else:
            line.state, line.state_since = "dialing", call.created_at
    elif logged_in_at is None:
        line.state, line.state_since = "offline", None
        return
    elif call is not None and call.outcome is None:
        line.state, line.state_since = "wrap-up", call.ended_at
    else:
        since = logged_in_at
        if call is not None:
            done = call.outcome_at or call.ended_at
            if done is not None and done > since:
                since = done
        line.state, line.state_since = "idle", since
        return
    assert call is not None
    line.call_id = call.id
    line.contact_id = call.contact_id
    line.contact_name = contact_names.get(call.contact_id) if call.contact_id else None


def _iso(at: datetime | None) -> str | None:
    return at.astimezone(UTC).isoformat() if at is not None else None


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
