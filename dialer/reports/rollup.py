"""Keeping ``call_volume_rollup`` equal to what the calls table says.

Hour rows (grain 1) are computed from the calls of that UTC hour; every bigger period is the sum
of the periods of the grain below it (``dialer.reports.grid``), and days and longer periods also
hold per-UTC-hour rows. When calls change, ``dialer.reports.tracking`` marks their hours dirty;
``refresh_call_volume`` (run by every report before it reads, for the hours it covers, and by the
background ``dialer.reports.refresher``) recomputes the dirty hours from the calls, adds the
difference between their new and old rows to every bigger period containing them (integer sums
and histogram counts, so the result is exactly what a full recomputation gives), then clears each
marker only if its ``generation`` is still the one it read: a change committed while the refresh
ran leaves its marker for the next refresh. ``rebuild_call_volume`` recomputes a range outright
(repairs, bulk loads).

On PostgreSQL refreshes take a transaction-level advisory lock so two refreshes never rebuild the
same rows at once; SQLite transactions are serialised anyway (``BEGIN IMMEDIATE``).

What is counted (each call once, in the hour its row was created, soft-deleted calls excluded):
``calls``; ``answered`` (reached the answered state); ``failed`` (state failed or interrupted);
talk time of answered calls whose talk time is known, in milliseconds and as a histogram; ring
time of calls that rang.

The arithmetic works on many rows at once (``RowSet``: rollup rows as numpy columns, their
histograms as ``(row, bin, count)`` pairs); the database work is synchronous code run on the
session's connection (``AsyncSession.run_sync``), so the ORM flush listener that moves an
operator's figures between teams uses the same functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from typing import cast as cast_type

import numpy as np
import numpy.typing as npt
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
from sqlalchemy.orm import Session

from dialer.models import Call, CallState, User
from dialer.reports import histogram
from dialer.reports.grid import GRAIN_HOURS, SECONDS_PER_HOUR, hour_start
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
# Rows per statement when writing or deleting by key, periods per IN list when reading.
STATEMENT_BATCH = 5000
CALLS_FETCH_BATCH = 50_000
MEASURE_NAMES = (
    "calls",
    "answered",
    "failed",
    "talk_count",
    "talk_milliseconds",
    "ring_count",
    "ring_milliseconds",
)
MEASURE_COUNT = len(MEASURE_NAMES)
# What a call contributes to the measures, read after its time by the rollup refresh and by the
# call-by-call report (``dialer.reports.daily``), in this order: operator, state, answered,
# talk seconds, ring seconds, end cause, outcome.
CALL_MEASURE_COLUMNS = (
    Call.operator_id,
    Call.state,
    Call.answered_at.is_not(None),
    Call.talk_seconds,
    Call.ring_seconds,
    Call.end_cause,
    Call.outcome,
)
# Per-UTC-hour rows (Dimension.UTC_HOUR) exist for days and longer periods.
SMALLEST_DIMENSION_3_GRAIN = 24
HOURS_PER_DAY = 24
# Dirty hours recomputed per step of a refresh (bounds the calls held in memory at once).
REFRESH_HOURS_PER_STEP = 48
# Bounds of every hour a call can be in (refreshing everything).
EARLIEST_HOUR = -(2**40)
LATEST_HOUR = 2**40

ROLLUP_TABLE = cast_type(Table, CallVolumeRollup.__table__)
ROLLUP_COLUMN_ORDER = (
    "grain",
    "dimension",
    "operator_key",
    "period",
    "dimension_value",
    *MEASURE_NAMES,
    "talk_histogram",
)
# Deletes one rollup row by its primary key (executed with a list of keys).
_DELETE_BY_KEY = delete(ROLLUP_TABLE).where(
    ROLLUP_TABLE.c.grain == bindparam("b_grain"),
    ROLLUP_TABLE.c.dimension == bindparam("b_dimension"),
    ROLLUP_TABLE.c.operator_key == bindparam("b_operator_key"),
    ROLLUP_TABLE.c.period == bindparam("b_period"),
    ROLLUP_TABLE.c.dimension_value == bindparam("b_value"),
)
RollupKey = tuple[int, int, int, str]  # period, dimension, operator_key, dimension_value

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def _ints(values: Iterable[int]) -> IntArray:
    return np.fromiter(values, np.int64)


@dataclass(frozen=True)
class RowSet:
    """Rollup rows of one grain as columns: row ``i`` is ``(periods[i], dimensions[i],
    operator_keys[i], vocabulary[value_codes[i]])`` with ``measures[i]`` (the seven counts and
    sums of ``MEASURE_NAMES``); its talk histogram is the pairs whose ``pair_rows`` is ``i``."""

    periods: IntArray
    dimensions: IntArray
    operator_keys: IntArray
    value_codes: IntArray
    vocabulary: tuple[str, ...]
    measures: IntArray
    pair_rows: IntArray
    pair_bins: IntArray
    pair_counts: IntArray

    def __len__(self) -> int:
        return len(self.periods)

    @staticmethod
    def empty() -> RowSet:
        none = np.zeros(0, dtype=np.int64)
        return RowSet(
            none, none, none, none, (), np.zeros((0, MEASURE_COUNT), np.int64), none, none, none
        )

    def keys(self) -> list[RollupKey]:
        vocabulary = self.vocabulary
        return [
            (period, dimension, operator_key, vocabulary[code])
            for period, dimension, operator_key, code in zip(
                self.periods.tolist(),
                self.dimensions.tolist(),
                self.operator_keys.tolist(),
                self.value_codes.tolist(),
                strict=True,
            )
        ]

    def take(self, mask: BoolArray) -> RowSet:
        """The rows where ``mask`` is true (pairs follow their rows)."""
        new_index = np.cumsum(mask) - 1
        kept_pairs = mask[self.pair_rows]
        return RowSet(
            self.periods[mask],
            self.dimensions[mask],
            self.operator_keys[mask],
            self.value_codes[mask],
            self.vocabulary,
            self.measures[mask],
            new_index[self.pair_rows[kept_pairs]],
            self.pair_bins[kept_pairs],
            self.pair_counts[kept_pairs],
        )

    def with_keys(self, keys: set[RollupKey]) -> RowSet:
        """The rows whose key is in ``keys``."""
        return self.take(np.fromiter((key in keys for key in self.keys()), np.bool_, len(self)))

    def histograms(self) -> list[bytes]:
        owners, bins, counts = histogram.sum_pairs(self.pair_rows, self.pair_bins, self.pair_counts)
        return histogram.encode_many(owners, bins, counts, len(self))

    def relabeled(self, operator_key: int) -> RowSet:
        """The same rows under another operator key."""
        return RowSet(
            self.periods,
            self.dimensions,
            np.full(len(self), operator_key, dtype=np.int64),
            self.value_codes,
            self.vocabulary,
            self.measures,
            self.pair_rows,
            self.pair_bins,
            self.pair_counts,
        )


def rows_from_records(records: Sequence[Sequence[Any]]) -> RowSet:
    """A RowSet of ``(period, dimension, operator_key, dimension_value, *measures, histogram)``
    tuples as read from the table."""
    if not records:
        return RowSet.empty()
    columns = list(zip(*records, strict=True))
    vocabulary: dict[str, int] = {}
    codes = _ints(vocabulary.setdefault(value, len(vocabulary)) for value in columns[3])
    measures = np.array(list(zip(*columns[4 : 4 + MEASURE_COUNT], strict=True)), dtype=np.int64)
    owners, bins, counts = histogram.decode_many(columns[4 + MEASURE_COUNT])
    return RowSet(
        _ints(columns[0]),
        _ints(columns[1]),
        _ints(columns[2]),
        codes,
        tuple(vocabulary),
        measures.reshape(-1, MEASURE_COUNT),
        owners,
        bins,
        counts,
    )


def combine(parts: Sequence[tuple[RowSet, int, int]]) -> RowSet:
    """Rows of the same key added up: each part is ``(rows, sign, divisor)``, its periods
    divided by ``divisor`` (a child grain's rows summed into the parent grain's periods) and
    its figures multiplied by ``sign``. Rows whose figures all come to zero are dropped."""
    parts = [part for part in parts if len(part[0])]
    if not parts:
        return RowSet.empty()
    vocabulary: dict[str, int] = {}
    codes: list[IntArray] = []
    for rows, _sign, _divisor in parts:
        mapping = _ints(vocabulary.setdefault(value, len(vocabulary)) for value in rows.vocabulary)
        codes.append(mapping[rows.value_codes] if len(rows.vocabulary) else rows.value_codes)
    offsets = np.cumsum([0, *(len(rows) for rows, _sign, _divisor in parts)])
    periods = np.concatenate([rows.periods // divisor for rows, _sign, divisor in parts])
    dimensions = np.concatenate([rows.dimensions for rows, _sign, _divisor in parts])
    operator_keys = np.concatenate([rows.operator_keys for rows, _sign, _divisor in parts])
    value_codes = np.concatenate(codes)
    measures = np.concatenate([rows.measures * sign for rows, sign, _divisor in parts])
    pair_rows = np.concatenate(
        [rows.pair_rows + offsets[index] for index, (rows, _s, _d) in enumerate(parts)]
    )
    pair_bins = np.concatenate([rows.pair_bins for rows, _sign, _divisor in parts])
    pair_counts = np.concatenate([rows.pair_counts * sign for rows, sign, _divisor in parts])

    # One integer per key, then rows sorted and added up by it.
    key_values, key_ranks = np.unique(operator_keys, return_inverse=True)
    first_period = int(periods.min())
    width = len(key_values) * max(1, len(vocabulary))
    combined = ((periods - first_period) * 4 + dimensions) * width + (
        key_ranks.reshape(-1) * max(1, len(vocabulary)) + value_codes
    )
    order = np.argsort(combined, kind="stable")
    ordered = combined[order]
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    group_of_sorted = np.cumsum(np.concatenate(([True], ordered[1:] != ordered[:-1]))) - 1
    group_of_row = np.empty(len(combined), dtype=np.int64)
    group_of_row[order] = group_of_sorted
    sums = np.add.reduceat(measures[order], starts, axis=0)
    owners, bins, counts = histogram.sum_pairs(group_of_row[pair_rows], pair_bins, pair_counts)
    has_pairs = np.bincount(owners, minlength=len(starts)) > 0
    kept = sums.any(axis=1) | has_pairs
    new_index = np.cumsum(kept) - 1
    first_rows = order[starts]
    return RowSet(
        periods[first_rows][kept],
        dimensions[first_rows][kept],
        operator_keys[first_rows][kept],
        value_codes[first_rows][kept],
        tuple(vocabulary),
        sums[kept],
        new_index[owners],
        bins,
        counts,
    )


# Reading and writing rows --------------------------------------------------------------------


def _runs(periods: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted distinct periods as inclusive ``(first, last)`` runs of consecutive ones."""
    runs: list[tuple[int, int]] = []
    for period in sorted(set(periods)):
        if runs and runs[-1][1] == period - 1:
            runs[-1] = (runs[-1][0], period)
        else:
            runs.append((period, period))
    return runs


def _stored_row_columns() -> tuple[Any, ...]:
    """A stored rollup row as the readers take it: its key, its measures, its histogram."""
    table = ROLLUP_TABLE.c
    return (
        table.period,
        table.dimension,
        table.operator_key,
        table.dimension_value,
        *(table[name] for name in MEASURE_NAMES),
        table.talk_histogram,
    )


def read_rows(
    connection: Connection,
    grain: int,
    periods: Iterable[int],
    dimensions: Iterable[int] | None = None,
    operator_keys: Iterable[int] | None = None,
) -> RowSet:
    """The stored rows of ``grain`` in ``periods`` (optionally some dimensions, some keys)."""
    table = ROLLUP_TABLE.c
    runs = _runs(periods)
    keys = None if operator_keys is None else sorted(set(operator_keys))
    wanted_dimensions = None if dimensions is None else sorted(set(dimensions))
    records: list[Sequence[Any]] = []
    for start in range(0, len(runs), STATEMENT_BATCH // 2):
        chunk = runs[start : start + STATEMENT_BATCH // 2]
        statement = select(*_stored_row_columns()).where(
            table.grain == grain,
            or_(*(table.period.between(first, last) for first, last in chunk)),
            *(() if wanted_dimensions is None else (table.dimension.in_(wanted_dimensions),)),
            *(() if keys is None else (table.operator_key.in_(keys),)),
        )
        records.extend(connection.execute(statement).all())
    return rows_from_records(records)


def insert_rows(connection: Connection, grain: int, rows: RowSet) -> None:
    """Store ``rows`` (keys must not exist yet). Rows left without calls are not stored.

    The rows go straight to the driver's executemany in the compiled statement's parameter
    order (SQLAlchemy's per-row parameter processing costs more than the insert itself)."""
    if not len(rows):
        return
    if int(rows.measures[:, 0].min()) < 0 or int(rows.pair_counts.min(initial=0)) < 0:
        raise ValueError("rollup figures went negative: the rollups do not match the calls")
    stored = rows.take(rows.measures[:, 0] > 0)
    vocabulary = stored.vocabulary
    records = [
        (grain, dimension, operator_key, period, vocabulary[code], *measures, blob)
        for dimension, operator_key, period, code, measures, blob in zip(
            stored.dimensions.tolist(),
            stored.operator_keys.tolist(),
            stored.periods.tolist(),
            stored.value_codes.tolist(),
            stored.measures.tolist(),
            stored.histograms(),
            strict=True,
        )
    ]
    compiled = insert(ROLLUP_TABLE).compile(
        dialect=connection.dialect, column_keys=list(ROLLUP_COLUMN_ORDER)
    )
    order = compiled.positiontup
    for start in range(0, len(records), STATEMENT_BATCH):
        chunk = records[start : start + STATEMENT_BATCH]
        if order is None:
            connection.execute(
                insert(ROLLUP_TABLE),
                [dict(zip(ROLLUP_COLUMN_ORDER, record, strict=True)) for record in chunk],
            )
            continue
        if list(order) != list(ROLLUP_COLUMN_ORDER):
            places = [ROLLUP_COLUMN_ORDER.index(name) for name in order]
            chunk = [tuple(record[place] for place in places) for record in chunk]
        connection.exec_driver_sql(compiled.string, chunk)


def delete_keys(connection: Connection, grain: int, keys: Iterable[RollupKey]) -> None:
    parameters = [
        {
            "b_grain": grain,
            "b_period": period,
            "b_dimension": dimension,
            "b_operator_key": operator_key,
            "b_value": value,
        }
        for period, dimension, operator_key, value in keys
    ]
    for start in range(0, len(parameters), STATEMENT_BATCH):
        connection.execute(_DELETE_BY_KEY, parameters[start : start + STATEMENT_BATCH])


def delete_periods(connection: Connection, grain: int, periods: Iterable[int]) -> None:
    table = ROLLUP_TABLE.c
    for first, last in _runs(periods):
        connection.execute(
            delete(ROLLUP_TABLE).where(table.grain == grain, table.period.between(first, last))
        )


def add_rows(connection: Connection, grain: int, change: RowSet) -> None:
    """Add ``change`` (figures may be negative) to the stored rows of ``grain`` with the same
    keys; rows left without calls are removed."""
    if not len(change):
        return
    wanted = set(change.keys())
    current = read_rows(
        connection,
        grain,
        change.periods.tolist(),
        change.dimensions.tolist(),
        change.operator_keys.tolist(),
    ).with_keys(wanted)
    delete_keys(connection, grain, current.keys())
    insert_rows(connection, grain, combine([(current, 1, 1), (change, 1, 1)]))


# Hour rows from the calls table ------------------------------------------------------------------


def epoch_hour_of(column: ColumnElement[datetime], dialect_name: str) -> ColumnElement[int]:
    """SQL for the UTC epoch hour of a timestamp column."""
    if dialect_name == "postgresql":
        return cast(func.floor(func.extract("epoch", column) / SECONDS_PER_HOUR), Integer)
    return cast(cast(func.strftime("%s", column), Integer) / SECONDS_PER_HOUR, Integer)


def team_keys(connection: Connection) -> dict[int, int]:
    """The team rows' key of every operator who is in a team."""
    result = connection.execute(select(User.id, User.team_id).where(User.team_id.is_not(None)))
    return {user_id: team_key(team_id) for user_id, team_id in result.all() if team_id is not None}


def _milliseconds(seconds: FloatArray) -> IntArray:
    """Seconds to whole milliseconds, rounding half to even like ``round``."""
    return np.rint(seconds * 1000).astype(np.int64)


@dataclass(frozen=True)
class _CallColumns:
    hours: IntArray
    operators: IntArray
    failed: BoolArray
    answered: BoolArray
    talk: FloatArray  # NaN: unknown
    ring: FloatArray  # NaN: did not ring
    outcome_codes: IntArray
    cause_codes: IntArray


def _fetch_calls(
    connection: Connection, runs: Sequence[tuple[int, int]], vocabulary: dict[str, int]
) -> _CallColumns:
    """The calls created in the hours ``[first, end)`` of each run, as columns."""
    hour_column = epoch_hour_of(Call.__table__.c.created_at, connection.dialect.name)
    hours: list[IntArray] = []
    operators: list[IntArray] = []
    failed: list[BoolArray] = []
    answered: list[BoolArray] = []
    talk: list[FloatArray] = []
    ring: list[FloatArray] = []
    outcomes: list[IntArray] = []
    causes: list[IntArray] = []
    nan = float("nan")
    for first, end in runs:
        statement = select(hour_column, *CALL_MEASURE_COLUMNS).where(
            Call.created_at >= hour_start(first),
            Call.created_at < hour_start(end),
            Call.deleted_at.is_(None),
        )
        result = connection.execute(statement.execution_options(yield_per=CALLS_FETCH_BATCH))
        for partition in result.partitions():
            if not partition:
                continue
            count = len(partition)
            column = list(zip(*partition, strict=True))
            hours.append(np.fromiter(column[0], np.int64, count))
            operators.append(
                np.fromiter((value or NO_OPERATOR for value in column[1]), np.int64, count)
            )
            failed.append(
                np.fromiter((state in FAILED_STATES for state in column[2]), np.bool_, count)
            )
            answered.append(np.fromiter(column[3], np.bool_, count))
            talk.append(
                np.fromiter((nan if value is None else value for value in column[4]), float, count)
            )
            ring.append(
                np.fromiter((nan if value is None else value for value in column[5]), float, count)
            )
            causes.append(
                _ints(vocabulary.setdefault(value or "", len(vocabulary)) for value in column[6])
            )
            outcomes.append(
                _ints(vocabulary.setdefault(value or "", len(vocabulary)) for value in column[7])
            )

    def joined(arrays: Sequence[npt.NDArray[Any]], dtype: type) -> npt.NDArray[Any]:
        return np.concatenate(arrays) if arrays else np.zeros(0, dtype=dtype)

    return _CallColumns(
        joined(hours, np.int64),
        joined(operators, np.int64),
        joined(failed, np.bool_),
        joined(answered, np.bool_),
        joined(talk, np.float64),
        joined(ring, np.float64),
        joined(outcomes, np.int64),
        joined(causes, np.int64),
    )


def hour_rows_from_calls(
    connection: Connection, runs: Sequence[tuple[int, int]], teams: dict[int, int]
) -> RowSet:
    """Grain-1 rows of the hours ``[first, end)`` of each run, counted from the calls table."""
    vocabulary: dict[str, int] = {"": 0}
    calls = _fetch_calls(connection, runs, vocabulary)
    count = len(calls.hours)
    if count == 0:
        return RowSet.empty()
    talk_known = calls.answered & ~np.isnan(calls.talk)
    ring_known = ~np.isnan(calls.ring)
    per_call = np.zeros((count, MEASURE_COUNT), dtype=np.int64)
    per_call[:, 0] = 1
    per_call[:, 1] = calls.answered
    per_call[:, 2] = calls.failed
    per_call[:, 3] = talk_known
    per_call[talk_known, 4] = _milliseconds(calls.talk[talk_known])
    per_call[:, 5] = ring_known
    per_call[ring_known, 6] = _milliseconds(calls.ring[ring_known])
    failure = np.zeros((count, MEASURE_COUNT), dtype=np.int64)
    failure[:, 0] = 1
    failure[:, 2] = 1
    talking = np.flatnonzero(talk_known)
    bins = histogram.talk_bins(calls.talk[talking])

    operators, operator_index = np.unique(calls.operators, return_inverse=True)
    team_of = _ints(teams.get(operator, 0) for operator in operators.tolist())
    teams_of_calls = team_of[operator_index.reshape(-1)]
    everyone = np.ones(count, dtype=np.bool_)
    key_sets = (
        (calls.operators, everyone),
        (np.full(count, ALL_OPERATORS, dtype=np.int64), everyone),
        (teams_of_calls, teams_of_calls != 0),
    )
    empty_codes = np.zeros(count, dtype=np.int64)
    vocabulary_order = tuple(vocabulary)
    parts: list[tuple[RowSet, int, int]] = []
    for operator_keys, members in key_sets:
        for dimension, codes, wanted, measures, with_talk in (
            (Dimension.TOTAL, empty_codes, members, per_call, True),
            (Dimension.OUTCOME, calls.outcome_codes, members, per_call, True),
            (Dimension.FAILURE_CAUSE, calls.cause_codes, members & calls.failed, failure, False),
        ):
            rows = np.flatnonzero(wanted)
            if len(rows) == 0:
                continue
            position = np.cumsum(wanted) - 1
            talk_rows = talking[wanted[talking]] if with_talk else talking[:0]
            talk_bins = bins[wanted[talking]] if with_talk else bins[:0]
            parts.append(
                (
                    RowSet(
                        calls.hours[rows],
                        np.full(len(rows), int(dimension), dtype=np.int64),
                        operator_keys[rows],
                        codes[rows],
                        vocabulary_order,
                        measures[rows],
                        position[talk_rows],
                        talk_bins,
                        np.ones(len(talk_rows), dtype=np.int64),
                    ),
                    1,
                    1,
                )
            )
    return combine(parts)


def hour_of_day_rows(hour_rows: RowSet) -> RowSet:
    """Per-UTC-hour rows (Dimension.UTC_HOUR, value "0".."23") from the TOTAL rows of single
    hours; their periods are still hours (combine them with divisor 24 or more)."""
    totals = hour_rows.take(hour_rows.dimensions == Dimension.TOTAL)
    labels = tuple(str(hour) for hour in range(HOURS_PER_DAY))
    return RowSet(
        totals.periods,
        np.full(len(totals), int(Dimension.UTC_HOUR), dtype=np.int64),
        totals.operator_keys,
        totals.periods % HOURS_PER_DAY,
        labels,
        totals.measures,
        totals.pair_rows,
        totals.pair_bins,
        totals.pair_counts,
    )


# Recomputing and refreshing ---------------------------------------------------------------------


def _lock(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": REFRESH_LOCK_KEY})


def recompute_hours(connection: Connection, first_hour: int, end_hour: int) -> None:
    """Recompute the rollup rows of the hours ``[first_hour, end_hour)`` from the calls, and of
    every period containing them from the periods below (read back from the table where they
    lie outside the range)."""
    if end_hour <= first_hour:
        return
    level = hour_rows_from_calls(connection, [(first_hour, end_hour)], team_keys(connection))
    delete_periods(connection, 1, range(first_hour, end_hour))
    insert_rows(connection, 1, level)
    hour_rows = level
    known_first, known_end = first_hour, end_hour  # periods of the level held in memory
    for index in range(1, len(GRAIN_HOURS)):
        grain, child_grain = GRAIN_HOURS[index], GRAIN_HOURS[index - 1]
        ratio = grain // child_grain
        first_period = known_first // ratio
        end_period = (known_end - 1) // ratio + 1
        parts: list[tuple[RowSet, int, int]] = [(level, 1, ratio)]
        missing = [
            *range(first_period * ratio, known_first),
            *range(known_end, end_period * ratio),
        ]
        if missing:
            parts.append((read_rows(connection, child_grain, missing), 1, ratio))
        if grain == SMALLEST_DIMENSION_3_GRAIN:
            parts.append((hour_of_day_rows(hour_rows), 1, grain))
            hours_missing = [
                *range(first_period * grain, first_hour),
                *range(end_hour, end_period * grain),
            ]
            if hours_missing:
                stored_hours = read_rows(connection, 1, hours_missing, [Dimension.TOTAL])
                parts.append((hour_of_day_rows(stored_hours), 1, grain))
        level = combine(parts)
        delete_periods(connection, grain, range(first_period, end_period))
        insert_rows(connection, grain, level)
        known_first, known_end = first_period, end_period


def propagate_hours(connection: Connection, hours: Sequence[int]) -> None:
    """Recompute the hour rows of ``hours`` from the calls and add the change to every bigger
    period containing them (only the keys whose figures changed are written)."""
    affected = sorted(set(hours))
    if not affected:
        return
    runs = [(first, last + 1) for first, last in _runs(affected)]
    old = read_rows(connection, 1, affected)
    new = hour_rows_from_calls(connection, runs, team_keys(connection))
    change = combine([(new, 1, 1), (old, -1, 1)])
    if not len(change):
        return
    changed_keys = set(change.keys())
    delete_keys(connection, 1, old.with_keys(changed_keys).keys())
    insert_rows(connection, 1, new.with_keys(changed_keys))
    level = change
    for index in range(1, len(GRAIN_HOURS)):
        grain, child_grain = GRAIN_HOURS[index], GRAIN_HOURS[index - 1]
        parts: list[tuple[RowSet, int, int]] = [(level, 1, grain // child_grain)]
        if grain == SMALLEST_DIMENSION_3_GRAIN:
            parts.append((hour_of_day_rows(change), 1, grain))
        level = combine(parts)
        if not len(level):
            return
        add_rows(connection, grain, level)


def _dirty_hours(
    connection: Connection,
    first_hour: int,
    end_hour: int,
    limit: int | None = None,
    newest_first: bool = False,
) -> list[tuple[int, int]]:
    hour = CallVolumeDirtyHour.hour
    statement = (
        select(hour, CallVolumeDirtyHour.generation)
        .where(hour >= first_hour, hour < end_hour)
        .order_by(hour.desc() if newest_first else hour)
    )
    if limit is not None:
        statement = statement.limit(limit)
    return [(hour, generation) for hour, generation in connection.execute(statement)]


def _clear_markers(connection: Connection, markers: Sequence[tuple[int, int]]) -> None:
    """Delete the markers still at the generation that was read (a newer change keeps its)."""
    for start in range(0, len(markers), STATEMENT_BATCH):
        chunk = markers[start : start + STATEMENT_BATCH]
        connection.execute(
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


def refresh_dirty_hours(
    connection: Connection,
    first_hour: int,
    end_hour: int,
    limit: int | None = None,
    newest_first: bool = False,
) -> int:
    """Fold the dirty hours of ``[first_hour, end_hour)`` (the first ``limit`` of them, in hour
    order or newest first, if given) into the rollups; returns how many were recomputed."""
    dirty = _dirty_hours(connection, first_hour, end_hour, limit, newest_first)
    if not dirty:
        return 0
    if connection.dialect.name == "postgresql":
        _lock(connection)
        dirty = _dirty_hours(connection, first_hour, end_hour, limit, newest_first)
    for start in range(0, len(dirty), REFRESH_HOURS_PER_STEP):
        step = dirty[start : start + REFRESH_HOURS_PER_STEP]
        propagate_hours(connection, [hour for hour, _generation in step])
        _clear_markers(connection, step)
    return len(dirty)


async def refresh_call_volume(
    session: AsyncSession,
    first_hour: int = EARLIEST_HOUR,
    end_hour: int = LATEST_HOUR,
    limit: int | None = None,
    newest_first: bool = False,
) -> int:
    """Bring the rollups of the UTC hours ``[first_hour, end_hour)`` up to date (in the caller's
    transaction; the caller commits). Returns how many dirty hours were recomputed.

    Hour rows are recomputed from the calls; bigger periods get the difference between the new
    and the old hour rows added (``propagate_hours``), which touches only the keys that changed.
    With ``limit``, only the first ``limit`` dirty hours (the newest with ``newest_first``)
    are refreshed: small transactions. Without bounds every dirty hour is.
    """

    def refresh(sync_session: Session) -> int:
        return refresh_dirty_hours(
            sync_session.connection(), first_hour, end_hour, limit, newest_first
        )

    return await session.run_sync(refresh)


async def rebuild_call_volume(session: AsyncSession, first_hour: int, end_hour: int) -> None:
    """Recompute every rollup row of ``[first_hour, end_hour)`` from the calls table, dirty or
    not (after bulk writes that bypassed the ORM, or to repair). Keep the range to days or
    weeks per transaction: the range's calls are held in memory at once."""

    def rebuild(sync_session: Session) -> None:
        connection = sync_session.connection()
        _lock(connection)
        dirty = _dirty_hours(connection, first_hour, end_hour)
        recompute_hours(connection, first_hour, end_hour)
        _clear_markers(connection, dirty)

    await session.run_sync(rebuild)


def move_operator_rows(
    connection: Connection, operator_id: int, old_team: int | None, new_team: int | None
) -> None:
    """Move an operator's figures from one team's rows to another's, at every grain, when the
    operator changes team (synchronous: runs inside the ORM flush that changes the user).

    The operator's own rows are subtracted from the old team's rows and added to the new
    team's, so team rows stay equal to the sum of their current members' rows without
    recomputing any hour from the calls.
    """
    _lock(connection)
    table = ROLLUP_TABLE.c
    for grain in GRAIN_HOURS:
        records = connection.execute(
            select(*_stored_row_columns()).where(
                table.grain == grain,
                # Every dimension named, so the primary key finds the operator's rows.
                table.dimension.in_([int(dimension) for dimension in Dimension]),
                table.operator_key == operator_id,
            )
        ).all()
        own = rows_from_records(records)
        if not len(own):
            continue
        for team_id, sign in ((old_team, -1), (new_team, 1)):
            if team_id is not None:
                add_rows(connection, grain, combine([(own.relabeled(team_key(team_id)), sign, 1)]))


__all__ = [
    "FAILED_STATES",
    "ROLLUP_TABLE",
    "RowSet",
    "combine",
    "move_operator_rows",
    "propagate_hours",
    "rebuild_call_volume",
    "recompute_hours",
    "refresh_call_volume",
    "refresh_dirty_hours",
]
