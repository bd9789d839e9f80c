"""Allocation of RTP ports from a configured range.

RTP uses an even port and RTCP the odd port just above it (RFC 3550 section 11). The allocator
hands out even ports only and keeps ``port + 1`` reserved with it, so two streams never sit on
adjacent ports; RTCP itself is not implemented, so that odd port is reserved but not bound.
Ports are handed out round-robin so a port just released is not reused at once (stray
packets of the previous call would reach the next one). The allocator only tracks what this
process uses; a port another process holds is found out when binding fails and the caller
asks for the next one.
"""

from __future__ import annotations

from sip.errors import NoFreePortError


class PortAllocator:
    """Even ports of ``[low, high]`` (inclusive), each with ``port + 1`` reserved for RTCP.

    ``start_offset`` picks where the round-robin starts (in ports of the range).
    """

    def __init__(self, low: int, high: int, *, start_offset: int = 0) -> None:
        first = low + (low % 2)
        if not 0 < low <= high <= 65535 or first + 1 > high:
            raise ValueError(f"port range {low}-{high} holds no even port with its odd neighbour")
        self.low = low
        self.high = high
        self._ports = range(first, high, 2)  # port + 1 <= high for every port
        self._in_use: set[int] = set()
        self._cursor = start_offset % len(self._ports)

    @property
    def capacity(self) -> int:
        """How many streams the range can hold."""
        return len(self._ports)

    @property
    def in_use(self) -> frozenset[int]:
        """Ports currently handed out."""
        return frozenset(self._in_use)

    def acquire(self, *, exclude: frozenset[int] = frozenset()) -> int:
        """Next free even port (not in ``exclude``); ``NoFreePortError`` if none is left."""
        count = len(self._ports)
        for step in range(count):
            port = self._ports[(self._cursor + step) % count]
            if port not in self._in_use and port not in exclude:
                self._cursor = (self._cursor + step + 1) % count
                self._in_use.add(port)
                return port
        raise NoFreePortError(f"no free RTP port in {self.low}-{self.high}")

    def release(self, port: int) -> None:
        """Give a port back (idempotent)."""
        self._in_use.discard(port)
