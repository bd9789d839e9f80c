"""Call transitions while another process holds SQLite's write lock past the busy timeout.

The call service writes transitions in groups (``CallService._write_queued``). When the database
stays locked (another process, such as the worker or a CLI command, keeps the one write lock
past the busy timeout) the group cannot be written: the calls' events are still published in
order (the call did end), each refused transition is logged as not recorded yet, and kept. It is
written again on a timer that backs off, and before any later transition of its call, so once
the lock is free the rows catch up with what happened, with the times it happened at. What is
still refused at shutdown is logged; the next start interrupts the call and attaches its
recording.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from dialer.call_control import CallRequest
from dialer.live_events import InProcessEventBus
from dialer.models import Call
from dialer.settings import Settings
from dialer.storage import create_engine, sqlite_path
from dialer.telephony import AccountChoice, CallService
from sip.testline import TestLine
from tests.conftest import People
from tests.dialer.test_telephony_support import (
    EventLog,
    answered_browser_call,
    call_row,
    event_log,
    recordings_of,
    wait_for_recording,
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


async def wait_for_row_state(
    session_factory: async_sessionmaker[AsyncSession], call_id: int, state: str
) -> Call:
    """The call's row once it is in ``state`` (the service writes it on its own timer)."""
    for _ in range(600):
        row = await call_row(session_factory, call_id)
        if row.state == state:
            return row
        await asyncio.sleep(0.05)
    raise AssertionError(f"call {call_id} is still {row.state}, not {state}")


async def test_transitions_refused_by_a_locked_database_are_written_once_it_is_free(
    service: CallService,
    session_factory: async_sessionmaker[AsyncSession],
    bus: InProcessEventBus,
    people: People,
    other_process: sqlite3.Connection,
    caplog: pytest.LogCaptureFixture,
) -> None:
    operators = [people.north_operator, people.north_operator_2]
    caplog.set_level(logging.WARNING, logger="dialer.telephony.service")
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
            # Refused while the lock is held (and tried again meanwhile): the rows still say
            # answered, each refusal is logged with its cause.
            await asyncio.sleep(1.0)
            for live, _bridge in placed:
                row = other_process.execute(
                    "SELECT state, ended_at FROM calls WHERE id = ?", (live.call_id,)
                ).fetchone()
                assert row == ("answered", None)
        finally:
            other_process.execute("ROLLBACK")
        released_at = datetime.now(UTC)

        # Published in order although not recorded yet.
        for log in logs:
            kinds = [kind for kind in log.kinds() if kind != "call.recording"]
            assert kinds == ["call.created", "call.dialing", "call.answered", "call.ended"]
        refused = [record for record in caplog.records if "not recorded yet" in record.getMessage()]
        assert {record.getMessage().split(":")[0] for record in refused} == {
            f"call {live.call_id}" for live, _bridge in placed
        }
        # the cause in full once per call, not on every try
        with_cause = [record for record in refused if record.exc_info]
        assert len(with_cause) == len(placed)
        assert all(
            record.exc_info and "database is locked" in str(record.exc_info[1])
            for record in with_cause
        )

        # The lock is free: the refused transitions are written, with the times they happened.
        for live, _bridge in placed:
            row = await wait_for_row_state(session_factory, live.call_id, "ended")
            assert (row.end_cause, row.hangup_by) == ("browser_disconnected", "system")
            assert row.answered_at is not None
            assert row.ended_at is not None
            assert row.answered_at < row.ended_at < released_at
            # and its recording, stored meanwhile, is attached too
            recording = await wait_for_recording(session_factory, live.call_id)
            assert recording.duration_seconds > 0
        caught_up = {
            record.getMessage()
            for record in caplog.records
            if "refused before are recorded" in record.getMessage()
        }
        assert caught_up == {
            f"call {live.call_id}: the transitions refused before are recorded"
            for live, _bridge in placed
        }

        # The next call is written whole, in order, as usual.
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
    assert not [record for record in caplog.records if "could not record" in record.getMessage()]


async def test_what_the_database_refused_until_shutdown_is_logged_and_recovered_at_start(
    service: CallService,
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    bus: InProcessEventBus,
    test_line: TestLine,
    people: People,
    other_process: sqlite3.Connection,
    caplog: pytest.LogCaptureFixture,
) -> None:
    anna = people.north_operator
    caplog.set_level(logging.WARNING, logger="dialer.telephony.service")
    async with event_log(bus, anna.user.id) as log:
        live, bridge = await answered_browser_call(
            service, log, anna, CallRequest(number="+79165550178")
        )
        service.close_timeout_seconds = 3.0
        other_process.execute("BEGIN IMMEDIATE")
        try:
            bridge.detach()
            await log.wait_for("call.ended")
            await service.close()  # still locked: one last try, refused too
        finally:
            other_process.execute("ROLLBACK")
    lost = [record.getMessage() for record in caplog.records if record.levelno == logging.ERROR]
    assert len(lost) == 2
    assert (
        f"call {live.call_id}: could not record ended (the database refused it until shutdown)"
        in lost
    )
    (recording,) = (message for message in lost if message.startswith("recording "))
    assert recording.endswith(
        f"was not attached to call {live.call_id} before shutdown; the next start attaches it"
    )
    row = other_process.execute(
        "SELECT state, ended_at FROM calls WHERE id = ?", (live.call_id,)
    ).fetchone()
    assert row == ("answered", None)

    # The next start: the call is interrupted (its end was not recorded) and its compressed
    # recording, left without a row, is attached.
    again = await CallService.start(
        settings, session_factory, bus, accounts=AccountChoice.single(test_line.account())
    )
    try:
        report = again.recovery_report
    finally:
        await again.close()
    assert report is not None
    assert report.interrupted_call_ids == (live.call_id,)
    (attached,) = await recordings_of(session_factory, live.call_id)
    assert report.attached == {live.call_id: attached.id}
    assert attached.codec == "opus"
    assert attached.duration_seconds > 0
