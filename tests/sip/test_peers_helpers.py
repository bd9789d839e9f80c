"""The audio yardsticks the SIP tests measure with: they must find a sound wherever it is."""

from __future__ import annotations

import numpy as np
import pytest

from tests.sip.peers import best_correlation


@pytest.mark.parametrize("delay", [0, 160, 21_000, 41_000, 53_000])
def test_best_correlation_finds_a_sound_at_any_delay_in_a_long_recording(delay: int) -> None:
    """Even late in a recording longer than the sound by far (past half the FFT size, where
    circular correlation indices were once read as negative lags)."""
    sound = (np.random.default_rng(7).standard_normal(4000) * 3000).astype(np.int16)
    recording = np.zeros(60_000, dtype=np.int16)
    recording[delay : delay + sound.size] = sound
    value, lag = best_correlation(sound, recording, minimum_overlap=2000)
    assert (round(value, 6), lag) == (1.0, delay)


def test_best_correlation_finds_a_sound_that_started_before_the_recording() -> None:
    sound = (np.random.default_rng(8).standard_normal(4000) * 3000).astype(np.int16)
    value, lag = best_correlation(sound, sound[1000:], minimum_overlap=2000)
    assert (round(value, 6), lag) == (1.0, -1000)
