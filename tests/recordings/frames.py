"""Recognisable test frames: every 20 ms frame carries its slot number as a constant sample."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt

SAMPLES_PER_FRAME = 160


def frame_for(slot: int, direction: str) -> bytes:
    """A 320-byte frame whose samples all equal +slot+1 (sent) or -(slot+1) (received)."""
    value = slot % 30000 + 1
    if direction == "received":
        value = -value
    return np.full(SAMPLES_PER_FRAME, value, dtype="<i2").tobytes()


def read_stereo(path: Path) -> tuple[npt.NDArray[np.int16], npt.NDArray[np.int16]]:
    """Decode a stereo 8 kHz 16-bit WAV with the standard library; return (left, right)."""
    with wave.open(str(path), "rb") as reader:
        assert reader.getnchannels() == 2
        assert reader.getframerate() == 8000
        assert reader.getsampwidth() == 2
        data = reader.readframes(reader.getnframes())
    samples = np.frombuffer(data, dtype="<i2").reshape(-1, 2)
    return samples[:, 0].copy(), samples[:, 1].copy()


def frame_values(channel: npt.NDArray[np.int16]) -> list[int]:
    """The value of each 20 ms frame of a channel, asserting every frame is constant."""
    frames = channel[: len(channel) - len(channel) % SAMPLES_PER_FRAME].reshape(
        -1, SAMPLES_PER_FRAME
    )
    assert (frames == frames[:, :1]).all(), "a frame mixes samples of different frames"
    return [int(value) for value in frames[:, 0]]
