"""The aligned UTC periods rollups are kept for, and how a time range is cut into them.

Grains are in hours: 1, 3, 6, 24 and 192 (eight days). A period of grain G starts at an epoch hour
that is a multiple of G, so each period of a grain is made of whole periods of the grain below.
``pieces(first, end)`` cuts the hours ``[first, end)`` into the fewest aligned periods (greedy:
the biggest period that starts here and fits), so a year is about 46 eight-day periods plus a few
smaller ones at the edges, whatever the time zone of its bounds (whole-hour offsets).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import NamedTuple

GRAIN_HOURS = (1, 3, 6, 24, 192)
SECONDS_PER_HOUR = 3600


class Piece(NamedTuple):
    grain: int
    period: int

    @property
    def first_hour(self) -> int:
        return self.period * self.grain

    @property
    def end_hour(self) -> int:
        return (self.period + 1) * self.grain


def epoch_hour(moment: datetime) -> int:
    """The UTC hour (hours since the Unix epoch) containing an aware datetime."""
    return int(moment.timestamp()) // SECONDS_PER_HOUR


def hour_start(hour: int) -> datetime:
    return datetime.fromtimestamp(hour * SECONDS_PER_HOUR, UTC)


def pieces(first_hour: int, end_hour: int, grains: tuple[int, ...] = GRAIN_HOURS) -> list[Piece]:
    """Aligned periods of ``grains`` (which must include 1) exactly covering the hours
    ``[first_hour, end_hour)``."""
    result: list[Piece] = []
    hour = first_hour
    while hour < end_hour:
        for grain in sorted(grains, reverse=True):
            if hour % grain == 0 and hour + grain <= end_hour:
                result.append(Piece(grain, hour // grain))
                hour += grain
                break
    return result


def parent(piece: Piece) -> Piece | None:
    """The period of the next bigger grain containing ``piece``."""
    index = GRAIN_HOURS.index(piece.grain)
    if index + 1 == len(GRAIN_HOURS):
        return None
    bigger = GRAIN_HOURS[index + 1]
    return Piece(bigger, piece.first_hour // bigger)


def children(piece: Piece) -> list[Piece]:
    """The periods of the next smaller grain making up ``piece``."""
    index = GRAIN_HOURS.index(piece.grain)
    smaller = GRAIN_HOURS[index - 1]
    return [
        Piece(smaller, hour // smaller) for hour in range(piece.first_hour, piece.end_hour, smaller)
    ]
