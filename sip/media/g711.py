"""G.711 μ-law and A-law as numpy lookup tables (ITU-T G.711 segment algorithm).

Encoding indexes a 65536-entry numpy table with every 16-bit sample (viewed as unsigned);
decoding maps every code byte to its 16-bit sample through a 256-entry table (applied as two
``bytes.translate`` passes, one per PCM byte). The tables are computed once
at import from the segment/quantisation rules of G.711 (the same rules as the classic
reference implementation that ``audioop`` also follows) and are read-only.

PCM is 16-bit signed little-endian; payloads are one code byte per sample.
"""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

_ULAW_BIAS = 0x84
_ULAW_CLIP = 8159
_ULAW_SEGMENT_ENDS = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
_ALAW_SEGMENT_ENDS = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])

_PCM_DTYPE = np.dtype("<i2")
ArrayT = TypeVar("ArrayT", bound="np.ndarray[Any, Any]")
_SAMPLE_INDEX_DTYPE = np.dtype("<u2")


def _every_sample() -> npt.NDArray[np.int64]:
    """All 16-bit sample values in the order of their unsigned bit pattern (0, 1, ..., -1)."""
    return np.arange(0, 1 << 16, dtype=np.int64).astype(np.uint16).view(np.int16).astype(np.int64)


def _build_ulaw_encoder() -> npt.NDArray[np.uint8]:
    value = _every_sample() >> 2  # 14-bit linear
    negative = value < 0
    magnitude = np.minimum(np.where(negative, -value, value), _ULAW_CLIP) + (_ULAW_BIAS >> 2)
    segment = np.searchsorted(_ULAW_SEGMENT_ENDS, magnitude, side="left")
    mask = np.where(negative, 0x7F, 0xFF)
    quantised = (np.minimum(segment, 7) << 4) | ((magnitude >> (np.minimum(segment, 7) + 1)) & 0x0F)
    code = np.where(segment >= 8, 0x7F, quantised) ^ mask
    return _frozen(code.astype(np.uint8))


def _build_alaw_encoder() -> npt.NDArray[np.uint8]:
    value = _every_sample() >> 3  # 13-bit linear
    negative = value < 0
    magnitude = np.where(negative, -value - 1, value)
    segment = np.searchsorted(_ALAW_SEGMENT_ENDS, magnitude, side="left")
    mask = np.where(negative, 0x55, 0xD5)
    shift = np.where(segment < 2, 1, np.minimum(segment, 7))
    quantised = (np.minimum(segment, 7) << 4) | ((magnitude >> shift) & 0x0F)
    code = np.where(segment >= 8, 0x7F, quantised) ^ mask
    return _frozen(code.astype(np.uint8))


def _build_ulaw_decoder() -> npt.NDArray[np.int16]:
    code = ~np.arange(256, dtype=np.int64) & 0xFF
    magnitude = (((code & 0x0F) << 3) + _ULAW_BIAS) << ((code & 0x70) >> 4)
    sample = np.where(code & 0x80, _ULAW_BIAS - magnitude, magnitude - _ULAW_BIAS)
    return _frozen(sample.astype(_PCM_DTYPE))


def _build_alaw_decoder() -> npt.NDArray[np.int16]:
    code = np.arange(256, dtype=np.int64) ^ 0x55
    segment = (code & 0x70) >> 4
    mantissa = (code & 0x0F) << 4
    magnitude = np.where(
        segment == 0,
        mantissa + 8,
        (mantissa + 0x108) << np.maximum(segment - 1, 0),
    )
    sample = np.where(code & 0x80, magnitude, -magnitude)
    return _frozen(sample.astype(_PCM_DTYPE))


def _frozen(array: ArrayT) -> ArrayT:
    array.flags.writeable = False
    return array


ULAW_ENCODE_TABLE = _build_ulaw_encoder()
ALAW_ENCODE_TABLE = _build_alaw_encoder()
ULAW_DECODE_TABLE = _build_ulaw_decoder()
ALAW_DECODE_TABLE = _build_alaw_decoder()


def byte_planes(decode_table: npt.NDArray[np.int16]) -> tuple[bytes, bytes]:
    """Split a decoder table into two ``bytes.translate`` tables: low and high PCM bytes."""
    little_endian = decode_table.astype(_PCM_DTYPE).tobytes()
    return little_endian[0::2], little_endian[1::2]


ULAW_DECODE_PLANES = byte_planes(ULAW_DECODE_TABLE)
ALAW_DECODE_PLANES = byte_planes(ALAW_DECODE_TABLE)


def encode(pcm16: bytes, table: npt.NDArray[np.uint8]) -> bytes:
    """Encode 16-bit little-endian PCM with an encoder table (one byte per sample).

    ``ValueError`` if ``pcm16`` has an odd number of bytes.
    """
    return table.take(np.frombuffer(pcm16, dtype=_SAMPLE_INDEX_DTYPE)).tobytes()


def decode(payload: bytes, planes: tuple[bytes, bytes]) -> bytes:
    """Decode G.711 code bytes into 16-bit little-endian PCM.

    Two ``bytes.translate`` passes give the low and the high byte of every sample and are
    interleaved by slice assignment: all in C, faster than numpy for 20 ms frames.
    """
    pcm = bytearray(2 * len(payload))
    pcm[0::2] = payload.translate(planes[0])
    pcm[1::2] = payload.translate(planes[1])
    return bytes(pcm)


def ulaw_encode(pcm16: bytes) -> bytes:
    """16-bit little-endian PCM to μ-law bytes."""
    return encode(pcm16, ULAW_ENCODE_TABLE)


def ulaw_decode(payload: bytes) -> bytes:
    """μ-law bytes to 16-bit little-endian PCM."""
    return decode(payload, ULAW_DECODE_PLANES)


def alaw_encode(pcm16: bytes) -> bytes:
    """16-bit little-endian PCM to A-law bytes."""
    return encode(pcm16, ALAW_ENCODE_TABLE)


def alaw_decode(payload: bytes) -> bytes:
    """A-law bytes to 16-bit little-endian PCM."""
    return decode(payload, ALAW_DECODE_PLANES)
