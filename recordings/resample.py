"""Rational-ratio resampling of 16-bit PCM with numpy (windowed-sinc polyphase FIR).

Used to bring 8 kHz call audio up to a speech model's rate (16 kHz for the small Vosk
models). The filter is linear-phase and its delay is removed, so sample ``n`` of the input lines
up with sample ``n * to_rate / from_rate`` of the output: word timings are not shifted.
"""

from __future__ import annotations

from math import gcd

import numpy as np
import numpy.typing as npt

TAPS_PER_PHASE = 16


def lowpass_filter(up: int, down: int) -> npt.NDArray[np.float64]:
    """Hann-windowed sinc low-pass for resampling by ``up / down``, gain ``up``."""
    factor = max(up, down)
    length = TAPS_PER_PHASE * factor + 1
    cutoff = 0.5 / factor * 0.95  # cycles per sample at the upsampled rate, a little margin
    offsets = np.arange(length) - (length - 1) / 2
    taps = 2 * cutoff * np.sinc(2 * cutoff * offsets) * np.hanning(length)
    filtered: npt.NDArray[np.float64] = taps * (up / taps.sum())
    return filtered


def resample(samples: npt.NDArray[np.int16], from_rate: int, to_rate: int) -> npt.NDArray[np.int16]:
    """``samples`` (one channel) at ``from_rate`` resampled to ``to_rate``."""
    if from_rate <= 0 or to_rate <= 0:
        raise ValueError("sample rates must be positive")
    if from_rate == to_rate or len(samples) == 0:
        return samples.astype(np.int16, copy=True)
    common = gcd(from_rate, to_rate)
    up, down = to_rate // common, from_rate // common
    taps = lowpass_filter(up, down)
    stuffed = np.zeros(len(samples) * up, dtype=np.float64)
    stuffed[::up] = samples
    delay = (len(taps) - 1) // 2
    filtered = np.convolve(stuffed, taps)[delay : delay + len(stuffed)]
    decimated = filtered[::down]
    clipped: npt.NDArray[np.int16] = np.clip(np.rint(decimated), -32768, 32767).astype(np.int16)
    return clipped
