"""The hash-chained audit log: appends, tamper detection by row, append-only guards."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from dialer.audit import (
    AuditEntry,
    AuditQuery,
    append_audit_event,
    append_audit_events,
    event_hash,
    list_audit_events,
    verify_audit_chain,
)
from dialer.errors import PermissionDenied
from dialer.models import AuditEvent
from tests.conftest import People

MOMENT = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


async def _append_five(session: AsyncSession, people: People) -> None:
    for number in range(1, 6):
        await append_audit_event(
            session,
            people.admin.actor,
            "test.event",
            f"thing:{number}",
            {"number": number, "текст": "проверка"},
            now=MOMENT,
        )
    await session.commit()


@pytest.fixture
async def tamper(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A raw connection with the append-only guards off, as an attacker with DB access has."""
    async with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            await connection.execute(text("SET session_replication_role = replica"))
        else:
            await connection.execute(text("DROP TRIGGER audit_events_no_update"))
            await connection.execute(text("DROP TRIGGER audit_events_no_delete"))
        await connection.commit()
        yield connection


async def _first_id(session: AsyncSession) -> int:
    value = await session.scalar(
        text("SELECT MIN(id) FROM audit_events WHERE action = 'test.event'")
    )
    assert isinstance(value, int)
    await session.rollback()  # end the read snapshot so the tampering is seen later
    return value


async def test_intact_chain_verifies(session: AsyncSession, people: People) -> None:
    await _append_five(session, people)
    assert await verify_audit_chain(session) == []


async def test_edited_summary_is_named(
    session: AsyncSession, people: People, tamper: AsyncConnection
) -> None:
    await _append_five(session, people)
    target = await _first_id(session) + 2
    await tamper.execute(
        text("UPDATE audit_events SET summary = :summary WHERE id = :id"),
        {"summary": '{"number": 99}', "id": target},
    )
    await tamper.commit()
    problems = await verify_audit_chain(session)
    assert [(p.audit_event_id, p.kind) for p in problems] == [(target, "edited")]


async def test_deleted_row_is_named_by_its_successor(
    session: AsyncSession, people: People, tamper: AsyncConnection
) -> None:
    await _append_five(session, people)
    target = await _first_id(session) + 2
    await tamper.execute(text("DELETE FROM audit_events WHERE id = :id"), {"id": target})
    await tamper.commit()
    problems = await verify_audit_chain(session)
    assert [(p.audit_event_id, p.kind) for p in problems] == [(target + 1, "missing")]


async def test_deleted_last_row_is_noticed(
    session: AsyncSession, people: People, tamper: AsyncConnection
) -> None:
    await _append_five(session, people)
    last = await _first_id(session) + 4
    await tamper.execute(text("DELETE FROM audit_events WHERE id = :id"), {"id": last})
    await tamper.commit()
    problems = await verify_audit_chain(session)
    assert [(p.audit_event_id, p.kind) for p in problems] == [(last, "tail_missing")]


async def _forge_after(tamper: AsyncConnection, new_id: int, previous_id: int) -> None:
    """Insert a row whose hash is computed exactly as dialer does, linked to ``previous_id``."""
    previous_hash = (
        await tamper.execute(
            text("SELECT row_hash FROM audit_events WHERE id = :id"), {"id": previous_id}
        )
    ).scalar_one()
    forged = AuditEvent(
        id=new_id,
        occurred_at=MOMENT,
        actor_user_id=1,
        actor_login="admin",
        source_ip=None,
        action="user.login",
        target="user:1",
        summary={},
        previous_hash=previous_hash,
    )
    await tamper.execute(
        text(
            "INSERT INTO audit_events (id, occurred_at, actor_user_id, actor_login, action, target,"
            " summary, previous_hash, row_hash) VALUES (:id, :occurred_at, 1, 'admin',"
            " 'user.login', 'user:1', '{}', :previous_hash, :row_hash)"
        ),
        {
            "id": new_id,
            "occurred_at": MOMENT if tamper.dialect.name == "postgresql" else "2026-03-02 09:30:00",
            "previous_hash": previous_hash,
            "row_hash": event_hash(forged),
        },
    )


async def test_row_inserted_in_the_middle_is_named(
    session: AsyncSession, people: People, tamper: AsyncConnection
) -> None:
    await _append_five(session, people)
    first = await _first_id(session)
    # Make room by renumbering the later rows, then slip a well-forged row in.
    for event_id in range(first + 4, first + 1, -1):
        await tamper.execute(
            text("UPDATE audit_events SET id = :new WHERE id = :old"),
            {"new": event_id + 1, "old": event_id},
        )
    await _forge_after(tamper, first + 2, first + 1)
    await tamper.commit()
    problems = await verify_audit_chain(session)
    inserted = [p.audit_event_id for p in problems if p.kind == "inserted"]
    edited = [p.audit_event_id for p in problems if p.kind == "edited"]
    assert first + 2 in inserted
    assert edited == [first + 3, first + 4, first + 5]  # the renumbered rows


async def test_row_appended_behind_the_chains_back_is_named(
    session: AsyncSession, people: People, tamper: AsyncConnection
) -> None:
    await _append_five(session, people)
    last = await _first_id(session) + 4
    await _forge_after(tamper, last + 1, last)
    await tamper.commit()
    problems = await verify_audit_chain(session)
    assert [(p.audit_event_id, p.kind) for p in problems] == [(last + 1, "inserted")]


async def test_the_database_refuses_updates_and_deletes(
    session: AsyncSession, people: People, engine: AsyncEngine
) -> None:
    await _append_five(session, people)
    for statement in ("UPDATE audit_events SET action = 'x'", "DELETE FROM audit_events"):
        async with engine.connect() as connection:
            with pytest.raises(DBAPIError, match="append-only"):
                await connection.execute(text(statement))
    assert await verify_audit_chain(session) == []


async def test_concurrent_appenders_keep_one_chain(
    session_factory: async_sessionmaker[AsyncSession], people: People
) -> None:
    async def writer(number: int) -> None:
        for index in range(10):
            async with session_factory() as session:
                await append_audit_event(
                    session, None, "test.concurrent", f"writer:{number}", {"index": index}
                )
                await session.commit()

    await asyncio.gather(*(writer(number) for number in range(4)))
    async with session_factory() as session:
        assert await verify_audit_chain(session) == []
        page = await list_audit_events(
            session, people.admin.actor, AuditQuery(action="test.concurrent", limit=100)
        )
        assert page.total == 40


async def test_many_appends_in_one_transaction(session: AsyncSession, people: People) -> None:
    for index in range(300):
        await append_audit_event(session, None, "test.batch", None, {"index": index})
    await session.commit()
    assert await verify_audit_chain(session) == []


async def test_events_appended_together_join_the_chain_like_single_ones(
    session: AsyncSession, people: People
) -> None:
    anna = people.north_operator.actor
    first = await append_audit_event(session, anna, "test.mixed", "single:1", {"n": 1})
    ids = await append_audit_events(
        session,
        [
            AuditEntry(anna, "test.mixed", "together:1", {"n": (1, 2)}, occurred_at=MOMENT),
            AuditEntry(None, "test.mixed", "together:2", None, "10.0.0.9", actor_login="ghost"),
            AuditEntry(people.admin.actor, "test.mixed", None, {"текст": "проверка"}),
        ],
    )
    last = await append_audit_event(session, anna, "test.mixed", "single:2")
    await session.commit()
    assert ids == [first.id + 1, first.id + 2, first.id + 3]
    assert last.id == first.id + 4
    rows = list(
        await session.scalars(
            select(AuditEvent).where(AuditEvent.action == "test.mixed").order_by(AuditEvent.id)
        )
    )
    assert [
        (row.id, row.target, row.actor_user_id, row.actor_login, row.source_ip, row.summary)
        for row in rows[1:4]
    ] == [
        (ids[0], "together:1", anna.user_id, None, anna.source_ip, {"n": [1, 2]}),
        (ids[1], "together:2", None, "ghost", "10.0.0.9", {}),
        (ids[2], None, people.admin.user.id, None, people.admin.source_ip, {"текст": "проверка"}),
    ]
    assert rows[1].occurred_at == MOMENT
    assert all(row.row_hash == event_hash(row) for row in rows)
    assert [row.previous_hash for row in rows[1:]] == [row.row_hash for row in rows[:-1]]
    assert await verify_audit_chain(session) == []


async def test_events_appended_together_with_a_bad_summary_write_nothing(
    session: AsyncSession, people: People
) -> None:
    assert await append_audit_events(session, []) == []
    with pytest.raises(TypeError):
        await append_audit_events(
            session,
            [
                AuditEntry(None, "test.refused", "fine", {"n": 1}),
                AuditEntry(None, "test.refused", "not-json", {"when": MOMENT}),
            ],
        )
    await session.commit()
    stored = await session.scalars(select(AuditEvent).where(AuditEvent.action == "test.refused"))
    assert list(stored) == []
    await _append_five(session, people)
    assert await verify_audit_chain(session) == []


async def test_audit_log_visibility(session: AsyncSession, people: People) -> None:
    await append_audit_event(session, people.north_operator.actor, "test.north", None, {})
    await append_audit_event(session, people.south_operator.actor, "test.south", None, {})
    await session.commit()
    north = await list_audit_events(session, people.north_supervisor.actor, AuditQuery(limit=500))
    actions = {event.action for event in north.items}
    assert "test.north" in actions
    assert "test.south" not in actions
    everything = await list_audit_events(session, people.admin.actor, AuditQuery(limit=500))
    assert {"test.north", "test.south"} <= {event.action for event in everything.items}
    with pytest.raises(PermissionDenied):
        await list_audit_events(session, people.north_operator.actor)
