"""The configurable contact status (disposition) list and its flags."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dialer.actors import Actor
from dialer.audit import append_audit_event
from dialer.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from dialer.models import Call, Contact, ContactStatus

NEW_STATUS = "new"


@dataclass(frozen=True)
class StatusDefinition:
    code: str
    label: str
    is_final: bool = False
    is_do_not_call: bool = False
    is_callback: bool = False


# Seeded by the first migration; admins edit the list afterwards.
DEFAULT_STATUSES: tuple[StatusDefinition, ...] = (
    StatusDefinition("new", "New"),
    StatusDefinition("no_answer", "No answer"),
    StatusDefinition("callback", "Call back", is_callback=True),
    StatusDefinition("interested", "Interested", is_callback=True),
    StatusDefinition("not_interested", "Not interested", is_final=True),
    StatusDefinition("do_not_call", "Do not call", is_final=True, is_do_not_call=True),
    StatusDefinition("sale", "Sale", is_final=True),
    StatusDefinition("wrong_number", "Wrong number", is_final=True),
)


async def list_statuses(
    session: AsyncSession, *, include_inactive: bool = False
) -> Sequence[ContactStatus]:
    """The status list in display order."""
    statement = select(ContactStatus).order_by(ContactStatus.position, ContactStatus.code)
    if not include_inactive:
        statement = statement.where(ContactStatus.active.is_(True))
    return (await session.scalars(statement)).all()


async def get_status(session: AsyncSession, code: str) -> ContactStatus:
    """The status with ``code``; ValidationFailed("status", ...) when unknown or inactive."""
    status = await session.get(ContactStatus, code)
    if status is None or not status.active:
        raise ValidationFailed("status", f"unknown status {code!r}")
    return status


def _require_admin(actor: Actor) -> None:
    if not actor.is_admin:
        raise PermissionDenied("only admins edit the status list")


async def create_status(
    session: AsyncSession, actor: Actor, definition: StatusDefinition, position: int | None = None
) -> ContactStatus:
    """Add a status (admin). Conflict if the code exists."""
    _require_admin(actor)
    code = definition.code.strip()
    if not code or not code.replace("_", "").isalnum() or code != code.lower():
        raise ValidationFailed("code", "use lower-case letters, digits and underscores")
    if await session.get(ContactStatus, code) is not None:
        raise Conflict(f"status {code!r} exists")
    if position is None:
        position = (await session.scalar(select(func.max(ContactStatus.position))) or 0) + 1
    status = ContactStatus(
        code=code,
        label=definition.label,
        is_final=definition.is_final,
        is_do_not_call=definition.is_do_not_call,
        is_callback=definition.is_callback,
        position=position,
        active=True,
    )
    session.add(status)
    await append_audit_event(
        session, actor, "status.create", f"status:{code}", {"label": definition.label}
    )
    return status


async def update_status(
    session: AsyncSession,
    actor: Actor,
    code: str,
    *,
    label: str | None = None,
    is_final: bool | None = None,
    is_do_not_call: bool | None = None,
    is_callback: bool | None = None,
    position: int | None = None,
    active: bool | None = None,
) -> ContactStatus:
    """Change a status's label, flags, order or active flag (admin). Codes never change."""
    _require_admin(actor)
    status = await session.get(ContactStatus, code)
    if status is None:
        raise NotFound(f"status {code!r}")
    changes: dict[str, object] = {}
    for name, value in (
        ("label", label),
        ("is_final", is_final),
        ("is_do_not_call", is_do_not_call),
        ("is_callback", is_callback),
        ("position", position),
        ("active", active),
    ):
        if value is not None and getattr(status, name) != value:
            setattr(status, name, value)
            changes[name] = value
    if active is False and code == NEW_STATUS:
        raise Conflict("the 'new' status cannot be deactivated")
    if changes:
        await append_audit_event(session, actor, "status.update", f"status:{code}", changes)
    return status


async def status_in_use(session: AsyncSession, code: str) -> bool:
    contacts = await session.scalar(select(func.count()).where(Contact.status == code))
    calls = await session.scalar(select(func.count()).where(Call.outcome == code))
    return bool(contacts) or bool(calls)
