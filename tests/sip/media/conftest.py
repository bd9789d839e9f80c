"""Shared fixtures and helpers for the media tests (real UDP sockets on loopback)."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import struct
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import pytest

from sip.media.clock import MediaClock


class ManualTimer:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualLoop:
    """A loop whose time only moves when the test says so (asyncio's call_at/time subset)."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now
        self.requested: list[float] = []
        self._queue: list[tuple[float, int, ManualTimer, Callable[..., object], tuple[Any, ...]]]
        self._queue = []
        self._order = itertools.count()

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[..., object], *args: Any) -> ManualTimer:
        timer = ManualTimer()
        self.requested.append(when)
        heapq.heappush(self._queue, (when, next(self._order), timer, callback, args))
        return timer

    def pending(self) -> int:
        return sum(1 for entry in self._queue if not entry[2].cancelled)

    def run_due(self, until: float) -> None:
        """Run every timer due by ``until`` in deadline order (what a loop that was busy does
        when it gets back): the time is ``until`` throughout."""
        self.now = max(self.now, until)
        while True:
            live = [entry for entry in self._queue if not entry[2].cancelled]
            if not live or min(live)[0] > until:
                break
            self.run_next()

    def next_deadline(self) -> float:
        """When the earliest live timer is due (infinity when none is armed)."""
        live = [entry[0] for entry in self._queue if not entry[2].cancelled]
        return min(live) if live else math.inf

    def run_one_due(self) -> bool:
        """Run the earliest timer if it is due by ``now`` (one per loop iteration, as asyncio
        does); False when none is."""
        while self._queue and self._queue[0][2].cancelled:
            heapq.heappop(self._queue)
        if not self._queue or self._queue[0][0] > self.now:
            return False
        _when, _order, _timer, callback, args = heapq.heappop(self._queue)
        callback(*args)
        return True

    def run_next(self, *, lateness: float = 0.0) -> None:
        """Jump to the next timer's deadline (plus ``lateness``) and run it."""
        while self._queue:
            when, _, timer, callback, args = heapq.heappop(self._queue)
            if timer.cancelled:
                continue
            self.now = max(self.now, when + lateness)
            callback(*args)
            return
        raise AssertionError("no timer armed")


@pytest.fixture
async def clock() -> AsyncIterator[MediaClock]:
    media_clock = MediaClock()
    yield media_clock
    media_clock.close()


async def wait_until(condition: Callable[[], bool], *, guard_seconds: float = 10.0) -> None:
    """Poll ``condition`` every few milliseconds; fail the test if it never holds (hang guard)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + guard_seconds
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not reached before the hang guard expired")
        await asyncio.sleep(0.005)


async def frames_until(
    frames: AsyncIterator[bytes], last: bytes, *, guard_seconds: float = 10.0
) -> list[bytes]:
    """Collect frames up to and including ``last`` (fails after the hang guard)."""
    received: list[bytes] = []
    async with asyncio.timeout(guard_seconds):
        async for frame in frames:
            received.append(frame)
            if frame == last:
                return received
    raise AssertionError("the frame iterator ended before the expected frame")


def tone_frames(count: int, *, frequency: float = 440.0, amplitude: int = 9000) -> list[bytes]:
    """``count`` consecutive, all different, 20 ms frames of a tone (never silent)."""
    frames = []
    for index in range(count):
        samples = [
            int(amplitude * math.sin(2 * math.pi * frequency * (index * 160 + n) / 8000))
            + 97 * index
            + 13
            for n in range(160)
        ]
        frames.append(struct.pack("<160h", *samples))
    return frames


class Collector(asyncio.DatagramProtocol):
    """A plain UDP socket that keeps every datagram it receives."""

    def __init__(self) -> None:
        self.datagrams: list[tuple[bytes, tuple[str, int]]] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.datagrams.append((data, (str(addr[0]), int(addr[1]))))

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def send(self, data: bytes, address: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(data, address)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


@pytest.fixture
async def udp_socket() -> AsyncIterator[Callable[[], asyncio.Future[Collector]]]:
    """Factory of loopback UDP sockets (port 0), all closed at teardown."""
    loop = asyncio.get_running_loop()
    opened: list[Collector] = []

    async def open_socket() -> Collector:
        _, protocol = await loop.create_datagram_endpoint(Collector, local_addr=("127.0.0.1", 0))
        opened.append(protocol)
        return protocol

    def factory() -> asyncio.Future[Collector]:
        return asyncio.ensure_future(open_socket())

    yield factory
    for collector in opened:
        collector.close()
