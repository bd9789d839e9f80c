"""The process-wide 20 ms media clock.

``TickSchedule`` is the pure part: tick ``n`` is due at ``start + n * interval`` (absolute
deadlines, so lateness never accumulates into drift). Asked at ``now``, it hands out the
oldest due tick; when the loop has fallen more than ``max_burst`` ticks behind, the older
missed ticks are skipped (counted), so a stalled loop catches up with at most ``max_burst``
ticks in a row instead of a burst of every missed packet.

``MediaClock`` is the one asyncio adapter: a single ``loop.call_at`` timer for the whole process
that runs every subscriber (one per audio stream) on each tick with the tick index. It runs
one tick per timer callback and re-arms on the next deadline, so while catching up each tick
runs in its own loop iteration. Streams derive their RTP timestamps from the index, so
skipped ticks become timestamp gaps, not drift. The clock is armed while it has subscribers
and keeps its deadline grid for its life.

The clock also does the media I/O of all streams, in four phases per tick:

1. the subscribers (``subscribe``), in subscription order: a stream prepares its packet and
   queues it (``queue_datagram``); a feeder subscribed before a stream hands it the frame that
   leaves on this very tick;
2. send: every queued datagram goes out, back to back, right at the start of the tick (so the
   interval between two packets of a stream does not depend on how much was received) and in
   one burst, grouped by destination address (each group in queue order): a far end that
   takes many calls on one address gets its packets back to back and is woken once for them
   rather than once per packet;
3. receive: one non-blocking ``epoll`` (``poll`` where there is none) call asks the kernel which
   of the media sockets registered with ``add_reader`` hold datagrams, and each ready socket's
   reader reads one; again until none is ready (at most ``MAX_RECEIVE_ROUNDS`` times, so a
   flooded socket cannot hold the tick). Received packets thus wait for the next tick instead
   of being handled one by one as they arrive: the event loop sleeps between ticks, and a
   jitter buffer pulled on the tick loses nothing by it (a packet arriving between two ticks
   could not have been played before the second one anyway);
4. the after-send subscribers (``subscribe(..., after_send=True)``), in subscription order: a
   stream's taps and its jitter buffer's playout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import select
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

logger = logging.getLogger(__name__)

TICK_INTERVAL = 0.020
EARLY_TOLERANCE = 0.001  # timers with millisecond resolution may fire this much early

MAX_RECEIVE_ROUNDS = 8  # datagrams read per socket and tick, at most (50 packets/s needs 1)

TickCallback = Callable[[int], None]
ReaderCallback = Callable[[float], None]
Address = tuple[Any, ...]
# what the send phase passes to a send function after the data: the address for a socket's
# ``sendto``, the flags (0) for a connected socket's ``send``
SendArgument = Address | int
SendFunction = Callable[[bytes | bytearray, Any], object]
SendFailed = Callable[[OSError], None]
# Told of every datagram the send phase handed to its socket, right after (its send function)
SendObserver = Callable[[SendFunction], None]
# A datagram queued for the send phase: send function, data, the argument after the data (the
# send phase calls ``send(data, argument)``: ``(socket.sendto, data, address, ...)`` or, for a
# connected socket, ``(socket.send, data, 0, ...)``), what to call if sending raises OSError,
# and the destination address (the send phase groups by it). The data may be a buffer its
# owner rewrites on its next tick: it is sent before that.
OutgoingDatagram = tuple[SendFunction, bytes | bytearray, SendArgument, SendFailed, Address]


def _destination_key(datagram: OutgoingDatagram) -> int:
    """Sort key putting the datagrams to one address next to each other (sorting is stable)."""
    return hash(datagram[4])


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

    __slots__ = ("_after_send", "_callback", "_clock")

    def __init__(self, clock: MediaClock, callback: TickCallback, after_send: bool) -> None:
        self._clock = clock
        self._callback = callback
        self._after_send = after_send

    def cancel(self) -> None:
        """Unsubscribe (idempotent)."""
        self._clock._unsubscribe(self._callback, self._after_send)


class _Poller(Protocol):
    """What ``select.epoll`` and ``select.poll`` objects have in common (as used here)."""

    def register(self, fd: int, eventmask: int, /) -> None: ...

    def unregister(self, fd: int, /) -> None: ...

    def poll(self, timeout: float | None, /) -> list[tuple[int, int]]: ...


def _new_poller() -> tuple[_Poller, int, Callable[[], None]]:
    """A level-triggered readiness poller, its "readable" event mask, and its closer."""
    if hasattr(select, "epoll"):
        epoll = select.epoll()
        return epoll, select.EPOLLIN, epoll.close
    poll = select.poll()
    return poll, select.POLLIN, lambda: None


class MediaClock:
    """One timer driving every audio stream's 20 ms tick (create one per process).

    ``phase`` (seconds, below the interval) puts the tick deadlines at loop times that are
    ``phase`` past a multiple of the interval, instead of starting the grid at the first
    subscription. Event loops read the machine's monotonic clock, so media processes sharing
    a machine can tick apart from each other (process ``i`` of ``n``: ``i * interval / n``)
    rather than all sending their bursts at the same moment and competing for the cores
    and for the far ends that answer them.
    """

    def __init__(
        self,
        loop: TimerLoop | None = None,
        *,
        interval: float = TICK_INTERVAL,
        max_burst: int = 3,
        phase: float | None = None,
    ) -> None:
        if phase is not None and not 0 <= phase < interval:
            raise ValueError(f"phase must be within [0, interval): {phase}")
        self._loop: TimerLoop = loop if loop is not None else asyncio.get_running_loop()
        self._interval = interval
        self._max_burst = max_burst
        self._phase = phase
        self._schedule: TickSchedule | None = None
        self._callbacks: dict[TickCallback, None] = {}
        self._callback_tuple: tuple[TickCallback, ...] = ()
        self._after_send: dict[TickCallback, None] = {}
        self._after_send_tuple: tuple[TickCallback, ...] = ()
        self._timer: TimerHandle | None = None
        self._ticks = 0
        self._readers: dict[int, ReaderCallback] = {}
        self._poller: _Poller | None = None
        self._close_poller: Callable[[], None] = lambda: None
        self._readable_mask = 0
        self._outbox: list[OutgoingDatagram] = []
        # the send phase's order of the last queue that needed one (see ``_in_sending_order``)
        self._sending_identities: list[int] = []
        self._sending_order: list[OutgoingDatagram] = []
        self._send_observer: SendObserver | None = None
        # Queue a datagram for this tick's send phase (from a subscriber; outside a tick it
        # leaves with the next one).
        self.queue_datagram: Callable[[OutgoingDatagram], None] = self._outbox.append

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

    def observe_sends(self, observer: SendObserver | None) -> None:
        """Call ``observer(send)`` right after each datagram of the send phase was handed to its
        socket (not for one whose send raised), with the send function it was queued with (a
        socket's bound ``sendto`` or ``send``); ``None`` stops. For timing what leaves when
        (bench/sip_load.py); one observer at a time."""
        self._send_observer = observer

    def subscribe(self, callback: TickCallback, *, after_send: bool = False) -> Subscription:
        """Call ``callback(tick_index)`` on every tick from the next one on.

        With ``after_send`` it runs in the phase after the tick's datagrams went out.
        """
        if after_send:
            self._after_send[callback] = None
            self._after_send_tuple = tuple(self._after_send)
        else:
            self._callbacks[callback] = None
            self._callback_tuple = tuple(self._callbacks)
        if self._timer is None:
            now = self._loop.time()
            if self._schedule is None:
                self._schedule = TickSchedule(
                    self._grid_start(now), interval=self._interval, max_burst=self._max_burst
                )
            else:
                self._schedule.resume(now)
            self._arm()
        return Subscription(self, callback, after_send)

    def _grid_start(self, now: float) -> float:
        """Where the deadline grid starts: now, or with a phase the last loop time at or
        before now that is ``phase`` past a multiple of the interval."""
        phase = self._phase
        if phase is None:
            return now
        interval = self._interval
        return math.floor((now - phase) / interval) * interval + phase

    def add_reader(self, descriptor: int, callback: ReaderCallback) -> None:
        """Call ``callback(loop_time)`` in each tick's receive phase while ``descriptor`` is
        readable (once per round, see the module docstring). The callback reads one datagram
        (a non-blocking socket). Remove it with :meth:`remove_reader` before closing the socket.
        """
        if self._poller is None:
            self._poller, self._readable_mask, self._close_poller = _new_poller()
        if descriptor in self._readers:
            raise ValueError(f"descriptor {descriptor} already has a reader")
        self._poller.register(descriptor, self._readable_mask)
        self._readers[descriptor] = callback

    def remove_reader(self, descriptor: int) -> None:
        """Stop reading ``descriptor`` (idempotent; a no-op after :meth:`close`)."""
        if self._readers.pop(descriptor, None) is not None and self._poller is not None:
            # the kernel forgets a closed descriptor by itself: nothing to undo then
            with contextlib.suppress(OSError, ValueError):
                self._poller.unregister(descriptor)

    def _unsubscribe(self, callback: TickCallback, after_send: bool) -> None:
        if after_send:
            self._after_send.pop(callback, None)
            self._after_send_tuple = tuple(self._after_send)
        else:
            self._callbacks.pop(callback, None)
            self._callback_tuple = tuple(self._callbacks)
        if not self._callbacks and not self._after_send and self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._sending_identities = []  # no more ticks: let go of the last tick's datagrams
            self._sending_order = []

    def close(self) -> None:
        """Stop the timer and drop every subscriber, reader and queued datagram."""
        self._callbacks.clear()
        self._callback_tuple = ()
        self._after_send.clear()
        self._after_send_tuple = ()
        self._outbox.clear()
        self._sending_identities = []
        self._sending_order = []
        self._readers.clear()
        self._close_poller()
        self._close_poller = lambda: None
        self._poller = None
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
        now = self._loop.time()
        index = schedule.pop_due(now)
        if index is not None:
            self._ticks += 1
            for callback in self._callback_tuple:
                try:
                    callback(index)
                except Exception:
                    logger.exception("media tick subscriber failed on tick %d", index)
            if self._outbox:
                self._send()
            if self._readers:
                self._receive(now)
            for callback in self._after_send_tuple:
                try:
                    callback(index)
                except Exception:
                    logger.exception("media tick subscriber failed on tick %d", index)
        if (self._callbacks or self._after_send) and self._timer is None:
            self._arm()

    def _receive(self, now: float) -> None:
        """The receive phase: every ready socket's reader, round after round until none is."""
        poller = self._poller
        assert poller is not None
        readers = self._readers
        for _ in range(MAX_RECEIVE_ROUNDS):
            ready = poller.poll(0)
            if not ready:
                return
            for descriptor, _events in ready:
                reader = readers.get(descriptor)
                if reader is None:
                    continue  # removed by an earlier reader in this round
                try:
                    reader(now)
                except Exception:
                    logger.exception("media reader of descriptor %d failed", descriptor)

    def _send(self) -> None:
        """The send phase: every queued datagram, back to back, grouped by destination."""
        outbox = self._outbox
        observer = self._send_observer
        try:
            for send, data, argument, failed, _destination in self._in_sending_order(outbox):
                try:
                    send(data, argument)
                except OSError as error:
                    failed(error)
                    continue
                if observer is not None:
                    observer(send)
        finally:
            outbox.clear()

    def _in_sending_order(self, outbox: list[OutgoingDatagram]) -> list[OutgoingDatagram]:
        """The queued datagrams grouped by destination, each group in queue order.

        A far end that takes many of our streams (one media port for many calls, as a trunk's
        media server or SBC often has) then gets its packets back to back: it is woken once
        for a run of them rather than once per packet, which costs both sides CPU (measured
        on loopback with SIPp echoing 100 calls per port: waking the receiver was about a third
        of the kernel's work per send, and SIPp's CPU per packet dropped by about a third).
        The order is worked out again only when the queue holds other datagram entries than
        on the previous tick (the streams queue the same entry tick after tick; the entries
        of the previous tick stay referenced, so an equal list of ``id`` means the same ones).
        """
        if len(outbox) < 2:
            return outbox
        identities = list(map(id, outbox))
        if identities != self._sending_identities:
            try:
                ordered = sorted(outbox, key=_destination_key)
            except TypeError:
                ordered = list(outbox)  # an unhashable address: queue order
            self._sending_identities = identities
            self._sending_order = ordered
        return self._sending_order
