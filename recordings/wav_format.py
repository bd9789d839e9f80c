"""The one WAV format our recorder writes: 8 kHz, 16-bit little-endian PCM, two channels.

Left channel = operator (what we *sent*), right channel = far end (what we *received*).
The header is the canonical 44-byte RIFF/WAVE header with a ``fmt `` chunk and a ``data`` chunk,
so the data size lives at byte 40 and the RIFF size (file size - 8) at byte 4.
"""

from __future__ import annotations

import struct

SAMPLE_RATE = 8000
CHANNELS = 2
SAMPLE_WIDTH_BYTES = 2
BYTES_PER_STEREO_SAMPLE = CHANNELS * SAMPLE_WIDTH_BYTES
HEADER_BYTES = 44

FRAME_SECONDS = 0.020
SAMPLES_PER_FRAME = 160
FRAME_BYTES = SAMPLES_PER_FRAME * SAMPLE_WIDTH_BYTES  # one side, one 20 ms frame: 320 bytes

_MAX_DATA_BYTES = 0xFFFFFFFF - 36


def wav_header(data_bytes: int) -> bytes:
    """Return the 44-byte header of a stereo 8 kHz 16-bit file holding ``data_bytes`` of audio."""
    if data_bytes < 0 or data_bytes > _MAX_DATA_BYTES:
        raise ValueError(f"data size {data_bytes} does not fit a WAV header")
    byte_rate = SAMPLE_RATE * BYTES_PER_STEREO_SAMPLE
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVEfmt "
        + struct.pack(
            "<IHHIIHH",
            16,  # fmt chunk size
            1,  # PCM
            CHANNELS,
            SAMPLE_RATE,
            byte_rate,
            BYTES_PER_STEREO_SAMPLE,
            SAMPLE_WIDTH_BYTES * 8,
        )
        + b"data"
        + struct.pack("<I", data_bytes)
    )


def seconds_of(data_bytes: int) -> float:
    """Duration of ``data_bytes`` of stereo audio in this format."""
    return data_bytes / (SAMPLE_RATE * BYTES_PER_STEREO_SAMPLE)
