"""Audio helpers shared by the tests of every layer (no tests here): 20 ms frames, pacing them
like a microphone, decoding a recording, finding a sound in one."""

from __future__ import annotations

import asyncio
import inspect
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 8000
FRAME_BYTES = 320  # 20 ms of 16-bit mono PCM at 8 kHz
FRAME_SECONDS = 0.020


def frames_of(pcm: bytes) -> list[bytes]:
    """``pcm`` (16-bit little-endian, 8 kHz) cut into 20 ms frames; the last one padded with
    silence to a whole frame."""
    padded = pcm + bytes(-len(pcm) % FRAME_BYTES)
    return [padded[offset : offset + FRAME_BYTES] for offset in range(0, len(padded), FRAME_BYTES)]


async def push_paced(push: Callable[[bytes], object], pcm: bytes, burst: int = 4) -> None:
    """Hand ``pcm`` frame by frame to ``push(frame)`` (awaited when it returns an awaitable, e.g.
    a WebSocket's ``send``) the way a browser delivers a microphone: ``burst`` frames at once on
    the microphone's steady clock (burst ``k`` is due at ``k * burst * 20`` ms, no drift)."""
    frames = frames_of(pcm)
    loop = asyncio.get_running_loop()
    started = loop.time()
    for number, start in enumerate(range(0, len(frames), burst)):
        for frame in frames[start : start + burst]:
            pushed = push(frame)
            if inspect.isawaitable(pushed):
                await pushed
        due = started + (number + 1) * FRAME_SECONDS * burst
        await asyncio.sleep(max(0.0, due - loop.time()))


def decode_stereo(recording: Path | bytes) -> tuple[npt.NDArray[np.int16], npt.NDArray[np.int16]]:
    """Left and right channels at 8 kHz of an encoded recording (any format ffmpeg reads), given
    as its file or its bytes."""
    source, data = ("pipe:0", recording) if isinstance(recording, bytes) else (str(recording), None)
    command = ["ffmpeg", "-v", "error", "-i", source, "-f", "s16le", "-ac", "2"]
    command += ["-ar", str(SAMPLE_RATE), "-"]
    decoded = subprocess.run(
        command,
        input=data,
        capture_output=True,
        check=True,
    ).stdout
    samples = np.frombuffer(decoded, dtype="<i2").reshape(-1, 2)
    return samples[:, 0].copy(), samples[:, 1].copy()


def _spectrogram(
    samples: npt.NDArray[np.int16], window: int = 256, hop: int = 80
) -> npt.NDArray[np.float64]:
    """Magnitude spectrogram: 32 ms Hann windows every 10 ms."""
    values = samples.astype(np.float64)
    count = (values.size - window) // hop + 1
    if count <= 0:
        return np.zeros((0, window // 2 + 1))
    indices = np.arange(window)[None, :] + hop * np.arange(count)[:, None]
    spectrum: npt.NDArray[np.float64] = np.abs(
        np.fft.rfft(values[indices] * np.hanning(window), axis=1)
    )
    return spectrum


def spectral_correlation(
    reference: npt.NDArray[np.int16], received: npt.NDArray[np.int16]
) -> float:
    """The best normalised correlation of ``reference``'s magnitude spectrogram with a stretch
    of ``received``'s (over every lag). Unlike a waveform correlation it survives codecs that
    do not keep the phase (Opus): a recording "contains" a sound when this is high."""
    wanted = _spectrogram(reference)
    found = _spectrogram(received)
    if wanted.shape[0] == 0 or found.shape[0] < wanted.shape[0]:
        return 0.0
    centred = wanted - wanted.mean()
    wanted_energy = float((centred * centred).sum())
    best = 0.0
    for lag in range(found.shape[0] - wanted.shape[0] + 1):
        stretch = found[lag : lag + wanted.shape[0]]
        other = stretch - stretch.mean()
        energy = float(np.sqrt(wanted_energy * float((other * other).sum())))
        if energy > 0:
            best = max(best, float((centred * other).sum()) / energy)
    return best
