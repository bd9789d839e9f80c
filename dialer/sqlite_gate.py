"""First come, first served turns for the write transactions of one SQLite engine.

SQLite has one write lock per database file. When many connections of one process want it at
once, SQLite's busy handler makes each of them sleep and retry on its own thread: they are served
in no particular order, each parks one aiosqlite thread, and the unlucky ones give up after the
busy timeout while the lock only ever moved between our own connections. ``WriterGate`` queues
them in asyncio instead: a write transaction waits for its turn here before ``BEGIN IMMEDIATE``
and hands the turn to the next one in arrival order once its COMMIT or ROLLBACK has completed.
The busy timeout still arbitrates with other processes (the worker, CLI commands) on the file.

A waiter gives up only when one holder keeps the turn for ``stall_seconds`` (as SQLite's busy
timeout would for a lock held that long): a transaction that waits for another of its own task's
transactions fails instead of hanging forever.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque


class GateStalledError(Exception):
    """One transaction held the write turn for longer than a waiter may wait."""


class WriterGate:
    """A FIFO turn held by one owner (a DBAPI connection) at a time.

    ``release`` is idempotent and only ever releases the caller's own turn, so it may be called
    from every place a transaction can end (commit, rollback, check-in, invalidation).
    """

    def __init__(self, stall_seconds: float) -> None:
        self._stall_seconds = stall_seconds
        self._holder: object | None = None
        self._turns_granted = 0
        self._waiters: deque[tuple[object, asyncio.Future[None]]] = deque()

    @property
    def holder(self) -> object | None:
        """The owner whose turn it is (None: free)."""
        return self._holder

    @property
    def waiting(self) -> int:
        """How many owners wait for their turn."""
        return sum(1 for _owner, turn in self._waiters if not turn.done())

    async def acquire(self, owner: object) -> None:
        """Wait for ``owner``'s turn (at once if nobody holds or waits). Raises
        GateStalledError when one holder kept the turn for ``stall_seconds`` while ``owner``
        waited."""
        if self._holder is owner:
            return
        if self._holder is None and not self._waiters:
            self._grant(owner)
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (owner, turn)
        self._waiters.append(entry)
        try:
            seen = self._turns_granted
            while True:
                done, _pending = await asyncio.wait((turn,), timeout=self._stall_seconds)
                if done:
                    return
                if self._turns_granted == seen:
                    raise GateStalledError(
                        f"the write lock was held by one transaction for over"
                        f" {self._stall_seconds:g} s"
                    )
                seen = self._turns_granted
        except BaseException:
            if turn.done() and not turn.cancelled():
                # Granted just as this waiter was cancelled: pass the turn on.
                self.release(owner)
            else:
                turn.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(entry)
            raise

    def release(self, owner: object) -> None:
        """End ``owner``'s turn and grant the next waiter's; nothing if it is not its turn."""
        if self._holder is not owner:
            return
        self._holder = None
        while self._waiters:
            next_owner, turn = self._waiters.popleft()
            if turn.done():  # cancelled while waiting
                continue
            self._grant(next_owner)
            turn.set_result(None)
            return

    def _grant(self, owner: object) -> None:
        self._holder = owner
        self._turns_granted += 1
