"""Engines, sessions and schema migrations for SQLite (aiosqlite) and PostgreSQL (asyncpg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MILLISECONDS = 10_000


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


def create_engine(url: str, **options: Any) -> AsyncEngine:
    """An async engine. PostgreSQL (asyncpg) plans every statement for its actual parameters.
    SQLite gets WAL, synchronous=FULL, foreign_keys=ON, busy_timeout, and
    every transaction starts with BEGIN IMMEDIATE; its directory is created if missing.

    SQLite allows one writer. A deferred transaction that reads and then writes fails at once
    ("database is locked") when another connection wrote in between, so transactions take the
    write lock up front and wait (busy_timeout) for each other instead. Readers in WAL mode are
    never blocked by the writer, but transactions queue behind each other: keep them short (a
    long export should page through several short sessions).
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

    @event.listens_for(engine.sync_engine, "connect")
    def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MILLISECONDS}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


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
