"""AudioStream end to end over real UDP sockets on loopback (no timing thresholds)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

import pytest

from sip.errors import MediaError, StreamClosedError
from sip.media.clock import MediaClock
from sip.media.codecs import PCMA, PCMU, SILENCE_FRAME, Codec
from sip.media.dtmf import DtmfDigit, TelephoneEvent
from sip.media.rtp import RtpPacket
from sip.media.stream import AudioStream, Direction
from tests.sip.media.conftest import (
    Collector,
    ManualLoop,
    frames_until,
    tone_frames,
    wait_until,
)

OpenSocket = Callable[[], asyncio.Future[Collector]]
Tapped = list[tuple[Direction, bytes, int]]


# A deep cushion keeps the tests exact on a loaded machine (catch-up bursts of the clock).
DEPTH = 8


async def open_pair(clock: MediaClock, payload_type: int = 0) -> tuple[AudioStream, AudioStream]:
    left = await AudioStream.open(clock, "127.0.0.1", jitter_depth_frames=DEPTH)
    right = await AudioStream.open(clock, "127.0.0.1", jitter_depth_frames=DEPTH)
    left.set_remote("127.0.0.1", right.local_port, payload_type, 101)
    right.set_remote("127.0.0.1", left.local_port, payload_type, 101)
    return left, right


def round_trip(frames: list[bytes], codec: Codec) -> list[bytes]:
    return [codec.decode(codec.encode(frame)) for frame in frames]


def recorder(into: Tapped) -> Callable[[Direction, bytes, int], None]:
    def tap(direction: Direction, frame: bytes, media_timestamp: int) -> None:
        into.append((direction, frame, media_timestamp))

    return tap


@pytest.mark.parametrize("codec", [PCMU, PCMA], ids=lambda codec: codec.name)
async def test_frames_arrive_bit_exact_in_order_and_taps_see_everything(
    clock: MediaClock, codec: Codec
) -> None:
    left, right = await open_pair(clock, codec.payload_type)
    sent_taps: Tapped = []
    received_taps: Tapped = []
    left.add_tap(recorder(sent_taps))
    right.add_tap(recorder(received_taps))
    frames_iterator = right.frames()
    source = tone_frames(40)
    for frame in source:
        left.send(frame)
    expected = round_trip(source, codec)
    received = await frames_until(frames_iterator, expected[-1])
    # every frame arrived once, bit-exact after the G.711 round trip, in order
    assert [frame for frame in received if frame in expected] == expected
    # the sender's tap saw the PCM it was given, in order, on a 20 ms timeline
    left_sent = [
        (frame, timestamp) for direction, frame, timestamp in sent_taps if direction == "sent"
    ]
    assert [frame for frame, _ in left_sent][: len(source)] == source
    assert all(timestamp % 160 == 0 for _, timestamp in left_sent)
    assert [t for _, t in left_sent] == sorted({t for _, t in left_sent})
    # the receiver's tap saw exactly what frames() yielded, one per tick
    right_received = [
        (frame, timestamp)
        for direction, frame, timestamp in received_taps
        if direction == "received"
    ]
    assert [frame for frame, _ in right_received][: len(received)] == received
    timestamps = [timestamp for _, timestamp in right_received]
    assert timestamps == sorted(set(timestamps))
    # the receiver also sent (silence) on the same timeline
    assert any(
        direction == "sent" and frame == SILENCE_FRAME for direction, frame, _ in received_taps
    )
    statistics = right.statistics
    assert statistics.packets_lost == 0
    assert statistics.packets_received > 0
    assert statistics.last_received_at is not None
    left.close()
    right.close()


async def test_a_duplex_tap_sees_what_the_taps_see_one_tick_per_call(clock: MediaClock) -> None:
    left, right = await open_pair(clock)
    tapped: Tapped = []
    duplex: list[tuple[bytes | None, bytes | None, int]] = []
    right.add_tap(recorder(tapped))
    remove = right.add_duplex_tap(lambda sent, received, at: duplex.append((sent, received, at)))
    for frame in tone_frames(30):
        left.send(frame)
    await wait_until(lambda: len(duplex) >= 40)
    remove()
    count = len(duplex)
    ticks = clock.statistics.ticks
    await wait_until(lambda: clock.statistics.ticks >= ticks + 3)
    assert len(duplex) == count  # removed
    right.close()
    left.close()
    # the same frames at the same media timestamps, both directions of a tick in one call
    split = sorted(tapped, key=lambda entry: (entry[2], entry[0] == "received"))
    joined = [
        (direction, frame, at)
        for sent, received, at in duplex
        for direction, frame in (("sent", sent), ("received", received))
        if frame is not None
    ]
    assert joined == split[: len(joined)]
    assert len({at for _, _, at in duplex}) == len(duplex)  # one call per tick
    assert any(sent is not None and received is not None for sent, received, _ in duplex)


async def test_packets_on_the_wire_are_well_formed_rtp(
    clock: MediaClock, udp_socket: OpenSocket
) -> None:
    peer = await udp_socket()
    stream = await AudioStream.open(clock, "127.0.0.1")
    stream.set_remote("127.0.0.1", peer.port, 8, 101)
    await wait_until(lambda: len(peer.datagrams) >= 5)
    stream.set_hold(True)
    held_at = stream.statistics.packets_sent  # index of the first packet after the hold
    ticks = clock.statistics.ticks
    await wait_until(lambda: clock.statistics.ticks >= ticks + 3)
    assert stream.statistics.packets_sent == held_at
    stream.set_hold(False)
    await wait_until(lambda: len(peer.datagrams) >= held_at + 3)
    packets = [RtpPacket.parse(data) for data, _ in peer.datagrams]
    assert {source for _, source in peer.datagrams} == {("127.0.0.1", stream.local_port)}
    assert {packet.payload_type for packet in packets} == {8}
    assert len({packet.ssrc for packet in packets}) == 1
    assert all(len(packet.payload) == 160 for packet in packets)
    assert packets[0].payload == PCMA.silence_payload
    for earlier, later in itertools.pairwise(packets):
        assert later.sequence_number == (earlier.sequence_number + 1) % 65536
        step = (later.timestamp - earlier.timestamp) % (1 << 32)
        assert step > 0
        assert step % 160 == 0
    # marker on the first packet, and again on the first one after resuming from hold
    assert packets[0].marker
    assert packets[held_at].marker
    assert [index for index, packet in enumerate(packets) if packet.marker] == [0, held_at]
    stream.close()


async def test_hold_stops_sending_but_keeps_receiving(clock: MediaClock) -> None:
    left, right = await open_pair(clock)
    await wait_until(lambda: left.statistics.packets_received >= 3)
    left.set_hold(True)
    assert left.on_hold
    sent_at_hold = left.statistics.packets_sent
    received_at_hold = left.statistics.packets_received
    await wait_until(lambda: left.statistics.packets_received >= received_at_hold + 10)
    right_received_at_hold = right.statistics.packets_received  # packets in flight arrived
    await wait_until(lambda: left.statistics.packets_received >= received_at_hold + 30)
    assert left.statistics.packets_sent == sent_at_hold
    assert right.statistics.packets_received == right_received_at_hold
    left.set_hold(False)
    await wait_until(lambda: right.statistics.packets_received >= right_received_at_hold + 3)
    left.close()
    right.close()


async def test_set_remote_retargets_and_switches_codec(clock: MediaClock) -> None:
    speaker, first, second = [
        await AudioStream.open(clock, "127.0.0.1", jitter_depth_frames=DEPTH) for _ in range(3)
    ]
    first.set_remote("127.0.0.1", speaker.local_port, 0)
    second.set_remote("127.0.0.1", speaker.local_port, 8)
    speaker.set_remote("127.0.0.1", first.local_port, 0)
    await wait_until(lambda: first.statistics.packets_received >= 3)
    # re-INVITE: new media address and codec PCMA
    speaker.set_remote("127.0.0.1", second.local_port, 8)
    assert speaker.codec is PCMA
    frames = second.frames()
    source = tone_frames(10)
    for frame in source:
        speaker.send(frame)
    expected = round_trip(source, PCMA)
    received = await frames_until(frames, expected[-1])
    assert [frame for frame in received if frame in expected] == expected
    first_count = first.statistics.packets_received
    sent = speaker.statistics.packets_sent
    await wait_until(
        lambda: (
            second.statistics.packets_received >= 1 and speaker.statistics.packets_sent >= sent + 10
        )
    )
    assert first.statistics.packets_received == first_count  # the old address gets nothing
    # the old peer keeps sending to us: it is a stranger now, it cannot pull us back (the
    # socket is connected to the new peer, whose SDP address it latched: the kernel drops the
    # old peer's packets before we would see them, so they are not counted any more)
    assert speaker.remote_address == ("127.0.0.1", second.local_port)
    first_sent = first.statistics.packets_sent
    await wait_until(lambda: first.statistics.packets_sent >= first_sent + 10)
    assert speaker.remote_address == ("127.0.0.1", second.local_port)
    for stream in (speaker, first, second):
        stream.close()


async def test_dtmf_digits_arrive_once(clock: MediaClock) -> None:
    left, right = await open_pair(clock)
    listened: list[DtmfDigit] = []
    right.add_dtmf_listener(listened.append)
    digits_iterator = right.dtmf_digits()
    left.send_dtmf("159#*0")
    async with asyncio.timeout(10):
        received = [await anext(digits_iterator) for _ in range(6)]
    assert [digit.digit for digit in received] == list("159#*0")
    assert all(digit.duration == 800 for digit in received)
    # let every retransmitted end packet arrive, and then some audio
    sent_now = left.statistics.packets_sent
    await wait_until(lambda: right.statistics.packets_received >= sent_now + 10)
    assert right.statistics.dtmf_digits_received == 6
    assert [digit.digit for digit in listened] == list("159#*0")
    assert right.statistics.packets_lost == 0
    left.close()
    right.close()
    assert [digit async for digit in digits_iterator] == []  # ends on close


async def test_dtmf_needs_negotiated_telephone_event(clock: MediaClock) -> None:
    stream = await AudioStream.open(clock, "127.0.0.1")
    stream.set_remote("127.0.0.1", 9, 0, None)
    with pytest.raises(MediaError, match="telephone-event"):
        stream.send_dtmf("1")
    stream.close()


async def test_dtmf_on_the_wire(clock: MediaClock, udp_socket: OpenSocket) -> None:
    peer = await udp_socket()
    stream = await AudioStream.open(clock, "127.0.0.1")
    stream.set_remote("127.0.0.1", peer.port, 0, 101)
    stream.send_dtmf("7")

    def events() -> list[RtpPacket]:
        packets = [RtpPacket.parse(data) for data, _ in peer.datagrams]
        return [packet for packet in packets if packet.payload_type == 101]

    await wait_until(lambda: len(events()) >= 7)
    packets = events()
    decoded = [TelephoneEvent.parse(packet.payload) for packet in packets]
    assert {event.event for event in decoded} == {7}
    assert len({packet.timestamp for packet in packets}) == 1
    assert [packet.marker for packet in packets] == [True] + [False] * 6
    assert [event.end for event in decoded] == [False] * 4 + [True] * 3
    stream.close()


async def test_nat_peer_is_latched_and_a_stranger_cannot_hijack(
    clock: MediaClock, udp_socket: OpenSocket
) -> None:
    # The SDP of the far end names an address it never sends from (it is behind NAT).
    announced = await udp_socket()
    stranger = await udp_socket()
    ours = await AudioStream.open(clock, "127.0.0.1")
    natted_peer = await AudioStream.open(clock, "127.0.0.1")
    ours.set_remote("127.0.0.1", announced.port, 0, 101)
    natted_peer.set_remote("127.0.0.1", ours.local_port, 0, 101)
    # the peer's packets come from another port than announced: we latch and answer there
    await wait_until(lambda: natted_peer.statistics.packets_received >= 5)
    assert ours.remote_address == ("127.0.0.1", natted_peer.local_port)
    frames = ours.frames()
    # a stranger now sends plausible RTP to our port
    hostile = RtpPacket(
        payload_type=0, sequence_number=1, timestamp=1, ssrc=0xBAD, payload=b"\x00" * 160
    )
    for sequence_number in range(20):
        stranger.send(
            bytes(
                RtpPacket(
                    payload_type=0,
                    sequence_number=sequence_number,
                    timestamp=160 * sequence_number,
                    ssrc=hostile.ssrc,
                    payload=hostile.payload,
                )
            ),
            ("127.0.0.1", ours.local_port),
        )
    await wait_until(lambda: ours.statistics.packets_from_strangers >= 20)
    before = natted_peer.statistics.packets_received
    await wait_until(lambda: natted_peer.statistics.packets_received >= before + 10)
    assert ours.remote_address == ("127.0.0.1", natted_peer.local_port)
    assert stranger.datagrams == []
    # none of the stranger's loud μ-law zeros reached the audio
    loudest = PCMU.decode(b"\x00")
    async with asyncio.timeout(10):
        for _ in range(10):
            assert await anext(frames) != loudest * 160
    ours.close()
    natted_peer.close()


async def test_a_stream_latched_to_its_sdp_address_takes_nothing_from_strangers(
    clock: MediaClock, udp_socket: OpenSocket
) -> None:
    peer = await udp_socket()
    stranger = await udp_socket()
    stream = await AudioStream.open(clock, "127.0.0.1", jitter_depth_frames=DEPTH)
    stream.set_remote("127.0.0.1", peer.port, 0)
    frames = stream.frames()
    ours = ("127.0.0.1", stream.local_port)

    def packet(sequence_number: int, ssrc: int, payload: bytes) -> bytes:
        return bytes(
            RtpPacket(
                payload_type=0,
                sequence_number=sequence_number,
                timestamp=160 * sequence_number,
                ssrc=ssrc,
                payload=payload,
            )
        )

    quiet, loud = PCMU.encode(SILENCE_FRAME), b"\x00" * 160
    # queued together, read on one tick: the peer's packet latches (and the socket connects),
    # the stranger's, queued before that, are still read with their source and dropped
    peer.send(packet(1, 0x600D, quiet), ours)
    for sequence_number in range(1, 4):
        stranger.send(packet(sequence_number, 0xBAD, loud), ours)
    await wait_until(lambda: stream.statistics.packets_from_strangers >= 3)
    assert stream.remote_address == ("127.0.0.1", peer.port)
    # from now on the kernel keeps the stranger out: nothing of it is received or played
    for sequence_number in range(4, 24):
        stranger.send(packet(sequence_number, 0xBAD, loud), ours)
    for sequence_number in range(2, 12):
        peer.send(packet(sequence_number, 0x600D, quiet), ours)
    await wait_until(lambda: stream.statistics.packets_received >= 11)
    assert stream.remote_address == ("127.0.0.1", peer.port)
    loudest = PCMU.decode(b"\x00")
    async with asyncio.timeout(10):
        for _ in range(12):
            assert await anext(frames) != loudest * 160
    statistics = stream.statistics
    assert statistics.packets_received == 11
    assert statistics.packets_from_strangers == 3
    # a new remote (re-INVITE) opens a new latching window: any source may latch again
    stream.set_remote("127.0.0.1", stranger.port, 0)
    stranger.send(packet(30, 0xBAD, quiet), ours)
    await wait_until(lambda: stream.statistics.packets_received >= 12)
    assert stream.remote_address == ("127.0.0.1", stranger.port)
    stream.close()


async def test_packets_before_set_remote_and_garbage_are_dropped(
    clock: MediaClock, udp_socket: OpenSocket
) -> None:
    sender = await udp_socket()
    stream = await AudioStream.open(clock, "127.0.0.1")
    packet = bytes(
        RtpPacket(payload_type=0, sequence_number=1, timestamp=1, ssrc=1, payload=bytes(160))
    )
    sender.send(packet, ("127.0.0.1", stream.local_port))
    sender.send(b"\x00garbage", ("127.0.0.1", stream.local_port))
    await wait_until(
        lambda: stream.statistics.packets_from_strangers + stream.statistics.packets_malformed >= 2
    )
    statistics = stream.statistics
    assert (statistics.packets_from_strangers, statistics.packets_malformed) == (1, 1)
    assert statistics.packets_received == 0
    stream.close()


async def test_media_idle_seconds_counts_from_set_remote_then_from_last_packet(
    clock: MediaClock,
) -> None:
    left, right = await open_pair(clock)
    loop = asyncio.get_running_loop()
    now = loop.time()
    assert left.media_idle_seconds(now) >= 0
    await wait_until(lambda: left.statistics.last_received_at is not None)
    last = left.statistics.last_received_at
    assert last is not None
    assert left.media_idle_seconds(last + 30.0) == pytest.approx(30.0)
    right.close()  # the far end goes silent
    ticks = clock.statistics.ticks
    await wait_until(lambda: clock.statistics.ticks >= ticks + 5)  # packets in flight arrive
    count = left.statistics.packets_received
    stopped_at = left.statistics.last_received_at
    await wait_until(lambda: clock.statistics.ticks >= ticks + 10)
    assert left.statistics.packets_received == count
    assert left.statistics.last_received_at == stopped_at
    assert stopped_at is not None
    now = loop.time()
    assert left.media_idle_seconds(now) == pytest.approx(now - stopped_at)
    assert left.media_idle_seconds(now) > 0
    left.close()


async def test_frames_before_the_first_packet_and_after_close(clock: MediaClock) -> None:
    stream = await AudioStream.open(clock, "127.0.0.1")
    frames = stream.frames()
    with pytest.raises(MediaError, match="consumer"):
        stream.frames()
    ticks = clock.statistics.ticks
    await wait_until(lambda: clock.statistics.ticks >= ticks + 5)
    stream.close()
    assert [frame async for frame in frames] == []  # nothing before the first packet
    with pytest.raises(StreamClosedError):
        stream.send(SILENCE_FRAME)
    with pytest.raises(StreamClosedError):
        stream.set_remote("127.0.0.1", 9, 0)
    stream.close()  # idempotent


async def test_send_validates_frames_and_bounds_the_queue(clock: MediaClock) -> None:
    stream = await AudioStream.open(clock, "127.0.0.1", send_queue_frames=3)
    with pytest.raises(ValueError, match="320"):
        stream.send(b"\x00" * 319)
    for _ in range(5):
        stream.send(SILENCE_FRAME)  # no remote yet: nothing drains the queue
    assert stream.statistics.frames_dropped_send_queue == 2
    with pytest.raises(ValueError, match="payload type"):
        stream.set_remote("127.0.0.1", 9, 18)
    with pytest.raises(ValueError, match="IP address"):
        stream.set_remote("example.com", 9, 0)
    stream.close()


async def test_sending_to_unspecified_address_sends_nothing(
    clock: MediaClock, udp_socket: OpenSocket
) -> None:
    peer = await udp_socket()
    stream = await AudioStream.open(clock, "127.0.0.1")
    stream.set_remote("0.0.0.0", peer.port, 0)
    ticks = clock.statistics.ticks
    await wait_until(lambda: clock.statistics.ticks >= ticks + 5)
    assert stream.statistics.packets_sent == 0
    assert stream.remote_address is None
    stream.close()


async def test_a_failing_tap_is_removed_and_audio_goes_on(
    clock: MediaClock, caplog: pytest.LogCaptureFixture
) -> None:
    left, right = await open_pair(clock)
    calls: list[Direction] = []

    def broken(direction: Direction, frame: bytes, media_timestamp: int) -> None:
        calls.append(direction)
        raise RuntimeError("recorder disk full")

    left.add_tap(broken)
    good: Tapped = []
    remove_good = left.add_tap(recorder(good))
    await wait_until(lambda: len(good) >= 10)
    assert calls == ["sent"]
    assert "recorder disk full" in caplog.text
    assert right.statistics.packets_received > 0
    remove_good()
    count = len(good)
    ticks = clock.statistics.ticks
    await wait_until(lambda: clock.statistics.ticks >= ticks + 3)
    assert len(good) == count
    left.close()
    right.close()


def test_streams_work_on_uvloop() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def exchange() -> tuple[list[bytes], list[bytes]]:
        clock = MediaClock()
        left, right = await open_pair(clock, PCMA.payload_type)
        frames = right.frames()
        source = tone_frames(5)
        for frame in source:
            left.send(frame)
        expected = round_trip(source, PCMA)
        received = await frames_until(frames, expected[-1])
        left.close()
        right.close()
        clock.close()
        return expected, received

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        expected, received = runner.run(exchange())
    assert [frame for frame in received if frame in expected] == expected


async def test_packets_the_kernel_refuses_are_counted_and_the_stream_goes_on(
    clock: MediaClock,
) -> None:
    stream = await AudioStream.open(clock, "127.0.0.1")
    # broadcast without SO_BROADCAST: every send fails (EACCES), nothing leaves the machine
    stream.set_remote("255.255.255.255", 4000, 0)
    await wait_until(lambda: stream.statistics.packets_not_sent >= 3)
    statistics = stream.statistics
    assert statistics.packets_sent >= statistics.packets_not_sent >= 3
    stream.close()


async def test_after_a_stall_the_receiver_plays_its_backlog_and_is_as_prompt_as_before() -> None:
    """The receiving side's loop stalls while the far end keeps sending: afterwards every frame
    is still played (and recorded), each one as soon after it was sent as before the stall."""
    sender_loop, receiver_loop = ManualLoop(now=0.0), ManualLoop(now=0.0)
    sender_clock, receiver_clock = MediaClock(sender_loop), MediaClock(receiver_loop)
    sender = await AudioStream.open(sender_clock, "127.0.0.1")
    receiver = await AudioStream.open(receiver_clock, "127.0.0.1", jitter_depth_frames=2)
    sender.set_remote("127.0.0.1", receiver.local_port, PCMU.payload_type)
    receiver.set_remote("127.0.0.1", sender.local_port, PCMU.payload_type)
    numbered = {_numbered_frame(number): number for number in range(300)}
    sent_on: dict[int, float] = {}  # frame number -> when it left
    played_in: dict[int, int] = {}  # frame number -> the receiver's playout slot

    def heard(direction: Direction, frame: bytes, media_timestamp: int) -> None:
        number = numbered.get(frame)
        if direction == "received" and number is not None:
            played_in[number] = media_timestamp // 160

    receiver.add_tap(heard)
    frames = list(numbered)

    def both_tick(*, receiver_runs: bool = True) -> None:
        if frames:
            frame = frames.pop(0)
            sender.send(frame)
            sent_on[numbered[frame]] = sender_loop.now
        sender_loop.run_next()
        if receiver_runs:
            receiver_loop.run_due(sender_loop.now)

    try:
        for _ in range(100):
            both_tick()
        for _ in range(8):  # the receiver's loop is blocked for 160 ms
            both_tick(receiver_runs=False)
        for _ in range(150):
            both_tick()
    finally:
        sender.close()
        receiver.close()
        sender_clock.close()
        receiver_clock.close()

    assert receiver_clock.statistics.skipped_ticks > 0
    assert set(range(10, 240)) <= set(played_in)  # no frame of the stall was lost
    assert sorted(played_in, key=played_in.__getitem__) == sorted(played_in)
    delays = {number: played_in[number] - round(sent_on[number] / 0.02) for number in played_in}
    before = {delays[number] for number in range(30, 95)}
    after = {delays[number] for number in range(130, 240)}
    assert len(before) == 1
    assert after == before


def _numbered_frame(number: int) -> bytes:
    """Frame ``number``: its two base-127 digits as the mu-law codes of the first two samples,
    so it arrives bit-exact and can be told from every other."""
    digits = bytes([0x80 + number // 127, 0x80 + number % 127])
    return PCMU.decode(digits + bytes([0xFF]) * 158)


def _rtp(sequence_number: int, timestamp: int, payload: bytes, ssrc: int = 0x1234) -> bytes:
    return bytes(
        RtpPacket(
            payload_type=PCMU.payload_type,
            sequence_number=sequence_number,
            timestamp=timestamp,
            ssrc=ssrc,
            payload=payload,
        )
    )


async def test_arrival_listeners_get_the_far_end_as_packets_arrive_without_waiting_for_a_tick(
    udp_socket: OpenSocket,
) -> None:
    """The browser leg's path: with the media clock stopped (no tick ever runs), a listener
    still gets every packet's audio as it arrives, newest only (a reordered or repeated packet
    is skipped), a 40 ms packet as two frames, and a new SSRC once confirmed; the
    jitter buffer gets the same packets for the tick's playout. Without listeners the socket
    is read on the tick again."""
    stopped = ManualLoop(now=0.0)
    clock = MediaClock(stopped)
    stream = await AudioStream.open(clock, "127.0.0.1", jitter_depth_frames=2)
    far_end = await udp_socket()
    stream.set_remote("127.0.0.1", far_end.port, PCMU.payload_type)
    heard: list[bytes] = []
    payloads = [bytes([0x80 + number]) * 160 for number in range(8)]
    frames = [PCMU.decode(payload) for payload in payloads]
    try:
        remove = stream.add_arrival_listener(heard.append)
        destination = ("127.0.0.1", stream.local_port)
        far_end.send(_rtp(10, 1600, payloads[0]), destination)
        await wait_until(lambda: len(heard) == 1)
        far_end.send(_rtp(12, 1920, payloads[2]), destination)
        far_end.send(_rtp(11, 1760, payloads[1]), destination)  # too late for the listener
        far_end.send(_rtp(12, 1920, payloads[2]), destination)  # a duplicate
        far_end.send(_rtp(13, 2080, payloads[3] + payloads[4]), destination)  # 40 ms
        far_end.send(_rtp(500, 90000, payloads[5], ssrc=0x9999), destination)  # a new source,
        far_end.send(_rtp(501, 90160, payloads[6], ssrc=0x9999), destination)  # confirmed
        await wait_until(lambda: stream.statistics.packets_received == 7)
        # (the new source's first packet waits for a second to confirm it, as in the jitter
        # buffer: a lone stray packet never reaches the ear)
        assert heard == [frames[0], frames[2], frames[3], frames[4], frames[6]]
        # The sender restarts its numbering far back (not a reordering): followed from there.
        far_end.send(_rtp(100, 90320, payloads[7], ssrc=0x9999), destination)
        await wait_until(lambda: len(heard) == 6)
        assert heard[-1] == frames[7]
        assert stopped.pending() > 0  # the clock is armed, but no tick ran

        remove()
        before = stream.statistics.packets_received
        far_end.send(_rtp(101, 90480, payloads[7], ssrc=0x9999), destination)
        await asyncio.sleep(0.05)
        assert stream.statistics.packets_received == before  # waits for the tick now
        stopped.run_next()
        assert stream.statistics.packets_received == before + 1
        assert len(heard) == 6
    finally:
        stream.close()
        clock.close()
