"""RTP packet parsing/writing (RFC 3550) and the wrap-around arithmetic."""

from __future__ import annotations

import random
import struct

import pytest

from sip.errors import RtpParseError
from sip.media.rtp import (
    RtpHeaderExtension,
    RtpPacket,
    SequenceExtender,
    extend_timestamp,
    sequence_difference,
    timestamp_difference,
    timestamp_is_newer,
)


def test_minimal_packet_round_trip_and_wire_layout() -> None:
    packet = RtpPacket(
        payload_type=0,
        sequence_number=0xABCD,
        timestamp=0x01020304,
        ssrc=0xDEADBEEF,
        payload=b"\xff" * 160,
        marker=True,
    )
    data = bytes(packet)
    assert data[:12] == bytes.fromhex("8080abcd01020304deadbeef")
    assert len(data) == 172
    assert RtpPacket.parse(data) == packet


def test_csrc_extension_and_padding_are_read_and_written() -> None:
    packet = RtpPacket(
        payload_type=8,
        sequence_number=1,
        timestamp=2,
        ssrc=3,
        payload=b"audio",
        csrc=(11, 22, 33),
        extension=RtpHeaderExtension(profile=0xBEDE, data=b"\x10\xaa\x00\x00"),
        padding_size=7,
    )
    data = bytes(packet)
    assert data[0] == 0x80 | 0x20 | 0x10 | 3
    assert len(data) == 12 + 12 + 4 + 4 + 5 + 7
    assert data[-1] == 7
    parsed = RtpPacket.parse(data)
    assert parsed == packet
    assert parsed.payload == b"audio"  # extension skipped, padding removed


def test_parse_accepts_memoryview_like_bytes_from_a_socket() -> None:
    data = bytes(RtpPacket(payload_type=0, sequence_number=9, timestamp=9, ssrc=9, payload=b"x"))
    assert RtpPacket.parse(bytearray(data)).payload == b"x"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x80\x00\x00",
        bytes(11),
        bytes.fromhex("4000000000000000000000000000"),  # version 1
        bytes.fromhex("c000000000000000000000000000"),  # version 3
        bytes.fromhex("83000000000000000000000000"),  # 3 CSRC announced, none present
        bytes.fromhex("900000000000000000000000bede"),  # extension header cut short
        bytes.fromhex("900000000000000000000000bede0002aabbccdd"),  # extension runs past end
        bytes.fromhex("a00000000000000000000000aa00"),  # padding length 0
        bytes.fromhex("a00000000000000000000000aa20"),  # padding longer than packet
    ],
)
def test_malformed_packets_raise_rtp_parse_error(data: bytes) -> None:
    with pytest.raises(RtpParseError):
        RtpPacket.parse(data)


def test_fuzz_random_and_mutated_bytes_only_ever_raise_rtp_parse_error() -> None:
    generator = random.Random(3550)
    valid = bytes(
        RtpPacket(
            payload_type=0,
            sequence_number=5,
            timestamp=6,
            ssrc=7,
            payload=bytes(range(40)),
            csrc=(1,),
            extension=RtpHeaderExtension(1, bytes(8)),
            padding_size=4,
        )
    )
    parsed = 0
    for round_number in range(20000):
        if round_number % 2:
            data = bytes(generator.randrange(256) for _ in range(generator.randrange(0, 80)))
            if generator.random() < 0.5 and data:
                data = bytes((0x80 | (data[0] & 0x3F),)) + data[1:]  # mostly version 2
        else:
            mutable = bytearray(valid[: generator.randrange(0, len(valid) + 1)])
            for _ in range(generator.randrange(1, 4)):
                if mutable:
                    mutable[generator.randrange(len(mutable))] = generator.randrange(256)
            data = bytes(mutable)
        try:
            packet = RtpPacket.parse(data)
        except RtpParseError:
            continue
        parsed += 1
        assert len(packet.payload) <= len(data) - 12
    assert parsed > 100  # the fuzzer did reach the successful paths too


def test_writing_rejects_values_that_do_not_fit() -> None:
    with pytest.raises(ValueError, match="payload type"):
        bytes(RtpPacket(payload_type=128, sequence_number=0, timestamp=0, ssrc=0))
    with pytest.raises(ValueError, match="CSRC"):
        bytes(RtpPacket(payload_type=0, sequence_number=0, timestamp=0, ssrc=0, csrc=(0,) * 16))
    extension = RtpHeaderExtension(1, b"abc")
    with pytest.raises(ValueError, match="multiple of 4"):
        bytes(
            RtpPacket(payload_type=0, sequence_number=0, timestamp=0, ssrc=0, extension=extension)
        )


def test_sequence_and_timestamp_differences_wrap() -> None:
    assert sequence_difference(2, 65534) == 4
    assert sequence_difference(65534, 2) == -4
    assert sequence_difference(100, 100) == 0
    assert timestamp_difference(80, 0xFFFFFFF0) == 96
    assert timestamp_difference(0xFFFFFFF0, 80) == -96
    assert timestamp_is_newer(80, 0xFFFFFFF0)
    assert not timestamp_is_newer(0xFFFFFFF0, 80)
    assert not timestamp_is_newer(5, 5)


def test_extended_sequence_numbers_across_wraps_and_reordering() -> None:
    extender = SequenceExtender()
    values = [65533, 65534, 65535, 0, 65535, 1, 2, 65534, 3]
    assert [extender.extend(value) for value in values] == [
        65533,
        65534,
        65535,
        65536,
        65535,
        65537,
        65538,
        65534,
        65539,
    ]
    assert extender.highest == 65539
    # a second wrap
    extended = [extender.extend(value % 65536) for value in range(4, 4 + 70000, 1000)]
    assert extended == list(range(65536 + 4, 65536 + 4 + 70000, 1000))


def test_extend_timestamp_places_values_nearest_the_reference() -> None:
    reference = (1 << 32) - 160  # just before a wrap, already extended
    assert extend_timestamp(0, reference) == 1 << 32
    assert extend_timestamp((1 << 32) - 320, reference) == (1 << 32) - 320
    later = extend_timestamp(480, 5 << 32)
    assert later == (5 << 32) + 480


def test_header_fields_are_reduced_modulo_their_width_when_written() -> None:
    data = bytes(
        RtpPacket(payload_type=0, sequence_number=65536 + 7, timestamp=(1 << 32) + 9, ssrc=1)
    )
    _, _, sequence_number, timestamp, _ = struct.unpack("!BBHII", data)
    assert (sequence_number, timestamp) == (7, 9)
