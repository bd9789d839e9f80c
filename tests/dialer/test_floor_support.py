"""Helpers shared by the floor tests (no tests here): tones, their strength, a test-line prompt
of a plain tone. Pacing frames like a microphone: ``tests.audio.push_paced``."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt

from dialer.telephony.monitor_hub import CallMonitor
from tests.audio import SAMPLE_RATE

CHUNK_SAMPLES = 4000  # 0.5 s: a 2 Hz grid, so the test tones fall exactly on bins

FAR_END_HZ = 450.0  # the test line's prompt
OPERATOR_HZ = 700.0
SUPERVISOR_HZ = 1300.0


def tone(frequency: float, seconds: float, amplitude: float = 4000.0) -> bytes:
    """A sine tone as 16-bit little-endian 8 kHz PCM (whole 20 ms frames)."""
    count = int(seconds * SAMPLE_RATE) // 160 * 160
    times = np.arange(count) / SAMPLE_RATE
    return (amplitude * np.sin(2 * np.pi * frequency * times)).astype("<i2").tobytes()


def samples_of(pcm: bytes) -> npt.NDArray[np.int16]:
    return np.frombuffer(pcm, dtype="<i2")


def tone_strength(samples: npt.NDArray[np.int16], frequency: float) -> float:
    """The largest amplitude of ``frequency`` in any half-second stretch (FFT per stretch)."""
    values = samples.astype(np.float64)
    best = 0.0
    for start in range(0, max(0, values.size - CHUNK_SAMPLES) + 1, CHUNK_SAMPLES // 2):
        chunk = values[start : start + CHUNK_SAMPLES]
        if chunk.size < CHUNK_SAMPLES:
            break
        spectrum = np.abs(np.fft.rfft(chunk))
        index = round(frequency * CHUNK_SAMPLES / SAMPLE_RATE)
        best = max(best, 2 * float(spectrum[index - 1 : index + 2].max()) / CHUNK_SAMPLES)
    return best


def write_prompt(path: Path, seconds: float = 1.6) -> Path:
    """A test-line prompt that is a plain far-end tone (``FAR_END_HZ``)."""
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(SAMPLE_RATE)
        writer.writeframes(tone(FAR_END_HZ, seconds))
    return path


async def collect_mix(monitor: CallMonitor, into: bytearray) -> None:
    async for frame in monitor.frames():
        into.extend(frame)
