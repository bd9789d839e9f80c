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

Reading: the range, each local day and the hour-of-day breakdown are covered with aligned
periods added and subtracted (``dialer.reports.grid.Coverer``: a year is about 20 periods, a
Moscow day its UTC day plus the three hours before minus its own last three), and every row
needed is read by one UNION ALL statement of key lookups (``_Plan``). Sums and talk-time
histograms are then added up per breakdown line with numpy, subtracted periods with a negative
sign (``_Grouper``).

Each breakdown line carries ``Metrics``: calls, answered, answer rate, failed, talk time (total,
average and median over answered calls whose talk time is known), ring time (total, average over
calls that rang). The median works on whole seconds (``dialer.reports.histogram``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import IntEnum
from itertools import chain
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import ColumnElement, CompoundSelect, Select, literal, select, text, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from dialer.actors import Actor
from dialer.models import Call, ContactStatus, User
from dialer.reports import histogram
from dialer.reports.errors import ReportRangeInvalid
from dialer.reports.grid import (
    SECONDS_PER_HOUR,
    Coverer,
    Piece,
    SignedPiece,
    epoch_hour,
    hour_start,
    pieces,
)
from dialer.reports.models import NO_OPERATOR, Dimension
from dialer.reports.rollup import (
    CALL_MEASURE_COLUMNS,
    FAILED_STATES,
    ROLLUP_TABLE,
    refresh_call_volume,
)
from dialer.reports.scope import ReportScope, report_scope
from dialer.reports.settings import DEFAULT_REPORT_TIMEZONE, resolve_timezone

MAX_REPORT_DAYS = 400
HOURS_PER_DAY = 24
# The hour-of-day breakdown reads hour rows and per-UTC-hour rows of these grains only.
HOUR_BREAKDOWN_GRAINS = (1, 24, 192, 1536)


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
    """Rows of one breakdown: a key, the seven measures, a talk histogram and a sign (1, or -1
    for a period subtracted by a cover) per row."""

    def __init__(self) -> None:
        self.keys: list[GroupKey] = []
        self.measures: list[Sequence[int]] = []
        self.histograms: list[bytes] = []
        self.signs: list[int] = []

    def add(self, key: GroupKey, measures: Sequence[int], blob: bytes, sign: int = 1) -> None:
        self.keys.append(key)
        self.measures.append(measures)
        self.histograms.append(blob)
        self.signs.append(sign)

    def metrics(self) -> dict[GroupKey, Metrics]:
        index: dict[GroupKey, int] = {}
        groups = np.fromiter(
            (index.setdefault(key, len(index)) for key in self.keys), np.int64, len(self.keys)
        )
        if not index:
            return {}
        flat = chain.from_iterable(self.measures)
        count = len(self.measures) * MEASURE_COUNT
        signs = np.array(self.signs, dtype=np.int64)
        matrix = np.fromiter(flat, np.int64, count).reshape(-1, MEASURE_COUNT) * signs[:, None]
        sums = [
            np.rint(np.bincount(groups, matrix[:, column], len(index))).astype(np.int64).tolist()
            for column in range(MEASURE_COUNT)
        ]
        medians = histogram.grouped_medians(self.histograms, groups, len(index), signs)
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


def _constant_offset(frame: _Frame, signed: Iterable[SignedPiece]) -> list[SignedPiece]:
    """``signed`` with every period spanning a change of the zone's offset cut into smaller ones
    (of ``HOUR_BREAKDOWN_GRAINS``, with the same sign)."""
    result: list[SignedPiece] = []
    pending = list(signed)
    while pending:
        piece, sign = pending.pop()
        if piece.grain > 1 and frame.offset_hours(piece.first_hour) != frame.offset_hours(
            piece.end_hour - 1
        ):
            smaller = tuple(grain for grain in HOUR_BREAKDOWN_GRAINS if grain < piece.grain)
            pending.extend(
                SignedPiece(part, sign)
                for part in pieces(piece.first_hour, piece.end_hour, smaller)
            )
        else:
            result.append(SignedPiece(piece, sign))
    return result


# Reading -----------------------------------------------------------------------------------------


class _Target(IntEnum):
    """The breakdown a rollup row is added to."""

    TOTAL = 0
    DAYS = 1
    HOURS = 2
    OPERATORS = 3
    OUTCOMES = 4
    CAUSES = 5


@dataclass
class _Breakdowns:
    total: _Grouper = field(default_factory=_Grouper)
    days: _Grouper = field(default_factory=_Grouper)
    hours: _Grouper = field(default_factory=_Grouper)
    operators: _Grouper = field(default_factory=_Grouper)
    outcomes: _Grouper = field(default_factory=_Grouper)
    causes: _Grouper = field(default_factory=_Grouper)

    def of(self, target: _Target) -> _Grouper:
        return (self.total, self.days, self.hours, self.operators, self.outcomes, self.causes)[
            target
        ]


# grain, period, dimension, operator_key, dimension_value, the measures, the histogram, and
# (read by the report statement) the part that read it
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
# Which part of the report's statement read a row (its last column).
PART = HISTOGRAM + 1
WHOLE_PERIODS_PART = 0
OPERATORS_PART = 1
# (grain, period, dimension) of a row -> where it goes: (breakdown, detail, sign); detail is
# the day index (days) or the zone's offset in hours (hours).
Wants = dict[tuple[int, int, int], list[tuple[_Target, int, int]]]


@dataclass
class _Plan:
    """What to read: rows of the scope's summed keys and where each goes, and per-operator
    TOTAL rows of some periods (with their sign)."""

    summed_keys: list[int]
    summed: Wants = field(default_factory=dict)
    operator_keys: list[int] = field(default_factory=list)
    operator_periods: dict[tuple[int, int], int] = field(default_factory=dict)

    def want(self, piece: Piece, dimension: int, target: _Target, detail: int, sign: int) -> None:
        key = (piece.grain, piece.period, dimension)
        self.summed.setdefault(key, []).append((target, detail, sign))

    def wanted(self, row: RollupRow) -> Iterable[tuple[_Target, int, int]]:
        """Where a row of the summed keys goes."""
        return self.summed.get((row[0], row[1], row[2]), ())

    def statement(self) -> Select[Any] | CompoundSelect[Any] | None:
        """One statement reading every wanted row: a UNION ALL of one lookup per grain and set
        of dimensions (on the primary key: grain, dimension, operator_key, period, value), and
        of the operators' rows; each row says which part read it (``PART``)."""
        table = ROLLUP_TABLE.c
        dimensions_of: dict[tuple[int, int], set[int]] = {}
        for grain, period, dimension in self.summed:
            dimensions_of.setdefault((grain, period), set()).add(dimension)
        groups: dict[tuple[int, tuple[int, ...]], list[int]] = {}
        for (grain, period), dimensions in dimensions_of.items():
            groups.setdefault((grain, tuple(sorted(dimensions))), []).append(period)
        selects = [
            select(*ROLLUP_COLUMNS, literal(WHOLE_PERIODS_PART).label("part")).where(
                table.grain == grain,
                table.dimension.in_(dimensions),
                table.operator_key.in_(self.summed_keys),
                _periods_condition(periods),
            )
            for (grain, dimensions), periods in sorted(groups.items())
        ]
        operator_grains: dict[int, list[int]] = {}
        for (grain, period), sign in self.operator_periods.items():
            if sign:
                operator_grains.setdefault(grain, []).append(period)
        if self.operator_keys:
            selects.extend(
                select(*ROLLUP_COLUMNS, literal(OPERATORS_PART).label("part")).where(
                    table.grain == grain,
                    table.dimension == Dimension.TOTAL,
                    table.operator_key.in_(self.operator_keys),
                    _periods_condition(periods),
                )
                for grain, periods in sorted(operator_grains.items())
            )
        if not selects:
            return None
        return selects[0] if len(selects) == 1 else union_all(*selects)


def _periods_condition(periods: Sequence[int]) -> ColumnElement[bool]:
    """``period`` among ``periods``: a range when they are consecutive (read in key order),
    else a list."""
    column = ROLLUP_TABLE.c.period
    first, last = min(periods), max(periods)
    if len(periods) > 2 and last - first + 1 == len(set(periods)):
        return column.between(first, last)
    return column.in_(sorted(set(periods)))


def _plan(frame: _Frame, scope: ReportScope, operator_keys: list[int]) -> _Plan:
    first_hour, end_hour = epoch_hour(frame.start), epoch_hour(frame.end)
    summed = scope.summed_keys()
    plan = _Plan(summed)
    range_cover = Coverer().cover(first_hour, end_hour)
    fold_operators = sorted(operator_keys) == sorted(summed)
    for piece, sign in range_cover:
        plan.want(piece, Dimension.TOTAL, _Target.TOTAL, 0, sign)
        plan.want(piece, Dimension.OUTCOME, _Target.OUTCOMES, 0, sign)
        plan.want(piece, Dimension.FAILURE_CAUSE, _Target.CAUSES, 0, sign)
        if fold_operators:
            plan.want(piece, Dimension.TOTAL, _Target.OPERATORS, 0, sign)
        else:
            key = (piece.grain, piece.period)
            plan.operator_periods[key] = plan.operator_periods.get(key, 0) + sign
    if not fold_operators:
        plan.operator_keys = operator_keys

    # Hours of the day: hour rows, and per-UTC-hour rows of days and longer periods.
    hour_cover = _constant_offset(frame, Coverer(HOUR_BREAKDOWN_GRAINS).cover(first_hour, end_hour))
    for piece, sign in hour_cover:
        dimension = Dimension.TOTAL if piece.grain == 1 else Dimension.UTC_HOUR
        plan.want(piece, dimension, _Target.HOURS, frame.offset_hours(piece.first_hour), sign)

    # Days: each local day covered on its own (a UTC day, plus and minus a few hours).
    day_coverer = Coverer()
    summed_wants = plan.summed
    day_hours = [epoch_hour(moment) for moment in frame.day_starts]
    for index in range(len(frame.days)):
        for grain, period, sign in day_coverer.periods(day_hours[index], day_hours[index + 1]):
            want = (grain, period, int(Dimension.TOTAL))
            summed_wants.setdefault(want, []).append((_Target.DAYS, index, sign))
    return plan


def _group_key(target: _Target, detail: int, row: RollupRow) -> GroupKey:
    if target is _Target.DAYS:
        return detail
    if target is _Target.HOURS:
        hour = row[1] % HOURS_PER_DAY if row[0] == 1 else int(row[4])
        return (hour + detail) % HOURS_PER_DAY
    if target is _Target.OPERATORS:
        return int(row[3])
    if target is _Target.TOTAL:
        return None
    return row[4] or None


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
    operator_keys = await _operator_keys(session) if scope.everyone else list(scope.operators)
    plan = _plan(frame, scope, operator_keys)
    connection = await session.connection()
    statement = plan.statement()
    if statement is None:
        return breakdowns
    if connection.dialect.name == "postgresql":
        # A few thousand rows found by key: starting parallel workers would cost more.
        await connection.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))
    result = await connection.execute(statement)
    summed_keys = set(plan.summed_keys)
    operator_set = set(plan.operator_keys)
    operators = breakdowns.operators
    for row in result.all():
        grain, period, dimension, operator_key = row[0], row[1], row[2], row[3]
        measures, blob = row[MEASURES], row[HISTOGRAM]
        if row[PART] == OPERATORS_PART:
            sign = plan.operator_periods.get((grain, period), 0)
            if sign and operator_key in operator_set and dimension == Dimension.TOTAL:
                operators.add(operator_key, measures, blob, sign)
        elif operator_key in summed_keys:
            for target, detail, sign in plan.wanted(row):
                breakdowns.of(target).add(_group_key(target, detail, row), measures, blob, sign)
    return breakdowns


async def _from_calls(session: AsyncSession, frame: _Frame, scope: ReportScope) -> _Breakdowns:
    """The same breakdowns counted call by call (zones with part-hour offsets)."""
    breakdowns = _Breakdowns()
    if scope.empty:
        return breakdowns
    statement = select(Call.created_at, *CALL_MEASURE_COLUMNS).where(
        Call.created_at >= frame.start, Call.created_at < frame.end, Call.deleted_at.is_(None)
    )
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
