"""Write transactions take turns on SQLite; read-only sessions never wait and never write.

On SQLite a write transaction waits for its turn in asyncio (``dialer.sqlite_gate``), first come
first served, and its turn ends however the transaction ends. Read-only sessions begin DEFERRED
(SQLite) or READ ONLY (PostgreSQL) and refuse writes.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from dialer.sqlite_gate import WriterGate
from dialer.storage import (
    ReadOnlyTransactionError,
    begin_read_only,
    create_engine,
    create_session_factory,
    read_only_session_factory,
    writer_gate,
)

WRITERS = 50


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Path:
    path = tmp_path / "turns.db"
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE turns (id INTEGER PRIMARY KEY AUTOINCREMENT, writer INT)")
    return path


@pytest.fixture
async def sqlite_engine(sqlite_file: Path) -> AsyncIterator[AsyncEngine]:
    """An engine with a 1 s busy timeout and a connection for each of the writers."""
    engine = create_engine(
        f"sqlite+aiosqlite:///{sqlite_file}",
        sqlite_busy_timeout_milliseconds=1000,
        pool_size=WRITERS,
    )
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def outside_writer(sqlite_file: Path) -> Iterator[sqlite3.Connection]:
    """Another connection to the file, not through the engine (as another process would be)."""
    connection = sqlite3.connect(sqlite_file, isolation_level=None, check_same_thread=False)
    try:
        yield connection
    finally:
        connection.close()


def gate_of(engine: AsyncEngine) -> WriterGate:
    gate = writer_gate(engine)
    assert gate is not None
    return gate


async def until(condition: object) -> None:
    """Let other tasks run until ``condition()`` holds (the gate has no event to wait on)."""
    assert callable(condition)
    while not condition():  # noqa: ASYNC110
        await asyncio.sleep(0)


async def written(engine: AsyncEngine) -> list[int]:
    async with engine.connect() as connection:
        rows = await connection.execute(text("SELECT writer FROM turns ORDER BY id"))
        return [writer for (writer,) in rows]


async def test_concurrent_writers_all_succeed_in_arrival_order(
    sqlite_engine: AsyncEngine,
) -> None:
    # 50 writers holding the lock 50 ms each wait 2.5 s in all, far past the 1 s busy timeout.
    arrivals: list[int] = []

    async def write(writer: int) -> None:
        async with sqlite_engine.connect() as connection:
            await connection.execute(text("SELECT 1"))  # checked out and connected
            await connection.commit()
            arrivals.append(writer)
            async with connection.begin():
                await connection.execute(
                    text("INSERT INTO turns (writer) VALUES (:writer)"), {"writer": writer}
                )
                await asyncio.sleep(0.05)

    await asyncio.gather(*(write(writer) for writer in range(WRITERS)))

    assert sorted(arrivals) == list(range(WRITERS))
    assert await written(sqlite_engine) == arrivals
    gate = gate_of(sqlite_engine)
    assert gate.holder is None
    assert gate.waiting == 0


async def test_a_cancelled_waiter_gives_up_its_place(sqlite_engine: AsyncEngine) -> None:
    gate = gate_of(sqlite_engine)
    holding = asyncio.Event()
    finish = asyncio.Event()

    async def hold() -> None:
        async with sqlite_engine.begin() as connection:
            await connection.execute(text("INSERT INTO turns (writer) VALUES (1)"))
            holding.set()
            await finish.wait()

    async def wait_then_write(writer: int) -> None:
        async with sqlite_engine.begin() as connection:
            await connection.execute(
                text("INSERT INTO turns (writer) VALUES (:writer)"), {"writer": writer}
            )

    holder = asyncio.create_task(hold())
    await holding.wait()
    cancelled = asyncio.create_task(wait_then_write(2))
    await until(lambda: gate.waiting == 1)
    later = asyncio.create_task(wait_then_write(3))
    await until(lambda: gate.waiting == 2)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert gate.waiting == 1
    finish.set()
    await holder
    await later
    assert await written(sqlite_engine) == [1, 3]
    assert gate.holder is None
    assert gate.waiting == 0


async def test_a_transaction_cancelled_while_holding_the_lock_hands_it_on(
    sqlite_engine: AsyncEngine,
) -> None:
    gate = gate_of(sqlite_engine)
    holding = asyncio.Event()

    async def hold_forever() -> None:
        async with sqlite_engine.begin() as connection:
            await connection.execute(text("INSERT INTO turns (writer) VALUES (1)"))
            holding.set()
            await asyncio.Event().wait()

    holder = asyncio.create_task(hold_forever())
    await holding.wait()
    waiter = asyncio.create_task(_insert(sqlite_engine, 2))
    await until(lambda: gate.waiting == 1)
    holder.cancel()
    with pytest.raises(asyncio.CancelledError):
        await holder
    await waiter
    assert await written(sqlite_engine) == [2]
    assert gate.holder is None


async def _insert(engine: AsyncEngine, writer: int) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            text("INSERT INTO turns (writer) VALUES (:writer)"), {"writer": writer}
        )


async def test_an_error_inside_a_transaction_ends_its_turn(sqlite_engine: AsyncEngine) -> None:
    sessions = create_session_factory(sqlite_engine)

    async def change_mind() -> None:
        async with sessions() as session, session.begin():
            await session.execute(text("INSERT INTO turns (writer) VALUES (1)"))
            raise ValueError("changed my mind")

    with pytest.raises(ValueError, match="changed my mind"):
        await change_mind()
    assert gate_of(sqlite_engine).holder is None
    await _insert(sqlite_engine, 2)
    assert await written(sqlite_engine) == [2]


async def test_a_connection_returned_without_commit_ends_its_turn(
    sqlite_engine: AsyncEngine,
) -> None:
    connection = await sqlite_engine.connect()
    await connection.execute(text("INSERT INTO turns (writer) VALUES (1)"))
    assert gate_of(sqlite_engine).holder is not None
    await connection.close()  # the pool rolls it back
    assert gate_of(sqlite_engine).holder is None

    sessions = create_session_factory(sqlite_engine)
    session = sessions()
    await session.execute(text("INSERT INTO turns (writer) VALUES (2)"))
    await session.close()
    assert gate_of(sqlite_engine).holder is None
    await _insert(sqlite_engine, 3)
    assert await written(sqlite_engine) == [3]


async def test_the_turn_is_held_until_commit_completes(sqlite_engine: AsyncEngine) -> None:
    gate = gate_of(sqlite_engine)
    async with sqlite_engine.connect() as connection:
        await connection.execute(text("INSERT INTO turns (writer) VALUES (1)"))
        holder = gate.holder
        assert holder is not None
        await connection.commit()
        assert gate.holder is None
        # The connection stays checked out; its next transaction takes a new turn.
        await connection.execute(text("INSERT INTO turns (writer) VALUES (2)"))
        assert gate.holder is holder
        await connection.rollback()
        assert gate.holder is None
    assert await written(sqlite_engine) == [1]


async def test_another_process_holding_the_lock_still_times_out_through_busy_timeout(
    sqlite_engine: AsyncEngine, outside_writer: sqlite3.Connection
) -> None:
    outside_writer.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(OperationalError, match="database is locked"):
            await _insert(sqlite_engine, 1)
    finally:
        outside_writer.execute("ROLLBACK")
    assert gate_of(sqlite_engine).holder is None
    await _insert(sqlite_engine, 2)
    assert await written(sqlite_engine) == [2]


async def test_a_read_only_session_reads_while_a_writer_holds_the_lock(
    sqlite_engine: AsyncEngine, outside_writer: sqlite3.Connection
) -> None:
    await _insert(sqlite_engine, 1)
    gate = gate_of(sqlite_engine)
    holding = asyncio.Event()
    finish = asyncio.Event()

    async def hold() -> None:
        async with sqlite_engine.begin() as connection:
            await connection.execute(text("INSERT INTO turns (writer) VALUES (2)"))
            holding.set()
            await finish.wait()

    holder = asyncio.create_task(hold())
    await holding.wait()
    waiter = asyncio.create_task(_insert(sqlite_engine, 3))
    await until(lambda: gate.waiting == 1)
    reader = read_only_session_factory(sqlite_engine)
    async with reader() as session:
        seen = list((await session.execute(text("SELECT writer FROM turns"))).scalars())
        await session.commit()
    assert seen == [1]
    assert gate.waiting == 1
    finish.set()
    await holder
    await waiter
    assert await written(sqlite_engine) == [1, 2, 3]

    outside_writer.execute("BEGIN IMMEDIATE")  # another process holds the lock now
    try:
        outside_writer.execute("INSERT INTO turns (writer) VALUES (4)")
        async with reader() as session:
            seen = list((await session.execute(text("SELECT writer FROM turns"))).scalars())
    finally:
        outside_writer.execute("COMMIT")
    assert seen == [1, 2, 3]


async def test_a_read_only_session_refuses_to_write_and_takes_no_turn(
    sqlite_engine: AsyncEngine,
) -> None:
    gate = gate_of(sqlite_engine)
    async with read_only_session_factory(sqlite_engine)() as session:
        await session.execute(text("SELECT count(*) FROM turns"))
        assert gate.holder is None
        with pytest.raises(ReadOnlyTransactionError, match="read-only transaction"):
            await session.execute(text("INSERT INTO turns (writer) VALUES (1)"))
    assert gate.holder is None
    await _insert(sqlite_engine, 2)
    assert await written(sqlite_engine) == [2]


async def test_a_pooled_connection_writes_again_after_a_read_only_transaction(
    sqlite_file: Path,
) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{sqlite_file}", pool_size=1, max_overflow=0)
    try:
        sessions = create_session_factory(engine)
        async with sessions() as session:
            await begin_read_only(session)
            await session.execute(text("SELECT count(*) FROM turns"))
            with pytest.raises(RuntimeError, match="no transaction under way"):
                await begin_read_only(session)
            await session.commit()
            await session.execute(text("INSERT INTO turns (writer) VALUES (1)"))
            await session.commit()
        assert await written(engine) == [1]
    finally:
        await engine.dispose()


async def test_read_only_transactions_on_both_databases(engine: AsyncEngine) -> None:
    async with read_only_session_factory(engine)() as session:
        statuses = (await session.execute(text("SELECT count(*) FROM contact_statuses"))).scalar()
        with pytest.raises((ReadOnlyTransactionError, DBAPIError), match="read-only transaction"):
            await session.execute(text("UPDATE contact_statuses SET label = 'changed'"))
    sessions = create_session_factory(engine)
    async with sessions() as session:
        await begin_read_only(session)
        await session.execute(text("SELECT count(*) FROM contact_statuses"))
        with pytest.raises((ReadOnlyTransactionError, DBAPIError), match="read-only transaction"):
            await session.execute(text("UPDATE contact_statuses SET label = 'changed'"))
        await session.rollback()
        # The session's next transaction is an ordinary one.
        await session.execute(text("UPDATE contact_statuses SET label = label"))
        await session.commit()
        labels = set((await session.execute(text("SELECT label FROM contact_statuses"))).scalars())
    assert statuses == 8
    assert "changed" not in labels


async def test_a_waiter_gives_up_when_one_transaction_keeps_the_lock_too_long(
    sqlite_file: Path,
) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{sqlite_file}", sqlite_writer_stall_seconds=0.2)
    try:
        holding = asyncio.Event()
        finish = asyncio.Event()

        async def hold() -> None:
            async with engine.begin() as connection:
                await connection.execute(text("INSERT INTO turns (writer) VALUES (1)"))
                holding.set()
                await finish.wait()

        holder = asyncio.create_task(hold())
        await holding.wait()
        with pytest.raises(OperationalError, match="database is locked"):
            await _insert(engine, 2)
        finish.set()
        await holder
        assert gate_of(engine).waiting == 0
        await _insert(engine, 3)
        assert await written(engine) == [1, 3]
    finally:
        await engine.dispose()
