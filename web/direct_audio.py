"""Audio frames read and written straight on a WebSocket's transport (no ASGI round trip).

Under uvicorn's sans-I/O WebSocket protocol (``ws="websockets-sansio"`` without compression, as
``dialer serve`` runs) every 20 ms audio frame otherwise costs a parse by the websockets library,
a message on uvicorn's queue, a wake-up of the socket's task and Starlette's receive wrappers one
way, and the same again the other way: about half of the server's work per audio leg. Here:

- :class:`AudioFrameScanner` (sans-I/O) splits the bytes a client sent into complete WebSocket
  frames. A final, masked binary frame of exactly ``frame_bytes`` is unmasked and handed over
  as audio; every other frame (text, ping, pong, close, fragments, other sizes) is passed on,
  whole and in order, as bytes for the websockets parser, which therefore always starts on a
  frame boundary and keeps every rule it enforces for those frames. After a close frame, or a
  frame announced longer than 64 KiB, everything is passed on.
- :class:`AudioTransportTap` sits between the transport and uvicorn's protocol: audio goes to
  a callback at once, the rest to uvicorn's ``data_received``; every other protocol callback
  (lost connection, pause and resume of writing) goes to uvicorn unchanged.
- :func:`direct_audio` installs the tap on an accepted socket and returns a writer that puts a
  binary frame on the transport as uvicorn's ``send`` would (returning False, writing nothing,
  whenever that ``send`` would wait or refuse); None when the server is not that protocol.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.websockets import WebSocket

from web.live import direct_connection

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover (the C extension is part of the wheels we install)
    from websockets.utils import apply_mask

logger = logging.getLogger(__name__)

OPCODE_CONTINUATION = 0x0
OPCODE_CLOSE = 0x8
FINAL_BINARY = 0x82  # FIN, no reserved bits, opcode 2
MASKED = 0x80
LONGEST_SCANNED = 0xFFFF  # longer frames (127-form lengths): everything is passed on


@dataclass(frozen=True, slots=True)
class PassOn:
    """Bytes of complete frames for the websockets parser."""

    data: bytes


class AudioFrameScanner:
    """Client bytes in; audio payloads (``bytes``) and :class:`PassOn` chunks out, in order."""

    def __init__(self, frame_bytes: int) -> None:
        self._frame_bytes = frame_bytes
        self._buffer = bytearray()
        self._fragmented = False  # a fragmented message is being passed on
        self._passing_everything = False
        # The common case: one masked 16-bit-length final binary frame of the audio size.
        self._audio_header = struct.pack("!BBH", FINAL_BINARY, MASKED | 126, frame_bytes)
        self._audio_frame_total = 8 + frame_bytes
        if frame_bytes < 126 or frame_bytes > LONGEST_SCANNED:
            raise ValueError("frame_bytes must use the 16-bit length form")

    def single_audio_frame(self, data: bytes) -> bytes | None:
        """The unmasked audio of ``data`` when it is exactly one audio frame read on a frame
        boundary (one frame per read is how the browser's 20 ms frames arrive); None otherwise
        (nothing consumed: :meth:`feed` takes ``data`` then)."""
        if (
            len(data) == self._audio_frame_total
            and not self._buffer
            and data.startswith(self._audio_header)
            and not self._fragmented
            and not self._passing_everything
        ):
            return apply_mask(data[8:], data[4:8])
        return None

    def feed(self, data: bytes) -> list[bytes | PassOn]:
        if self._passing_everything:
            return [PassOn(data)] if data else []
        audio = self.single_audio_frame(data)
        if audio is not None:
            return [audio]
        buffer = self._buffer
        buffer += data
        out: list[bytes | PassOn] = []
        passed: list[bytes] = []
        position = 0
        size = len(buffer)
        while size - position >= 2:
            first = buffer[position]
            second = buffer[position + 1]
            length = second & 0x7F
            start = position + 2
            if length == 127:
                self._passing_everything = True
                break
            if length == 126:
                if size - position < 4:
                    break
                length = (buffer[position + 2] << 8) | buffer[position + 3]
                start += 2
            masked = second & MASKED
            payload_start = start + 4 if masked else start
            end = payload_start + length
            if end > size:
                break
            if (
                first == FINAL_BINARY
                and masked
                and length == self._frame_bytes
                and not self._fragmented
            ):
                if passed:
                    out.append(PassOn(b"".join(passed)))
                    passed = []
                mask = bytes(buffer[start:payload_start])
                out.append(apply_mask(bytes(buffer[payload_start:end]), mask))
            else:
                passed.append(bytes(buffer[position:end]))
                opcode = first & 0x0F
                final = bool(first & 0x80)
                if opcode == OPCODE_CLOSE:
                    self._passing_everything = True
                    position = end
                    break
                if opcode < 0x8:  # a data frame: a fragmented message starts, goes on or ends
                    self._fragmented = not final
            position = end
        if self._passing_everything:
            passed.append(bytes(buffer[position:]))
            position = size
        if passed:
            out.append(PassOn(b"".join(passed)))
        del buffer[:position]
        return out


class AudioTransportTap(asyncio.Protocol):
    """Between a transport and uvicorn's WebSocket protocol: audio frames to ``on_audio``."""

    def __init__(
        self, inner: asyncio.Protocol, scanner: AudioFrameScanner, on_audio: Callable[[bytes], None]
    ) -> None:
        self._inner = inner
        self._scanner = scanner
        self._single_audio_frame = scanner.single_audio_frame
        self._on_audio = on_audio

    def data_received(self, data: bytes) -> None:
        audio = self._single_audio_frame(data)  # the common case: no list, no scan loop
        if audio is not None:
            self._on_audio(audio)
            return
        for item in self._scanner.feed(data):
            if isinstance(item, PassOn):
                self._inner.data_received(item.data)
            else:
                self._on_audio(item)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._inner.connection_lost(exc)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


def binary_frame_header(length: int) -> bytes:
    """The header of an unmasked, final binary frame (RFC 6455 section 5.2), as a server sends."""
    if length < 126:
        return struct.pack("!BB", FINAL_BINARY, length)
    if length <= LONGEST_SCANNED:
        return struct.pack("!BBH", FINAL_BINARY, 126, length)
    return struct.pack("!BBQ", FINAL_BINARY, 127, length)


def direct_audio(
    websocket: WebSocket, frame_bytes: int, on_audio: Callable[[bytes], None]
) -> Callable[[bytes], bool] | None:
    """Take the audio frames of an accepted socket off the ASGI path (see the module docstring).

    From now on well-formed audio frames from the client go to ``on_audio`` as they arrive (the
    ASGI ``receive`` still gets everything else, and the disconnect). Returns the writer of
    binary frames to the client, or None (nothing changed) when the server is not uvicorn's
    sans-I/O protocol without extensions. Call it with no ``await`` between ``accept`` and it.
    """
    connection = direct_connection(websocket, "audio socket")
    if connection is None:
        return None
    protocol: Any = connection.protocol
    transport = connection.transport
    taken_over = transport.get_protocol() is not protocol  # another layer sits there already
    if taken_over or transport.is_closing():
        return None
    transport.set_protocol(AudioTransportTap(protocol, AudioFrameScanner(frame_bytes), on_audio))
    header = binary_frame_header(frame_bytes)
    can_write = connection.can_write

    def write(frame: bytes) -> bool:
        if len(frame) != frame_bytes or not can_write():
            return False
        transport.write(header + frame)
        return True

    return write
