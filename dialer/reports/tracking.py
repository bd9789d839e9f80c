"""Marks the UTC hours whose calls changed, so the rollups of those hours are recomputed.

``install_call_volume_tracking()`` (run when ``dialer.reports`` is imported) listens to every ORM
session's ``after_flush``: for each ``Call`` inserted, changed (a transition, an outcome, a soft
delete, a late end) or deleted (purged) in the flush, the hour of its ``created_at`` (old and new
value if it moved) gets a ``CallVolumeDirtyHour`` row, or that row's ``generation`` + 1, in the
same transaction as the change. Nothing in ``dialer.calls`` has to call us.

When a ``User`` changes team, their figures are moved from the old team's rollup rows to the new
team's in the same flush (``dialer.reports.rollup.move_operator_rows``; the rollups keep per-team
rows, ``dialer.reports.models.team_key``).

Writes that bypass the ORM unit of work (``session.execute(update(Call)...)``, raw SQL, bulk
loads) are not seen: after such a write call ``mark_hours_dirty`` or run
``dialer report rebuild --from ... --to ...``.

Hours are written in ascending order so two flushes touching the same hours cannot deadlock.
On PostgreSQL the upsert locks the hour's marker row until the writer commits, so writers of calls
of the same hour queue briefly behind each other's commit (transactions that change calls are
short: one transition or outcome).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Executable, event, inspect
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, UOWTransaction

from dialer.models import Call, User
from dialer.reports.grid import epoch_hour
from dialer.reports.models import CallVolumeDirtyHour
from dialer.reports.rollup import move_operator_rows


def mark_hours_dirty(connection: Connection, hours: Iterable[int]) -> None:
    """Upsert dirty markers for ``hours`` on ``connection`` (in its transaction)."""
    ordered = sorted(set(hours))
    if not ordered:
        return
    rows = [{"hour": hour, "generation": 1} for hour in ordered]
    bump = {"generation": CallVolumeDirtyHour.generation + 1}
    statement: Executable
    if connection.dialect.name == "postgresql":
        statement = postgresql.insert(CallVolumeDirtyHour).on_conflict_do_update(
            index_elements=["hour"], set_=bump
        )
    else:
        statement = sqlite.insert(CallVolumeDirtyHour).on_conflict_do_update(
            index_elements=["hour"], set_=bump
        )
    for row in rows:
        connection.execute(statement, row)


def _moved_operators(session: Session) -> list[tuple[int, int | None, int | None]]:
    """``(user id, old team, new team)`` of users whose team changes in this flush."""
    moved: list[tuple[int, int | None, int | None]] = []
    for instance in session.dirty:
        if not isinstance(instance, User):
            continue
        history = inspect(instance).attrs.team_id.history
        if history.has_changes():
            old = history.deleted[0] if history.deleted else None
            new = history.added[0] if history.added else None
            if old != new:
                moved.append((instance.id, old, new))
    return moved


def _created_hours(call: Call) -> set[int]:
    hours: set[int] = set()
    history = inspect(call).attrs.created_at.history
    values: list[Any] = [*history.added, *history.unchanged, *history.deleted]
    if not values and call.created_at is not None:
        values = [call.created_at]
    for value in values:
        if isinstance(value, datetime):
            hours.add(epoch_hour(value))
    return hours


def _changed_hours(session: Session) -> set[int]:
    hours: set[int] = set()
    for instance in (*session.new, *session.deleted):
        if isinstance(instance, Call):
            hours |= _created_hours(instance)
    for instance in session.dirty:
        if isinstance(instance, Call) and session.is_modified(instance, include_collections=False):
            hours |= _created_hours(instance)
    return hours


def _after_flush(session: Session, flush_context: UOWTransaction) -> None:
    del flush_context
    hours = _changed_hours(session)
    if hours:
        mark_hours_dirty(session.connection(), hours)
    for user_id, old_team, new_team in _moved_operators(session):
        move_operator_rows(session.connection(), user_id, old_team, new_team)


def install_call_volume_tracking() -> None:
    """Start marking changed hours (idempotent)."""
    if not event.contains(Session, "after_flush", _after_flush):
        event.listen(Session, "after_flush", _after_flush)


def uninstall_call_volume_tracking() -> None:
    if event.contains(Session, "after_flush", _after_flush):
        event.remove(Session, "after_flush", _after_flush)
