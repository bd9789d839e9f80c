"""RTP port allocation: even ports, the odd neighbour kept for RTCP, busy ports skipped."""

from __future__ import annotations

import asyncio
import socket

import pytest

from sip.errors import NoFreePortError
from sip.media.clock import MediaClock
from sip.media.ports import PortAllocator
from sip.media.stream import AudioStream


def test_allocator_hands_out_even_ports_round_robin_with_rtcp_neighbour_reserved() -> None:
    allocator = PortAllocator(10001, 10010)
    assert allocator.capacity == 4  # 10002, 10004, 10006, 10008 (10010 has no 10011)
    ports = [allocator.acquire() for _ in range(4)]
    assert ports == [10002, 10004, 10006, 10008]
    with pytest.raises(NoFreePortError):
        allocator.acquire()
    allocator.release(10004)
    allocator.release(10004)  # idempotent
    assert allocator.acquire() == 10004
    assert allocator.in_use == frozenset(ports)


def test_released_port_is_not_reused_at_once() -> None:
    allocator = PortAllocator(20000, 20007)
    first = allocator.acquire()
    allocator.release(first)
    assert allocator.acquire() != first


def test_allocator_rejects_ranges_without_a_usable_port() -> None:
    with pytest.raises(ValueError, match="even port"):
        PortAllocator(10001, 10001)
    with pytest.raises(ValueError, match="even port"):
        PortAllocator(10002, 10002)  # 10003 would be outside


def free_even_port_pair() -> tuple[socket.socket, int]:
    """Hold an ephemeral even port with a socket; return it (the test's blocker) and the port."""
    while True:
        blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        blocker.bind(("127.0.0.1", 0))
        port = int(blocker.getsockname()[1])
        if port % 2 == 0 and port + 3 <= 65535:
            return blocker, port
        blocker.close()


async def test_open_skips_a_port_held_by_someone_else_and_releases_on_close(
    clock: MediaClock,
) -> None:
    blocker, busy_port = free_even_port_pair()
    try:
        allocator = PortAllocator(busy_port, busy_port + 3)  # busy_port and busy_port + 2
        stream = await AudioStream.open(clock, "127.0.0.1", allocator)
        assert stream.local_port == busy_port + 2
        assert allocator.in_use == frozenset({busy_port + 2})
        with pytest.raises(NoFreePortError):
            await AudioStream.open(clock, "127.0.0.1", allocator)
        stream.close()
        assert allocator.in_use == frozenset()
    finally:
        blocker.close()


async def test_open_with_a_range_or_without_one_binds_an_even_port(clock: MediaClock) -> None:
    stream = await AudioStream.open(clock, "127.0.0.1")
    assert stream.local_port % 2 == 0
    stream.close()
    blocker, port = free_even_port_pair()
    blocker.close()
    ranged = await AudioStream.open(clock, "127.0.0.1", (port, port + 3))
    assert ranged.local_port in (port, port + 2)
    ranged.close()


async def test_open_on_ipv6_loopback(clock: MediaClock) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        probe = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        pytest.skip("no IPv6 loopback")
    left = await AudioStream.open(clock, "::1")
    right = await AudioStream.open(clock, "::1")
    left.set_remote("::1", right.local_port, 0)
    right.set_remote("0:0::1", left.local_port, 0)
    frames = right.frames()
    left.send(b"\x10\x00" * 160)
    async with asyncio.timeout(10):
        received = [await anext(frames) for _ in range(6)]
    assert any(frame != bytes(320) for frame in received)
    assert right.statistics.packets_from_strangers == 0
    left.close()
    right.close()
