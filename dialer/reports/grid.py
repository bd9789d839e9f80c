"""The aligned UTC periods rollups are kept for, and how a time range is cut into them.

Grains are in hours: 1, 3, 6, 24, 192 (eight days) and 1536 (64 days). A period of grain G starts
at an epoch hour that is a multiple of G, so each period of a grain is made of whole periods of
the grain below. ``pieces(first, end)`` cuts the hours ``[first, end)`` into aligned periods
(greedy: the biggest period that starts here and fits). ``cover(first, end)`` may also subtract:
a local day in Moscow (21:00 to 21:00 UTC) is its UTC day plus the three hours before it minus
its own last three, three periods instead of five; a year is about 20 periods whatever the time
zone of its bounds (whole-hour offsets).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import NamedTuple

GRAIN_HOURS = (1, 3, 6, 24, 192, 1536)
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
    descending = sorted(grains, reverse=True)
    result: list[Piece] = []
    hour = first_hour
    while hour < end_hour:
        for grain in descending:
            if hour % grain == 0 and hour + grain <= end_hour:
                result.append(Piece(grain, hour // grain))
                hour += grain
                break
    return result


class SignedPiece(NamedTuple):
    """A period added (``sign`` 1) or subtracted (-1) by a cover."""

    piece: Piece
    sign: int


def _relative_cover(
    first_hour: int, end_hour: int, grains: tuple[int, ...]
) -> list[tuple[int, int, int]]:
    """``(grain, first hour, sign)`` of the fewest periods covering ``[first_hour, end_hour)``."""
    best = [(piece.grain, piece.first_hour, 1) for piece in pieces(first_hour, end_hour, grains)]
    length = end_hour - first_hour
    starts = sorted({first_hour - first_hour % grain for grain in grains})
    ends = sorted({end_hour + (-end_hour) % grain for grain in grains})
    for start in starts:
        for end in ends:
            overhang = (first_hour - start) + (end - end_hour)
            if overhang == 0 or overhang >= length:
                continue
            candidate = [
                *((piece.grain, piece.first_hour, 1) for piece in pieces(start, end, grains)),
                *(
                    (piece.grain, piece.first_hour, -1)
                    for bounds in ((start, first_hour), (end_hour, end))
                    for piece in pieces(*bounds, grains)
                ),
            ]
            if len(candidate) < len(best):
                best = candidate
    return best


class Coverer:
    """``cover(first, end)``: the fewest aligned periods of ``grains`` (which must include 1)
    that, added and subtracted, count the hours ``[first, end)`` exactly once: either ``pieces``
    of the range, or ``pieces`` of a wider span on aligned bounds minus the overhangs.

    A span shorter than L hours only ever uses periods of grains below 2L (the overhangs are
    shorter than the range), so covers are remembered per position within the biggest such
    grain: the days of a report share a handful of shapes.
    """

    def __init__(self, grains: tuple[int, ...] = GRAIN_HOURS) -> None:
        self.grains = tuple(sorted(grains))
        self._shapes: dict[tuple[int, int], list[tuple[int, int, int]]] = {}

    def cover(self, first_hour: int, end_hour: int) -> list[SignedPiece]:
        return [
            SignedPiece(Piece(grain, period), sign)
            for grain, period, sign in self.periods(first_hour, end_hour)
        ]

    def periods(self, first_hour: int, end_hour: int) -> list[tuple[int, int, int]]:
        """``cover`` as plain ``(grain, period, sign)`` tuples (cheaper in bulk)."""
        length = end_hour - first_hour
        if length <= 0:
            return []
        alignment = 1
        for grain in self.grains:
            if grain < 2 * length:
                alignment = grain
        base = first_hour - first_hour % alignment
        key = (first_hour - base, length)
        shape = self._shapes.get(key)
        if shape is None:
            usable = tuple(grain for grain in self.grains if grain <= alignment)
            shape = _relative_cover(first_hour - base, end_hour - base, usable)
            self._shapes[key] = shape
        return [(grain, (base + hour) // grain, sign) for grain, hour, sign in shape]


def cover(
    first_hour: int, end_hour: int, grains: tuple[int, ...] = GRAIN_HOURS
) -> list[SignedPiece]:
    """``Coverer(grains).cover(first_hour, end_hour)`` (see ``Coverer``)."""
    return Coverer(grains).cover(first_hour, end_hour)


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
