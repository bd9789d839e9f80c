"""Keeping ``call_volume_rollup`` equal to what the calls table says.

Hour rows (grain 1) are computed from the calls of that UTC hour; every bigger period is the sum
of the periods of the grain below it (``dialer.reports.grid``), and days and eight-day periods
also hold per-UTC-hour rows. When calls change, ``dialer.reports.tracking`` marks their hours
dirty; ``refresh_call_volume`` (run by every report before it reads, for the hours it covers)
recomputes the dirty hours from the calls, adds the difference between their new and old rows
to every bigger period containing them (integer sums and histogram counts, so the result is
exactly what a full recomputation gives), then clears each marker only if its ``generation`` is
still the one it read: a change committed while the refresh ran leaves its marker for the next
report. ``rebuild_call_volume`` recomputes a range outright (repairs, bulk loads).

On PostgreSQL refreshes take a transaction-level advisory lock so two reports never rebuild the
same rows at once; SQLite transactions are serialised anyway (``BEGIN IMMEDIATE``).

What is counted (each call once, in the hour its row was created, soft-deleted calls excluded):
``calls``; ``answered`` (reached the answered state); ``failed`` (state failed or interrupted);
talk time of answered calls whose talk time is known, in milliseconds and as a histogram; ring
time of calls that rang.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from typing import cast as cast_type

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    Table,
    and_,
    bindparam,
    cast,
    delete,
    func,
    insert,
    or_,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession

from dialer.models import Call, CallState, User
from dialer.reports import histogram
from dialer.reports.grid import GRAIN_HOURS, SECONDS_PER_HOUR, Piece, children, hour_start, parent
from dialer.reports.models import (
    ALL_OPERATORS,
    NO_OPERATOR,
    CallVolumeDirtyHour,
    CallVolumeRollup,
    Dimension,
    team_key,
)

FAILED_STATES = (CallState.FAILED.value, CallState.INTERRUPTED.value)
# Any fixed number: the advisory lock key of rollup refreshes on PostgreSQL.
REFRESH_LOCK_KEY = 7_310_042_101
INSERT_BATCH = 5000
MEASURE_COUNT = 7
MEASURE_NAMES = (
    "calls",
    "answered",
    "failed",
    "talk_count",
    "talk_milliseconds",
    "ring_count",
    "ring_milliseconds",
)
# Per-UTC-hour rows (Dimension.UTC_HOUR) exist for days and eight-day periods.
SMALLEST_DIMENSION_3_GRAIN = 24

ROLLUP_TABLE = cast_type(Table, CallVolumeRollup.__table__)
# Deletes one rollup row by its primary key (executed with a list of keys).
_DELETE_BY_KEY = delete(ROLLUP_TABLE).where(
    ROLLUP_TABLE.c.grain == bindparam("b_grain"),
    ROLLUP_TABLE.c.dimension == bindparam("b_dimension"),
    ROLLUP_TABLE.c.operator_key == bindparam("b_operator_key"),
    ROLLUP_TABLE.c.period == bindparam("b_period"),
    ROLLUP_TABLE.c.dimension_value == bindparam("b_value"),
)
RollupKey = tuple[int, int, int, str]  # period, dimension, operator_key, dimension_value


@dataclass
class Figures:
    """Counts and sums of one rollup row while it is being built."""

    calls: int = 0
    answered: int = 0
    failed: int = 0
    talk_count: int = 0
    talk_milliseconds: int = 0
    ring_count: int = 0
    ring_milliseconds: int = 0
    talk_bins: Counter[int] = field(default_factory=Counter)
    talk_blobs: list[bytes] = field(default_factory=list)

    def add_row(self, row: CallVolumeRollupRow) -> None:
        self.calls += row.calls
        self.answered += row.answered
        self.failed += row.failed
        self.talk_count += row.talk_count
        self.talk_milliseconds += row.talk_milliseconds
        self.ring_count += row.ring_count
        self.ring_milliseconds += row.ring_milliseconds
        if row.talk_histogram:
            self.talk_blobs.append(row.talk_histogram)

    def stored_histogram(self) -> bytes:
        if self.talk_blobs:
            if self.talk_bins:
                self.talk_blobs.append(histogram.encode(self.talk_bins))
            return histogram.merge(self.talk_blobs)
        return histogram.encode(self.talk_bins)


@dataclass(frozen=True)
class CallVolumeRollupRow:
    """The stored columns of one rollup row (read back to build bigger periods)."""

    period: int
    dimension: int
    operator_key: int
    dimension_value: str
    calls: int
    answered: int
    failed: int
    talk_count: int
    talk_milliseconds: int
    ring_count: int
    ring_milliseconds: int
    talk_histogram: bytes


def epoch_hour_of(column: ColumnElement[datetime], dialect_name: str) -> ColumnElement[int]:
    """SQL for the UTC epoch hour of a timestamp column."""
    if dialect_name == "postgresql":
        return cast(func.floor(func.extract("epoch", column) / SECONDS_PER_HOUR), Integer)
    return cast(cast(func.strftime("%s", column), Integer) / SECONDS_PER_HOUR, Integer)


def _milliseconds(seconds: float) -> int:
    return round(seconds * 1000)


def _hour_runs(hours: Sequence[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for hour in sorted(hours):
        if runs and runs[-1][1] == hour:
            runs[-1] = (runs[-1][0], hour + 1)
        else:
            runs.append((hour, hour + 1))
    return runs


async def _team_keys(session: AsyncSession) -> dict[int, int]:
    """The team rows' key of every operator who is in a team."""
    result = await session.execute(select(User.id, User.team_id).where(User.team_id.is_not(None)))
    return {user_id: team_key(team_id) for user_id, team_id in result.all() if team_id is not None}


async def _hour_figures(session: AsyncSession, hours: Sequence[int]) -> dict[RollupKey, Figures]:
    """Grain-1 figures of ``hours`` computed from the calls table."""
    dialect_name = session.get_bind().dialect.name
    teams = await _team_keys(session)
    figures: dict[RollupKey, Figures] = defaultdict(Figures)
    hour_column = epoch_hour_of(Call.__table__.c.created_at, dialect_name)
    for first, end in _hour_runs(hours):
        statement = select(
            hour_column,
            Call.operator_id,
            Call.state,
            Call.answered_at.is_not(None),
            Call.talk_seconds,
            Call.ring_seconds,
            Call.end_cause,
            Call.outcome,
        ).where(
            Call.created_at >= hour_start(first),
            Call.created_at < hour_start(end),
            Call.deleted_at.is_(None),
        )
        result = await session.stream(statement.execution_options(yield_per=20_000))
        async for partition in result.partitions():
            for hour, operator_id, state, answered, talk, ring, cause, outcome in partition:
                operator_keys = [operator_id or NO_OPERATOR, ALL_OPERATORS]
                if operator_id in teams:
                    operator_keys.append(teams[operator_id])
                _count_call(
                    figures, hour, operator_keys, state, answered, talk, ring, cause, outcome
                )
    return figures


def _count_call(
    figures: dict[RollupKey, Figures],
    hour: int,
    operator_keys: Sequence[int],
    state: str,
    answered: bool,
    talk: float | None,
    ring: float | None,
    cause: str | None,
    outcome: str | None,
) -> None:
    failed = state in FAILED_STATES
    talk_known = bool(answered) and talk is not None
    talk_bin = histogram.talk_bin(talk) if talk_known and talk is not None else None
    keys: list[tuple[int, str]] = [(Dimension.TOTAL, ""), (Dimension.OUTCOME, outcome or "")]
    for operator_key in operator_keys:
        for dimension, value in keys:
            entry = figures[(hour, dimension, operator_key, value)]
            _add_call(entry, answered, failed, talk, talk_bin, ring)
        if failed:
            entry = figures[(hour, Dimension.FAILURE_CAUSE, operator_key, cause or "")]
            entry.calls += 1
            entry.failed += 1


def _add_call(
    entry: Figures,
    answered: bool,
    failed: bool,
    talk: float | None,
    talk_bin: int | None,
    ring: float | None,
) -> None:
    entry.calls += 1
    if answered:
        entry.answered += 1
    if failed:
        entry.failed += 1
    if talk_bin is not None and talk is not None:
        entry.talk_count += 1
        entry.talk_milliseconds += _milliseconds(talk)
        entry.talk_bins[talk_bin] += 1
    if ring is not None:
        entry.ring_count += 1
        entry.ring_milliseconds += _milliseconds(ring)


async def _read_rows(
    session: AsyncSession,
    grain: int,
    periods: Iterable[int],
    dimension: int | None = None,
    operator_keys: Iterable[int] | None = None,
) -> list[CallVolumeRollupRow]:
    table = CallVolumeRollup
    wanted = sorted(set(periods))
    keys = None if operator_keys is None else sorted(set(operator_keys))
    rows: list[CallVolumeRollupRow] = []
    for start in range(0, len(wanted), INSERT_BATCH):
        chunk = wanted[start : start + INSERT_BATCH]
        result = await session.execute(
            select(
                table.period,
                table.dimension,
                table.operator_key,
                table.dimension_value,
                table.calls,
                table.answered,
                table.failed,
                table.talk_count,
                table.talk_milliseconds,
                table.ring_count,
                table.ring_milliseconds,
                table.talk_histogram,
            ).where(
                table.grain == grain,
                table.period.in_(chunk),
                *(() if dimension is None else (table.dimension == dimension,)),
                *(() if keys is None else (table.operator_key.in_(keys),)),
            )
        )
        rows.extend(CallVolumeRollupRow(*row) for row in result.all())  # type: ignore[call-arg]
    return rows


async def _replace_rows(
    session: AsyncSession, grain: int, periods: Iterable[int], figures: dict[RollupKey, Figures]
) -> None:
    wanted = sorted(set(periods))
    for start in range(0, len(wanted), INSERT_BATCH):
        chunk = wanted[start : start + INSERT_BATCH]
        await session.execute(
            delete(CallVolumeRollup).where(
                CallVolumeRollup.grain == grain, CallVolumeRollup.period.in_(chunk)
            )
        )
    values = [
        {
            "grain": grain,
            "period": period,
            "dimension": dimension,
            "operator_key": operator_key,
            "dimension_value": value,
            "calls": entry.calls,
            "answered": entry.answered,
            "failed": entry.failed,
            "talk_count": entry.talk_count,
            "talk_milliseconds": entry.talk_milliseconds,
            "ring_count": entry.ring_count,
            "ring_milliseconds": entry.ring_milliseconds,
            "talk_histogram": entry.stored_histogram(),
        }
        for (period, dimension, operator_key, value), entry in figures.items()
    ]
    for start in range(0, len(values), INSERT_BATCH):
        await session.execute(insert(ROLLUP_TABLE), values[start : start + INSERT_BATCH])


def _parent_figures(
    grain: int,
    child_grain: int,
    rows: Iterable[CallVolumeRollupRow],
    hour_rows: Iterable[CallVolumeRollupRow] = (),
) -> dict[RollupKey, Figures]:
    """Rows of ``grain`` summed from the rows of the grain below; ``hour_rows`` (totals of
    single hours) add the per-UTC-hour rows of a day."""
    figures: dict[RollupKey, Figures] = defaultdict(Figures)
    for row in rows:
        period = row.period * child_grain // grain
        figures[(period, row.dimension, row.operator_key, row.dimension_value)].add_row(row)
    for row in hour_rows:
        if row.dimension == Dimension.TOTAL:
            period = row.period // grain
            hour_of_day = str(row.period % 24)
            figures[(period, Dimension.UTC_HOUR, row.operator_key, hour_of_day)].add_row(row)
    return figures


async def recompute_hours(session: AsyncSession, hours: Iterable[int]) -> None:
    """Recompute the rollup rows of ``hours`` and of every period containing them."""
    affected = sorted(set(hours))
    if not affected:
        return
    await _replace_rows(session, 1, affected, await _hour_figures(session, affected))
    pieces = {Piece(1, hour) for hour in affected}
    for index in range(1, len(GRAIN_HOURS)):
        grain, child_grain = GRAIN_HOURS[index], GRAIN_HOURS[index - 1]
        pieces = {above for piece in pieces if (above := parent(piece)) is not None}
        child_periods = [child.period for piece in pieces for child in children(piece)]
        rows = await _read_rows(session, child_grain, child_periods)
        hour_rows: list[CallVolumeRollupRow] = []
        if grain == SMALLEST_DIMENSION_3_GRAIN:
            day_hours = [
                hour for piece in pieces for hour in range(piece.first_hour, piece.end_hour)
            ]
            hour_rows = await _read_rows(session, 1, day_hours, Dimension.TOTAL)
        figures = _parent_figures(grain, child_grain, rows, hour_rows)
        await _replace_rows(session, grain, (piece.period for piece in pieces), figures)


@dataclass
class Delta:
    """The change of one rollup row: measures and talk-histogram counts to add (may be < 0)."""

    measures: list[int] = field(default_factory=lambda: [0] * MEASURE_COUNT)
    bins: Counter[int] = field(default_factory=Counter)

    def add(self, measures: Sequence[int], bins: Mapping[int, int], sign: int) -> None:
        for index, value in enumerate(measures):
            self.measures[index] += sign * value
        for talk_bin, count in bins.items():
            self.bins[talk_bin] += sign * count

    def add_delta(self, other: Delta) -> None:
        self.add(other.measures, other.bins, 1)

    def is_zero(self) -> bool:
        return not any(self.measures) and not any(self.bins.values())


def _row_measures(row: CallVolumeRollupRow) -> list[int]:
    return [
        row.calls,
        row.answered,
        row.failed,
        row.talk_count,
        row.talk_milliseconds,
        row.ring_count,
        row.ring_milliseconds,
    ]


def _figures_measures(entry: Figures) -> list[int]:
    return [
        entry.calls,
        entry.answered,
        entry.failed,
        entry.talk_count,
        entry.talk_milliseconds,
        entry.ring_count,
        entry.ring_milliseconds,
    ]


def _stored_measures(row: Any) -> list[int]:
    return [int(getattr(row, name)) for name in MEASURE_NAMES]


def _row_values(grain: int, key: RollupKey, total: Delta) -> dict[str, object]:
    period, dimension, operator_key, value = key
    return {
        "grain": grain,
        "period": period,
        "dimension": dimension,
        "operator_key": operator_key,
        "dimension_value": value,
        **dict(zip(MEASURE_NAMES, total.measures, strict=True)),
        "talk_histogram": histogram.encode(
            {talk_bin: count for talk_bin, count in total.bins.items() if count > 0}
        ),
    }


def _key(row: CallVolumeRollupRow) -> RollupKey:
    return (row.period, row.dimension, row.operator_key, row.dimension_value)


async def _apply_deltas(session: AsyncSession, grain: int, deltas: dict[RollupKey, Delta]) -> None:
    """Add ``deltas`` to the rows of ``grain`` (rows reaching zero calls are removed)."""
    if not deltas:
        return
    current = {
        _key(row): row
        for row in await _read_rows(
            session, grain, {key[0] for key in deltas}, operator_keys={key[2] for key in deltas}
        )
        if _key(row) in deltas
    }
    if current:
        await session.execute(
            _DELETE_BY_KEY,
            [
                {
                    "b_grain": grain,
                    "b_period": period,
                    "b_dimension": dimension,
                    "b_operator_key": operator_key,
                    "b_value": value,
                }
                for period, dimension, operator_key, value in current
            ],
        )
    values: list[dict[str, object]] = []
    for key, delta in deltas.items():
        total = Delta()
        old = current.get(key)
        if old is not None:
            total.add(_row_measures(old), histogram.decode(old.talk_histogram), 1)
        total.add_delta(delta)
        if total.measures[0] > 0:
            values.append(_row_values(grain, key, total))
    for start in range(0, len(values), INSERT_BATCH):
        await session.execute(insert(ROLLUP_TABLE), values[start : start + INSERT_BATCH])


async def propagate_hours(session: AsyncSession, hours: Iterable[int]) -> None:
    """Recompute the hour rows of ``hours`` from the calls and add the change to every bigger
    period containing them."""
    affected = sorted(set(hours))
    if not affected:
        return
    old_rows = await _read_rows(session, 1, affected)
    new_figures = await _hour_figures(session, affected)
    hour_deltas: dict[RollupKey, Delta] = defaultdict(Delta)
    for row in old_rows:
        hour_deltas[_key(row)].add(_row_measures(row), histogram.decode(row.talk_histogram), -1)
    for key, entry in new_figures.items():
        hour_deltas[key].add(_figures_measures(entry), entry.talk_bins, 1)
    changed = {key: delta for key, delta in hour_deltas.items() if not delta.is_zero()}
    if not changed:
        return
    await _replace_rows(session, 1, affected, new_figures)
    level = changed
    for index in range(1, len(GRAIN_HOURS)):
        grain, child_grain = GRAIN_HOURS[index], GRAIN_HOURS[index - 1]
        above: dict[RollupKey, Delta] = defaultdict(Delta)
        for (period, dimension, operator_key, value), delta in level.items():
            above[(period * child_grain // grain, dimension, operator_key, value)].add_delta(delta)
        if grain == SMALLEST_DIMENSION_3_GRAIN:
            for (hour, dimension, operator_key, _value), delta in changed.items():
                if dimension == Dimension.TOTAL:
                    key = (hour // grain, Dimension.UTC_HOUR, operator_key, str(hour % 24))
                    above[key].add_delta(delta)
        level = {key: delta for key, delta in above.items() if not delta.is_zero()}
        await _apply_deltas(session, grain, level)


async def _dirty_hours(
    session: AsyncSession, first_hour: int, end_hour: int
) -> list[tuple[int, int]]:
    result = await session.execute(
        select(CallVolumeDirtyHour.hour, CallVolumeDirtyHour.generation).where(
            CallVolumeDirtyHour.hour >= first_hour, CallVolumeDirtyHour.hour < end_hour
        )
    )
    return [(hour, generation) for hour, generation in result]


async def _clear_markers(session: AsyncSession, markers: Sequence[tuple[int, int]]) -> None:
    """Delete the markers still at the generation that was read (a newer change keeps its)."""
    for start in range(0, len(markers), INSERT_BATCH):
        chunk = markers[start : start + INSERT_BATCH]
        await session.execute(
            delete(CallVolumeDirtyHour).where(
                or_(
                    *(
                        and_(
                            CallVolumeDirtyHour.hour == hour,
                            CallVolumeDirtyHour.generation == generation,
                        )
                        for hour, generation in chunk
                    )
                )
            )
        )


async def refresh_call_volume(session: AsyncSession, first_hour: int, end_hour: int) -> int:
    """Bring the rollups of the UTC hours ``[first_hour, end_hour)`` up to date (in the caller's
    transaction; the caller commits). Returns how many dirty hours were recomputed.

    Hour rows are recomputed from the calls; bigger periods get the difference between the new
    and the old hour rows added (``propagate_hours``), which touches only the keys that changed.
    """
    dirty = await _dirty_hours(session, first_hour, end_hour)
    if not dirty:
        return 0
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": REFRESH_LOCK_KEY})
        dirty = await _dirty_hours(session, first_hour, end_hour)
        if not dirty:
            return 0
    await propagate_hours(session, [hour for hour, _ in dirty])
    await _clear_markers(session, dirty)
    return len(dirty)


async def rebuild_call_volume(session: AsyncSession, first_hour: int, end_hour: int) -> None:
    """Recompute every rollup row of ``[first_hour, end_hour)`` from the calls table, dirty or
    not (after bulk writes that bypassed the ORM, or to repair). Keep the range to days or
    weeks per transaction: a year of calls is held in memory at once otherwise."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": REFRESH_LOCK_KEY})
    dirty = await _dirty_hours(session, first_hour, end_hour)
    await recompute_hours(session, range(first_hour, end_hour))
    await _clear_markers(session, dirty)


def move_operator_rows(
    connection: Connection, operator_id: int, old_team: int | None, new_team: int | None
) -> None:
    """Move an operator's figures from one team's rows to another's, at every grain, when the
    operator changes team (synchronous: runs inside the ORM flush that changes the user).

    The operator's own rows are subtracted from the old team's rows and added to the new
    team's, so team rows stay equal to the sum of their current members' rows without
    recomputing any hour from the calls.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": REFRESH_LOCK_KEY})
    table = ROLLUP_TABLE.c
    own = connection.execute(select(ROLLUP_TABLE).where(table.operator_key == operator_id)).all()
    if not own:
        return
    for team_id, sign in ((old_team, -1), (new_team, 1)):
        if team_id is None:
            continue
        key = team_key(team_id)
        current = {
            (row.grain, row.dimension, row.period, row.dimension_value): row
            for row in connection.execute(select(ROLLUP_TABLE).where(table.operator_key == key))
        }
        replaced: list[dict[str, object]] = []
        values: list[dict[str, object]] = []
        for row in own:
            place = (row.grain, row.dimension, row.period, row.dimension_value)
            total = Delta()
            base = current.get(place)
            if base is not None:
                total.add(_stored_measures(base), histogram.decode(base.talk_histogram), 1)
                replaced.append(
                    {
                        "b_grain": row.grain,
                        "b_dimension": row.dimension,
                        "b_operator_key": key,
                        "b_period": row.period,
                        "b_value": row.dimension_value,
                    }
                )
            total.add(_stored_measures(row), histogram.decode(row.talk_histogram), sign)
            if total.measures[0] > 0:
                values.append(
                    _row_values(
                        row.grain, (row.period, row.dimension, key, row.dimension_value), total
                    )
                )
        if replaced:
            connection.execute(_DELETE_BY_KEY, replaced)
        for start in range(0, len(values), INSERT_BATCH):
            connection.execute(insert(ROLLUP_TABLE), values[start : start + INSERT_BATCH])
