"""Talk-time histograms and the period grid the rollups are kept on (pure functions)."""

from __future__ import annotations

import random
import statistics
from collections import Counter

import numpy as np

from dialer.reports import histogram
from dialer.reports.grid import GRAIN_HOURS, Coverer, Piece, children, cover, parent, pieces


def medians_of(groups: list[list[float]]) -> list[float | None]:
    blobs: list[bytes] = []
    owners: list[int] = []
    for index, talks in enumerate(groups):
        # Each group spread over several stored rows, as rollup rows are.
        for start in range(0, len(talks), 3):
            counts: dict[int, int] = {}
            for talk in talks[start : start + 3]:
                counts[histogram.talk_bin(talk)] = counts.get(histogram.talk_bin(talk), 0) + 1
            blobs.append(histogram.encode(counts))
            owners.append(index)
    return histogram.grouped_medians(blobs, np.array(owners, dtype=np.int64), len(groups))


def test_median_of_odd_and_even_counts_and_empty_groups() -> None:
    assert medians_of([[30, 45, 60, 90, 120], [30, 45], [], [7]]) == [60.0, 37.5, None, 7.0]


def test_medians_match_the_statistics_module_on_whole_seconds() -> None:
    generator = random.Random(3)
    groups = [
        [float(generator.randint(0, 3599)) for _ in range(generator.randint(1, 60))]
        for _ in range(40)
    ]
    assert medians_of(groups) == [statistics.median(talks) for talks in groups]


def test_talk_times_are_rounded_to_seconds_and_minutes_after_an_hour() -> None:
    assert [histogram.talk_bin(value) for value in (0.0, 0.4, 0.5, 59.6, 3599.4)] == [
        0,
        0,
        1,
        60,
        3599,
    ]
    over_an_hour = histogram.talk_bin(3725)
    assert histogram.bin_seconds(over_an_hour) == 3600 + 2 * 60 + 30
    assert histogram.bin_seconds(histogram.talk_bin(10 * 86400)) < 86400


def test_counts_beyond_one_pair_survive_encoding_and_merging() -> None:
    many = {42: 70_000, 43: 1, 3599: 65_535}
    blob = histogram.encode(many)
    assert histogram.decode(blob) == many
    merged = histogram.merge([blob, histogram.encode({42: 5, 100: 2})])
    assert histogram.decode(merged) == {42: 70_005, 43: 1, 100: 2, 3599: 65_535}
    owners = np.zeros(1, dtype=np.int64)
    assert histogram.grouped_medians([merged], owners, 1) == [42.0]


def test_pieces_cover_a_range_exactly_with_aligned_periods() -> None:
    generator = random.Random(5)
    for _ in range(200):
        first = generator.randrange(480_000, 490_000)
        end = first + generator.randrange(1, 24 * 400)
        cut = pieces(first, end)
        hours = [hour for piece in cut for hour in range(piece.first_hour, piece.end_hour)]
        assert hours == list(range(first, end))
        assert all(piece.first_hour % piece.grain == 0 for piece in cut)
    year = pieces(490_000 - 490_000 % 24 + 21, 490_000 - 490_000 % 24 + 21 + 365 * 24)
    assert len(year) < 80


def test_every_period_is_made_of_the_periods_of_the_grain_below() -> None:
    block = Piece(192, 2_550)
    days = children(block)
    assert [day.grain for day in days] == [24] * 8
    assert all(parent(day) == block for day in days)
    assert parent(block) == Piece(GRAIN_HOURS[-1], 2_550 // 8)
    assert parent(Piece(GRAIN_HOURS[-1], 318)) is None
    assert [piece.first_hour for piece in children(Piece(3, 10))] == [30, 31, 32]


def counted_hours(first: int, end: int, coverer: Coverer) -> dict[int, int]:
    """How many times each hour is counted by the cover of ``[first, end)``."""
    counts: dict[int, int] = {}
    for piece, sign in coverer.cover(first, end):
        assert piece.first_hour % piece.grain == 0
        for hour in range(piece.first_hour, piece.end_hour):
            counts[hour] = counts.get(hour, 0) + sign
    return {hour: count for hour, count in counts.items() if count}


def test_covers_count_every_hour_of_a_range_once_with_few_periods() -> None:
    generator = random.Random(8)
    coverer = Coverer()
    for _ in range(500):
        first = generator.randrange(480_000, 500_000)
        end = first + generator.choice((generator.randrange(1, 50), generator.randrange(1, 9600)))
        assert counted_hours(first, end, coverer) == dict.fromkeys(range(first, end), 1)
        assert len(coverer.cover(first, end)) <= len(pieces(first, end))
    # A Moscow day (21:00 to 21:00 UTC): its UTC day, plus the 3 hours before, minus its last 3.
    moscow_day = cover(490_008 + 21, 490_008 + 45)
    assert sorted((piece.grain, sign) for piece, sign in moscow_day) == [(3, -1), (3, 1), (24, 1)]
    # A year in Moscow takes about 20 periods (64-day ones among them), not ~60.
    year = cover(490_008 + 21, 490_008 + 21 + 365 * 24)
    assert len(year) <= 20
    assert GRAIN_HOURS[-1] in {piece.grain for piece, _sign in year}
    # Hour-of-day covers use only the grains that have per-hour rows.
    hour_grains = (1, 24, 192, 1536)
    hourly = Coverer(hour_grains)
    for _ in range(100):
        first = generator.randrange(480_000, 500_000)
        end = first + generator.randrange(1, 9600)
        assert counted_hours(first, end, hourly) == dict.fromkeys(range(first, end), 1)
        assert {piece.grain for piece, _sign in hourly.cover(first, end)} <= set(hour_grains)


def test_medians_of_added_and_subtracted_histograms() -> None:
    generator = random.Random(4)
    wide = [generator.randint(0, 3599) for _ in range(301)]
    removed = generator.sample(range(len(wide)), 120)
    kept = [talk for index, talk in enumerate(wide) if index not in removed]
    blobs = [
        histogram.encode(dict(sorted(Counter(wide).items()))),
        histogram.encode(dict(sorted(Counter(wide[index] for index in removed).items()))),
    ]
    medians = histogram.grouped_medians(
        blobs, np.zeros(2, dtype=np.int64), 1, np.array([1, -1], dtype=np.int64)
    )
    assert medians == [statistics.median(kept)]


def test_many_histograms_encode_like_one_at_a_time() -> None:
    generator = random.Random(6)
    groups = [
        {generator.randrange(histogram.BIN_COUNT): generator.randint(1, 140_000) for _ in range(9)}
        for _ in range(12)
    ]
    groups[4] = {}
    owners = np.array([g for g, counts in enumerate(groups) for _ in counts], dtype=np.int64)
    bins = np.array([b for counts in groups for b in counts], dtype=np.int64)
    counts = np.array([c for counts in groups for c in counts.values()], dtype=np.int64)
    shuffled = np.random.default_rng(1).permutation(len(owners))
    summed = histogram.sum_pairs(owners[shuffled], bins[shuffled], counts[shuffled])
    assert histogram.encode_many(*summed, len(groups)) == [
        histogram.encode(counts) for counts in groups
    ]
