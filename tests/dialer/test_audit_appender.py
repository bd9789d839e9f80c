"""Group-committed standalone audit events (``dialer.audit_appender``) on both databases: the
chain stays intact under concurrency, an append returns only once committed, a failed batch
fails exactly its callers, and close drains what was queued."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from dialer.audit import append_audit_event, verify_audit_chain
from dialer.audit_appender import AuditAppender, AuditAppendFailed
from dialer.models import AuditEvent
from dialer.storage import create_engine, create_session_factory
from tests.conftest import People

MOMENT = datetime(2026, 3, 2, 9, 30, 15, 123456, tzinfo=UTC)
REFUSED_ACTION = "test.refused"


@asynccontextmanager
async def database_refusing(engine: AsyncEngine, action: str) -> AsyncIterator[None]:
    """While inside, the database refuses to insert audit events with ``action`` (a trigger
    that raises), as a database that fails a commit would."""
    async with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            await connection.execute(
                text(
                    "CREATE FUNCTION test_refuse_audit_event() RETURNS trigger AS $$ BEGIN"
                    f" IF NEW.action = '{action}' THEN RAISE EXCEPTION 'refused by the test';"
                    " END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
                )
            )
            await connection.execute(
                text(
                    "CREATE TRIGGER test_refuse_audit_event BEFORE INSERT ON audit_events"
                    " FOR EACH ROW EXECUTE FUNCTION test_refuse_audit_event()"
                )
            )
        else:
            await connection.execute(
                text(
                    "CREATE TRIGGER test_refuse_audit_event BEFORE INSERT ON audit_events"
                    f" WHEN NEW.action = '{action}'"
                    " BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
                )
            )
    try:
        yield
    finally:
        async with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                await connection.execute(
                    text("DROP TRIGGER test_refuse_audit_event ON audit_events")
                )
                await connection.execute(text("DROP FUNCTION test_refuse_audit_event()"))
            else:
                await connection.execute(text("DROP TRIGGER test_refuse_audit_event"))


async def _events_by_target(
    session_factory: async_sessionmaker[AsyncSession], prefix: str
) -> dict[str, AuditEvent]:
    async with session_factory() as session:
        rows = await session.scalars(select(AuditEvent).where(AuditEvent.target.like(f"{prefix}%")))
        return {row.target or "": row for row in rows}


async def _chain_problems(session_factory: async_sessionmaker[AsyncSession]) -> list[object]:
    async with session_factory() as session:
        return list(await verify_audit_chain(session))


async def test_many_concurrent_appends_make_one_intact_chain(
    session_factory: async_sessionmaker[AsyncSession], people: People
) -> None:
    anna = people.north_operator.actor
    callers = 200
    async with AuditAppender(session_factory) as appender:
        ids = await asyncio.gather(
            *(
                appender.append(anna, "recording.play", f"call:{number}", {"number": number})
                for number in range(callers)
            )
        )
        # Callers that arrive together share a transaction.
        assert appender.committed_events == callers
        assert appender.committed_batches < callers
    assert len(set(ids)) == callers
    stored = await _events_by_target(session_factory, "call:")
    assert {number: stored[f"call:{number}"].id for number in range(callers)} == dict(
        enumerate(ids)
    )
    assert all(stored[f"call:{n}"].summary == {"number": n} for n in range(callers))
    assert await _chain_problems(session_factory) == []


async def test_append_returns_the_committed_rows_id(
    database_url: str, session_factory: async_sessionmaker[AsyncSession], people: People
) -> None:
    admin = people.admin.actor
    async with AuditAppender(session_factory) as appender:
        event_id = await appender.append(
            admin,
            "recording.download",
            "call:7",
            {"recording_id": 3, "codec": "opus", "текст": "проверка"},
            now=MOMENT,
        )
        # Read by another connection of another engine: committed, not just flushed.
        other_engine = create_engine(database_url)
        try:
            async with create_session_factory(other_engine)() as reader:
                row = await reader.get(AuditEvent, event_id)
        finally:
            await other_engine.dispose()
    assert row is not None
    assert (row.action, row.target, row.actor_user_id, row.source_ip) == (
        "recording.download",
        "call:7",
        admin.user_id,
        admin.source_ip,
    )
    assert row.summary == {"recording_id": 3, "codec": "opus", "текст": "проверка"}
    assert row.occurred_at == MOMENT
    assert await _chain_problems(session_factory) == []


async def test_a_summary_that_is_not_json_fails_only_its_caller(
    session_factory: async_sessionmaker[AsyncSession], people: People
) -> None:
    anna = people.north_operator.actor
    async with AuditAppender(session_factory) as appender:
        results = await asyncio.gather(
            appender.append(anna, "export.contacts", "good:1", {"rows": 1}),
            appender.append(anna, "export.contacts", "bad:1", {"when": MOMENT}),
            appender.append(anna, "export.contacts", "good:2", {"rows": 2}),
            return_exceptions=True,
        )
    assert isinstance(results[1], TypeError)
    assert isinstance(results[0], int)
    assert isinstance(results[2], int)
    stored = await _events_by_target(session_factory, "")
    assert "bad:1" not in stored
    assert (stored["good:1"].id, stored["good:2"].id) == (results[0], results[2])
    assert await _chain_problems(session_factory) == []


async def test_a_failed_batch_fails_all_its_callers_and_later_appends_work(
    engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession], people: People
) -> None:
    anna = people.north_operator.actor
    async with AuditAppender(session_factory) as appender:
        before = await appender.append(anna, "user.login", "before:1")
        async with database_refusing(engine, REFUSED_ACTION):
            # Queued together, so committed (here: refused) together.
            results = await asyncio.gather(
                appender.append(anna, "recording.play", "same-batch:1"),
                appender.append(anna, REFUSED_ACTION, "same-batch:2"),
                appender.append(anna, "recording.play", "same-batch:3"),
                return_exceptions=True,
            )
        after = await appender.append(anna, "recording.play", "after:1")
    for result in results:
        assert isinstance(result, AuditAppendFailed)
        assert result.__cause__ is not None
        assert "refused by the test" in str(result.__cause__)
    stored = await _events_by_target(session_factory, "")
    assert not any(target.startswith("same-batch:") for target in stored)
    # Nothing of the refused batch took a place in the chain.
    assert after == before + 1
    assert stored["after:1"].id == after
    assert await _chain_problems(session_factory) == []


async def test_a_failed_batch_does_not_fail_other_batches(
    engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession], people: People
) -> None:
    anna = people.north_operator.actor
    async with AuditAppender(session_factory, batch_limit=1) as appender:
        async with database_refusing(engine, REFUSED_ACTION):
            results = await asyncio.gather(
                appender.append(anna, "recording.play", "own-batch:1"),
                appender.append(anna, REFUSED_ACTION, "own-batch:2"),
                appender.append(anna, "recording.play", "own-batch:3"),
                return_exceptions=True,
            )
        assert appender.committed_batches == 2
    assert isinstance(results[1], AuditAppendFailed)
    stored = await _events_by_target(session_factory, "own-batch:")
    assert sorted(stored) == ["own-batch:1", "own-batch:3"]
    assert (stored["own-batch:1"].id, stored["own-batch:3"].id) == (results[0], results[2])
    assert await _chain_problems(session_factory) == []


async def test_close_commits_what_was_queued_and_refuses_more(
    session_factory: async_sessionmaker[AsyncSession], people: People
) -> None:
    anna = people.north_operator.actor
    appender = AuditAppender(session_factory, batch_limit=7)
    callers = [
        asyncio.create_task(appender.append(anna, "monitor.listen", f"queued:{number}"))
        for number in range(40)
    ]
    await asyncio.sleep(0)  # the callers queue their events
    await appender.close()
    async with session_factory() as session:
        count = await session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.target.like("queued:%"))
        )
    assert count == 40
    ids = await asyncio.gather(*callers)
    assert len(set(ids)) == 40
    with pytest.raises(AuditAppendFailed):
        await appender.append(anna, "monitor.listen", "late:1")
    assert "late:1" not in await _events_by_target(session_factory, "late:")
    assert await _chain_problems(session_factory) == []


async def test_appends_interleave_with_events_of_business_transactions(
    session_factory: async_sessionmaker[AsyncSession], people: People
) -> None:
    """The appender and use cases appending in their own transactions share one chain."""
    anna = people.north_operator.actor
    admin = people.admin.actor

    async def business_changes() -> None:
        for number in range(30):
            async with session_factory() as session:
                await append_audit_event(session, admin, "contact.update", f"contact:{number}")
                await session.commit()

    async with AuditAppender(session_factory) as appender:

        async def plays() -> list[int]:
            played: list[int] = []
            for round_number in range(10):
                played.extend(
                    await asyncio.gather(
                        *(
                            appender.append(anna, "recording.play", f"call:{round_number}-{n}")
                            for n in range(5)
                        )
                    )
                )
            return played

        played, _ = await asyncio.gather(plays(), business_changes())
    assert len(set(played)) == 50
    assert len(await _events_by_target(session_factory, "contact:")) == 30
    assert len(await _events_by_target(session_factory, "call:")) == 50
    assert await _chain_problems(session_factory) == []
