"""The G.711 codecs' fast path gives exactly the bytes of the G.711 lookup tables."""

from __future__ import annotations

import numpy as np
import pytest

from sip.media.codecs import PCMA, PCMU, G711Codec

EVERY_SAMPLE = np.arange(-32768, 32768, dtype="<i2").tobytes()
EVERY_CODE = bytes(range(256))


@pytest.mark.parametrize("codec", [PCMU, PCMA], ids=lambda codec: codec.name)
def test_encode_matches_the_tables_for_every_sample(codec: G711Codec) -> None:
    assert codec.encode(EVERY_SAMPLE) == codec.table_encode(EVERY_SAMPLE)
    frame = EVERY_SAMPLE[40_000:40_320]
    assert codec.encode(frame) == codec.table_encode(frame)


@pytest.mark.parametrize("codec", [PCMU, PCMA], ids=lambda codec: codec.name)
def test_decode_matches_the_tables_for_every_code(codec: G711Codec) -> None:
    assert codec.decode(EVERY_CODE) == codec.table_decode(EVERY_CODE)
    assert codec.decode(codec.encode(EVERY_SAMPLE)) == codec.table_decode(
        codec.table_encode(EVERY_SAMPLE)
    )


@pytest.mark.parametrize("codec", [PCMU, PCMA], ids=lambda codec: codec.name)
def test_silence_payload_is_encoded_silence(codec: G711Codec) -> None:
    assert codec.silence_payload == codec.table_encode(bytes(320))
    assert len(codec.silence_payload) == 160
