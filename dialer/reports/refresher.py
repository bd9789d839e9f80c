"""Folding changed calls into the report rollups in the background, shortly after the change.

``running_refresher(session_factory, RefresherOptions(...))`` is an async context manager that
``dialer serve`` enters in its lifespan (``web.app``): while it is open, a task looks every
``interval_seconds`` for dirty hours (``call_volume_dirty_hours``, marked by
``dialer.reports.tracking`` in the transaction that changed the calls, in this process or any
other sharing the database) and folds them into the rollups, newest hours first,
``hours_per_transaction`` hours per transaction with a short pause between transactions, so
SQLite's single write lock is never held for long and other writers get in between.

Reports stay exact without it: ``build_daily_report`` refreshes the dirty hours of its range
before reading (``dialer.reports.rollup.refresh_call_volume``). The refresher only takes that
work off the first report after a change. Two refreshers on one database (several servers)
are safe: on PostgreSQL refreshes take an advisory lock, on SQLite transactions are serialised.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.reports.rollup import refresh_call_volume
from dialer.reports.settings import DEFAULT_REFRESH_SECONDS, refresh_interval_seconds

logger = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 10.0


@dataclass(frozen=True)
class RefresherOptions:
    interval_seconds: float = DEFAULT_REFRESH_SECONDS  # 0: no background refresher
    hours_per_transaction: int = 2
    pause_seconds: float = 0.05  # between two transactions while hours remain


async def refresh_pending(
    session_factory: async_sessionmaker[AsyncSession], options: RefresherOptions
) -> int:
    """Fold every dirty hour into the rollups now, newest first, in short transactions.
    Returns how many hours were refreshed (hours marked meanwhile included)."""
    refreshed = 0
    while True:
        async with session_factory() as session:
            done = await refresh_call_volume(
                session, limit=options.hours_per_transaction, newest_first=True
            )
            await session.commit()
        refreshed += done
        if done < options.hours_per_transaction:
            return refreshed
        await asyncio.sleep(options.pause_seconds)


class RollupRefresher:
    """The background loop; ``stop()`` lets the transaction under way finish."""

    def __init__(
        self, session_factory: async_sessionmaker[AsyncSession], options: RefresherOptions
    ) -> None:
        self.session_factory = session_factory
        self.options = options
        self.refreshed_hours = 0
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.refreshed_hours += await refresh_pending(self.session_factory, self.options)
            except (SQLAlchemyError, OSError):
                # The database is busy or away: reports still refresh what they read; retry.
                logger.warning("call-volume rollup refresh failed; retrying", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.options.interval_seconds)

    def stop(self) -> None:
        self._stopping.set()


@contextlib.asynccontextmanager
async def running_refresher(
    session_factory: async_sessionmaker[AsyncSession], options: RefresherOptions | None = None
) -> AsyncIterator[RollupRefresher | None]:
    """The background refresher for the block (None when ``interval_seconds`` is 0)."""
    chosen = options or RefresherOptions()
    if chosen.interval_seconds <= 0:
        yield None
        return
    refresher = RollupRefresher(session_factory, chosen)
    task = asyncio.create_task(refresher.run(), name="call-volume rollup refresher")
    task.add_done_callback(_log_failure)
    try:
        yield refresher
    finally:
        refresher.stop()
        finished, _pending = await asyncio.wait({task}, timeout=STOP_GRACE_SECONDS)
        if not finished:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _log_failure(task: asyncio.Task[None]) -> None:
    """An unexpected error ends the loop (reports still refresh what they read): say so."""
    if not task.cancelled() and (error := task.exception()) is not None:
        logger.error("the call-volume rollup refresher stopped", exc_info=error)


def options_from_environment(environ: Mapping[str, str] = os.environ) -> RefresherOptions:
    """The refresher's options from DIALER_REPORT_REFRESH_SECONDS (``dialer.reports.settings``)."""
    return RefresherOptions(interval_seconds=refresh_interval_seconds(environ))
