"""Splitting what a browser sends into audio frames and the rest (``web.direct_audio``).

The scanner sees the bytes of a WebSocket connection after the handshake, cut anywhere (TCP
gives no message boundaries). Audio frames come out unmasked; everything else goes on, whole
and in order, to the websockets parser, which must then read exactly the messages the browser
sent.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct

import pytest
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol

from web.direct_audio import AudioFrameScanner, AudioTransportTap, PassOn, binary_frame_header

FRAME_BYTES = 320


def client_frame(opcode: int, payload: bytes, *, final: bool = True) -> bytes:
    """A masked client frame (RFC 6455 section 5.2)."""
    mask = os.urandom(4)
    first = (0x80 if final else 0) | opcode
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", first, 0x80 | length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", first, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, length)
    masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    return header + mask + masked


def audio(index: int) -> bytes:
    return bytes((index + position) % 256 for position in range(FRAME_BYTES))


def scan(stream: bytes, chunk: int) -> tuple[list[bytes], list[bytes]]:
    """(audio frames, bytes passed on), feeding ``stream`` ``chunk`` bytes at a time."""
    scanner = AudioFrameScanner(FRAME_BYTES)
    frames: list[bytes] = []
    passed: list[bytes] = []
    for start in range(0, len(stream), chunk):
        for item in scanner.feed(stream[start : start + chunk]):
            if isinstance(item, PassOn):
                passed.append(item.data)
            else:
                frames.append(item)
    return frames, passed


def open_server_protocol() -> ServerProtocol:
    """A websockets server connection past its handshake, as uvicorn's is."""
    protocol = ServerProtocol()
    key = base64.b64encode(os.urandom(16)).decode()
    protocol.receive_data(
        "GET /ws/calls/1/audio HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    (request,) = protocol.events_received()
    assert isinstance(request, Request)
    protocol.send_response(protocol.accept(request))
    protocol.data_to_send()
    return protocol


def parsed(passed: list[bytes]) -> list[Frame]:
    """What the websockets parser of an open server connection reads from ``passed``."""
    protocol = open_server_protocol()
    for data in passed:
        protocol.receive_data(data)
    return [event for event in protocol.events_received() if isinstance(event, Frame)]


@pytest.mark.parametrize("chunk", [1, 7, 328, 1000, 1 << 20])
def test_audio_frames_come_out_unmasked_and_the_rest_reaches_the_parser(chunk: int) -> None:
    stream = b"".join(
        [
            client_frame(Opcode.BINARY, audio(0)),
            client_frame(Opcode.TEXT, b'{"type": "hello"}'),
            client_frame(Opcode.BINARY, audio(1)),
            client_frame(Opcode.BINARY, audio(2)[:100]),  # a torn frame: not audio
            client_frame(Opcode.PING, b"ping"),
            client_frame(Opcode.BINARY, audio(3)[:200], final=False),  # a fragmented message
            client_frame(Opcode.CONT, audio(3)[200:]),
            client_frame(Opcode.BINARY, audio(4)),
            client_frame(Opcode.CLOSE, struct.pack("!H", 1000)),
            client_frame(Opcode.BINARY, audio(5)),  # after the close: left to the parser
        ]
    )
    frames, passed = scan(stream, chunk)
    assert frames == [audio(0), audio(1), audio(4)]
    messages = [(frame.opcode, bytes(frame.data)) for frame in parsed(passed)]
    assert messages == [
        (Opcode.TEXT, b'{"type": "hello"}'),
        (Opcode.BINARY, audio(2)[:100]),
        (Opcode.PING, b"ping"),
        (Opcode.BINARY, audio(3)[:200]),
        (Opcode.CONT, audio(3)[200:]),
        (Opcode.CLOSE, struct.pack("!H", 1000)),
    ]


def test_an_audio_sized_frame_inside_a_fragmented_message_is_left_to_the_parser() -> None:
    stream = client_frame(Opcode.TEXT, b"half", final=False) + client_frame(Opcode.BINARY, audio(0))
    frames, passed = scan(stream, 1000)
    assert frames == []
    assert b"".join(passed) == stream


def test_unmasked_and_long_frames_are_left_to_the_parser() -> None:
    unmasked = binary_frame_header(FRAME_BYTES) + audio(0)
    frames, passed = scan(unmasked + client_frame(Opcode.BINARY, audio(1)), 1000)
    assert frames == [audio(1)]
    assert passed == [unmasked]
    stream = client_frame(Opcode.BINARY, bytes(70_000)) + client_frame(Opcode.BINARY, audio(2))
    frames, passed = scan(stream, 4096)
    assert frames == []  # after a frame this long, everything goes to the parser
    assert b"".join(passed) == stream


def test_server_frames_are_what_websockets_sends() -> None:
    protocol = open_server_protocol()
    for length in (10, FRAME_BYTES, 70_000):
        protocol.send_binary(bytes(length))
        assert b"".join(protocol.data_to_send()) == binary_frame_header(length) + bytes(length)


class RecordingProtocol(asyncio.Protocol):
    """Stands in for uvicorn's protocol under the tap: keeps what reaches its parser."""

    def __init__(self) -> None:
        self.received: list[bytes] = []

    def data_received(self, data: bytes) -> None:
        self.received.append(data)


def through_tap(reads: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """(audio frames, bytes for the parser) when the socket reads ``reads`` one by one."""
    inner = RecordingProtocol()
    frames: list[bytes] = []
    tap = AudioTransportTap(inner, AudioFrameScanner(FRAME_BYTES), frames.append)
    for data in reads:
        tap.data_received(data)
    return frames, inner.received


def test_frames_read_one_per_read_or_torn_across_reads_come_out_in_order() -> None:
    text = client_frame(Opcode.TEXT, b'{"type": "hello"}')
    torn = client_frame(Opcode.BINARY, audio(1))
    reads = [
        client_frame(Opcode.BINARY, audio(0)),  # one frame per read, as the browser's arrive
        text + torn[:100],
        torn[100:],
        client_frame(Opcode.BINARY, audio(2)),
        client_frame(Opcode.BINARY, audio(3)) + client_frame(Opcode.BINARY, audio(4)),
    ]
    frames, passed = through_tap(reads)
    assert frames == [audio(0), audio(1), audio(2), audio(3), audio(4)]
    assert [(frame.opcode, bytes(frame.data)) for frame in parsed(passed)] == [
        (Opcode.TEXT, b'{"type": "hello"}')
    ]


def test_a_read_that_only_looks_like_an_audio_frame_is_not_taken_for_one() -> None:
    # A 400-byte binary message whose last 328 bytes on the wire read like an audio frame's
    # header: they arrive as a read of their own, in the middle of that message.
    mask = os.urandom(4)
    header = struct.pack("!BBH", 0x80 | Opcode.BINARY.value, 0x80 | 126, 400)
    wire = bytearray(os.urandom(400))
    look_alike = struct.pack("!BBH", 0x82, 0x80 | 126, FRAME_BYTES)
    wire[400 - 328 : 400 - 328 + 4] = look_alike
    payload = bytes(byte ^ mask[index % 4] for index, byte in enumerate(wire))
    message = header + mask + bytes(wire)
    assert len(message[-328:]) == 8 + FRAME_BYTES
    assert message[-328:].startswith(look_alike)
    frames, passed = through_tap(
        [message[:-328], message[-328:], client_frame(Opcode.BINARY, audio(5))]
    )
    assert frames == [audio(5)]
    assert [(frame.opcode, bytes(frame.data)) for frame in parsed(passed)] == [
        (Opcode.BINARY, payload)
    ]
