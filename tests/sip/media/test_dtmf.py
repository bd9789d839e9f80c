"""RFC 4733 telephone-events: payload, sender schedule, receiver de-duplication."""

from __future__ import annotations

import pytest

from sip.errors import RtpParseError
from sip.media.dtmf import DtmfPacket, DtmfReceiver, DtmfSender, TelephoneEvent, event_code


def run_sender(
    sender: DtmfSender, ticks: int, start_timestamp: int = 1000
) -> list[tuple[int, DtmfPacket | None]]:
    """Ask the sender once per tick; the audio timestamp advances 160 per tick."""
    return [
        (start_timestamp + 160 * tick, sender.next_packet(start_timestamp + 160 * tick))
        for tick in range(ticks)
    ]


def test_payload_round_trip_and_layout() -> None:
    event = TelephoneEvent(event=11, end=True, volume=10, duration=800)
    assert bytes(event) == bytes.fromhex("0b8a0320")
    assert TelephoneEvent.parse(bytes(event)) == event
    with pytest.raises(RtpParseError):
        TelephoneEvent.parse(b"\x01\x02")


def test_event_codes() -> None:
    assert [event_code(symbol) for symbol in "0123456789*#ABCDd"] == [*range(16), 15]
    with pytest.raises(ValueError, match="DTMF"):
        event_code("E")
    with pytest.raises(ValueError, match="DTMF"):
        DtmfSender().queue("12x")


def test_one_digit_schedule() -> None:
    sender = DtmfSender(duration_ticks=5, end_repeats=3, volume=10)
    sender.queue("5")
    assert sender.active
    sent = run_sender(sender, 9)
    packets = [packet for _, packet in sent if packet is not None]
    assert len(packets) == 4 + 3
    events = [TelephoneEvent.parse(packet.payload) for packet in packets]
    assert {event.event for event in events} == {5}
    assert {packet.timestamp for packet in packets} == {1000}  # the event's start, throughout
    assert [packet.marker for packet in packets] == [True] + [False] * 6
    assert [event.duration for event in events] == [160, 320, 480, 640, 800, 800, 800]
    assert [event.end for event in events] == [False] * 4 + [True] * 3
    assert sent[7][1] is None  # audio again afterwards
    assert not sender.active


def test_digits_are_separated_by_a_gap_of_audio() -> None:
    sender = DtmfSender(duration_ticks=2, end_repeats=3, gap_ticks=2)
    sender.queue("1#")
    sent = run_sender(sender, 12)
    codes = [
        None if packet is None else TelephoneEvent.parse(packet.payload).event for _, packet in sent
    ]
    assert codes == [1, 1, 1, 1, None, None, 11, 11, 11, 11, None, None]
    timestamps = {packet.timestamp for _, packet in sent[6:10] if packet is not None}
    assert timestamps == {1000 + 6 * 160}


def test_receiver_reports_each_digit_once_with_its_duration() -> None:
    sender = DtmfSender()
    receiver = DtmfReceiver()
    sender.queue("19#")
    digits = []
    for _, packet in run_sender(sender, 40):
        if packet is not None:
            digits.extend(receiver.receive(packet.timestamp, packet.payload))
            # a network duplicate of every packet changes nothing
            digits.extend(receiver.receive(packet.timestamp, packet.payload))
    assert [digit.digit for digit in digits] == ["1", "9", "#"]
    assert {digit.duration for digit in digits} == {800}
    assert digits[0].duration_seconds == pytest.approx(0.1)


def test_digit_whose_end_packets_were_lost_is_reported_by_the_next_event() -> None:
    receiver = DtmfReceiver()
    assert receiver.receive(1000, bytes(TelephoneEvent(4, False, 10, 160))) == []
    assert receiver.receive(1000, bytes(TelephoneEvent(4, False, 10, 320))) == []
    assert receiver.pending
    digits = receiver.receive(5000, bytes(TelephoneEvent(7, True, 10, 800)))
    assert [(digit.digit, digit.duration) for digit in digits] == [("4", 320), ("7", 800)]


def test_digit_whose_end_packets_were_lost_is_reported_when_audio_resumes() -> None:
    receiver = DtmfReceiver()
    receiver.receive(1000, bytes(TelephoneEvent(0, False, 10, 480)))
    assert receiver.audio_received(1000 + 480) == []  # still inside the event
    digits = receiver.audio_received(1000 + 480 + 1000)
    assert [digit.digit for digit in digits] == ["0"]
    assert not receiver.pending
    assert receiver.receive(1000, bytes(TelephoneEvent(0, True, 10, 800))) == []  # late end


def test_non_dtmf_events_are_ignored() -> None:
    receiver = DtmfReceiver()
    assert receiver.receive(1, bytes(TelephoneEvent(16, True, 10, 800))) == []  # flash
