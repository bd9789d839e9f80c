"""Engines, sessions and schema migrations for SQLite (aiosqlite) and PostgreSQL (asyncpg)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, event
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.util import await_only

from dialer.sqlite_gate import GateStalledError, WriterGate

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MILLISECONDS = 10_000
# How long a write transaction waits for its turn while one other transaction of this process
# keeps the write lock (not while the lock moves on from one to the next): past it, "database is
# locked", as SQLite's busy timeout says for other processes. Longer than the busy timeout, as
# a turn may have to wait that long for another process first.
SQLITE_WRITER_STALL_SECONDS = 60.0


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_path(url: str) -> Path:
    """The database file of a SQLite URL (ValueError for in-memory or non-SQLite URLs)."""
    parsed = make_url(url)
    if (
        parsed.get_backend_name() != "sqlite"
        or not parsed.database
        or parsed.database == ":memory:"
    ):
        raise ValueError(f"not a file SQLite URL: {url}")
    return Path(parsed.database)


def create_engine(
    url: str,
    *,
    sqlite_busy_timeout_milliseconds: int = SQLITE_BUSY_TIMEOUT_MILLISECONDS,
    sqlite_writer_stall_seconds: float = SQLITE_WRITER_STALL_SECONDS,
    **options: Any,
) -> AsyncEngine:
    """An async engine. PostgreSQL (asyncpg) plans every statement for its actual parameters.
    SQLite gets WAL, synchronous=FULL, foreign_keys=ON, busy_timeout, and
    every write transaction starts with BEGIN IMMEDIATE; its directory is created if missing.

    SQLite allows one writer. A deferred transaction that reads and then writes fails at once
    ("database is locked") when another connection wrote in between, so write transactions take
    the write lock up front. Within this process they take turns, first come first served, in
    asyncio (``dialer.sqlite_gate``): none parks a thread in SQLite's busy handler or times out
    while the lock moves between this engine's own connections; the busy timeout still applies
    to other processes on the same file (``sqlite_writer_stall_seconds``: how long one
    transaction of this process may keep the lock before its waiters give up). Keep
    transactions short all the same (a long export should page through several short
    sessions): every writer waits for the one before.

    Read-only transactions (``read_only_session_factory``, ``begin_read_only``) begin DEFERRED,
    never wait for a writer (WAL readers are not blocked) and refuse to write.
    """
    if not is_sqlite(url):
        options.setdefault("pool_pre_ping", True)
        if make_url(url).get_driver_name() == "asyncpg":
            # asyncpg prepares every statement; after a few runs PostgreSQL would switch to a
            # generic plan that ignores the actual search prefix and scans whole tables.
            connect_args = options.setdefault("connect_args", {})
            connect_args.setdefault("server_settings", {}).setdefault(
                "plan_cache_mode", "force_custom_plan"
            )
        return create_async_engine(url, **options)
    path = sqlite_path(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, **options)
    _configure_sqlite(
        engine.sync_engine, sqlite_busy_timeout_milliseconds, sqlite_writer_stall_seconds
    )
    return engine


class ReadOnlyTransactionError(Exception):
    """A read-only transaction tried to write (``read_only_session_factory``,
    ``begin_read_only``)."""


def read_only_options(engine: AsyncEngine) -> dict[str, Any]:
    """Execution options that make a connection's transactions read-only on ``engine``:
    SQLite begins them DEFERRED with ``PRAGMA query_only`` and no turn for the write lock;
    PostgreSQL begins them READ ONLY."""
    if engine.dialect.name == "sqlite":
        return {_READ_ONLY: True}
    return {"postgresql_readonly": True}


def read_only_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions whose every transaction is read-only (see ``read_only_options``): for requests
    that only read. A write raises ``ReadOnlyTransactionError`` (SQLite) or a DBAPI error
    (PostgreSQL: "cannot execute ... in a read-only transaction")."""
    return async_sessionmaker(
        engine.execution_options(**read_only_options(engine)), expire_on_commit=False
    )


async def begin_read_only(session: AsyncSession) -> None:
    """Begin ``session``'s next transaction read-only (see ``read_only_options``); later
    transactions of the session are ordinary ones again. Raises RuntimeError when a transaction
    is already under way (it could not become read-only any more)."""
    if session.in_transaction():
        raise RuntimeError("begin_read_only needs a session with no transaction under way")
    bind = session.bind
    if not isinstance(bind, AsyncEngine):
        raise RuntimeError("begin_read_only needs a session bound to one engine")
    await session.connection(execution_options=read_only_options(bind))


def writer_gate(engine: AsyncEngine) -> WriterGate | None:
    """The turn-taking of ``engine``'s write transactions (None: not a SQLite engine)."""
    gate = engine.sync_engine.dialect.__dict__.get(_GATE)
    return gate if isinstance(gate, WriterGate) else None


_READ_ONLY = "dialer_read_only"
_GATE = "_dialer_writer_gate"
_QUERY_ONLY = "dialer_query_only"


def _dbapi_connection_of(connection: Any) -> object:
    """The raw DBAPI connection behind a pool proxy (or the connection itself)."""
    return getattr(connection, "dbapi_connection", None) or connection


def _configure_sqlite(
    engine: Engine, busy_timeout_milliseconds: int, writer_stall_seconds: float
) -> None:
    gate = WriterGate(stall_seconds=writer_stall_seconds)
    dialect = engine.dialect
    setattr(dialect, _GATE, gate)
    commit = dialect.do_commit
    rollback = dialect.do_rollback

    # The turn ends once COMMIT or ROLLBACK has completed: SQLAlchemy commits and rolls back
    # (also when the pool resets a connection coming back) through these two dialect methods.
    # A COMMIT that fails keeps the turn until the rollback that must follow.
    def do_commit(dbapi_connection: Any) -> None:
        commit(dbapi_connection)
        gate.release(_dbapi_connection_of(dbapi_connection))

    def do_rollback(dbapi_connection: Any) -> None:
        try:
            rollback(dbapi_connection)
        finally:
            gate.release(_dbapi_connection_of(dbapi_connection))

    dialect.do_commit = do_commit  # type: ignore[method-assign]
    dialect.do_rollback = do_rollback  # type: ignore[method-assign]

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, connection_record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_milliseconds}")
        cursor.execute("PRAGMA query_only=OFF")
        cursor.close()
        connection_record.info[_QUERY_ONLY] = False

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        read_only = bool(connection.get_execution_options().get(_READ_ONLY))
        if connection.info.get(_QUERY_ONLY) is not read_only:
            connection.exec_driver_sql(f"PRAGMA query_only={'ON' if read_only else 'OFF'}")
            connection.info[_QUERY_ONLY] = read_only
        if read_only:
            connection.exec_driver_sql("BEGIN")
            return
        owner = _dbapi_connection_of(connection.connection)
        try:
            await_only(gate.acquire(owner))
        except GateStalledError as stalled:
            raise OperationalError(
                "BEGIN IMMEDIATE", None, sqlite3.OperationalError(f"database is locked: {stalled}")
            ) from stalled
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            gate.release(owner)
            raise

    # Safety nets: a connection checked in or invalidated without COMMIT or ROLLBACK ends its
    # turn (its SQLite transaction ended with it or is rolled back by the pool's reset).
    @event.listens_for(engine, "checkin")
    def _checkin(dbapi_connection: Any, _record: Any) -> None:
        if dbapi_connection is not None:
            gate.release(dbapi_connection)

    @event.listens_for(engine, "invalidate")
    def _invalidate(dbapi_connection: Any, _record: Any, _exception: Any) -> None:
        if dbapi_connection is not None:
            gate.release(dbapi_connection)

    @event.listens_for(engine, "handle_error")
    def _explain_read_only(context: ExceptionContext) -> BaseException | None:
        connection = context.connection
        original = context.original_exception
        if (
            connection is not None
            and connection.get_execution_options().get(_READ_ONLY)
            and isinstance(original, sqlite3.OperationalError)
            and "readonly database" in str(original)
        ):
            return ReadOnlyTransactionError(
                f"write in a read-only transaction: {context.statement}"
            )
        return None


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded attributes after commit (``expire_on_commit=False``)."""
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str) -> Config:
    """An Alembic configuration pointing at the packaged migrations (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


async def upgrade_database(url: str, revision: str = "head") -> None:
    """Create or upgrade the schema at ``url`` to ``revision`` (Alembic, packaged migrations).

    Safe to call at every start; seeds the default contact statuses and the audit chain head.
    """
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade, url, revision)
    finally:
        await engine.dispose()


def _upgrade(connection: Connection, url: str, revision: str) -> None:
    config = alembic_config(url)
    config.attributes["connection"] = connection
    command.upgrade(config, revision)
