"""DTMF as RFC 4733 telephone-events: payload format, a sender and a receiver (all pure).

An event payload is 4 bytes: event code, end bit + volume, 16-bit duration in timestamp
units. ``DtmfSender`` is asked once per 20 ms tick for the packet to send instead of audio:
the first packet of a digit carries the RTP marker, every packet of the digit carries the
event's start timestamp and a duration growing by one tick, and the final packet (end bit
set, final duration) is sent three times; a gap of audio separates digits.
``DtmfReceiver`` reports each digit exactly once (with its duration) when its end arrives,
whatever number of retransmitted end packets follow; a digit whose end packets were all lost
is reported when the next event starts or audio resumes after it.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass

from sip.errors import RtpParseError
from sip.media.rtp import timestamp_difference

DTMF_SYMBOLS = "0123456789*#ABCD"
_PAYLOAD = struct.Struct("!BBH")
MAX_DURATION = 0xFFFF
AUDIO_MARGIN = 480  # audio this far (60 ms) past an event's known end closes the event


def event_code(digit: str) -> int:
    """RFC 4733 event code of a DTMF symbol (``0-9 * # A-D``); ``ValueError`` otherwise."""
    code = DTMF_SYMBOLS.find(digit.upper()) if len(digit) == 1 else -1
    if code < 0:
        raise ValueError(f"not a DTMF symbol: {digit!r}")
    return code


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """One telephone-event payload."""

    event: int
    end: bool
    volume: int
    duration: int

    @classmethod
    def parse(cls, payload: bytes) -> TelephoneEvent:
        """Read the first 4 bytes of a payload; ``RtpParseError`` if it is too short."""
        if len(payload) < _PAYLOAD.size:
            raise RtpParseError(f"telephone-event payload too short: {len(payload)} bytes")
        event, flags, duration = _PAYLOAD.unpack_from(payload)
        return cls(event=event, end=bool(flags & 0x80), volume=flags & 0x3F, duration=duration)

    def __bytes__(self) -> bytes:
        flags = (0x80 if self.end else 0) | (self.volume & 0x3F)
        return _PAYLOAD.pack(self.event, flags, min(self.duration, MAX_DURATION))


@dataclass(frozen=True, slots=True)
class DtmfPacket:
    """A telephone-event packet the stream must send this tick (instead of audio)."""

    payload: bytes
    marker: bool
    timestamp: int


@dataclass(frozen=True, slots=True)
class DtmfDigit:
    """A digit received: symbol, duration in timestamp units, RTP timestamp of its start."""

    digit: str
    duration: int
    timestamp: int
    clock_rate: int = 8000

    @property
    def duration_seconds(self) -> float:
        """Duration in seconds."""
        return self.duration / self.clock_rate


@dataclass(slots=True)
class _SendingEvent:
    code: int
    timestamp: int
    ticks: int = 0
    end_packets: int = 0


class DtmfSender:
    """Schedules queued digits into per-tick telephone-event packets."""

    def __init__(
        self,
        *,
        duration_ticks: int = 5,
        gap_ticks: int = 3,
        volume: int = 10,
        end_repeats: int = 3,
        samples_per_tick: int = 160,
    ) -> None:
        if duration_ticks < 1 or end_repeats < 1:
            raise ValueError("a digit lasts at least one tick and ends with at least one packet")
        self.duration_ticks = duration_ticks
        self.gap_ticks = gap_ticks
        self.volume = volume
        self.end_repeats = end_repeats
        self.samples_per_tick = samples_per_tick
        self._pending: deque[int] = deque()
        self._current: _SendingEvent | None = None
        self._gap = 0
        self.active = False  # True while a digit is being sent or waiting to be sent

    def queue(self, digits: str) -> None:
        """Queue digits (``0-9 * # A-D``); all are validated before any is queued."""
        codes = [event_code(digit) for digit in digits]
        self._pending.extend(codes)
        self.active = bool(self._pending) or self._current is not None

    def cancel(self) -> None:
        """Forget pending digits (the one being sent finishes with its end packets)."""
        self._pending.clear()
        self.active = self._current is not None

    def next_packet(self, timestamp: int) -> DtmfPacket | None:
        """Packet for the tick whose audio timestamp is ``timestamp``; ``None`` = send audio."""
        current = self._current
        if current is None:
            if self._gap > 0:
                self._gap -= 1
                return None
            if not self._pending:
                return None
            current = self._current = _SendingEvent(self._pending.popleft(), timestamp)
        current.ticks += 1
        if current.ticks < self.duration_ticks:
            event = TelephoneEvent(
                current.code, False, self.volume, current.ticks * self.samples_per_tick
            )
            return DtmfPacket(bytes(event), current.ticks == 1, current.timestamp)
        duration = self.duration_ticks * self.samples_per_tick
        current.end_packets += 1
        if current.end_packets >= self.end_repeats:
            self._current = None
            self._gap = self.gap_ticks
            self.active = bool(self._pending)
        event = TelephoneEvent(current.code, True, self.volume, duration)
        return DtmfPacket(
            bytes(event), self.duration_ticks == 1 and current.ticks == 1, current.timestamp
        )


@dataclass(slots=True)
class _ReceivingEvent:
    code: int
    timestamp: int
    duration: int


class DtmfReceiver:
    """Turns received telephone-event packets into digits, each reported once."""

    def __init__(self, *, clock_rate: int = 8000, remembered_events: int = 16) -> None:
        self.clock_rate = clock_rate
        self._current: _ReceivingEvent | None = None
        self._finished: deque[int] = deque(maxlen=remembered_events)

    @property
    def pending(self) -> bool:
        """True while an event has started and its end has not arrived."""
        return self._current is not None

    def receive(self, timestamp: int, payload: bytes) -> list[DtmfDigit]:
        """Handle one telephone-event payload; ``RtpParseError`` if it is too short."""
        event = TelephoneEvent.parse(payload)
        digits: list[DtmfDigit] = []
        if event.event >= len(DTMF_SYMBOLS) or timestamp in self._finished:
            return digits
        current = self._current
        if current is not None and current.timestamp != timestamp:
            digits.append(self._finish(current))
            current = None
        if current is None:
            current = self._current = _ReceivingEvent(event.event, timestamp, event.duration)
        else:
            current.duration = max(current.duration, event.duration)
        if event.end:
            digits.append(self._finish(current))
        return digits

    def audio_received(self, timestamp: int) -> list[DtmfDigit]:
        """Audio resumed at ``timestamp``: report an event whose end packets were lost."""
        current = self._current
        if current is None:
            return []
        if timestamp_difference(timestamp, current.timestamp) > current.duration + AUDIO_MARGIN:
            return [self._finish(current)]
        return []

    def _finish(self, event: _ReceivingEvent) -> DtmfDigit:
        self._current = None
        self._finished.append(event.timestamp)
        return DtmfDigit(DTMF_SYMBOLS[event.code], event.duration, event.timestamp, self.clock_rate)
