"""Requests that only read never wait for SQLite's write lock.

Another process (the worker, a CLI command) may hold the one write lock of a SQLite database
for a while. Signing a request in and reading pages of the API need no write, so they are
answered at once; the idle timer of a session is still written when it is due.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from dialer.storage import sqlite_path
from tests.conftest import People
from tests.web.conftest import ManualClock, client_of


@pytest.fixture
def outside_writer(database_url: str) -> Iterator[sqlite3.Connection]:
    """A connection of another process to the SQLite file (PostgreSQL: skipped)."""
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite's one write lock")
    connection = sqlite3.connect(Path(sqlite_path(database_url)), isolation_level=None)
    try:
        yield connection
    finally:
        connection.close()


def last_seen(connection: sqlite3.Connection) -> list[str]:
    return [row[0] for row in connection.execute("SELECT last_seen_at FROM web_sessions")]


async def test_reading_requests_are_answered_while_another_process_writes(
    app: Starlette, people: People, outside_writer: sqlite3.Connection
) -> None:
    async with client_of(app, people.north_operator) as client:
        outside_writer.execute("BEGIN IMMEDIATE")
        try:
            responses: list[httpx.Response] = [
                await client.get("/api/session"),
                await client.get("/api/contacts"),
                await client.get("/api/calls"),
                await client.get("/api/statuses"),
                await client.get("/api/calls/current"),
            ]
        finally:
            outside_writer.execute("ROLLBACK")
    assert [response.status_code for response in responses] == [200] * 5


async def test_the_idle_timer_is_still_written_when_due(
    app: Starlette, people: People, clock: ManualClock, outside_writer: sqlite3.Connection
) -> None:
    async with client_of(app, people.north_operator) as client:
        before = last_seen(outside_writer)
        assert (await client.get("/api/session")).status_code == 200
        assert last_seen(outside_writer) == before  # not due yet: nothing written
        clock.advance(timedelta(minutes=2))
        assert (await client.get("/api/contacts")).status_code == 200
        after = last_seen(outside_writer)
    assert len(after) == 1
    assert after != before
