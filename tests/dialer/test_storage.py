"""Engines and migrations: SQLite pragmas, idempotent upgrades, search indexes in place."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dialer.storage import alembic_config, create_engine, upgrade_database


async def test_sqlite_connections_are_durable_and_checked(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'nested' / 'dialer.db'}"
    await upgrade_database(url)
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            pragmas = {
                name: (await connection.execute(text(f"PRAGMA {name}"))).scalar_one()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            }
    finally:
        await engine.dispose()
    assert pragmas["journal_mode"] == "wal"
    assert pragmas["synchronous"] == 2  # FULL
    assert pragmas["foreign_keys"] == 1
    assert pragmas["busy_timeout"] > 0


async def test_upgrade_is_idempotent_and_reaches_head(
    database_url: str, engine: AsyncEngine
) -> None:
    await upgrade_database(database_url)
    async with engine.connect() as connection:
        version = (
            await connection.execute(text("SELECT version_num FROM alembic_version"))
        ).scalar_one()
        statuses = (
            await connection.execute(text("SELECT count(*) FROM contact_statuses"))
        ).scalar_one()
    head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
    assert version == head
    assert statuses == 8


async def test_search_indexes_exist(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            names = set(
                (await connection.execute(text("SELECT name FROM sqlite_master"))).scalars()
            )
            assert {"contact_search", "contacts_search_insert", "ix_contact_phones_e164"} <= names
        else:
            indexes = set(
                (await connection.execute(text("SELECT indexname FROM pg_indexes"))).scalars()
            )
            assert {"ix_contacts_search_text_trgm", "ix_contact_phones_e164"} <= indexes
            collation = (
                await connection.execute(
                    text(
                        "SELECT collation_name FROM information_schema.columns"
                        " WHERE table_name = 'contact_phones' AND column_name = 'e164'"
                    )
                )
            ).scalar_one()
            assert collation == "C"


async def test_migrations_need_no_alembic_ini_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    await upgrade_database(url)
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            head = (
                await connection.execute(text("SELECT last_event_id FROM audit_chain_head"))
            ).scalar_one()
    finally:
        await engine.dispose()
    assert head == 0
    assert list(elsewhere.iterdir()) == []
