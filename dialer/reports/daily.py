"""The daily call-volume report: per day, per hour of day, per operator, per outcome, and
failures by cause, over a range of days in a time zone.

``build_daily_report(session, actor, DailyReportQuery(...))`` scopes like the calls list
(``dialer.reports.scope``): an operator gets their own calls whatever the filters say, a
supervisor their team's (a filter outside it gives an empty report), an admin or the system
(``actor`` None) everything, optionally narrowed to one team or one operator.

Figures come from ``call_volume_rollup`` after refreshing the range's dirty hours
(``dialer.reports.rollup``), so they are as exact as counting the calls table: a late end or
outcome, a soft delete or a purge shows in the next report. Zones whose offset is not a whole
number of hours (Asia/Kolkata, ...) are counted straight from the calls table (slower).

Each breakdown line carries ``Metrics``: calls, answered, answer rate, failed, talk time (total,
average and median over answered calls whose talk time is known), ring time (total, average over
calls that rang). The median works on whole seconds (``dialer.reports.histogram``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from itertools import chain
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import ColumnElement, and_, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from dialer.actors import Actor
from dialer.models import Call, ContactStatus, User
from dialer.reports import histogram
from dialer.reports.errors import ReportRangeInvalid
from dialer.reports.grid import SECONDS_PER_HOUR, Piece, epoch_hour, hour_start, pieces
from dialer.reports.models import NO_OPERATOR, Dimension
from dialer.reports.rollup import FAILED_STATES, ROLLUP_TABLE, refresh_call_volume
from dialer.reports.scope import ReportScope, report_scope
from dialer.reports.settings import DEFAULT_REPORT_TIMEZONE, resolve_timezone

MAX_REPORT_DAYS = 400
HOURS_PER_DAY = 24
# The hour-of-day breakdown reads hour rows and per-UTC-hour rows of these grains only.
HOUR_BREAKDOWN_GRAINS = (1, 24, 192)
# Periods of one grain this close are read with one range scan.
RUN_GAP_PERIODS = 8


@dataclass(frozen=True)
class DailyReportQuery:
    first_day: date
    last_day: date  # inclusive
    timezone: str = DEFAULT_REPORT_TIMEZONE
    operator_id: int | None = None
    team_id: int | None = None


@dataclass(frozen=True)
class Metrics:
    calls: int = 0
    answered: int = 0
    failed: int = 0
    talk_count: int = 0
    talk_seconds_total: float = 0.0
    talk_seconds_median: float | None = None
    ring_count: int = 0
    ring_seconds_total: float = 0.0

    @property
    def answer_rate(self) -> float | None:
        """Answered / calls (0..1), None without calls."""
        return self.answered / self.calls if self.calls else None

    @property
    def talk_seconds_average(self) -> float | None:
        return self.talk_seconds_total / self.talk_count if self.talk_count else None

    @property
    def ring_seconds_average(self) -> float | None:
        return self.ring_seconds_total / self.ring_count if self.ring_count else None


@dataclass(frozen=True)
class ReportLine:
    """One line of a breakdown: ``key`` is a date (days), an hour 0-23 (hours), an operator id
    or None (operators), an outcome code or None (outcomes), a cause or None (failures)."""

    key: date | int | str | None
    label: str
    metrics: Metrics


@dataclass(frozen=True)
class DailyReport:
    query: DailyReportQuery
    total: Metrics
    days: list[ReportLine]
    hours: list[ReportLine]
    operators: list[ReportLine]
    outcomes: list[ReportLine]
    failure_causes: list[ReportLine]
    from_rollups: bool = True

    def sections(self) -> list[tuple[str, list[ReportLine]]]:
        """Every breakdown in display order, the total first."""
        return [
            ("total", [ReportLine(None, "total", self.total)]),
            ("day", self.days),
            ("hour", self.hours),
            ("operator", self.operators),
            ("outcome", self.outcomes),
            ("failure_cause", self.failure_causes),
        ]


# Figures of many rows (rollup rows or single calls), added up per group with numpy ------------

# Key of a breakdown line while counting: day index, hour, operator key, outcome, cause.
GroupKey = int | str | None
MEASURE_COUNT = 7  # calls, answered, failed, talk_count, talk_ms, ring_count, ring_ms


class _Grouper:
    """Rows of one breakdown: a key, the seven measures and a talk histogram per row."""

    def __init__(self) -> None:
        self.keys: list[GroupKey] = []
        self.measures: list[Sequence[int]] = []
        self.histograms: list[bytes] = []

    def add(self, key: GroupKey, measures: Sequence[int], blob: bytes) -> None:
        self.keys.append(key)
        self.measures.append(measures)
        self.histograms.append(blob)

    def extend(
        self, keys: list[GroupKey], measures: list[Sequence[int]], blobs: list[bytes]
    ) -> None:
        self.keys.extend(keys)
        self.measures.extend(measures)
        self.histograms.extend(blobs)

    def metrics(self) -> dict[GroupKey, Metrics]:
        index: dict[GroupKey, int] = {}
        groups = np.fromiter(
            (index.setdefault(key, len(index)) for key in self.keys), np.int64, len(self.keys)
        )
        if not index:
            return {}
        flat = chain.from_iterable(self.measures)
        count = len(self.measures) * MEASURE_COUNT
        matrix = np.fromiter(flat, np.float64, count).reshape(-1, MEASURE_COUNT)
        sums = [
            [round(value) for value in np.bincount(groups, matrix[:, column], len(index))]
            for column in range(MEASURE_COUNT)
        ]
        medians = histogram.grouped_medians(self.histograms, groups, len(index))
        return {
            key: Metrics(
                calls=sums[0][group],
                answered=sums[1][group],
                failed=sums[2][group],
                talk_count=sums[3][group],
                talk_seconds_total=sums[4][group] / 1000,
                talk_seconds_median=medians[group],
                ring_count=sums[5][group],
                ring_seconds_total=sums[6][group] / 1000,
            )
            for key, group in index.items()
        }


# The time frame ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Frame:
    zone: ZoneInfo
    days: list[date]
    day_starts: list[datetime]  # UTC start of each day, plus the end of the last one

    @property
    def start(self) -> datetime:
        return self.day_starts[0]

    @property
    def end(self) -> datetime:
        return self.day_starts[-1]

    def whole_hours(self) -> bool:
        """True when every day bound is a whole UTC hour and offsets are whole hours."""
        for moment in self.day_starts:
            offset = moment.astimezone(self.zone).utcoffset()
            if moment.timestamp() % SECONDS_PER_HOUR or offset is None:
                return False
            if offset.total_seconds() % SECONDS_PER_HOUR:
                return False
        return True

    def offset_hours(self, hour: int) -> int:
        offset = hour_start(hour).astimezone(self.zone).utcoffset()
        return int(offset.total_seconds()) // SECONDS_PER_HOUR if offset is not None else 0


def _frame(query: DailyReportQuery) -> _Frame:
    zone = resolve_timezone(query.timezone)
    if query.last_day < query.first_day:
        raise ReportRangeInvalid("to", "must not be before from")
    day_count = (query.last_day - query.first_day).days + 1
    if day_count > MAX_REPORT_DAYS:
        raise ReportRangeInvalid("to", f"a report covers at most {MAX_REPORT_DAYS} days")
    days = [query.first_day + timedelta(days=index) for index in range(day_count)]
    bounds = [*days, query.last_day + timedelta(days=1)]
    try:
        day_starts = [
            datetime.combine(day, time(), tzinfo=zone).astimezone(ZoneInfo("UTC")) for day in bounds
        ]
    except OverflowError:
        raise ReportRangeInvalid("from", "is out of range") from None
    return _Frame(zone, days, day_starts)


def _constant_offset_pieces(
    frame: _Frame, first_hour: int, end_hour: int, grains: tuple[int, ...]
) -> list[Piece]:
    """``pieces`` of ``grains`` split further so no piece spans a change of the zone's offset."""
    result: list[Piece] = []
    pending = list(reversed(pieces(first_hour, end_hour, grains)))
    while pending:
        piece = pending.pop()
        if piece.grain > 1 and frame.offset_hours(piece.first_hour) != frame.offset_hours(
            piece.end_hour - 1
        ):
            smaller = tuple(grain for grain in grains if grain < piece.grain)
            pending.extend(reversed(pieces(piece.first_hour, piece.end_hour, smaller)))
        else:
            result.append(piece)
    return result


# Reading -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Run:
    """Periods ``first..last`` of one grain to read; when ``residues`` is set, only those whose
    position within their UTC day (``period % periods_per_day``) is listed."""

    grain: int
    first: int
    last: int
    residues: tuple[int, ...] = ()

    def condition(self) -> ColumnElement[bool]:
        table = ROLLUP_TABLE.c
        condition = and_(table.grain == self.grain, table.period.between(self.first, self.last))
        if self.residues:
            per_day = HOURS_PER_DAY // self.grain
            condition = and_(condition, (table.period % per_day).in_(self.residues))
        return condition


def _period_runs(chosen: Iterable[Piece]) -> list[_Run]:
    """Ranges covering the chosen periods; close periods of a grain share one range, and a
    grain smaller than a day is narrowed to the positions in the day it uses (the day
    breakdown takes the same few periods of every day)."""
    by_grain: dict[int, list[int]] = {}
    for piece in chosen:
        by_grain.setdefault(piece.grain, []).append(piece.period)
    runs: list[_Run] = []
    for grain, periods in sorted(by_grain.items()):
        ordered = sorted(periods)
        bounds: list[tuple[int, int]] = []
        first = last = ordered[0]
        for period in ordered[1:]:
            if period - last > RUN_GAP_PERIODS:
                bounds.append((first, last))
                first = period
            last = period
        bounds.append((first, last))
        for first, last in bounds:
            residues: tuple[int, ...] = ()
            if grain < HOURS_PER_DAY and last - first >= HOURS_PER_DAY // grain:
                per_day = HOURS_PER_DAY // grain
                used = sorted({period % per_day for period in ordered if first <= period <= last})
                if len(used) < per_day:
                    residues = tuple(used)
            runs.append(_Run(grain, first, last, residues))
    return runs


@dataclass
class _Breakdowns:
    total: _Grouper = field(default_factory=_Grouper)
    days: _Grouper = field(default_factory=_Grouper)
    hours: _Grouper = field(default_factory=_Grouper)
    operators: _Grouper = field(default_factory=_Grouper)
    outcomes: _Grouper = field(default_factory=_Grouper)
    causes: _Grouper = field(default_factory=_Grouper)


# grain, period, dimension, operator_key, dimension_value, the measures, the histogram
RollupRow = tuple[Any, ...]
ROLLUP_COLUMNS = tuple(
    ROLLUP_TABLE.c[name]
    for name in (
        "grain",
        "period",
        "dimension",
        "operator_key",
        "dimension_value",
        "calls",
        "answered",
        "failed",
        "talk_count",
        "talk_milliseconds",
        "ring_count",
        "ring_milliseconds",
        "talk_histogram",
    )
)
MEASURES = slice(5, 5 + MEASURE_COUNT)
HISTOGRAM = 5 + MEASURE_COUNT


async def _rollup_rows(
    session: AsyncSession,
    chosen: Iterable[Piece],
    dimensions: Sequence[int],
    operator_keys: Sequence[int],
) -> list[RollupRow]:
    """Rollup rows of the chosen periods, dimensions and operator keys.

    One range scan per (grain, run of periods) on the primary key (grain, dimension,
    operator_key, period, ...) instead of a lookup per period.
    """
    wanted = set(chosen)
    table = ROLLUP_TABLE.c
    selects = [
        select(*ROLLUP_COLUMNS).where(
            table.dimension.in_(dimensions),
            table.operator_key.in_(operator_keys),
            run.condition(),
        )
        for run in _period_runs(wanted)
    ]
    if not selects:
        return []
    statement = selects[0] if len(selects) == 1 else union_all(*selects)
    connection = await session.connection()
    result = await connection.execute(statement)
    return [row for row in result.all() if (row[0], row[1]) in wanted]


def _feed(grouper: _Grouper, keys: list[GroupKey], rows: Sequence[RollupRow]) -> None:
    grouper.extend(keys, [row[MEASURES] for row in rows], [row[HISTOGRAM] for row in rows])


async def _operator_keys(session: AsyncSession) -> list[int]:
    """Every key of per-operator rows: each user, and calls without an operator."""
    users = (await session.scalars(select(User.id))).all()
    return [NO_OPERATOR, *users]


async def _from_rollups(session: AsyncSession, frame: _Frame, scope: ReportScope) -> _Breakdowns:
    first_hour, end_hour = epoch_hour(frame.start), epoch_hour(frame.end)
    await refresh_call_volume(session, first_hour, end_hour)
    breakdowns = _Breakdowns()
    if scope.empty:
        return breakdowns
    summed = scope.summed_keys()
    range_pieces = pieces(first_hour, end_hour)

    # Totals and operators.
    operator_keys = await _operator_keys(session) if scope.everyone else list(scope.operators)
    own = await _rollup_rows(session, range_pieces, (Dimension.TOTAL,), operator_keys)
    _feed(breakdowns.operators, [row[3] for row in own], own)
    counted = await _rollup_rows(session, range_pieces, (Dimension.TOTAL,), summed)
    _feed(breakdowns.total, [None] * len(counted), counted)

    # Outcomes and failure causes.
    rows = await _rollup_rows(
        session, range_pieces, (Dimension.OUTCOME, Dimension.FAILURE_CAUSE), summed
    )
    outcomes = [row for row in rows if row[2] == Dimension.OUTCOME]
    causes = [row for row in rows if row[2] == Dimension.FAILURE_CAUSE]
    _feed(breakdowns.outcomes, [row[4] or None for row in outcomes], outcomes)
    _feed(breakdowns.causes, [row[4] or None for row in causes], causes)

    # Hours of the day: hour rows, and per-UTC-hour rows of whole days and eight-day periods.
    hour_pieces = _constant_offset_pieces(frame, first_hour, end_hour, HOUR_BREAKDOWN_GRAINS)
    offsets = {piece: frame.offset_hours(piece.first_hour) for piece in hour_pieces}
    single = [piece for piece in hour_pieces if piece.grain == 1]
    longer = [piece for piece in hour_pieces if piece.grain > 1]
    rows = [
        *await _rollup_rows(session, single, (Dimension.TOTAL,), summed),
        *await _rollup_rows(session, longer, (Dimension.UTC_HOUR,), summed),
    ]
    hours: list[GroupKey] = [
        ((row[1] if row[0] == 1 else int(row[4])) + offsets[Piece(row[0], row[1])]) % HOURS_PER_DAY
        for row in rows
    ]
    _feed(breakdowns.hours, hours, rows)

    # Days: each local day cut into its own aligned periods.
    day_of_piece: dict[Piece, int] = {}
    for index in range(len(frame.days)):
        day_first = epoch_hour(frame.day_starts[index])
        day_end = epoch_hour(frame.day_starts[index + 1])
        for piece in pieces(day_first, day_end):
            day_of_piece[piece] = index
    rows = await _rollup_rows(session, day_of_piece, (Dimension.TOTAL,), summed)
    _feed(breakdowns.days, [day_of_piece[Piece(row[0], row[1])] for row in rows], rows)
    return breakdowns


async def _from_calls(session: AsyncSession, frame: _Frame, scope: ReportScope) -> _Breakdowns:
    """The same breakdowns counted call by call (zones with part-hour offsets)."""
    breakdowns = _Breakdowns()
    if scope.empty:
        return breakdowns
    statement = select(
        Call.created_at,
        Call.operator_id,
        Call.state,
        Call.answered_at.is_not(None),
        Call.talk_seconds,
        Call.ring_seconds,
        Call.end_cause,
        Call.outcome,
    ).where(Call.created_at >= frame.start, Call.created_at < frame.end, Call.deleted_at.is_(None))
    if not scope.everyone:
        statement = statement.where(Call.operator_id.in_(scope.operators))
    day_index = {day: index for index, day in enumerate(frame.days)}
    result = await session.stream(statement.execution_options(yield_per=10_000))
    async for created_at, operator_id, state, answered, talk, ring, cause, outcome in result:
        local = created_at.astimezone(frame.zone)
        failed = state in FAILED_STATES
        talk_known = bool(answered) and talk is not None
        talk_value = talk if answered and talk is not None else 0.0
        figures = (
            1,
            1 if answered else 0,
            1 if failed else 0,
            1 if talk_known else 0,
            round(talk_value * 1000),
            1 if ring is not None else 0,
            round(ring * 1000) if ring is not None else 0,
        )
        blob = histogram.encode({histogram.talk_bin(talk_value): 1}) if talk_known else b""
        breakdowns.total.add(None, figures, blob)
        breakdowns.days.add(day_index[local.date()], figures, blob)
        breakdowns.hours.add(local.hour, figures, blob)
        breakdowns.operators.add(operator_id or NO_OPERATOR, figures, blob)
        breakdowns.outcomes.add(outcome or None, figures, blob)
        if failed:
            breakdowns.causes.add(cause or None, (1, 0, 1, 0, 0, 0, 0), b"")
    return breakdowns


# Labels and assembly ------------------------------------------------------------------------------


async def _operator_labels(session: AsyncSession, ids: Iterable[int]) -> dict[int, str]:
    wanted = [identifier for identifier in ids if identifier != NO_OPERATOR]
    if not wanted:
        return {}
    rows = await session.execute(
        select(User.id, User.login, User.display_name).where(User.id.in_(wanted))
    )
    return {identifier: display or login for identifier, login, display in rows}


async def _outcome_labels(session: AsyncSession) -> dict[str, str]:
    rows = await session.execute(select(ContactStatus.code, ContactStatus.label))
    return {str(code): str(label) for code, label in rows.all()}


async def build_daily_report(
    session: AsyncSession, actor: Actor | None, query: DailyReportQuery
) -> DailyReport:
    """The report of ``query`` as ``actor`` may see it (``actor`` None = the system).

    May write: refreshes rollups of changed hours in the range, in the caller's transaction
    (the caller commits). Raises ReportRangeInvalid for a bad range or time zone.
    """
    frame = _frame(query)
    scope = await report_scope(session, actor, query.operator_id, query.team_id)
    from_rollups = frame.whole_hours()
    if from_rollups:
        breakdowns = await _from_rollups(session, frame, scope)
    else:
        breakdowns = await _from_calls(session, frame, scope)
    total = breakdowns.total.metrics().get(None, Metrics())
    by_day = breakdowns.days.metrics()
    days = [
        ReportLine(day, day.isoformat(), by_day.get(index, Metrics()))
        for index, day in enumerate(frame.days)
    ]
    by_hour = breakdowns.hours.metrics()
    hours = [
        ReportLine(hour, f"{hour:02d}:00", by_hour.get(hour, Metrics()))
        for hour in range(HOURS_PER_DAY)
    ]
    by_operator = {
        key if isinstance(key, int) else NO_OPERATOR: metrics
        for key, metrics in breakdowns.operators.metrics().items()
    }
    names = await _operator_labels(session, by_operator)
    operators = sorted(
        (
            ReportLine(
                None if key == NO_OPERATOR else key,
                names.get(key, "" if key == NO_OPERATOR else f"#{key}"),
                metrics,
            )
            for key, metrics in by_operator.items()
            if metrics.calls
        ),
        key=lambda line: (line.label.casefold(), line.key or 0),
    )
    labels = await _outcome_labels(session)
    outcomes = sorted(
        (
            ReportLine(key, labels.get(key, key) if isinstance(key, str) else "", metrics)
            for key, metrics in breakdowns.outcomes.metrics().items()
            if metrics.calls
        ),
        key=lambda line: (-line.metrics.calls, str(line.key or "")),
    )
    causes = sorted(
        (
            ReportLine(key, key if isinstance(key, str) else "", metrics)
            for key, metrics in breakdowns.causes.metrics().items()
            if metrics.calls
        ),
        key=lambda line: (-line.metrics.calls, str(line.key or "")),
    )
    return DailyReport(
        query=query,
        total=total,
        days=days,
        hours=hours,
        operators=operators,
        outcomes=outcomes,
        failure_causes=causes,
        from_rollups=from_rollups,
    )


__all__ = [
    "MAX_REPORT_DAYS",
    "DailyReport",
    "DailyReportQuery",
    "Metrics",
    "ReportLine",
    "build_daily_report",
]
