"""Energy-based speech detection, to skip the long silences of one call side.

In a call each side is silent most of the time (while the other one talks), and a speech
recogniser spends nearly as much CPU on silence as on speech. This module finds the stretches
worth transcribing: 20 ms windows whose energy is above a threshold, joined when the silence
between them is shorter than ``min_silence_seconds`` and padded on both sides so word edges
and the recogniser's endpointing keep some context.

The threshold is the larger of an absolute level (``threshold_dbfs``) and the channel's own
noise floor (its 10th-percentile window energy) plus ``noise_margin_db``, so line hiss or
comfort noise does not count as speech; the adaptive part is capped at ``max_threshold_dbfs``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FULL_SCALE = 32768.0


@dataclass(frozen=True, slots=True)
class SpeechRegion:
    """A stretch of samples ``[start, end)`` that holds speech (with padding)."""

    start: int
    end: int


@dataclass(frozen=True, slots=True)
class SilenceSettings:
    threshold_dbfs: float = -45.0
    noise_margin_db: float = 12.0
    max_threshold_dbfs: float = -30.0
    window_seconds: float = 0.020
    min_silence_seconds: float = 0.8
    padding_seconds: float = 0.3


def window_levels_dbfs(samples: npt.NDArray[np.int16], window: int) -> npt.NDArray[np.float64]:
    """Energy of each whole window of ``window`` samples, in dB relative to full scale."""
    whole = len(samples) - len(samples) % window
    if whole == 0:
        return np.zeros(0)
    frames = samples[:whole].astype(np.float64).reshape(-1, window) / FULL_SCALE
    power = np.mean(frames * frames, axis=1)
    levels: npt.NDArray[np.float64] = 10 * np.log10(power + 1e-12)
    return levels


def find_speech_regions(
    samples: npt.NDArray[np.int16],
    sample_rate: int,
    settings: SilenceSettings | None = None,
) -> list[SpeechRegion]:
    """Regions of ``samples`` (one channel) that hold speech, sorted and not overlapping."""
    chosen = settings or SilenceSettings()
    window = max(1, round(chosen.window_seconds * sample_rate))
    levels = window_levels_dbfs(samples, window)
    if levels.size == 0:
        return []
    noise_floor = float(np.percentile(levels, 10))
    adaptive = min(noise_floor + chosen.noise_margin_db, chosen.max_threshold_dbfs)
    threshold = max(chosen.threshold_dbfs, adaptive)
    active = np.flatnonzero(levels > threshold)
    if active.size == 0:
        return []
    max_gap_windows = max(1, round(chosen.min_silence_seconds / chosen.window_seconds))
    breaks = np.flatnonzero(np.diff(active) > max_gap_windows)
    run_starts = np.concatenate(([active[0]], active[breaks + 1]))
    run_ends = np.concatenate((active[breaks], [active[-1]])) + 1
    padding = round(chosen.padding_seconds * sample_rate)
    regions: list[SpeechRegion] = []
    for run_start, run_end in zip(run_starts.tolist(), run_ends.tolist(), strict=True):
        start = max(0, run_start * window - padding)
        end = min(len(samples), run_end * window + padding)
        if regions and start <= regions[-1].end:
            regions[-1] = SpeechRegion(regions[-1].start, end)
        else:
            regions.append(SpeechRegion(start, end))
    return regions
