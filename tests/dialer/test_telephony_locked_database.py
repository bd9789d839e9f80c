"""Call transitions while another process holds SQLite's write lock past the busy timeout.

The call service writes transitions in groups (``CallService._write_queued``). When the database
stays locked (another process, such as the worker or a CLI command, keeps the one write lock
past the busy timeout) the group cannot be written: each of its transitions is logged as not
recorded, the calls' events are still published in order (the call did end), and nothing waits
for the lock again. Once the lock is free, the next calls are written as usual.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from dialer.call_control import CallRequest
from dialer.live_events import InProcessEventBus
from dialer.storage import create_engine, sqlite_path
from dialer.telephony import CallService
from tests.conftest import People
from tests.dialer.test_telephony_support import (
    EventLog,
    answered_browser_call,
    call_row,
    event_log,
)

BUSY_TIMEOUT_MILLISECONDS = 300


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """The service's engine gives up on a lock held by another process after 300 ms."""
    engine = create_engine(database_url, sqlite_busy_timeout_milliseconds=BUSY_TIMEOUT_MILLISECONDS)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def browser_grace_seconds() -> float:
    return 0.2


@pytest.fixture
def other_process(database_url: str) -> Iterator[sqlite3.Connection]:
    """A connection to the SQLite file outside the service (PostgreSQL: skipped)."""
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite's one write lock")
    connection = sqlite3.connect(sqlite_path(database_url), isolation_level=None)
    try:
        yield connection
    finally:
        connection.close()


async def until_seen(log: EventLog, kind: str, times: int) -> None:
    while log.kinds().count(kind) < times:
        await log.wait_for_more()


async def test_transitions_refused_by_a_locked_database_are_logged_and_published_in_order(
    service: CallService,
    session_factory: async_sessionmaker[AsyncSession],
    bus: InProcessEventBus,
    people: People,
    other_process: sqlite3.Connection,
    caplog: pytest.LogCaptureFixture,
) -> None:
    operators = [people.north_operator, people.north_operator_2]
    caplog.set_level(logging.ERROR, logger="dialer.telephony.service")
    async with (
        event_log(bus, operators[0].user.id) as anna_log,
        event_log(bus, operators[1].user.id) as boris_log,
    ):
        logs = [anna_log, boris_log]
        placed = [
            await answered_browser_call(
                service, log, operator, CallRequest(number=f"+7916555017{index}")
            )
            for index, (operator, log) in enumerate(zip(operators, logs, strict=True))
        ]
        other_process.execute("BEGIN IMMEDIATE")
        try:
            # The browsers go away: their calls end after the grace period, with no request
            # of their own to the database.
            for _live, bridge in placed:
                bridge.detach()
            for log in logs:
                await log.wait_for("call.ended")
        finally:
            other_process.execute("ROLLBACK")

        # Published in order although not recorded; each lost transition is logged.
        for log in logs:
            kinds = [kind for kind in log.kinds() if kind != "call.recording"]
            assert kinds == ["call.created", "call.dialing", "call.answered", "call.ended"]
        not_recorded = [
            record.getMessage()
            for record in caplog.records
            if "could not record" in record.getMessage()
        ]
        assert sorted(not_recorded) == sorted(
            f"call {live.call_id}: could not record ended" for live, _bridge in placed
        )
        assert all(
            record.exc_info is not None and "database is locked" in str(record.exc_info[1])
            for record in caplog.records
            if "could not record" in record.getMessage()
        )
        for live, _bridge in placed:
            row = await call_row(session_factory, live.call_id)
            assert (row.state, row.ended_at) == ("answered", None)

        # The lock is free again: the next call is written whole, in order.
        anna = operators[0]
        live = await service.place_call(anna.actor, CallRequest(number="+79165550179"))
        await service.attach_browser_audio(anna.actor, live.call_id)
        await until_seen(anna_log, "call.answered", 2)
        await service.hang_up(anna.actor, live.call_id)
        await until_seen(anna_log, "call.ended", 2)
    row = await call_row(session_factory, live.call_id)
    assert (row.state, row.end_cause, row.hangup_by) == ("ended", "local_hangup", "operator")
    assert row.dialing_at is not None
    assert row.answered_at is not None
    assert row.ended_at is not None
    assert row.dialing_at <= row.answered_at < row.ended_at
