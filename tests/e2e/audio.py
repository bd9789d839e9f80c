"""Audio helpers of the end-to-end tests: tones, their frequency, finding a waveform in a
recording. Frames, pacing, decoding and the spectral match: ``tests.audio``."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from tests.audio import SAMPLE_RATE


def tone(frequency: float, seconds: float, amplitude: float = 8000.0) -> npt.NDArray[np.int16]:
    times = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (amplitude * np.sin(2 * np.pi * frequency * times)).astype(np.int16)


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
