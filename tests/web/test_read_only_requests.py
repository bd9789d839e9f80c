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


async def test_admin_and_supervisor_pages_are_answered_while_another_process_writes(
    app: Starlette, people: People, outside_writer: sqlite3.Connection
) -> None:
    async with (
        client_of(app, people.admin) as admin,
        client_of(app, people.north_supervisor) as supervisor,
    ):
        outside_writer.execute("BEGIN IMMEDIATE")
        try:
            responses: dict[str, httpx.Response] = {
                "users": await admin.get("/api/users"),
                "one user": await admin.get(f"/api/users/{people.north_operator.user.id}"),
                "teams": await admin.get("/api/teams"),
                "audit": await admin.get("/api/audit"),
                "audit verify": await admin.get("/api/audit/verify"),
                "team audit": await supervisor.get("/api/audit"),
                "library": await supervisor.get("/api/library/calls"),
                "transcription status": await supervisor.get("/api/transcription/status"),
                "no such transcript": await supervisor.get("/api/calls/999999/transcript"),
            }
        finally:
            outside_writer.execute("ROLLBACK")
    assert {name: response.status_code for name, response in responses.items()} == {
        "users": 200,
        "one user": 200,
        "teams": 200,
        "audit": 200,
        "audit verify": 200,
        "team audit": 200,
        "library": 200,
        "transcription status": 200,
        "no such transcript": 404,
    }
    assert responses["audit verify"].json()["intact"] is True
    logins = {user["login"] for user in responses["users"].json()["items"]}
    assert {"admin", "anna", "north-boss"} <= logins
