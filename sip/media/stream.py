"""One call's audio over RTP on a real UDP socket, paced by the shared ``MediaClock``.

``await AudioStream.open(clock, host, port_range)`` binds an even port and subscribes to the
clock. On every 20 ms tick the stream

1. sends one packet to the remote (unless on hold or no remote is set): the oldest queued PCM
   frame encoded with the current codec, digital silence when nothing is queued, or a
   telephone-event packet while a DTMF digit is being sent;
2. pulls one frame from the jitter buffer (once the first packet has arrived) and hands it to
   the ``frames()`` consumer.

Taps (``add_tap``) see every frame at the moment it is sent or played out, as
``tap(direction, pcm, media_timestamp)``. ``media_timestamp`` is on the stream's own
timeline: samples (8 kHz) since the stream opened, 160 per tick, the same value for the
frame sent and the frame received on one tick; a recorder can therefore place both directions
side by side. Received frames come out of the jitter buffer, so from the first packet on
there is one per tick, concealment and silence included (a continuous timeline); before the
first packet there are none. Frames replaced by a DTMF digit are tapped as silence (digits
stay out of recordings). On hold nothing is sent and nothing is tapped as sent.

Duplex taps (``add_duplex_tap``) see the same frames, both directions of a tick in one call,
``tap(sent, received, media_timestamp)`` (either may be ``None``: nothing sent, nothing played
out; never both): a recorder takes a tick in one call instead of two. Frames of ticks the
clock skipped, played out on the next tick, come in calls of their own with ``sent=None``.

Arrival listeners (``add_arrival_listener``) get the far end's audio without the jitter
buffer's delay, for a consumer with a playout buffer of its own (the operator's browser): each
20 ms frame of an audio packet as soon as the packet is read, in sequence order (a packet older
than the newest one handed over by up to 100, or a duplicate, is skipped; further back the
sender restarted its numbering, and a new SSRC, confirmed by its second packet as in the jitter
buffer, starts afresh). While a stream has arrival listeners its
socket is read by the event loop as each datagram arrives instead of on the tick, so a packet
is not held up to 20 ms for the next receive phase; the jitter buffer, the taps and
``frames()`` see the same packets as before.

The clock does the socket I/O of all streams in phases (see :mod:`sip.media.clock`): every
stream queues its packet, the packets of all streams go out back to back, the datagrams that
arrived since the previous tick are read (``MediaClock.add_reader``: the socket is read on the
tick, not by the event loop as each packet arrives), then every stream taps what it sent and
plays out one frame. Sockets are non-blocking; a packet the kernel cannot take at once is
dropped and counted (``packets_not_sent``): a late RTP packet would be useless.

Symmetric RTP: packets are accepted from the address given to ``set_remote``. Until a source
is latched, the first valid packet with an expected payload type (the negotiated audio one,
PCMU, PCMA or the telephone-event one) latches its source, which may be another address
when the far end is behind NAT, and from then on we send there too. After latching, packets
from any other source are dropped and counted (``packets_from_strangers``), except packets
from the exact SDP address, which re-latch to it. A ``set_remote`` with a new address opens
a new latching window (in which the previous session's SDP address and latched source may
not latch, so the old peer's packets cannot capture the new session); one with the same
address keeps the latch.

Connected socket: once the latched source is the SDP address itself (the usual case: no NAT in
between), the socket is ``connect``-ed to it, and from then on packets go out with ``send`` and
come in with ``recv``, without an address either way (no route lookup per packet in the
kernel, no address objects in the interpreter: about half the interpreter's work of sending and
receiving a packet). The kernel then delivers only that source's datagrams to the socket, so
hijack protection is unchanged (it is the same rule, applied before the packet reaches us);
datagrams from other sources are dropped by the kernel (which answers them as a closed port
would, with an ICMP port unreachable) and are no longer seen, hence not counted in
``packets_from_strangers``: that counter counts strangers while the socket is not connected
(before latching, while latched behind NAT to a source other than the SDP address, and in the
latching window after a new ``set_remote`` address). Datagrams queued before the ``connect``
are read with their source and judged as before. ``set_remote`` with a new address disconnects
the socket first (a new latching window accepts any source again); a connected socket also
reports the far end's ICMP errors (its port closed), which show as ``packets_not_sent``.
"""

from __future__ import annotations

import asyncio
import ctypes
import ipaddress
import logging
import os
import secrets
import socket
import struct
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from sip.errors import MediaError, NoFreePortError, RtpParseError, StreamClosedError
from sip.media.clock import MediaClock, Subscription
from sip.media.codecs import (
    FRAME_BYTES,
    PCMA,
    PCMU,
    SAMPLES_PER_FRAME,
    SILENCE_FRAME,
    Codec,
    codec_by_name,
    codec_for_payload_type,
    sized_decoder,
)
from sip.media.dtmf import DtmfDigit, DtmfReceiver, DtmfSender
from sip.media.jitter import MAX_MISORDER, JitterBuffer, PushOutcome
from sip.media.ports import PortAllocator
from sip.media.rtp import RtpPacket, sequence_difference

logger = logging.getLogger(__name__)

Direction = Literal["sent", "received"]
TapCallback = Callable[[Direction, bytes, int], None]
DuplexTapCallback = Callable[[bytes | None, bytes | None, int], None]
DtmfCallback = Callable[[DtmfDigit], None]
ArrivalCallback = Callable[[bytes], None]
Address = tuple[str, int]

COMFORT_NOISE_PAYLOAD_TYPE = 13
PCMU_PAYLOAD_TYPE = PCMU.payload_type
PCMA_PAYLOAD_TYPE = PCMA.payload_type
_ulaw_decode = sized_decoder(PCMU)  # (payload, 2) -> PCM
_alaw_decode = sized_decoder(PCMA)
_HEADER = struct.Struct("!BBHII")
_HEADER_AFTER_FIRST_BYTE = struct.Struct("!BHII")  # second byte, sequence, timestamp, SSRC
_SEQUENCE_AND_TIMESTAMP = struct.Struct("!HI")  # at offset 2 of the header
_pack_sequence_and_timestamp = _SEQUENCE_AND_TIMESTAMP.pack_into
_unpack_after_first_byte = _HEADER_AFTER_FIRST_BYTE.unpack_from
_HEADER_SIZE = _HEADER.size
_RECEIVE_SIZE = 2048  # larger datagrams are not RTP audio we can use (truncated: malformed)
_OPEN_ATTEMPTS = 64
# datagrams read with their source right after connecting (queued before the connect); a
# socket with more than this waiting keeps reading with sources until its next latching window
_DRAIN_AFTER_CONNECT = 64
_ItemT = TypeVar("_ItemT")


@dataclass(frozen=True, slots=True)
class StreamStatistics:
    """Counters of one audio stream (a snapshot)."""

    packets_sent: int
    packets_received: int
    packets_lost: int
    late: int
    duplicate: int
    reordered: int
    concealed_frames: int
    packets_from_strangers: int
    packets_malformed: int
    packets_unexpected_payload: int
    frames_dropped_send_queue: int
    frames_dropped_receive_queue: int
    dtmf_digits_received: int
    last_received_at: float | None
    packets_not_sent: int = 0  # the socket refused them (buffer full, network error)


class _Mailbox(Generic[_ItemT]):
    """A bounded queue with one async consumer, fed from callbacks (oldest dropped)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int) -> None:
        self._loop = loop
        self._items: deque[_ItemT] = deque()
        self._limit = limit
        self._waiter: asyncio.Future[None] | None = None
        self.closed = False
        self.dropped = 0

    def put(self, item: _ItemT) -> None:
        items = self._items
        if len(items) >= self._limit:
            items.popleft()
            self.dropped += 1
        items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def close(self) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def __aiter__(self) -> _Mailbox[_ItemT]:
        return self

    async def __anext__(self) -> _ItemT:
        while not self._items:
            if self.closed:
                raise StopAsyncIteration
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.popleft()


def _normalise_host(host: str) -> str:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).compressed
    except ValueError:
        raise ValueError(f"media address must be an IP address, got {host!r}") from None


def _is_unspecified(host: str) -> bool:
    return ipaddress.ip_address(host).is_unspecified


class AudioStream:
    """Full-duplex G.711 audio of one call. Create with ``await AudioStream.open(...)``."""

    # Slots: a stream has more attributes than an instance dictionary shares keys for (30 in
    # CPython 3.11), and past that every attribute access on the hot path is a dictionary
    # lookup; slots keep them fixed-offset reads.
    __slots__ = (
        "__weakref__",
        "_allocator",
        "_arrival_listeners",
        "_arrival_newest",
        "_clock",
        "_closed",
        "_codec",
        "_connect_wanted",
        "_connected",
        "_descriptor",
        "_destination",
        "_digits",
        "_digits_received",
        "_dtmf_listeners",
        "_dtmf_receiver",
        "_dtmf_receiving",
        "_dtmf_sender",
        "_dtmf_sending",
        "_duplex_taps",
        "_encode",
        "_expected_payload_types",
        "_first_tick",
        "_frame_sent",
        "_frames",
        "_hold",
        "_jitter",
        "_last_played_tick",
        "_last_received_at",
        "_latched",
        "_latched_source",
        "_loop",
        "_malformed",
        "_marker_next",
        "_not_sent",
        "_opened_at",
        "_outgoing",
        "_packet",
        "_packet_payload",
        "_packets_received",
        "_packets_sent",
        "_playout_subscription",
        "_pull",
        "_push",
        "_queue_datagram",
        "_receive_queue_dropped",
        "_receive_queue_frames",
        "_recv",
        "_recvfrom",
        "_remote_set_at",
        "_retired_sources",
        "_sdp_address",
        "_send_connected",
        "_send_queue",
        "_send_queue_dropped",
        "_send_queue_limit",
        "_sending",
        "_sendto",
        "_sequence_base",
        "_silence_payload",
        "_socket",
        "_ssrc",
        "_strangers",
        "_subscription",
        "_taps",
        "_telephone_event_payload",
        "_timestamp_base",
        "_timestamp_offset",
        "_trusting_kernel",
        "_unexpected_payload",
        "local_host",
        "local_port",
    )

    def __init__(
        self,
        clock: MediaClock,
        loop: asyncio.AbstractEventLoop,
        udp_socket: socket.socket,
        local_host: str,
        local_port: int,
        allocator: PortAllocator | None,
        codec: Codec,
        *,
        jitter_depth_frames: int,
        send_queue_frames: int,
        receive_queue_frames: int,
    ) -> None:
        self._clock = clock
        self._loop = loop
        self._socket = udp_socket
        self._descriptor = udp_socket.fileno()
        self._sendto = udp_socket.sendto
        self._send_connected = udp_socket.send
        self._recvfrom = udp_socket.recvfrom
        self._recv = udp_socket.recv
        # the socket is connected to the latched source; once the datagrams queued before that
        # are read, the kernel's filter is trusted and reads take no source (``_trusting_kernel``)
        self._connected = False
        self._trusting_kernel = False
        self._connect_wanted = False  # latched to the SDP address in this read: connect after it
        self.local_host = local_host
        self.local_port = local_port
        self._allocator = allocator
        self._codec = codec
        self._encode = codec.encode
        self._silence_payload = codec.silence_payload
        self._telephone_event_payload: int | None = None
        self._expected_payload_types: frozenset[int] = frozenset()
        self._sdp_address: Address | None = None
        self._latched: Address | None = None
        # the latched source exactly as the socket reports it (IPv6 sources are 4-tuples)
        self._latched_source: tuple[str | int, ...] | None = None
        self._retired_sources: frozenset[Address] = frozenset()
        self._destination: Address | None = None
        self._hold = False
        self._sending = False  # a destination is set and the stream is not on hold
        self._closed = False
        self._marker_next = True
        self._ssrc = secrets.randbits(32)
        self._sequence_base = secrets.randbits(16)  # the sequence number of packet 0
        self._timestamp_base = secrets.randbits(32)
        # the next audio packet, header and payload, rewritten in place on every tick: only
        # sequence number and timestamp change from one to the next (and the payload unless
        # it is the same silence again)
        self._packet = bytearray(_HEADER.pack(0x80, codec.payload_type, 0, 0, self._ssrc))
        self._packet_payload: bytes | None = None
        self._send_queue: deque[bytes] = deque()
        self._send_queue_limit = send_queue_frames
        self._receive_queue_frames = receive_queue_frames
        self._jitter = JitterBuffer(depth_frames=jitter_depth_frames)
        self._push = self._jitter.push
        self._pull = self._jitter.pull
        self._dtmf_sender = DtmfSender()
        self._dtmf_receiver = DtmfReceiver()
        self._taps: tuple[TapCallback, ...] = ()
        self._duplex_taps: tuple[DuplexTapCallback, ...] = ()
        self._dtmf_listeners: tuple[DtmfCallback, ...] = ()
        self._arrival_listeners: tuple[ArrivalCallback, ...] = ()
        # the newest packet handed to arrival listeners: (SSRC, sequence number)
        self._arrival_newest: tuple[int, int] | None = None
        self._frames: _Mailbox[bytes] | None = None
        self._digits: _Mailbox[DtmfDigit] | None = None
        self._opened_at = loop.time()
        self._remote_set_at: float | None = None
        self._last_received_at: float | None = None
        self._packets_sent = 0
        self._packets_received = 0
        self._strangers = 0
        self._malformed = 0
        self._unexpected_payload = 0
        self._send_queue_dropped = 0
        self._receive_queue_dropped = 0
        self._not_sent = 0
        self._digits_received = 0
        self._dtmf_receiving = False  # the DTMF receiver has an event in progress
        self._first_tick = clock.next_tick_index
        self._last_played_tick = self._first_tick - 1
        # RTP timestamp of tick ``index``: (offset + index * 160) mod 2**32
        self._timestamp_offset = self._timestamp_base - self._first_tick * SAMPLES_PER_FRAME
        self._dtmf_sending = False  # mirrors ``_dtmf_sender.active``
        self._queue_datagram = clock.queue_datagram
        # what the send phase sends for us on a tick with audio (rebuilt when the destination
        # changes); the frame to tap as sent once it is out (None: nothing to tap). Typed as a
        # tuple of any length on purpose: compiled (setup.py), a fixed-length tuple attribute
        # is kept unboxed, and every tick would box it into a new tuple object, which costs an
        # allocation per packet and makes the clock sort its send queue again on every tick.
        self._outgoing: tuple[Any, ...] = (
            self._sendto,
            self._packet,
            ("", 0),
            self._send_failed,
            ("", 0),
        )
        self._frame_sent: bytes | None = None
        clock.add_reader(self._descriptor, self._on_readable)
        self._subscription: Subscription = clock.subscribe(self._tick)
        self._playout_subscription: Subscription = clock.subscribe(self._play, after_send=True)

    # ------------------------------------------------------------------ opening
    @classmethod
    async def open(
        cls,
        clock: MediaClock,
        host: str = "127.0.0.1",
        port_range: tuple[int, int] | PortAllocator | None = None,
        codec: Codec | str = PCMU,
        *,
        jitter_depth_frames: int = 2,
        send_queue_frames: int = 50,
        receive_queue_frames: int = 50,
    ) -> AudioStream:
        """Bind an even UDP port on ``host`` and start ticking.

        ``port_range``: ``(low, high)`` tries the even ports of that range from a random
        starting point; a shared ``PortAllocator`` also remembers what this process uses
        (released on ``close()``); ``None`` lets the system choose an (even) ephemeral port.
        Raises ``NoFreePortError`` when no port can be bound.
        """
        loop = asyncio.get_running_loop()
        local_host = _normalise_host(host)
        chosen_codec = codec_by_name(codec) if isinstance(codec, str) else codec
        allocator: PortAllocator | None
        if isinstance(port_range, tuple):
            low, high = port_range
            allocator = PortAllocator(low, high, start_offset=secrets.randbelow(1 << 16))
            shared = False
        else:
            allocator = port_range
            shared = allocator is not None
        if jitter_depth_frames < 0 or send_queue_frames < 1 or receive_queue_frames < 1:
            raise ValueError("jitter depth must be >= 0 and queue sizes >= 1")
        udp_socket = _bind(local_host, allocator)
        port = int(udp_socket.getsockname()[1])
        try:
            return cls(
                clock,
                loop,
                udp_socket,
                local_host,
                port,
                allocator if shared else None,
                chosen_codec,
                jitter_depth_frames=jitter_depth_frames,
                send_queue_frames=send_queue_frames,
                receive_queue_frames=receive_queue_frames,
            )
        except BaseException:
            clock.remove_reader(udp_socket.fileno())
            udp_socket.close()
            if allocator is not None:
                allocator.release(port)
            raise

    async def __aenter__(self) -> AudioStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ control
    @property
    def codec(self) -> Codec:
        """The codec we send with."""
        return self._codec

    @property
    def remote_address(self) -> Address | None:
        """Where packets go: the latched source if any, else the SDP address."""
        return self._destination

    @property
    def closed(self) -> bool:
        """True after ``close()``."""
        return self._closed

    @property
    def on_hold(self) -> bool:
        """True while sending is stopped by ``set_hold(True)``."""
        return self._hold

    def set_remote(
        self,
        host: str,
        port: int,
        payload_type: int,
        telephone_event_payload: int | None = None,
    ) -> None:
        """Send to ``host:port`` with ``payload_type`` (0 PCMU or 8 PCMA); may be called again.

        ``host`` must be an IP address (``0.0.0.0`` / ``::`` = send nothing, old-style hold).
        A new address resets NAT latching; the same address keeps it. ``ValueError`` for an
        unsupported payload type or a host that is not an IP address.
        """
        self._check_open()
        codec = codec_for_payload_type(payload_type)
        if not 0 < port < 65536:
            raise ValueError(f"invalid RTP port {port}")
        address = (_normalise_host(host), port)
        self._codec = codec
        self._encode = codec.encode
        self._silence_payload = codec.silence_payload
        self._packet[1] = codec.payload_type
        self._packet_payload = None
        self._telephone_event_payload = telephone_event_payload
        expected = {payload_type, PCMU.payload_type, PCMA.payload_type}
        if telephone_event_payload is not None:
            expected.add(telephone_event_payload)
        self._expected_payload_types = frozenset(expected)
        if address != self._sdp_address:
            # sources of the previous media session must not latch the new one (packets of
            # the old peer still in flight, or an old peer that keeps sending)
            self._retired_sources = frozenset(
                source for source in (self._sdp_address, self._latched) if source is not None
            )
            self._sdp_address = address
            self._latched = None
            self._latched_source = None
            self._connect_wanted = False
            if self._connected:
                self._disconnect()
            self._remote_set_at = self._loop.time()
        if _is_unspecified(address[0]):
            self._set_destination(None)
        else:
            self._set_destination(self._latched if self._latched is not None else address)
        self._marker_next = True

    def set_hold(self, on: bool) -> None:
        """Stop (``True``) or resume (``False``) sending; receiving goes on."""
        self._check_open()
        if self._hold and not on:
            self._marker_next = True
        self._hold = on
        self._sending = self._destination is not None and not on

    def send(self, frame: bytes) -> None:
        """Queue one 20 ms frame (320 bytes of 16-bit LE PCM); the oldest is dropped if full.

        The queue drains one frame per tick whatever happens: frames due while on hold, before
        a remote is set or while a DTMF digit is sent are discarded, so audio stays live.
        Call from the event loop's thread.
        """
        self._check_open()
        if len(frame) != FRAME_BYTES:
            raise ValueError(f"a frame is {FRAME_BYTES} bytes of PCM, got {len(frame)}")
        queue = self._send_queue
        if len(queue) >= self._send_queue_limit:
            queue.popleft()
            self._send_queue_dropped += 1
        queue.append(bytes(frame))

    def send_dtmf(self, digits: str) -> None:
        """Queue DTMF digits (``0-9 * # A-D``) as RFC 4733 events, 100 ms each."""
        self._check_open()
        if self._telephone_event_payload is None:
            raise MediaError("the remote did not negotiate telephone-event")
        self._dtmf_sender.queue(digits)
        self._dtmf_sending = self._dtmf_sender.active

    def add_tap(self, callback: TapCallback) -> Callable[[], None]:
        """Call ``callback(direction, frame, media_timestamp)`` per frame; returns a remover.

        See the module docstring for the timeline. Runs in the clock's tick, so it must be
        quick (hand the frame to a queue or a buffer); a tap that raises is logged and removed.
        """
        self._taps = (*self._taps, callback)

        def remove() -> None:
            self._taps = tuple(tap for tap in self._taps if tap is not callback)

        return remove

    def add_duplex_tap(self, callback: DuplexTapCallback) -> Callable[[], None]:
        """Call ``callback(sent, received, media_timestamp)`` once per tick with both
        directions' frames (see the module docstring); returns a remover. Same rules as
        :meth:`add_tap`: quick work only; one that raises is logged and removed."""
        self._duplex_taps = (*self._duplex_taps, callback)

        def remove() -> None:
            self._remove_duplex_tap(callback)

        return remove

    def add_dtmf_listener(self, callback: DtmfCallback) -> Callable[[], None]:
        """Call ``callback(digit)`` once per received DTMF digit; returns a remover."""
        self._dtmf_listeners = (*self._dtmf_listeners, callback)

        def remove() -> None:
            self._dtmf_listeners = tuple(
                listener for listener in self._dtmf_listeners if listener is not callback
            )

        return remove

    def add_arrival_listener(self, callback: ArrivalCallback) -> Callable[[], None]:
        """Call ``callback(frame)`` per received 20 ms audio frame as its packet arrives (see
        the module docstring); returns a remover. Quick work only, as for taps; a listener that
        raises is logged and removed."""
        if self._closed:
            return lambda: None  # nothing will arrive any more
        if not self._arrival_listeners:
            self._clock.remove_reader(self._descriptor)
            self._loop.add_reader(self._descriptor, self._on_arrival)
        self._arrival_listeners = (*self._arrival_listeners, callback)

        def remove() -> None:
            self._remove_arrival_listener(callback)

        return remove

    def frames(self) -> AsyncIterator[bytes]:
        """Async iterator of received 320-byte PCM frames, one per tick from the first packet.

        Frames are queued from the call on (up to ``receive_queue_frames``, oldest dropped);
        it ends when the stream closes. Only one consumer at a time.
        """
        self._check_open()
        if self._frames is not None:
            raise MediaError("frames() already has a consumer")
        self._frames = _Mailbox(self._loop, self._receive_queue_frames)
        return self._frames

    def dtmf_digits(self) -> AsyncIterator[DtmfDigit]:
        """Async iterator of received DTMF digits (from the call on); ends on close."""
        self._check_open()
        if self._digits is None:
            self._digits = _Mailbox(self._loop, 64)
        return self._digits

    @property
    def statistics(self) -> StreamStatistics:
        """Counters; ``last_received_at`` is the loop time of the last accepted packet."""
        jitter = self._jitter.statistics
        return StreamStatistics(
            packets_sent=self._packets_sent,
            packets_received=self._packets_received,
            packets_lost=jitter.lost,
            late=jitter.late,
            duplicate=jitter.duplicate,
            reordered=jitter.reordered,
            concealed_frames=jitter.concealed_frames,
            packets_from_strangers=self._strangers,
            packets_malformed=self._malformed,
            packets_unexpected_payload=self._unexpected_payload,
            frames_dropped_send_queue=self._send_queue_dropped,
            frames_dropped_receive_queue=self._frames.dropped if self._frames else 0,
            dtmf_digits_received=self._digits_received,
            last_received_at=self._last_received_at,
            packets_not_sent=self._not_sent,
        )

    def media_idle_seconds(self, now: float) -> float:
        """Seconds (loop time) since the last packet, or since ``set_remote``/open if none."""
        reference = self._last_received_at
        if reference is None:
            reference = self._remote_set_at if self._remote_set_at is not None else self._opened_at
        return max(0.0, now - reference)

    def close(self) -> None:
        """Stop ticking, close the socket, give the port back, end the iterators."""
        if self._closed:
            return
        self._closed = True
        self._subscription.cancel()
        self._playout_subscription.cancel()
        if self._arrival_listeners:
            self._arrival_listeners = ()
            self._loop.remove_reader(self._descriptor)
        else:
            self._clock.remove_reader(self._descriptor)
        self._socket.close()
        if self._allocator is not None:
            self._allocator.release(self.local_port)
        if self._frames is not None:
            self._frames.close()
        if self._digits is not None:
            self._digits.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StreamClosedError("the audio stream is closed")

    # ------------------------------------------------------------------ hot path
    def _set_destination(self, destination: Address | None) -> None:
        self._destination = destination
        self._sending = destination is not None and not self._hold
        if destination is not None:
            self._build_outgoing()

    def _build_outgoing(self) -> None:
        """The datagram the send phase sends on a tick with audio: ``send`` without an address
        on a socket connected to the destination, else ``sendto`` it."""
        destination = self._destination
        if destination is None:
            return
        if self._connected and destination == self._latched:
            self._outgoing = (
                self._send_connected,
                self._packet,
                0,
                self._send_failed,
                destination,
            )
        else:
            self._outgoing = (
                self._sendto,
                self._packet,
                destination,
                self._send_failed,
                destination,
            )

    def _connect_to_latched(self, now: float) -> None:
        """Connect the socket to the latched source (the SDP address), then read the datagrams
        queued before that with their source, as an unconnected socket does."""
        self._connect_wanted = False
        source = self._latched_source
        if source is None or self._closed or _DISCONNECT is None:
            return  # without a way to disconnect again, stay unconnected
        try:
            self._socket.connect(source)
        except OSError as error:
            logger.debug("RTP port %d not connected to %s: %s", self.local_port, source, error)
            return
        self._connected = True
        self._build_outgoing()
        recvfrom = self._recvfrom
        for _ in range(_DRAIN_AFTER_CONNECT):
            try:
                data, datagram_source = recvfrom(_RECEIVE_SIZE)
            except BlockingIOError:
                self._trusting_kernel = True
                return
            except OSError:
                continue  # an error the socket reported (ICMP): the datagrams may follow
            self._on_datagram(data, datagram_source, now)
            if not self._connected:
                return  # it disconnected meanwhile (a listener set a new remote)

    def _disconnect(self) -> None:
        """Accept datagrams from any source again (a new latching window)."""
        self._connected = False
        self._trusting_kernel = False
        assert _DISCONNECT is not None  # connected only where it exists
        try:
            _DISCONNECT(self._descriptor)
        except OSError as error:
            # still connected: only the old peer can latch (does not happen on Linux)
            logger.warning("RTP port %d could not be disconnected: %s", self.local_port, error)
        self._build_outgoing()

    def _tick(self, index: int) -> None:
        """Tick phase: queue this tick's packet (sent in the clock's send phase)."""
        queue = self._send_queue
        frame = queue.popleft() if queue else None
        if not self._sending:
            self._frame_sent = None  # nothing sent, nothing tapped as sent
            return
        timestamp = (self._timestamp_offset + index * SAMPLES_PER_FRAME) & 0xFFFFFFFF
        if self._dtmf_sending and self._queue_dtmf_packet(timestamp):
            self._frame_sent = SILENCE_FRAME  # digits are not tapped (nor recorded)
            return
        if frame is None:
            payload = self._silence_payload
            self._frame_sent = SILENCE_FRAME
        else:
            payload = self._encode(frame)
            self._frame_sent = frame
        packet = self._packet
        if payload is not self._packet_payload:
            packet[_HEADER_SIZE:] = payload
            self._packet_payload = payload
        count = self._packets_sent
        _pack_sequence_and_timestamp(packet, 2, (self._sequence_base + count) & 0xFFFF, timestamp)
        self._packets_sent = count + 1
        if self._marker_next:
            self._marker_next = False
            marked = bytearray(packet)
            marked[1] |= 0x80
            outgoing = self._outgoing
            self._queue_datagram((outgoing[0], marked, outgoing[2], outgoing[3], outgoing[4]))
        else:
            self._queue_datagram(self._outgoing)

    def _play(self, index: int) -> None:
        """After-send phase: tap what was sent, play out one received frame."""
        media_timestamp = (index - self._first_tick) * SAMPLES_PER_FRAME
        taps = self._taps
        sent = self._frame_sent
        if sent is not None:
            self._frame_sent = None
            for tap in taps:
                try:
                    tap("sent", sent, media_timestamp)
                except Exception:
                    # one broken consumer must not break the call's audio: it is removed
                    logger.exception("audio tap %r failed and was removed", tap)
                    self._remove_tap(tap)
        # The ticks the clock skipped (a stalled loop) had their frames' playout slots too:
        # the frames that arrived meanwhile beyond the buffer's depth are played out now in
        # those slots, oldest first, so a stall does not leave a standing backlog (latency).
        missed = index - self._last_played_tick - 1
        self._last_played_tick = index
        if missed > 0:
            jitter = self._jitter
            catch_up = min(missed, jitter.buffered_frames - jitter.depth_frames)
            for behind in range(catch_up, 0, -1):
                self._play_received(media_timestamp - behind * SAMPLES_PER_FRAME, trim=False)
        # ``_play_received(media_timestamp)``, inline: this runs for every stream on every tick
        received = self._pull()
        if received is not None:
            for tap in self._taps:
                try:
                    tap("received", received, media_timestamp)
                except Exception:
                    # one broken consumer must not break the call's audio: it is removed
                    logger.exception("audio tap %r failed and was removed", tap)
                    self._remove_tap(tap)
            if self._frames is not None:
                self._frames.put(received)
        if self._duplex_taps and (sent is not None or received is not None):
            self._tap_duplex(sent, received, media_timestamp)

    def _tap_duplex(self, sent: bytes | None, received: bytes | None, media_timestamp: int) -> None:
        for duplex_tap in self._duplex_taps:
            try:
                duplex_tap(sent, received, media_timestamp)
            except Exception:
                logger.exception("audio tap %r failed and was removed", duplex_tap)
                self._remove_duplex_tap(duplex_tap)

    def _remove_duplex_tap(self, tap: DuplexTapCallback) -> None:
        self._duplex_taps = tuple(other for other in self._duplex_taps if other is not tap)

    def _play_received(self, media_timestamp: int, *, trim: bool = True) -> None:
        received = self._pull(trim=trim)
        if received is not None:
            for tap in self._taps:
                try:
                    tap("received", received, media_timestamp)
                except Exception:
                    # one broken consumer must not break the call's audio: it is removed
                    logger.exception("audio tap %r failed and was removed", tap)
                    self._remove_tap(tap)
            if self._frames is not None:
                self._frames.put(received)
            if self._duplex_taps:
                self._tap_duplex(None, received, media_timestamp)

    def _send_failed(self, error: OSError) -> None:
        # socket buffer full, or a network error: RTP is not resent
        self._not_sent += 1
        logger.debug("RTP packet of port %d not sent: %s", self.local_port, error)

    def _queue_dtmf_packet(self, timestamp: int) -> bool:
        """Queue this tick's telephone-event packet, if a digit is being sent; False if none."""
        dtmf_sender = self._dtmf_sender
        dtmf = dtmf_sender.next_packet(timestamp)
        self._dtmf_sending = dtmf_sender.active
        if dtmf is None or self._telephone_event_payload is None:
            return False
        second = self._telephone_event_payload | (0x80 if dtmf.marker else 0)
        count = self._packets_sent
        sequence = (self._sequence_base + count) & 0xFFFF
        packet = _HEADER.pack(0x80, second, sequence, dtmf.timestamp, self._ssrc) + dtmf.payload
        outgoing = self._outgoing
        self._queue_datagram((outgoing[0], packet, outgoing[2], outgoing[3], outgoing[4]))
        self._packets_sent = count + 1
        return True

    def _remove_arrival_listener(self, callback: ArrivalCallback) -> None:
        if self._closed or callback not in self._arrival_listeners:
            return
        self._arrival_listeners = tuple(
            listener for listener in self._arrival_listeners if listener is not callback
        )
        if not self._arrival_listeners:
            self._loop.remove_reader(self._descriptor)
            self._clock.add_reader(self._descriptor, self._on_readable)

    def _on_arrival(self) -> None:
        """The event loop's reader while there are arrival listeners: one datagram per call
        (the loop calls again while the socket holds more)."""
        self._on_readable(self._loop.time())

    def _hand_over_arrival(
        self, outcome: PushOutcome, sequence_number: int, ssrc: int, pcm: bytes
    ) -> None:
        """Give a packet's frames to the arrival listeners if it is the newest so far (one the
        jitter buffer found too late for its own playout still is, for the listener's)."""
        if outcome is not PushOutcome.ACCEPTED and outcome is not PushOutcome.LATE:
            return
        newest = self._arrival_newest
        if (
            newest is not None
            and newest[0] == ssrc
            and -MAX_MISORDER < sequence_difference(sequence_number, newest[1]) <= 0
        ):
            # reordered or repeated: the listener's playout has moved past it (a jump further
            # back is a sender that restarted its numbering: followed from there)
            return
        self._arrival_newest = (ssrc, sequence_number)
        for start in range(0, len(pcm), FRAME_BYTES):
            frame = pcm[start : start + FRAME_BYTES]
            if len(frame) < FRAME_BYTES:
                frame += bytes(FRAME_BYTES - len(frame))
            for listener in self._arrival_listeners:
                try:
                    listener(frame)
                except Exception:
                    logger.exception("arrival listener %r failed and was removed", listener)
                    self._remove_arrival_listener(listener)

    def _remove_tap(self, tap: TapCallback) -> None:
        self._taps = tuple(other for other in self._taps if other is not tap)

    def _on_readable(self, now: float) -> None:
        """Read one datagram (the clock's receive phase calls this while the socket has any)."""
        try:
            if self._trusting_kernel:
                # connected: the kernel delivers the latched source's datagrams only
                data = self._recv(_RECEIVE_SIZE)
                source = self._latched_source or ()  # never empty while trusting
            else:
                data, source = self._recvfrom(_RECEIVE_SIZE)
        except OSError:
            return  # nothing after all, or an error the socket reported (ICMP): nothing to read
        if source == self._latched_source and data[:1] == b"\x80":
            # the usual packet: plain RTP audio (no padding, extension or CSRC) from the latched
            # source; ``_on_datagram`` handles it the same way, and everything else
            try:
                second, sequence_number, timestamp, ssrc = _unpack_after_first_byte(data, 1)
            except struct.error:
                self._malformed += 1
                return
            payload_type = second & 0x7F
            if payload_type == PCMU_PAYLOAD_TYPE:
                pcm = _ulaw_decode(data[12:], 2)
            elif payload_type == PCMA_PAYLOAD_TYPE:
                pcm = _alaw_decode(data[12:], 2)
            else:
                self._on_datagram(data, source, now)
                if self._connect_wanted:
                    self._connect_to_latched(now)
                return
            self._packets_received += 1
            self._last_received_at = now
            outcome = self._push(sequence_number, timestamp, ssrc, pcm)
            if self._arrival_listeners:
                self._hand_over_arrival(outcome, sequence_number, ssrc, pcm)
            if self._dtmf_receiving:
                digits = self._dtmf_receiver.audio_received(timestamp)
                self._dtmf_receiving = self._dtmf_receiver.pending
                self._deliver_digits(digits)
            return
        self._on_datagram(data, source, now)
        if self._connect_wanted:
            self._connect_to_latched(now)

    def _on_datagram(self, data: bytes, source: tuple[str | int, ...], now: float) -> None:
        if len(data) > _HEADER_SIZE and data[0] == 0x80:
            # plain version 2 packet (no padding, extension or CSRC): the common case
            second, sequence_number, timestamp, ssrc = _unpack_after_first_byte(data, 1)
            payload_type = second & 0x7F
            payload = data[_HEADER_SIZE:]
        else:
            try:
                packet = RtpPacket.parse(data)
            except RtpParseError:
                self._malformed += 1
                return
            payload_type = packet.payload_type
            sequence_number = packet.sequence_number
            timestamp = packet.timestamp
            ssrc = packet.ssrc
            payload = packet.payload
        if source != self._latched_source and not self._accept_source(source, payload_type):
            self._strangers += 1
            return
        self._packets_received += 1
        self._last_received_at = now
        if payload_type in (PCMU_PAYLOAD_TYPE, PCMA_PAYLOAD_TYPE):
            decode = _ulaw_decode if payload_type == PCMU_PAYLOAD_TYPE else _alaw_decode
            pcm = decode(payload, 2)
            outcome = self._jitter.push(sequence_number, timestamp, ssrc, pcm)
            if self._arrival_listeners:
                self._hand_over_arrival(outcome, sequence_number, ssrc, pcm)
        elif payload_type == self._telephone_event_payload:
            self._jitter.note_without_audio(sequence_number, ssrc)
            try:
                digits = self._dtmf_receiver.receive(timestamp, payload)
            except RtpParseError:
                self._malformed += 1
                return
            finally:
                self._dtmf_receiving = self._dtmf_receiver.pending
            self._deliver_digits(digits)
            return
        elif payload_type == COMFORT_NOISE_PAYLOAD_TYPE:
            self._jitter.note_without_audio(sequence_number, ssrc)
            return
        else:
            self._unexpected_payload += 1
            return
        if self._dtmf_receiving:
            digits = self._dtmf_receiver.audio_received(timestamp)
            self._dtmf_receiving = self._dtmf_receiver.pending
            self._deliver_digits(digits)

    def _accept_source(self, source: tuple[str | int, ...], payload_type: int) -> bool:
        """Latching rule for a packet from a source other than the latched one."""
        address = (str(source[0]), int(source[1]))
        if address == self._latched:
            self._latched_source = source  # IPv6 sources come as 4-tuples
            return True
        sdp_address = self._sdp_address
        if sdp_address is None:
            return False  # no remote yet: nothing to latch onto
        if address != sdp_address and (
            self._latched is not None
            or payload_type not in self._expected_payload_types
            or address in self._retired_sources
        ):
            return False
        self._latched = address
        self._latched_source = source
        if not _is_unspecified(sdp_address[0]):
            self._set_destination(address)
            # the SDP address itself: the socket can be connected (see the module docstring)
            self._connect_wanted = address == sdp_address and not self._connected
        return True

    def _deliver_digits(self, digits: list[DtmfDigit]) -> None:
        for digit in digits:
            self._digits_received += 1
            for listener in self._dtmf_listeners:
                try:
                    listener(digit)
                except Exception:
                    logger.exception("DTMF listener %r failed", listener)
            if self._digits is not None:
                self._digits.put(digit)


def _load_disconnect() -> Callable[[int], None] | None:
    """A function dissolving a UDP socket's association (``connect`` to an ``AF_UNSPEC``
    address: Python's ``socket.connect`` takes addresses of the socket's family only), or
    ``None`` where the C library has no ``connect`` to call."""
    try:
        connect = ctypes.CDLL(None, use_errno=True).connect
    except (OSError, AttributeError):
        return None
    connect.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint32]
    connect.restype = ctypes.c_int
    unspecified = ctypes.create_string_buffer(16)  # a sockaddr of family 0 (AF_UNSPEC)

    def disconnect(descriptor: int) -> None:
        if connect(descriptor, unspecified, len(unspecified)) != 0:
            number = ctypes.get_errno()
            raise OSError(number, os.strerror(number))

    return disconnect


_DISCONNECT = _load_disconnect()


def _bind(host: str, allocator: PortAllocator | None) -> socket.socket:
    """A non-blocking UDP socket on an even port (from ``allocator``, or ephemeral if ``None``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    failed: set[int] = set()
    for _ in range(_OPEN_ATTEMPTS if allocator is None else allocator.capacity):
        port = 0 if allocator is None else allocator.acquire(exclude=frozenset(failed))
        udp_socket = socket.socket(family, socket.SOCK_DGRAM)
        try:
            udp_socket.setblocking(False)
            udp_socket.bind((host, port))
        except OSError:
            udp_socket.close()
            if allocator is not None:
                allocator.release(port)
                failed.add(port)
            continue
        if allocator is not None:
            return udp_socket
        bound_port = int(udp_socket.getsockname()[1])
        udp_socket.close()
        if bound_port % 2:
            continue  # ephemeral odd port: try again
        # The port the system chose, bound again by number: a socket bound to port 0 loses its
        # port when it is disconnected (``_disconnect``), one bound to a number keeps it.
        udp_socket = socket.socket(family, socket.SOCK_DGRAM)
        try:
            udp_socket.setblocking(False)
            udp_socket.bind((host, bound_port))
        except OSError:
            udp_socket.close()  # taken in between: try again
            continue
        return udp_socket
    raise NoFreePortError(f"could not bind an even RTP port on {host}")
