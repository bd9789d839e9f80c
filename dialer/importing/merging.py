"""Merging a duplicate row into the contact it duplicates.

The rule the user chose with "merge": empty fields are filled, new phones are added, notes are
appended (unless already there), tags are united, custom fields the contact lacks are added.
Nothing the contact already has is overwritten. The same rule applies whether the first copy
is a contact in the database or an earlier row of the same file.
"""

from __future__ import annotations

from typing import Any, Protocol

from dialer.importing.rows import ParsedContact
from dialer.statuses import NEW_STATUS

_FILLABLE_FIELDS = ("name", "company", "position", "email", "timezone", "follow_up_at")


class MergeTarget(Protocol):
    """What a merge writes to: a ``ParsedContact`` or a ``dialer.models.Contact``."""

    name: str
    company: str
    position: str
    email: str | None
    timezone: str | None
    status: Any
    follow_up_at: Any
    follow_up_note: str | None
    tags: list[str]
    notes: str
    custom_fields: dict[str, Any]


def merge_fields(target: MergeTarget, extra: ParsedContact) -> list[str]:
    """Copy what ``extra`` adds into ``target`` (phones excepted); return the changed fields."""
    changed: list[str] = []
    for name in _FILLABLE_FIELDS:
        value = getattr(extra, name)
        if value and not getattr(target, name):
            setattr(target, name, value)
            changed.append(name)
    if extra.follow_up_note and not target.follow_up_note:
        target.follow_up_note = extra.follow_up_note
        changed.append("follow_up_note")
    status_open = not target.status or target.status == NEW_STATUS
    if extra.status and status_open and extra.status != target.status:
        target.status = extra.status
        changed.append("status")
    if extra.notes and extra.notes not in target.notes:
        target.notes = f"{target.notes}\n{extra.notes}" if target.notes else extra.notes
        changed.append("notes")
    new_tags = [tag for tag in extra.tags if tag not in target.tags]
    if new_tags:
        # A new list, so SQLAlchemy sees the JSON column change.
        target.tags = [*target.tags, *new_tags]
        changed.append("tags")
    new_custom = {
        key: value for key, value in extra.custom_fields.items() if key not in target.custom_fields
    }
    if new_custom:
        target.custom_fields = {**target.custom_fields, **new_custom}
        changed.append("custom_fields")
    return changed


def merge_parsed(target: ParsedContact, extra: ParsedContact) -> list[str]:
    """Merge a later row of the file into an earlier, not yet written one (phones included)."""
    changed = merge_fields(target, extra)
    known = set(target.phone_numbers())
    added = [phone for phone in extra.phones if phone.e164 not in known]
    if added:
        target.phones.extend(added)
        changed.append("phones")
    return changed
