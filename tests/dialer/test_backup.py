"""Backups and restores: a round trip brings back exactly the backed-up data."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from dialer.audit import verify_audit_chain
from dialer.backup import backup_database, restore_database
from dialer.contacts import ContactInput, PhoneInput, create_contact
from dialer.errors import BackupFailed
from dialer.models import Contact
from tests.conftest import People


async def test_round_trip(
    database_url: str,
    engine: AsyncEngine,
    session_factory: async_sessionmaker[AsyncSession],
    people: People,
    tmp_path: Path,
) -> None:
    if not database_url.startswith("sqlite") and shutil.which("pg_dump") is None:
        pytest.skip("pg_dump is not installed")
    actor = people.north_operator.actor
    async with session_factory() as session:
        kept = await create_contact(
            session, actor, ContactInput(name="Kept", phones=[PhoneInput("+79160000001")])
        )
        await session.commit()
    archive = backup_database(database_url, tmp_path / "backups" / "one.backup")
    assert archive.stat().st_size > 0
    async with session_factory() as session:
        await create_contact(
            session, actor, ContactInput(name="Later", phones=[PhoneInput("+79160000002")])
        )
        await session.commit()
    await engine.dispose()  # the server is stopped for a restore

    restore_database(database_url, archive)

    async with session_factory() as session:
        names = list(await session.scalars(select(Contact.name)))
        assert names == ["Kept"]
        assert await session.scalar(select(func.count()).select_from(Contact)) == 1
        assert (await session.get(Contact, kept.id)) is not None
        assert await verify_audit_chain(session) == []


def test_restore_refuses_a_missing_or_broken_file(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'dialer.db'}"
    with pytest.raises(BackupFailed):
        restore_database(url, tmp_path / "absent.sqlite3")
    broken = tmp_path / "broken.sqlite3"
    broken.write_bytes(b"this is not a database" * 100)
    with pytest.raises(BackupFailed):
        restore_database(url, broken)
