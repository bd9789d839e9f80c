"""The daily call-volume report: per day, per hour of day, per operator, per outcome, and
failures by cause, over a range of days in a time zone.

``build_daily_report(session, actor, DailyReportQuery(...))`` scopes like the calls list
(``dialer.calls.visible_calls``): an operator gets their own calls whatever the filters say, a
supervisor their team's (a filter outside it gives an empty report), an admin or the system
(``actor`` None) everything, optionally narrowed to one team or one operator. Team membership is
the current one, as for the calls list.

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
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import ColumnElement, and_, false, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from dialer.actors import Actor
from dialer.models import Call, ContactStatus, User
from dialer.reports import histogram
from dialer.reports.errors import ReportRangeInvalid
from dialer.reports.grid import (
    SECONDS_PER_HOUR,
    Piece,
    children,
    epoch_hour,
    hour_start,
    pieces,
)
from dialer.reports.models import ALL_OPERATORS, NO_OPERATOR, CallVolumeRollup, Dimension
from dialer.reports.rollup import FAILED_STATES, refresh_call_volume
from dialer.reports.settings import DEFAULT_REPORT_TIMEZONE, resolve_timezone

MAX_REPORT_DAYS = 400
HOURS_PER_DAY = 24


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


@dataclass
class _Figures:
    calls: list[int] = field(default_factory=list)
    answered: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    talk_count: list[int] = field(default_factory=list)
    talk_milliseconds: list[int] = field(default_factory=list)
    ring_count: list[int] = field(default_factory=list)
    ring_milliseconds: list[int] = field(default_factory=list)
    histograms: list[bytes] = field(default_factory=list)

    def append(self, values: Sequence[Any], blob: bytes) -> None:
        self.calls.append(values[0])
        self.answered.append(values[1])
        self.failed.append(values[2])
        self.talk_count.append(values[3])
        self.talk_milliseconds.append(values[4])
        self.ring_count.append(values[5])
        self.ring_milliseconds.append(values[6])
        self.histograms.append(blob)


def _summarise(figures: _Figures, groups: Sequence[int], group_count: int) -> list[Metrics]:
    """Metrics of each group; ``groups[i]`` is the group of row i."""
    if group_count == 0:
        return []
    owners = np.asarray(groups, dtype=np.int64)

    def total(column: list[int]) -> list[int]:
        if not column:
            return [0] * group_count
        sums = np.bincount(owners, weights=np.asarray(column, np.float64), minlength=group_count)
        return [round(value) for value in sums.tolist()]

    calls, answered, failed = total(figures.calls), total(figures.answered), total(figures.failed)
    talk_count, talk_ms = total(figures.talk_count), total(figures.talk_milliseconds)
    ring_count, ring_ms = total(figures.ring_count), total(figures.ring_milliseconds)
    medians = histogram.grouped_medians(figures.histograms, owners, group_count)
    return [
        Metrics(
            calls=calls[index],
            answered=answered[index],
            failed=failed[index],
            talk_count=talk_count[index],
            talk_seconds_total=talk_ms[index] / 1000,
            talk_seconds_median=medians[index],
            ring_count=ring_count[index],
            ring_seconds_total=ring_ms[index] / 1000,
        )
        for index in range(group_count)
    ]


class _Grouper:
    """Rows sorted into groups by key, for one breakdown."""

    def __init__(self) -> None:
        self.figures = _Figures()
        self.groups: list[int] = []
        self.index: dict[Any, int] = {}

    def add(self, key: Any, values: Sequence[Any], blob: bytes) -> None:
        group = self.index.setdefault(key, len(self.index))
        self.groups.append(group)
        self.figures.append(values, blob)

    def metrics(self) -> dict[Any, Metrics]:
        summaries = _summarise(self.figures, self.groups, len(self.index))
        return {key: summaries[group] for key, group in self.index.items()}


# Scope -------------------------------------------------------------------------------------------


async def _team_members(session: AsyncSession, team_id: int) -> list[int]:
    return list((await session.scalars(select(User.id).where(User.team_id == team_id))).all())


async def operator_scope(
    session: AsyncSession, actor: Actor | None, operator_id: int | None, team_id: int | None
) -> list[int] | None:
    """The operator ids whose calls the report counts; None = every call (with or without an
    operator)."""
    if actor is None or actor.is_admin:
        if team_id is None:
            return None if operator_id is None else [operator_id]
        members = await _team_members(session, team_id)
    elif actor.is_supervisor and actor.team_id is not None:
        members = await _team_members(session, actor.team_id)
        if team_id is not None and team_id != actor.team_id:
            members = []
    else:
        members = [actor.user_id]
        if team_id is not None and team_id != actor.team_id:
            members = []
    if operator_id is not None:
        members = [member for member in members if member == operator_id]
    return sorted(set(members))


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


def _constant_offset_pieces(frame: _Frame, first_hour: int, end_hour: int) -> list[Piece]:
    """``pieces`` split further so that no piece spans a change of the zone's offset."""
    result: list[Piece] = []
    pending = list(reversed(pieces(first_hour, end_hour)))
    while pending:
        piece = pending.pop()
        if piece.grain > 1 and frame.offset_hours(piece.first_hour) != frame.offset_hours(
            piece.end_hour - 1
        ):
            pending.extend(reversed(children(piece)))
        else:
            result.append(piece)
    return result


# Reading -----------------------------------------------------------------------------------------


def _pieces_condition(chosen: Iterable[Piece]) -> ColumnElement[bool]:
    by_grain: dict[int, list[int]] = {}
    for piece in chosen:
        by_grain.setdefault(piece.grain, []).append(piece.period)
    if not by_grain:
        return false()
    return or_(
        *(
            and_(CallVolumeRollup.grain == grain, CallVolumeRollup.period.in_(periods))
            for grain, periods in by_grain.items()
        )
    )


ROLLUP_COLUMNS = (
    CallVolumeRollup.grain,
    CallVolumeRollup.period,
    CallVolumeRollup.dimension,
    CallVolumeRollup.operator_key,
    CallVolumeRollup.dimension_value,
    CallVolumeRollup.calls,
    CallVolumeRollup.answered,
    CallVolumeRollup.failed,
    CallVolumeRollup.talk_count,
    CallVolumeRollup.talk_milliseconds,
    CallVolumeRollup.ring_count,
    CallVolumeRollup.ring_milliseconds,
    CallVolumeRollup.talk_histogram,
)


@dataclass
class _Breakdowns:
    total: _Grouper = field(default_factory=_Grouper)
    days: _Grouper = field(default_factory=_Grouper)
    hours: _Grouper = field(default_factory=_Grouper)
    operators: _Grouper = field(default_factory=_Grouper)
    outcomes: _Grouper = field(default_factory=_Grouper)
    causes: _Grouper = field(default_factory=_Grouper)


async def _from_rollups(
    session: AsyncSession, frame: _Frame, scope: list[int] | None
) -> _Breakdowns:
    first_hour, end_hour = epoch_hour(frame.start), epoch_hour(frame.end)
    await refresh_call_volume(session, first_hour, end_hour)
    breakdowns = _Breakdowns()
    if scope is not None and not scope:
        return breakdowns
    range_pieces = _constant_offset_pieces(frame, first_hour, end_hour)
    offsets = {piece: frame.offset_hours(piece.first_hour) for piece in range_pieces}
    if scope is None:
        keys: ColumnElement[bool] = or_(
            CallVolumeRollup.dimension == Dimension.TOTAL,
            CallVolumeRollup.operator_key == ALL_OPERATORS,
        )
    else:
        keys = CallVolumeRollup.operator_key.in_(scope)
    result = await session.execute(
        select(*ROLLUP_COLUMNS).where(_pieces_condition(range_pieces), keys)
    )
    for grain, period, dimension, operator_key, value, *figures, blob in result:
        every = operator_key == ALL_OPERATORS
        if dimension == Dimension.TOTAL:
            if every or scope is not None:
                breakdowns.total.add(None, figures, blob)
                if grain == 1:
                    local_hour = (period + offsets[Piece(1, period)]) % HOURS_PER_DAY
                    breakdowns.hours.add(local_hour, figures, blob)
            if not every:
                breakdowns.operators.add(operator_key, figures, blob)
        elif dimension == Dimension.OUTCOME:
            breakdowns.outcomes.add(value or None, figures, blob)
        elif dimension == Dimension.FAILURE_CAUSE:
            breakdowns.causes.add(value or None, figures, blob)
        elif dimension == Dimension.UTC_HOUR:
            local_hour = (int(value) + offsets[Piece(grain, period)]) % HOURS_PER_DAY
            breakdowns.hours.add(local_hour, figures, blob)
    day_of_piece: dict[Piece, int] = {}
    for index in range(len(frame.days)):
        day_first = epoch_hour(frame.day_starts[index])
        day_end = epoch_hour(frame.day_starts[index + 1])
        for piece in pieces(day_first, day_end):
            day_of_piece[piece] = index
    day_keys = (
        CallVolumeRollup.operator_key == ALL_OPERATORS
        if scope is None
        else CallVolumeRollup.operator_key.in_(scope)
    )
    result = await session.execute(
        select(*ROLLUP_COLUMNS).where(
            _pieces_condition(day_of_piece),
            CallVolumeRollup.dimension == Dimension.TOTAL,
            day_keys,
        )
    )
    for grain, period, _dimension, _operator, _value, *figures, blob in result:
        breakdowns.days.add(day_of_piece[Piece(grain, period)], figures, blob)
    return breakdowns


async def _from_calls(session: AsyncSession, frame: _Frame, scope: list[int] | None) -> _Breakdowns:
    """The same breakdowns counted call by call (zones with part-hour offsets)."""
    breakdowns = _Breakdowns()
    if scope is not None and not scope:
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
    if scope is not None:
        statement = statement.where(Call.operator_id.in_(scope))
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
    scope = await operator_scope(session, actor, query.operator_id, query.team_id)
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
    by_operator = breakdowns.operators.metrics()
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
            ReportLine(key, labels.get(key, key) if key else "", metrics)
            for key, metrics in breakdowns.outcomes.metrics().items()
            if metrics.calls
        ),
        key=lambda line: (-line.metrics.calls, str(line.key or "")),
    )
    causes = sorted(
        (
            ReportLine(key, key or "", metrics)
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
    "operator_scope",
]
