"""Calls: a row from creation on, updated on every state transition; outcomes; listing.

Lifecycle (``ALLOWED_TRANSITIONS``)::

    created -> dialing -> ringing -> answered -> ended
       \\________\\__________\\___________\\______-> failed | interrupted

Repeating the current state (e.g. 180 then 183 -> ringing twice) only updates the given fields.
``mark_unfinished_calls_interrupted`` ends calls left live by a crash or restart.

Visibility: operators see their own calls, supervisors their team's, admins all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from dialer.actors import Actor
from dialer.audit import append_audit_event
from dialer.calling_window import CallingHours, check_calling_window
from dialer.contacts import find_contacts_by_phone, get_contact
from dialer.errors import (
    Conflict,
    DoNotCall,
    InvalidTransition,
    NotFound,
    PermissionDenied,
    ValidationFailed,
)
from dialer.models import (
    FINISHED_CALL_STATES,
    Call,
    CallDirection,
    CallState,
    Contact,
    ContactStatus,
    HangupParty,
    Recording,
    User,
    utc_now,
)
from dialer.pagination import Page, check_page_bounds, page_is_last
from dialer.phones import normalise_phone
from dialer.statuses import get_status

DEFAULT_REGION = "RU"

ALLOWED_TRANSITIONS: dict[CallState, frozenset[CallState]] = {
    CallState.CREATED: frozenset(
        {
            CallState.DIALING,
            CallState.RINGING,
            CallState.ANSWERED,
            CallState.ENDED,
            CallState.FAILED,
            CallState.INTERRUPTED,
        }
    ),
    CallState.DIALING: frozenset(
        {
            CallState.RINGING,
            CallState.ANSWERED,
            CallState.ENDED,
            CallState.FAILED,
            CallState.INTERRUPTED,
        }
    ),
    CallState.RINGING: frozenset(
        {CallState.ANSWERED, CallState.ENDED, CallState.FAILED, CallState.INTERRUPTED}
    ),
    CallState.ANSWERED: frozenset({CallState.ENDED, CallState.FAILED, CallState.INTERRUPTED}),
    CallState.ENDED: frozenset(),
    CallState.FAILED: frozenset(),
    CallState.INTERRUPTED: frozenset(),
}


@dataclass(frozen=True)
class CallQuery:
    contact_id: int | None = None
    operator_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    outcome: str | None = None
    state: CallState | None = None
    campaign_id: int | None = None
    limit: int = 50
    offset: int = 0


def visible_calls(actor: Actor) -> ColumnElement[bool]:
    """The WHERE clause of calls ``actor`` may see."""
    if actor.is_admin:
        return true()
    if actor.is_supervisor and actor.team_id is not None:
        return Call.operator_id.in_(select(User.id).where(User.team_id == actor.team_id))
    return Call.operator_id == actor.user_id


async def _do_not_call_contact(session: AsyncSession, e164: str) -> Contact | None:
    statement = (
        select(Contact)
        .join(ContactStatus, ContactStatus.code == Contact.status)
        .where(
            ContactStatus.is_do_not_call.is_(True),
            Contact.deleted_at.is_(None),
            Contact.id.in_(
                select(Contact.id).join(Contact.phones).where(Contact.phones.any(e164=e164))
            ),
        )
        .limit(1)
    )
    return (await session.scalars(statement)).first()


async def create_call(
    session: AsyncSession,
    actor: Actor | None,
    phone: str,
    *,
    direction: CallDirection = CallDirection.OUTBOUND,
    contact_id: int | None = None,
    operator_id: int | None = None,
    account_name: str | None = None,
    campaign_id: int | None = None,
    sip_call_id: str | None = None,
    default_region: str = DEFAULT_REGION,
    now: datetime | None = None,
    enforce_do_not_call: bool = True,
    calling_window: CallingHours | None = None,
) -> Call:
    """Create the call row (state "created") before any signalling.

    ``phone`` is normalised (raw kept). Without ``contact_id`` the contact is matched by number
    (the newest the actor can see). ``operator_id`` defaults to the actor. Outbound calls to a
    number of a do-not-call contact raise DoNotCall unless ``enforce_do_not_call`` is False.
    With ``calling_window``, an outbound call raises OutsideCallingWindow when it is outside the
    window in the callee's time zone: the contact's, else the one of the number's range (a
    number with neither is not checked).
    ``actor`` None = the system (e.g. an inbound call nobody answered yet).
    """
    now = now if now is not None else utc_now()
    normalised = normalise_phone(phone, default_region)
    direction = CallDirection(direction)
    contact: Contact | None
    if contact_id is not None:
        if actor is not None:
            contact = await get_contact(session, actor, contact_id)
        else:
            contact = await session.get(Contact, contact_id)
            if contact is None:
                raise NotFound(f"contact {contact_id}")
    else:
        matches = await find_contacts_by_phone(session, normalised.e164, actor)
        contact = matches[0] if matches else None
        contact_id = contact.id if contact is not None else None
    if enforce_do_not_call and direction is CallDirection.OUTBOUND:
        blocked = await _do_not_call_contact(session, normalised.e164)
        if blocked is not None:
            raise DoNotCall(normalised.e164, blocked.id)
    if calling_window is not None and direction is CallDirection.OUTBOUND:
        zone = (contact.timezone if contact is not None else None) or normalised.timezone
        check_calling_window(calling_window, zone, now, normalised.e164)
    call = Call(
        direction=direction.value,
        contact_id=contact_id,
        phone_e164=normalised.e164,
        phone_raw=phone,
        operator_id=operator_id if operator_id is not None else (actor.user_id if actor else None),
        account_name=account_name,
        campaign_id=campaign_id,
        sip_call_id=sip_call_id,
        state=CallState.CREATED.value,
        recordings=[],
        created_at=now,
        updated_at=now,
    )
    session.add(call)
    await session.flush()
    return call


async def get_call(session: AsyncSession, actor: Actor | None, call_id: int) -> Call:
    """A visible call; NotFound otherwise. ``actor`` None = the system."""
    statement = select(Call).where(Call.id == call_id, Call.deleted_at.is_(None))
    if actor is not None:
        statement = statement.where(visible_calls(actor))
    call = (await session.scalars(statement)).one_or_none()
    if call is None:
        raise NotFound(f"call {call_id}")
    return call


async def find_call_by_sip_call_id(session: AsyncSession, sip_call_id: str) -> Call | None:
    """The newest call with this SIP Call-ID."""
    return (
        await session.scalars(
            select(Call).where(Call.sip_call_id == sip_call_id).order_by(Call.id.desc()).limit(1)
        )
    ).first()


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


def _apply_state(call: Call, state: CallState, at: datetime) -> None:
    current = CallState(call.state)
    if state == current:
        return
    if state not in ALLOWED_TRANSITIONS[current]:
        raise InvalidTransition(call.id, current.value, state.value)
    call.state = state.value
    if state is CallState.DIALING:
        call.dialing_at = at
    elif state is CallState.RINGING:
        call.ringing_at = at
    elif state is CallState.ANSWERED:
        call.answered_at = at
        call.ring_seconds = _seconds(call.ringing_at, at)
    else:
        call.ended_at = at
        if call.answered_at is not None:
            call.talk_seconds = _seconds(call.answered_at, at)
        else:
            call.ring_seconds = _seconds(call.ringing_at, at)
            call.talk_seconds = 0.0


async def record_call_transition(
    session: AsyncSession,
    call_id: int,
    state: CallState | str,
    at: datetime | None = None,
    *,
    sip_call_id: str | None = None,
    sip_code: int | None = None,
    sip_reason: str | None = None,
    end_cause: str | None = None,
    hangup_by: HangupParty | str | None = None,
    account_name: str | None = None,
    operator_id: int | None = None,
) -> Call:
    """Move a call to ``state`` at ``at`` and record the given fields (None = leave as is).

    Sets dialing_at / ringing_at / answered_at / ended_at and computes ring and talk seconds.
    Raises InvalidTransition for a move the lifecycle does not allow (e.g. ended -> ringing).
    """
    at = at if at is not None else utc_now()
    try:
        target_state = CallState(state)
    except ValueError as error:
        raise ValidationFailed("state", f"unknown call state {state!r}") from error
    call = await get_call(session, None, call_id)
    _apply_state(call, target_state, at)
    if hangup_by is not None:
        call.hangup_by = HangupParty(hangup_by).value
    for name, value in (
        ("sip_call_id", sip_call_id),
        ("sip_code", sip_code),
        ("sip_reason", sip_reason),
        ("end_cause", end_cause),
        ("account_name", account_name),
        ("operator_id", operator_id),
    ):
        if value is not None:
            setattr(call, name, value)
    call.updated_at = at
    await session.flush()
    return call


async def set_call_outcome(
    session: AsyncSession,
    actor: Actor,
    call_id: int,
    outcome: str,
    note: str | None = None,
    follow_up_at: datetime | None = None,
    *,
    now: datetime | None = None,
) -> Call:
    """Record the operator's disposition (a contact status code) and follow-up.

    The call's contact, if any and visible, takes ``outcome`` as its status and the follow-up time
    and note (a follow-up on a callback-flagged outcome without a time is refused).
    """
    now = now if now is not None else utc_now()
    call = await get_call(session, actor, call_id)
    status = await get_status(session, outcome)
    if follow_up_at is not None and follow_up_at.tzinfo is None:
        raise ValidationFailed("follow_up_at", "must be a timezone-aware datetime")
    if status.is_callback and follow_up_at is None:
        raise ValidationFailed("follow_up_at", f"{status.label!r} needs a follow-up time")
    call.outcome = status.code
    call.outcome_note = note
    call.outcome_at = now
    call.follow_up_at = follow_up_at
    call.updated_at = now
    if call.contact_id is not None:
        contact = await get_contact(session, actor, call.contact_id)
        contact.status = status.code
        contact.updated_at = now
        contact.updated_by_id = actor.user_id
        if follow_up_at is not None or status.is_final:
            contact.follow_up_at = follow_up_at
            contact.follow_up_note = note if follow_up_at is not None else None
    await append_audit_event(
        session,
        actor,
        "call.outcome",
        f"call:{call.id}",
        {
            "outcome": status.code,
            "contact_id": call.contact_id,
            "follow_up_at": follow_up_at.isoformat() if follow_up_at else None,
        },
        now=now,
    )
    await session.flush()
    return call


async def list_calls(
    session: AsyncSession, actor: Actor, query: CallQuery = CallQuery()
) -> Page[Call]:
    """Visible calls matching ``query``, newest first."""
    check_page_bounds(query.limit, query.offset)
    statement = select(Call).where(visible_calls(actor), Call.deleted_at.is_(None))
    if query.contact_id is not None:
        statement = statement.where(Call.contact_id == query.contact_id)
    if query.operator_id is not None:
        statement = statement.where(Call.operator_id == query.operator_id)
    if query.since is not None:
        statement = statement.where(Call.created_at >= query.since)
    if query.until is not None:
        statement = statement.where(Call.created_at < query.until)
    if query.outcome is not None:
        statement = statement.where(Call.outcome == query.outcome)
    if query.state is not None:
        statement = statement.where(Call.state == CallState(query.state).value)
    if query.campaign_id is not None:
        statement = statement.where(Call.campaign_id == query.campaign_id)
    items = (
        await session.scalars(
            statement.order_by(Call.created_at.desc(), Call.id.desc())
            .limit(query.limit)
            .offset(query.offset)
        )
    ).all()
    if page_is_last(items, query.limit, query.offset):
        total: int | None = query.offset + len(items)
    else:
        total = await session.scalar(
            select(func.count()).select_from(statement.with_only_columns(Call.id).subquery())
        )
    return Page(items=items, total=total or 0, limit=query.limit, offset=query.offset)


async def mark_unfinished_calls_interrupted(
    session: AsyncSession, now: datetime | None = None, *, cause: str = "service_restart"
) -> Sequence[int]:
    """End every call still live (created/dialing/ringing/answered) as "interrupted" at ``now``;
    run at start-up after a crash. Returns the ids."""
    now = now if now is not None else utc_now()
    live = [state.value for state in CallState if state not in FINISHED_CALL_STATES]
    calls = (await session.scalars(select(Call).where(Call.state.in_(live)))).all()
    for call in calls:
        _apply_state(call, CallState.INTERRUPTED, now)
        call.end_cause = cause
        call.hangup_by = HangupParty.SYSTEM.value
        call.updated_at = now
    if calls:
        await append_audit_event(
            session,
            None,
            "call.interrupted",
            None,
            {"call_ids": [call.id for call in calls], "cause": cause},
            now=now,
        )
    await session.flush()
    return [call.id for call in calls]


async def attach_recording(
    session: AsyncSession,
    call_id: int,
    *,
    path: str,
    codec: str,
    size_bytes: int,
    duration_seconds: float,
    sha256: str | None = None,
    channels: int = 2,
    now: datetime | None = None,
) -> Recording:
    """Record that a recording file exists for a call (path relative to the recordings dir)."""
    call = await get_call(session, None, call_id)
    recording = Recording(
        call_id=call.id,
        path=path,
        codec=codec,
        channels=channels,
        size_bytes=size_bytes,
        duration_seconds=duration_seconds,
        sha256=sha256,
        created_at=now if now is not None else utc_now(),
    )
    call.recordings.append(recording)
    await session.flush()
    return recording


async def soft_delete_call(
    session: AsyncSession, actor: Actor, call_id: int, *, now: datetime | None = None
) -> Call:
    """Hide a call from every list (admin; audited). Purging removes it for good."""
    if not actor.is_admin:
        raise PermissionDenied("only admins delete calls")
    now = now if now is not None else utc_now()
    call = await get_call(session, actor, call_id)
    call.deleted_at = now
    call.deleted_by_id = actor.user_id
    await append_audit_event(session, actor, "call.delete", f"call:{call.id}", {}, now=now)
    return call


async def purge_call(
    session: AsyncSession, actor: Actor, call_id: int, *, now: datetime | None = None
) -> list[str]:
    """Remove a (soft-deleted or live-less) call and its recording rows for good (admin;
    audited). Returns the recording paths, whose files the caller deletes."""
    if not actor.is_admin:
        raise PermissionDenied("only admins purge calls")
    call = (
        await session.scalars(
            select(Call).where(Call.id == call_id).execution_options(populate_existing=True)
        )
    ).one_or_none()
    if call is None:
        raise NotFound(f"call {call_id}")
    if call.state not in {state.value for state in FINISHED_CALL_STATES}:
        raise Conflict(f"call {call_id} is still {call.state}")
    paths = [recording.path for recording in call.recordings]
    for recording in list(call.recordings):
        await session.delete(recording)
    await session.delete(call)
    await session.flush()
    await append_audit_event(
        session, actor, "call.purge", f"call:{call_id}", {"recordings": paths}, now=now
    )
    return paths
