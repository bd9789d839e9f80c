"""Marks the UTC hours whose calls changed, so the rollups of those hours are recomputed.

``install_call_volume_tracking()`` (run when ``dialer.reports`` is imported) listens to every ORM
session's ``after_flush``: for each ``Call`` inserted, changed (a transition, an outcome, a soft
delete, a late end) or deleted (purged) in the flush, the hour of its ``created_at`` (old and new
value if it moved) gets a ``CallVolumeDirtyHour`` row, or that row's ``generation`` + 1, in the
same transaction as the change. Nothing in ``dialer.calls`` has to call us.

When a ``User`` changes team, every hour with calls of that operator is marked dirty too (the
rollups keep per-team rows, ``dialer.reports.models.team_key``).

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

from sqlalchemy import Connection, Executable, event, inspect, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, UOWTransaction

from dialer.models import Call, User
from dialer.reports.grid import epoch_hour
from dialer.reports.models import CallVolumeDirtyHour
from dialer.reports.rollup import epoch_hour_of


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


def mark_operator_hours_dirty(connection: Connection, operator_ids: Iterable[int]) -> None:
    """Mark every hour holding calls of these operators dirty (after a change of team)."""
    wanted = sorted(set(operator_ids))
    if not wanted:
        return
    calls = Call.__table__.c
    hours = (
        select(epoch_hour_of(calls.created_at, connection.dialect.name), literal(1))
        .where(calls.operator_id.in_(wanted))
        .distinct()
    )
    bump = {"generation": CallVolumeDirtyHour.generation + 1}
    statement: Executable
    if connection.dialect.name == "postgresql":
        statement = (
            postgresql.insert(CallVolumeDirtyHour)
            .from_select(["hour", "generation"], hours)
            .on_conflict_do_update(index_elements=["hour"], set_=bump)
        )
    else:
        statement = (
            sqlite.insert(CallVolumeDirtyHour)
            .from_select(["hour", "generation"], hours)
            .on_conflict_do_update(index_elements=["hour"], set_=bump)
        )
    connection.execute(statement)


def _moved_operators(session: Session) -> list[int]:
    moved: list[int] = []
    for instance in session.dirty:
        if isinstance(instance, User) and inspect(instance).attrs.team_id.history.has_changes():
            moved.append(instance.id)
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
    moved = _moved_operators(session)
    if moved:
        mark_operator_hours_dirty(session.connection(), moved)


def install_call_volume_tracking() -> None:
    """Start marking changed hours (idempotent)."""
    if not event.contains(Session, "after_flush", _after_flush):
        event.listen(Session, "after_flush", _after_flush)


def uninstall_call_volume_tracking() -> None:
    if event.contains(Session, "after_flush", _after_flush):
        event.remove(Session, "after_flush", _after_flush)
