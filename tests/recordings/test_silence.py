"""Speech detection and resampling, the two numpy steps in front of the recogniser."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from recordings.resample import resample
from recordings.silence import (
    SilenceSettings,
    find_speech_regions,
    thresholds_for,
    window_levels_dbfs,
)


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


def test_a_soft_ending_stays_inside_the_region_started_by_loud_speech() -> None:
    # 1 s loud, then 0.5 s about -50 dBFS (below the -45 dBFS start threshold), then silence.
    samples = np.concatenate([tone(1, 5000), tone(0.5, 130), quiet(2)])
    with_hysteresis = find_speech_regions(samples, 8000, SilenceSettings(padding_seconds=0))
    without = find_speech_regions(
        samples, 8000, SilenceSettings(padding_seconds=0, hysteresis_db=0)
    )
    assert [(region.start, region.end) for region in with_hysteresis] == [(0, 12000)]
    assert [(region.start, region.end) for region in without] == [(0, 8000)]


def test_soft_sound_alone_and_clicks_are_not_speech() -> None:
    soft_alone = np.concatenate([quiet(1), tone(1, 130), quiet(1)])
    assert find_speech_regions(soft_alone, 8000) == []
    click = np.concatenate([quiet(1), tone(0.04, 20000), quiet(2)])
    assert find_speech_regions(click, 8000) == []
    short_word = np.concatenate([quiet(1), tone(0.25, 5000), quiet(2)])
    regions = find_speech_regions(short_word, 8000, SilenceSettings(padding_seconds=0.1))
    assert [(region.start / 8000, region.end / 8000) for region in regions] == [
        pytest.approx((0.9, 1.35), abs=0.02)
    ]


def test_noise_floor_raises_both_thresholds() -> None:
    rng = np.random.default_rng(8)
    noisy = rng.normal(0, 300, size=8000 * 5).astype(np.int16)  # about -40 dBFS of hiss
    levels = window_levels_dbfs(noisy, 160)
    thresholds = thresholds_for(levels, SilenceSettings())
    floor = float(np.percentile(levels, 10))
    assert thresholds.start_dbfs == pytest.approx(min(floor + 12, -30))
    assert floor < thresholds.continue_dbfs < thresholds.start_dbfs
    assert find_speech_regions(noisy, 8000) == []
