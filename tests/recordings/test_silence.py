"""Speech detection and resampling, the two numpy steps in front of the recogniser."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from recordings.resample import resample
from recordings.silence import SilenceSettings, find_speech_regions


def tone(
    seconds: float, level: float, rate: int = 8000, frequency: float = 300
) -> npt.NDArray[np.int16]:
    time = np.arange(round(seconds * rate)) / rate
    return (level * np.sin(2 * np.pi * frequency * time)).astype(np.int16)


def quiet(seconds: float) -> npt.NDArray[np.int16]:
    return np.zeros(round(seconds * 8000), dtype=np.int16)


def test_bursts_separated_by_long_silence_are_separate_regions() -> None:
    samples = np.concatenate([quiet(2), tone(1, 5000), quiet(3), tone(0.5, 5000), quiet(2)])
    regions = find_speech_regions(samples, 8000, SilenceSettings(padding_seconds=0.25))
    assert [(region.start / 8000, region.end / 8000) for region in regions] == [
        pytest.approx((1.75, 3.25)),
        pytest.approx((5.75, 6.75)),
    ]


def test_short_pauses_inside_speech_do_not_split_it() -> None:
    samples = np.concatenate([tone(1, 5000), quiet(0.4), tone(1, 5000), quiet(2)])
    regions = find_speech_regions(samples, 8000, SilenceSettings(min_silence_seconds=0.8))
    assert len(regions) == 1
    assert regions[0].start == 0


def test_steady_line_noise_is_not_speech_but_speech_over_it_is() -> None:
    rng = np.random.default_rng(5)
    samples = np.concatenate([quiet(3), tone(1, 5000), quiet(3)])
    noisy = samples + rng.normal(0, 300, size=len(samples)).astype(np.int16)  # about -40 dBFS
    regions = find_speech_regions(noisy, 8000, SilenceSettings(padding_seconds=0))
    assert len(regions) == 1
    assert regions[0].start / 8000 == pytest.approx(3.0, abs=0.03)
    assert regions[0].end / 8000 == pytest.approx(4.0, abs=0.03)


def test_silence_has_no_regions() -> None:
    assert find_speech_regions(quiet(5), 8000) == []
    assert find_speech_regions(np.zeros(0, dtype=np.int16), 8000) == []


def test_resampling_doubles_the_rate_without_shifting_or_changing_pitch() -> None:
    source = np.concatenate([quiet(0.5), tone(0.5, 8000, frequency=1000), quiet(0.5)])
    result = resample(source, 8000, 16000)
    assert len(result) == 2 * len(source)
    spectrum = np.abs(np.fft.rfft(result.astype(np.float64)))
    assert np.fft.rfftfreq(len(result), 1 / 16000)[int(np.argmax(spectrum))] == pytest.approx(1000)
    # The tone starts at 0.5 s in both: no filter delay.
    envelope = np.abs(result.astype(np.float64))
    first_loud = int(np.argmax(envelope > 2000)) / 16000
    assert first_loud == pytest.approx(0.5, abs=0.002)
    # No image above the old Nyquist frequency.
    image = spectrum[np.fft.rfftfreq(len(result), 1 / 16000) > 4200]
    assert image.max() < spectrum.max() * 0.01


def test_resampling_down_and_to_the_same_rate() -> None:
    source = tone(1, 8000, rate=16000, frequency=500)
    down = resample(source, 16000, 8000)
    assert len(down) == 8000
    assert np.array_equal(resample(down, 8000, 8000), down)
    with pytest.raises(ValueError, match="positive"):
        resample(down, 0, 8000)
