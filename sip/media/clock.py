"""The process-wide 20 ms media clock.

``TickSchedule`` is the pure part: tick ``n`` is due at ``start + n * interval`` (absolute
deadlines, so lateness never accumulates into drift). Asked at ``now``, it hands out the
oldest due tick; when the loop has fallen more than ``max_burst`` ticks behind, the older
missed ticks are skipped (counted), so a stalled loop catches up with at most ``max_burst``
ticks in a row instead of a burst of every missed packet.

``MediaClock`` is the one asyncio adapter: a single ``loop.call_at`` timer for the whole process
that runs every subscriber (one per audio stream) on each tick with the tick index. It runs
one tick per timer callback and re-arms on the next deadline, so while catching up each tick
runs in its own loop iteration and received packets are processed between ticks. Streams
derive their RTP timestamps from the index, so skipped ticks become timestamp gaps, not
drift. The clock is armed while it has subscribers and keeps its deadline grid for its life.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

logger = logging.getLogger(__name__)

TICK_INTERVAL = 0.020
EARLY_TOLERANCE = 0.001  # timers with millisecond resolution may fire this much early

TickCallback = Callable[[int], None]


class TimerHandle(Protocol):
    """What ``call_at`` returns (``asyncio.TimerHandle`` fits)."""

    def cancel(self) -> None:
        """Stop the timer."""
        ...


class TimerLoop(Protocol):
    """The part of an event loop the clock uses (any asyncio loop fits)."""

    def time(self) -> float:
        """Monotonic loop time in seconds."""
        ...

    def call_at(self, when: float, callback: Callable[..., object], *args: Any) -> TimerHandle:
        """Run ``callback(*args)`` at loop time ``when``."""
        ...


class TickSchedule:
    """Absolute-deadline tick arithmetic (no I/O, no clock reads)."""

    def __init__(
        self,
        start: float,
        *,
        interval: float = TICK_INTERVAL,
        max_burst: int = 3,
        early_tolerance: float = EARLY_TOLERANCE,
    ) -> None:
        if interval <= 0 or max_burst < 1:
            raise ValueError("interval must be positive and max_burst at least 1")
        self.start = start
        self.interval = interval
        self.max_burst = max_burst
        self.early_tolerance = early_tolerance
        self.next_index = 1
        self.skipped = 0

    def deadline(self, index: int) -> float:
        """Loop time at which tick ``index`` is due."""
        return self.start + index * self.interval

    def next_deadline(self) -> float:
        """Deadline of the next tick to run."""
        return self.deadline(self.next_index)

    def last_due_index(self, now: float) -> int:
        """Index of the latest tick whose deadline is at or before ``now``."""
        return math.floor((now + self.early_tolerance - self.start) / self.interval)

    def pop_due(self, now: float) -> int | None:
        """The oldest tick to run at ``now`` (skipping any beyond the burst bound), or None."""
        last = self.last_due_index(now)
        if last < self.next_index:
            return None
        first = max(self.next_index, last - self.max_burst + 1)
        self.skipped += first - self.next_index
        self.next_index = first + 1
        return first

    def resume(self, now: float) -> None:
        """Continue after an idle period: the next tick is the first one after ``now``."""
        self.next_index = max(self.next_index, self.last_due_index(now) + 1)


@dataclass(frozen=True, slots=True)
class ClockStatistics:
    """Counters of a media clock."""

    ticks: int
    skipped_ticks: int
    subscribers: int


class Subscription:
    """Returned by ``MediaClock.subscribe``; ``cancel()`` stops the callbacks."""

    __slots__ = ("_callback", "_clock")

    def __init__(self, clock: MediaClock, callback: TickCallback) -> None:
        self._clock = clock
        self._callback = callback

    def cancel(self) -> None:
        """Unsubscribe (idempotent)."""
        self._clock._unsubscribe(self._callback)


class MediaClock:
    """One timer driving every audio stream's 20 ms tick (create one per process)."""

    def __init__(
        self,
        loop: TimerLoop | None = None,
        *,
        interval: float = TICK_INTERVAL,
        max_burst: int = 3,
    ) -> None:
        self._loop: TimerLoop = loop if loop is not None else asyncio.get_running_loop()
        self._interval = interval
        self._max_burst = max_burst
        self._schedule: TickSchedule | None = None
        self._callbacks: dict[TickCallback, None] = {}
        self._callback_tuple: tuple[TickCallback, ...] = ()
        self._timer: TimerHandle | None = None
        self._ticks = 0

    @property
    def loop(self) -> TimerLoop:
        """The loop whose time the deadlines are on."""
        return self._loop

    @property
    def interval(self) -> float:
        """Seconds between ticks."""
        return self._interval

    @property
    def schedule(self) -> TickSchedule | None:
        """The deadline grid (``None`` until the first subscription)."""
        return self._schedule

    @property
    def next_tick_index(self) -> int:
        """Index the next tick will carry (a new subscriber's first tick)."""
        return self._schedule.next_index if self._schedule is not None else 1

    @property
    def statistics(self) -> ClockStatistics:
        """Ticks run, ticks skipped because the loop fell too far behind, subscribers."""
        skipped = self._schedule.skipped if self._schedule is not None else 0
        return ClockStatistics(self._ticks, skipped, len(self._callbacks))

    def subscribe(self, callback: TickCallback) -> Subscription:
        """Call ``callback(tick_index)`` on every tick from the next one on."""
        self._callbacks[callback] = None
        self._callback_tuple = tuple(self._callbacks)
        if self._timer is None:
            now = self._loop.time()
            if self._schedule is None:
                self._schedule = TickSchedule(
                    now, interval=self._interval, max_burst=self._max_burst
                )
            else:
                self._schedule.resume(now)
            self._arm()
        return Subscription(self, callback)

    def _unsubscribe(self, callback: TickCallback) -> None:
        self._callbacks.pop(callback, None)
        self._callback_tuple = tuple(self._callbacks)
        if not self._callbacks and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def close(self) -> None:
        """Stop the timer and drop every subscriber."""
        self._callbacks.clear()
        self._callback_tuple = ()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self) -> None:
        assert self._schedule is not None
        self._timer = self._loop.call_at(self._schedule.next_deadline(), self._on_timer)

    def _on_timer(self) -> None:
        schedule = self._schedule
        assert schedule is not None
        self._timer = None
        index = schedule.pop_due(self._loop.time())
        if index is not None:
            self._ticks += 1
            for callback in self._callback_tuple:
                try:
                    callback(index)
                except Exception:
                    logger.exception("media tick subscriber failed on tick %d", index)
        if self._callbacks and self._timer is None:
            self._arm()
