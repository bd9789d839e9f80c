"""Databases of a benchmark's own on a PostgreSQL server: made fresh, dropped afterwards."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine


async def run_outside_transaction(admin_url: str, statement: str) -> None:
    """One statement that may not run in a transaction (CREATE / DROP DATABASE) on
    ``admin_url``'s server."""
    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


async def create_database(admin_url: str, prefix: str) -> tuple[str, str]:
    """A new empty database named ``prefix`` + a random suffix: its name and its URL (that of
    ``admin_url`` with the database replaced)."""
    name = f"{prefix}{uuid.uuid4().hex[:10]}"
    await run_outside_transaction(admin_url, f'CREATE DATABASE "{name}"')
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    return name, url


async def drop_database(admin_url: str, name: str) -> None:
    """Drop the database ``name`` (its open connections too), if it exists."""
    await run_outside_transaction(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@asynccontextmanager
async def fresh_database(admin_url: str, prefix: str) -> AsyncIterator[str]:
    """The URL of a new empty database, dropped when the block ends however it ends."""
    name, url = await create_database(admin_url, prefix)
    try:
        yield url
    finally:
        await drop_database(admin_url, name)
