"""Audio helpers of the end-to-end tests: tones, decoding recordings, finding a sound in one."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from websockets.asyncio.client import ClientConnection

SAMPLE_RATE = 8000
FRAME_BYTES = 320
FRAME_SECONDS = 0.020


def tone(frequency: float, seconds: float, amplitude: float = 8000.0) -> npt.NDArray[np.int16]:
    times = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (amplitude * np.sin(2 * np.pi * frequency * times)).astype(np.int16)


def frames_of(samples: npt.NDArray[np.int16]) -> list[bytes]:
    pcm = samples.astype("<i2").tobytes()
    pcm += bytes(-len(pcm) % FRAME_BYTES)
    return [pcm[offset : offset + FRAME_BYTES] for offset in range(0, len(pcm), FRAME_BYTES)]


async def send_paced(socket: ClientConnection, frames: Sequence[bytes]) -> None:
    """Send one frame every 20 ms on absolute deadlines, like a microphone."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    for number, frame in enumerate(frames):
        await socket.send(frame)
        await asyncio.sleep(max(0.0, started + (number + 1) * FRAME_SECONDS - loop.time()))


def decode_stereo(data: bytes) -> tuple[npt.NDArray[np.int16], npt.NDArray[np.int16]]:
    """Left and right channels of an encoded recording (any format ffmpeg reads) at 8 kHz."""
    decoded = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", "pipe:0", "-f", "s16le", "-ac", "2", "-ar", "8000", "-"],
        input=data,
        capture_output=True,
        check=True,
    ).stdout
    samples = np.frombuffer(decoded, dtype="<i2").reshape(-1, 2)
    return samples[:, 0].copy(), samples[:, 1].copy()


def peak_frequency(samples: npt.NDArray[np.int16]) -> float:
    """The frequency (Hz) of the strongest component of ``samples``."""
    values = samples.astype(np.float64)
    spectrum = np.abs(np.fft.rfft(values * np.hanning(values.size)))
    frequencies = np.fft.rfftfreq(values.size, 1 / SAMPLE_RATE)
    spectrum[frequencies < 50] = 0
    return float(frequencies[int(np.argmax(spectrum))])


def band_energy_fraction(samples: npt.NDArray[np.int16], frequency: float, width: float) -> float:
    """The share of the energy of ``samples`` within ``frequency`` +- ``width`` Hz."""
    values = samples.astype(np.float64)
    power = np.abs(np.fft.rfft(values * np.hanning(values.size))) ** 2
    frequencies = np.fft.rfftfreq(values.size, 1 / SAMPLE_RATE)
    total = float(power[frequencies >= 50].sum())
    if total == 0:
        return 0.0
    inside = (frequencies >= frequency - width) & (frequencies <= frequency + width)
    return float(power[inside].sum()) / total


def _spectrogram(
    samples: npt.NDArray[np.int16], window: int = 256, hop: int = 80
) -> npt.NDArray[np.float64]:
    values = samples.astype(np.float64)
    count = (values.size - window) // hop + 1
    if count <= 0:
        return np.zeros((0, window // 2 + 1))
    indices = np.arange(window)[None, :] + hop * np.arange(count)[:, None]
    spectrum: npt.NDArray[np.float64] = np.abs(
        np.fft.rfft(values[indices] * np.hanning(window), axis=1)
    )
    return spectrum


def waveform_correlation(
    reference: npt.NDArray[np.int16], received: npt.NDArray[np.int16]
) -> tuple[float, int]:
    """The normalised cross-correlation of ``reference`` with the stretch of ``received`` at
    the best lag (found over every lag by FFT), and that lag in samples."""
    wanted = reference.astype(np.float64)
    found = received.astype(np.float64)
    if found.size < wanted.size or not wanted.any():
        return 0.0, 0
    size = 1 << int(np.ceil(np.log2(found.size + wanted.size)))
    correlation = np.fft.irfft(np.fft.rfft(found, size) * np.conj(np.fft.rfft(wanted, size)), size)
    windows = np.convolve(found * found, np.ones(wanted.size), mode="valid")
    lags = correlation[: windows.size]
    scores = lags / np.sqrt(np.maximum(windows, 1e-9) * float((wanted * wanted).sum()))
    lag = int(np.argmax(scores))
    return float(scores[lag]), lag


def spectral_correlation(
    reference: npt.NDArray[np.int16], received: npt.NDArray[np.int16]
) -> tuple[float, int]:
    """The normalised cross-correlation of the magnitude spectrograms (32 ms windows, 10 ms hop)
    of ``reference`` and of the stretch of ``received`` at the best lag, and that lag in
    samples. Unlike a waveform correlation it survives codecs that do not keep the phase
    (Opus in speech mode)."""
    wanted = _spectrogram(reference)
    found = _spectrogram(received)
    if wanted.shape[0] == 0 or found.shape[0] < wanted.shape[0]:
        return 0.0, 0
    centred = wanted - wanted.mean()
    wanted_energy = float((centred * centred).sum())
    best, best_lag = 0.0, 0
    for lag in range(found.shape[0] - wanted.shape[0] + 1):
        stretch = found[lag : lag + wanted.shape[0]]
        other = stretch - stretch.mean()
        energy = float(np.sqrt(wanted_energy * float((other * other).sum())))
        if energy > 0:
            score = float((centred * other).sum()) / energy
            if score > best:
                best, best_lag = score, lag
    return best, best_lag * 80
