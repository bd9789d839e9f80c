"""Group commit for standalone audit events.

An event that is not part of a business change (a recording played or downloaded, an export, a
monitor joining a call) needs its own transaction, and a committed transaction costs an fsync
(SQLite ``synchronous=FULL``, PostgreSQL's WAL flush): one by one, a few hundred events per
second. ``AuditAppender`` lets concurrent callers share that cost. Each ``append`` queues its
event and waits; one writer task takes everything queued (up to ``batch_limit`` events), appends
it to the chain in one transaction with ``dialer.audit.append_audit_events`` (the chain head is
locked once per batch, the rows go in one multi-row INSERT) and commits. While a batch commits,
new events queue for the next one, so batches grow with the load and an idle appender commits a
lone event at once.

Guarantees:

- ``append`` returns the event's id only once its batch is committed (durable), so a caller can
  keep promises like "the play is audited before the bytes are served";
- if a batch cannot be committed, every caller of that batch gets ``AuditAppendFailed`` (the
  database's error as its cause) and none of its events is in the chain; later batches are
  tried afresh. As with any commit, a connection lost during COMMIT leaves the outcome unknown:
  the caller is told it failed, and the event may be in the chain all the same;
- a summary that is not JSON-serializable is refused in the caller's own ``append`` (TypeError
  or ValueError) and never reaches a batch;
- ``close`` refuses new events and returns once every queued event is committed or failed.

The writer task exists only while events are queued, so an appender needs no start step and an
idle one holds no task; the application owns one instance (no global state).

Do not await ``append`` while your own session holds a transaction that wrote, or any
transaction on SQLite (every SQLite transaction here begins with ``BEGIN IMMEDIATE`` and holds
the write lock): the batch would wait for that lock while you wait for the batch. End the
transaction first, or append in it with ``append_audit_event`` when the event must be atomic with
your change.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.actors import Actor
from dialer.audit import AuditEntry, append_audit_events, normalised_summary
from dialer.models import utc_now

logger = logging.getLogger(__name__)

DEFAULT_BATCH_LIMIT = 500


class AuditAppendFailed(RuntimeError):  # noqa: N818 (reads as what happened to the event)
    """The event was not recorded: its batch could not be committed (see ``__cause__``), the
    writer was stopped, or the appender is closed."""


@dataclass(frozen=True)
class _QueuedEvent:
    entry: AuditEntry
    committed: asyncio.Future[int]


class AuditAppender:
    """Appends standalone audit events for many concurrent callers, a batch per transaction."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        batch_limit: int = DEFAULT_BATCH_LIMIT,
    ) -> None:
        if batch_limit < 1:
            raise ValueError("batch_limit must be at least 1")
        self._session_factory = session_factory
        self._batch_limit = batch_limit
        self._queued: deque[_QueuedEvent] = deque()
        self._writer: asyncio.Task[None] | None = None
        self._closed = False
        self._committed_batches = 0
        self._committed_events = 0

    @property
    def committed_batches(self) -> int:
        """Transactions committed so far (each holding one or more events)."""
        return self._committed_batches

    @property
    def committed_events(self) -> int:
        return self._committed_events

    @property
    def closed(self) -> bool:
        return self._closed

    async def append(
        self,
        actor: Actor | None,
        action: str,
        target: str | None,
        summary: Mapping[str, Any] | None = None,
        source_ip: str | None = None,
        *,
        now: datetime | None = None,
        actor_login: str | None = None,
    ) -> int:
        """Append one event and return its id once it is committed.

        The arguments mean what they mean for ``dialer.audit.append_audit_event``; ``now``
        (default: the time of this call) is when the event occurred. Raises TypeError or
        ValueError for a summary that is not JSON-serializable, ``AuditAppendFailed`` when the
        event was not recorded.
        """
        if self._closed:
            raise AuditAppendFailed("the audit appender is closed")
        entry = AuditEntry(
            actor=actor,
            action=action,
            target=target,
            summary=normalised_summary(summary),
            source_ip=source_ip,
            occurred_at=now if now is not None else utc_now(),
            actor_login=actor_login,
        )
        queued = _QueuedEvent(entry, asyncio.get_running_loop().create_future())
        self._queued.append(queued)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_queued(), name="audit-appender")
        # A caller cancelled here does not take its event back: it is committed all the same.
        return await queued.committed

    async def close(self) -> None:
        """Refuse new events; return once every queued event is committed or failed."""
        self._closed = True
        writer = self._writer
        if writer is not None:
            await asyncio.shield(writer)

    async def __aenter__(self) -> AuditAppender:
        return self

    async def __aexit__(
        self,
        exception_type: type[BaseException] | None,
        exception: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def _write_queued(self) -> None:
        batch: list[_QueuedEvent] = []
        try:
            while self._queued:
                size = min(len(self._queued), self._batch_limit)
                batch = [self._queued.popleft() for _ in range(size)]
                await self._commit(batch)
                batch = []
        finally:
            # Only a cancelled writer leaves events behind: tell their callers.
            self._writer = None
            unfinished = [*batch, *self._queued]
            self._queued.clear()
            for queued in unfinished:
                _fail(queued, AuditAppendFailed("the audit writer was stopped"))

    async def _commit(self, batch: list[_QueuedEvent]) -> None:
        session = self._session_factory()
        try:
            try:
                event_ids = await append_audit_events(session, [queued.entry for queued in batch])
                await session.commit()
            except Exception as error:  # every failure of the batch belongs to its callers
                logger.warning(
                    "a batch of %d audit events was not committed", len(batch), exc_info=True
                )
                for queued in batch:
                    failure = AuditAppendFailed(
                        f"audit event {queued.entry.action!r} was not recorded"
                    )
                    failure.__cause__ = error
                    _fail(queued, failure)
                return
            self._committed_batches += 1
            self._committed_events += len(batch)
            # Callers go on (and queue their next events) while the session is put away.
            for queued, event_id in zip(batch, event_ids, strict=True):
                if not queued.committed.done():
                    queued.committed.set_result(event_id)
        finally:
            await session.close()


def _fail(queued: _QueuedEvent, failure: AuditAppendFailed) -> None:
    if not queued.committed.done():
        queued.committed.set_exception(failure)
