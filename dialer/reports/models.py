"""Tables of the call-volume pre-aggregation (migration ``0100_call_volume_rollup``).

``CallVolumeRollup`` holds, per aligned UTC period and operator, the counts and sums the daily
report adds up, with a sparse talk-time histogram for medians. Periods are whole multiples of
``grain`` hours since the Unix epoch: ``period`` N of grain G covers the UTC hours
``[N*G, (N+1)*G)``. Grains are listed in ``dialer.reports.grid.GRAIN_HOURS``.

Keys that stand for more than one operator: ``operator_key`` ``ALL_OPERATORS`` (-1) sums every
operator (and calls without one), ``team_key(team_id)`` (-1 - team id) sums the operators who were
members of that team when the row was computed (``dialer.reports.tracking`` marks an operator's
hours dirty when they change teams), ``NO_OPERATOR`` (0) is calls without an operator.
``dimension`` says what ``dimension_value`` means (``Dimension``).

``CallVolumeDirtyHour`` names UTC hours whose calls changed after their rollup rows were made;
``generation`` grows with every change so a refresh that ran concurrently with a change does not
clear the marker (see ``dialer.reports.rollup``).
"""

from __future__ import annotations

from enum import IntEnum

from sqlalchemy import BigInteger, Index, Integer, LargeBinary, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from dialer.models import Base

ALL_OPERATORS = -1
NO_OPERATOR = 0


def team_key(team_id: int) -> int:
    """The ``operator_key`` of a team's rows."""
    return ALL_OPERATORS - team_id


class Dimension(IntEnum):
    TOTAL = 0  # dimension_value ""
    OUTCOME = 1  # dimension_value: the outcome status code, "" = no outcome yet
    FAILURE_CAUSE = 2  # failed/interrupted calls only; value: end_cause, "" = unknown
    UTC_HOUR = 3  # grains of a day and more; value: the UTC hour of day "0".."23"


class CallVolumeRollup(Base):
    __tablename__ = "call_volume_rollup"

    grain: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    dimension: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    operator_key: Mapped[int] = mapped_column(Integer, primary_key=True)
    period: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    dimension_value: Mapped[str] = mapped_column(String(60), primary_key=True)
    calls: Mapped[int] = mapped_column(BigInteger)
    answered: Mapped[int] = mapped_column(BigInteger)
    failed: Mapped[int] = mapped_column(BigInteger)
    # Answered calls whose talk time is known (finished), and the sum of it in milliseconds.
    talk_count: Mapped[int] = mapped_column(BigInteger)
    talk_milliseconds: Mapped[int] = mapped_column(BigInteger)
    ring_count: Mapped[int] = mapped_column(BigInteger)
    ring_milliseconds: Mapped[int] = mapped_column(BigInteger)
    # dialer.reports.histogram encoding; empty for FAILURE_CAUSE rows.
    talk_histogram: Mapped[bytes] = mapped_column(LargeBinary)

    # SQLite keeps the rows in primary-key order (WITHOUT ROWID). Reads name the grain, periods,
    # dimensions, keys and sometimes values: either index checks all of them before a row is
    # read (the second holds the primary key's columns in another order: periods first).
    __table_args__ = (
        Index(
            "ix_call_volume_rollup_grain_period",
            "grain",
            "period",
            "dimension",
            "operator_key",
            "dimension_value",
        ),
        {"sqlite_with_rowid": False},
    )


class CallVolumeDirtyHour(Base):
    __tablename__ = "call_volume_dirty_hours"

    hour: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    generation: Mapped[int] = mapped_column(BigInteger)
