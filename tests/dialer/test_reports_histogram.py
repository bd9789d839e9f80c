"""Talk-time histograms and the period grid the rollups are kept on (pure functions)."""

from __future__ import annotations

import random
import statistics

import numpy as np

from dialer.reports import histogram
from dialer.reports.grid import GRAIN_HOURS, Piece, children, parent, pieces


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
    block = Piece(GRAIN_HOURS[-1], 2_550)
    days = children(block)
    assert [day.grain for day in days] == [24] * 8
    assert all(parent(day) == block for day in days)
    assert parent(block) is None
    assert [piece.first_hour for piece in children(Piece(3, 10))] == [30, 31, 32]
