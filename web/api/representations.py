"""JSON shapes of the domain rows the API returns (pure presentation, no queries)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from dialer.models import AuditEvent, Call, Contact, ContactPhone, ContactStatus, User
from dialer.pagination import Page

Item = TypeVar("Item")


def timestamp(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def page_json(page: Page[Item], render: Callable[[Item], dict[str, object]]) -> dict[str, object]:
    return {
        "items": [render(item) for item in page.items],
        "total": page.total,
        "limit": page.limit,
        "offset": page.offset,
    }


def user_json(user: User) -> dict[str, object]:
    return {
        "id": user.id,
        "login": user.login,
        "display_name": user.display_name,
        "role": user.role,
        "team_id": user.team_id,
        "disabled": user.disabled,
        "allowed_networks": list(user.allowed_networks or []),
        "phone_extension": user.phone_extension,
        "two_factor": user.totp_secret_encrypted is not None,
        "last_login_at": timestamp(user.last_login_at),
        "created_at": timestamp(user.created_at),
    }


def phone_json(phone: ContactPhone) -> dict[str, object]:
    return {
        "e164": phone.e164,
        "raw": phone.raw,
        "kind": phone.kind,
        "primary": phone.is_primary,
    }


def contact_json(contact: Contact) -> dict[str, object]:
    return {
        "id": contact.id,
        "name": contact.name,
        "company": contact.company,
        "position": contact.position,
        "phones": [phone_json(phone) for phone in contact.phones],
        "email": contact.email,
        "timezone": contact.timezone,
        "owner_id": contact.owner_id,
        "status": contact.status,
        "follow_up_at": timestamp(contact.follow_up_at),
        "follow_up_note": contact.follow_up_note,
        "tags": list(contact.tags or []),
        "notes": contact.notes,
        "custom_fields": dict(contact.custom_fields or {}),
        "shared": contact.shared,
        "created_at": timestamp(contact.created_at),
        "updated_at": timestamp(contact.updated_at),
    }


def call_json(call: Call) -> dict[str, object]:
    return {
        "id": call.id,
        "direction": call.direction,
        "contact_id": call.contact_id,
        "phone_e164": call.phone_e164,
        "operator_id": call.operator_id,
        "state": call.state,
        "created_at": timestamp(call.created_at),
        "answered_at": timestamp(call.answered_at),
        "ended_at": timestamp(call.ended_at),
        "ring_seconds": call.ring_seconds,
        "talk_seconds": call.talk_seconds,
        "end_cause": call.end_cause,
        "sip_code": call.sip_code,
        "hangup_by": call.hangup_by,
        "outcome": call.outcome,
        "outcome_note": call.outcome_note,
        "outcome_at": timestamp(call.outcome_at),
        "follow_up_at": timestamp(call.follow_up_at),
        "recording_ids": [recording.id for recording in call.recordings],
        # Played and downloaded through web.api.recordings (access-checked and audited).
        "recording_url": (
            f"/api/calls/{call.id}/recording"
            if any(recording.deleted_at is None for recording in call.recordings)
            else None
        ),
    }


def status_json(status: ContactStatus) -> dict[str, object]:
    return {
        "code": status.code,
        "label": status.label,
        "final": status.is_final,
        "do_not_call": status.is_do_not_call,
        "callback": status.is_callback,
        "position": status.position,
        "active": status.active,
    }


def audit_event_json(event: AuditEvent) -> dict[str, object]:
    return {
        "id": event.id,
        "occurred_at": timestamp(event.occurred_at),
        "actor_user_id": event.actor_user_id,
        "actor_login": event.actor_login,
        "source_ip": event.source_ip,
        "action": event.action,
        "target": event.target,
        "summary": dict(event.summary or {}),
        "row_hash": event.row_hash,
    }
