"""RTP packets (RFC 3550 section 5.1) and the modular arithmetic of their counters.

``RtpPacket.parse(data)`` reads a datagram and raises ``RtpParseError`` (and nothing else) when
the bytes are not a version 2 RTP packet; ``bytes(packet)`` writes one. A header extension is
kept as opaque bytes so a parsed packet writes back unchanged; padding is removed on parse
and can be added on write with ``padding_size``.

Sequence numbers are 16-bit and timestamps 32-bit counters that wrap. ``sequence_difference``
and ``timestamp_difference`` give the signed shortest distance between two values, and
``SequenceExtender`` / ``extend_timestamp`` turn them into ever-growing integers.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from sip.errors import RtpParseError

RTP_VERSION = 2
FIXED_HEADER_SIZE = 12
SEQUENCE_MODULO = 1 << 16
TIMESTAMP_MODULO = 1 << 32

_FIXED_HEADER = struct.Struct("!BBHII")
_EXTENSION_HEADER = struct.Struct("!HH")


@dataclass(frozen=True, slots=True)
class RtpHeaderExtension:
    """An RTP header extension: 16-bit profile value and its data (a multiple of 4 bytes)."""

    profile: int
    data: bytes


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP packet. ``payload`` excludes padding; ``csrc`` lists contributing sources."""

    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrc: tuple[int, ...] = ()
    extension: RtpHeaderExtension | None = None
    padding_size: int = 0

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> RtpPacket:
        """Parse one datagram; raise ``RtpParseError`` if it is not a valid RTP packet."""
        length = len(data)
        if length < FIXED_HEADER_SIZE:
            raise RtpParseError(f"RTP packet too short: {length} bytes")
        first, second, sequence_number, timestamp, ssrc = _FIXED_HEADER.unpack_from(data)
        if first >> 6 != RTP_VERSION:
            raise RtpParseError(f"unsupported RTP version {first >> 6}")
        csrc_count = first & 0x0F
        offset = FIXED_HEADER_SIZE + 4 * csrc_count
        if offset > length:
            raise RtpParseError("RTP packet shorter than its CSRC list")
        csrc = struct.unpack_from(f"!{csrc_count}I", data, FIXED_HEADER_SIZE) if csrc_count else ()
        extension = None
        if first & 0x10:
            if offset + 4 > length:
                raise RtpParseError("RTP packet shorter than its header extension")
            profile, words = _EXTENSION_HEADER.unpack_from(data, offset)
            offset += 4
            end = offset + 4 * words
            if end > length:
                raise RtpParseError("RTP header extension runs past the packet")
            extension = RtpHeaderExtension(profile, bytes(data[offset:end]))
            offset = end
        end = length
        padding_size = 0
        if first & 0x20:
            padding_size = data[-1]
            if padding_size == 0 or offset + padding_size > length:
                raise RtpParseError(f"invalid RTP padding length {padding_size}")
            end -= padding_size
        return cls(
            payload_type=second & 0x7F,
            sequence_number=sequence_number,
            timestamp=timestamp,
            ssrc=ssrc,
            payload=bytes(data[offset:end]),
            marker=bool(second & 0x80),
            csrc=tuple(csrc),
            extension=extension,
            padding_size=padding_size,
        )

    def __bytes__(self) -> bytes:
        if not 0 <= self.payload_type <= 0x7F:
            raise ValueError(f"payload type out of range: {self.payload_type}")
        if len(self.csrc) > 15:
            raise ValueError("at most 15 CSRC identifiers fit in an RTP header")
        if not 0 <= self.padding_size <= 255:
            raise ValueError(f"padding size out of range: {self.padding_size}")
        first = RTP_VERSION << 6 | len(self.csrc)
        if self.padding_size:
            first |= 0x20
        if self.extension is not None:
            first |= 0x10
        second = self.payload_type | (0x80 if self.marker else 0)
        parts = [
            _FIXED_HEADER.pack(
                first,
                second,
                self.sequence_number % SEQUENCE_MODULO,
                self.timestamp % TIMESTAMP_MODULO,
                self.ssrc % TIMESTAMP_MODULO,
            )
        ]
        if self.csrc:
            parts.append(struct.pack(f"!{len(self.csrc)}I", *self.csrc))
        if self.extension is not None:
            data = self.extension.data
            if len(data) % 4:
                raise ValueError("RTP header extension data must be a multiple of 4 bytes")
            parts.append(_EXTENSION_HEADER.pack(self.extension.profile, len(data) // 4))
            parts.append(data)
        parts.append(self.payload)
        if self.padding_size:
            parts.append(bytes(self.padding_size - 1) + bytes((self.padding_size,)))
        return b"".join(parts)


def sequence_difference(later: int, earlier: int) -> int:
    """Signed distance from ``earlier`` to ``later`` on the 16-bit circle (-32768..32767)."""
    return (later - earlier + 0x8000) % SEQUENCE_MODULO - 0x8000


def timestamp_difference(later: int, earlier: int) -> int:
    """Signed distance from ``earlier`` to ``later`` on the 32-bit circle."""
    return (later - earlier + 0x80000000) % TIMESTAMP_MODULO - 0x80000000


def timestamp_is_newer(candidate: int, reference: int) -> bool:
    """True when ``candidate`` comes strictly after ``reference`` (unsigned 32-bit, wraps)."""
    return timestamp_difference(candidate, reference) > 0


def extend_timestamp(timestamp: int, reference: int) -> int:
    """Place a 32-bit ``timestamp`` on the unbounded timeline nearest to ``reference``."""
    return reference + timestamp_difference(timestamp, reference % TIMESTAMP_MODULO)


def extend_sequence(sequence_number: int, reference: int) -> int:
    """Place a 16-bit sequence number on the unbounded line nearest to ``reference``."""
    return reference + sequence_difference(sequence_number, reference % SEQUENCE_MODULO)


class SequenceExtender:
    """Turns 16-bit sequence numbers into extended ones (cycles * 65536 + sequence).

    Each value is placed nearest to the highest extended number seen so far, so reordered
    packets across a wrap land on the right cycle.
    """

    __slots__ = ("highest",)

    def __init__(self) -> None:
        self.highest: int | None = None

    def extend(self, sequence_number: int) -> int:
        """Return the extended sequence number and remember it if it is the newest."""
        if self.highest is None:
            self.highest = sequence_number
            return sequence_number
        extended = extend_sequence(sequence_number, self.highest)
        if extended > self.highest:
            self.highest = extended
        return extended

    def reset(self) -> None:
        """Forget the history (new SSRC)."""
        self.highest = None
