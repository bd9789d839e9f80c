"""G.711 tables against a straightforward implementation of the segment algorithm.

The reference below is written sample by sample from the G.711 rules (sign, segment search
over the segment end points, 4-bit quantisation step, bit inversion), independent of the
vectorised table construction in ``sip.media.g711``. Where ``audioop`` exists (Python < 3.13)
the tables are also compared with it.
"""

from __future__ import annotations

import importlib
import math
import struct
import sys
import warnings
from types import ModuleType

import pytest

from sip.media import g711
from sip.media.codecs import (
    FRAME_BYTES,
    PCMA,
    PCMU,
    SILENCE_FRAME,
    Codec,
    codec_by_name,
    codec_for_payload_type,
)

ULAW_SEGMENT_ENDS = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)
ALAW_SEGMENT_ENDS = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)
EVERY_SAMPLE = struct.pack("<65536h", *range(-32768, 32768))
EVERY_CODE = bytes(range(256))


def segment_of(value: int, ends: tuple[int, ...]) -> int:
    for segment, end in enumerate(ends):
        if value <= end:
            return segment
    return len(ends)


def reference_ulaw_encode(sample: int) -> int:
    value = sample >> 2  # 14-bit
    mask = 0xFF
    if value < 0:
        value = -value
        mask = 0x7F
    value = min(value, 8159) + 33
    segment = segment_of(value, ULAW_SEGMENT_ENDS)
    if segment >= 8:
        return 0x7F ^ mask
    return ((segment << 4) | ((value >> (segment + 1)) & 0x0F)) ^ mask


def reference_ulaw_decode(code: int) -> int:
    code = ~code & 0xFF
    magnitude = (((code & 0x0F) << 3) + 0x84) << ((code & 0x70) >> 4)
    return 0x84 - magnitude if code & 0x80 else magnitude - 0x84


def reference_alaw_encode(sample: int) -> int:
    value = sample >> 3  # 13-bit
    mask = 0xD5
    if value < 0:
        value = -value - 1
        mask = 0x55
    segment = segment_of(value, ALAW_SEGMENT_ENDS)
    if segment >= 8:
        return 0x7F ^ mask
    step = (value >> 1) if segment < 2 else (value >> segment)
    return ((segment << 4) | (step & 0x0F)) ^ mask


def reference_alaw_decode(code: int) -> int:
    code ^= 0x55
    magnitude = (code & 0x0F) << 4
    segment = (code & 0x70) >> 4
    if segment == 0:
        magnitude += 8
    else:
        magnitude = (magnitude + 0x108) << (segment - 1)
    return magnitude if code & 0x80 else -magnitude


def load_audioop() -> ModuleType | None:
    if sys.version_info >= (3, 13):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return importlib.import_module("audioop")
        except ImportError:
            return None


def test_ulaw_encoder_matches_reference_for_every_sample() -> None:
    expected = bytes(reference_ulaw_encode(sample) for sample in range(-32768, 32768))
    assert g711.ulaw_encode(EVERY_SAMPLE) == expected


def test_alaw_encoder_matches_reference_for_every_sample() -> None:
    expected = bytes(reference_alaw_encode(sample) for sample in range(-32768, 32768))
    assert g711.alaw_encode(EVERY_SAMPLE) == expected


def test_decoders_match_reference_for_every_code() -> None:
    assert g711.ulaw_decode(EVERY_CODE) == struct.pack(
        "<256h", *(reference_ulaw_decode(code) for code in EVERY_CODE)
    )
    assert g711.alaw_decode(EVERY_CODE) == struct.pack(
        "<256h", *(reference_alaw_decode(code) for code in EVERY_CODE)
    )


def test_well_known_code_points() -> None:
    assert g711.ulaw_encode(struct.pack("<h", 0)) == b"\xff"
    assert g711.alaw_encode(struct.pack("<h", 0)) == b"\xd5"
    assert g711.ulaw_decode(b"\x00") == struct.pack("<h", -32124)
    assert g711.alaw_decode(b"\xaa") == struct.pack("<h", 32256)


def test_tables_agree_with_audioop_when_available() -> None:
    audioop = load_audioop()
    if audioop is None:
        pytest.skip("audioop not importable on this Python")
    assert g711.ulaw_encode(EVERY_SAMPLE) == audioop.lin2ulaw(EVERY_SAMPLE, 2)
    assert g711.alaw_encode(EVERY_SAMPLE) == audioop.lin2alaw(EVERY_SAMPLE, 2)
    assert g711.ulaw_decode(EVERY_CODE) == audioop.ulaw2lin(EVERY_CODE, 2)
    assert g711.alaw_decode(EVERY_CODE) == audioop.alaw2lin(EVERY_CODE, 2)


def test_decoding_an_encoded_code_gives_the_same_code_back() -> None:
    # G.711 is idempotent after one pass: decode(encode(decode(c))) == decode(c)
    for codec in (PCMU, PCMA):
        decoded = codec.decode(EVERY_CODE)
        assert codec.decode(codec.encode(decoded)) == decoded


@pytest.mark.parametrize("codec", [PCMU, PCMA], ids=lambda codec: codec.name)
def test_codec_interface(codec: Codec) -> None:
    tone = struct.pack(
        "<160h", *(int(10000 * math.sin(2 * math.pi * 1000 * n / 8000)) for n in range(160))
    )
    payload = codec.encode(tone)
    assert len(payload) == 160
    decoded = codec.decode(payload)
    assert len(decoded) == FRAME_BYTES
    error = max(
        abs(a - b)
        for a, b in zip(struct.unpack("<160h", tone), struct.unpack("<160h", decoded), strict=True)
    )
    assert error < 400  # one quantisation step of the 10000-amplitude segment
    silence = struct.unpack("<160h", codec.decode(codec.silence_payload))
    assert max(abs(sample) for sample in silence) <= 8  # A-law has no exact zero
    assert codec.silence_payload == codec.encode(SILENCE_FRAME)
    assert codec.clock_rate == 8000


def test_codec_lookup() -> None:
    assert codec_for_payload_type(0) is PCMU
    assert codec_for_payload_type(8) is PCMA
    assert codec_by_name("pcma") is PCMA
    with pytest.raises(ValueError, match="payload type"):
        codec_for_payload_type(18)
    with pytest.raises(ValueError, match="codec"):
        codec_by_name("G729")


def test_encoder_rejects_odd_length_pcm() -> None:
    with pytest.raises(ValueError, match="multiple of element size"):
        g711.ulaw_encode(b"\x00\x01\x02")
    with pytest.raises(ValueError, match="multiple of element size"):
        PCMA.encode(b"\x00")


def test_tables_are_read_only() -> None:
    with pytest.raises(ValueError, match="read-only"):
        g711.ULAW_ENCODE_TABLE[0] = 0
