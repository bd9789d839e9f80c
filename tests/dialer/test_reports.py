"""Daily call-volume reports on SQLite and PostgreSQL: exact figures on hand-built calls, late
updates, purges, role scoping, time zones, CSV/XLSX contents and the ``dialer report`` command.

The calls below, made through ``dialer.calls`` like the telephony service makes them (UTC)::

    call  operator  created (UTC)       ring  result                     talk  outcome
    A1    anna      03-02 09:10         5     answered                   60    sale
    A2    anna      03-02 09:40         10    answered                   120   not_interested
    A3    anna      03-02 14:05         20    failed: busy               -     -
    B1    boris     03-02 09:20         4     answered                   90    sale
    B2    boris     03-02 23:30         30    not answered (no_answer)   -     no_answer
    A4    anna      03-03 10:00         8     answered                   30    sale
    V1    vera      03-03 10:30         6     answered                   45    not_interested
    V2    vera      03-03 11:00         -     failed: invalid_number     -     -
"""

from __future__ import annotations

import asyncio
import csv
import io
import random
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from alembic import command
from sqlalchemy import Connection, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.actors import Actor
from dialer.calls import (
    create_call,
    purge_call,
    record_call_transition,
    set_call_outcome,
    soft_delete_call,
)
from dialer.errors import ValidationFailed
from dialer.models import Call, CallState, User
from dialer.reports import (
    DailyReport,
    DailyReportQuery,
    Metrics,
    ReportFormat,
    ReportLine,
    build_daily_report,
    histogram,
    rebuild_call_volume,
    render_report,
)
from dialer.reports.errors import ReportRangeInvalid
from dialer.reports.grid import epoch_hour
from dialer.reports.models import CallVolumeDirtyHour
from dialer.reports.refresher import RefresherOptions, refresh_pending, running_refresher
from dialer.reports.rollup import FAILED_STATES, ROLLUP_TABLE
from dialer.reports.settings import refresh_interval_seconds
from dialer.storage import alembic_config, create_engine, upgrade_database
from dialer.users import update_user
from tests.conftest import People, Person
from web.cli import main

DAY_1 = date(2026, 3, 2)
DAY_2 = date(2026, 3, 3)
PHONE = "+79161234567"


def at(day: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=UTC)


@dataclass(frozen=True)
class Planned:
    operator: str
    created: datetime
    ring: float | None
    talk: float | None = None
    failure: str | None = None
    unanswered_cause: str | None = None
    outcome: str | None = None


PLAN: dict[str, Planned] = {
    "A1": Planned("anna", at(DAY_1, 9, 10), 5, talk=60, outcome="sale"),
    "A2": Planned("anna", at(DAY_1, 9, 40), 10, talk=120, outcome="not_interested"),
    "A3": Planned("anna", at(DAY_1, 14, 5), 20, failure="busy"),
    "B1": Planned("boris", at(DAY_1, 9, 20), 4, talk=90, outcome="sale"),
    "B2": Planned(
        "boris", at(DAY_1, 23, 30), 30, unanswered_cause="no_answer", outcome="no_answer"
    ),
    "A4": Planned("anna", at(DAY_2, 10, 0), 8, talk=30, outcome="sale"),
    "V1": Planned("vera", at(DAY_2, 10, 30), 6, talk=45, outcome="not_interested"),
    "V2": Planned("vera", at(DAY_2, 11, 0), None, failure="invalid_number"),
}


def person_of(people: People, name: str) -> Person:
    return {
        "anna": people.north_operator,
        "boris": people.north_operator_2,
        "vera": people.south_operator,
    }[name]


async def place_call(session: AsyncSession, operator: Person, plan: Planned) -> Call:
    """One call through its lifecycle, as the telephony service records it."""
    call = await create_call(session, None, PHONE, operator_id=operator.user.id, now=plan.created)
    moment = plan.created + timedelta(seconds=1)
    await record_call_transition(session, call.id, CallState.DIALING, moment)
    if plan.ring is not None:
        await record_call_transition(session, call.id, CallState.RINGING, moment)
        moment += timedelta(seconds=plan.ring)
    if plan.failure is not None:
        await record_call_transition(
            session, call.id, CallState.FAILED, moment, end_cause=plan.failure
        )
    elif plan.talk is not None:
        await record_call_transition(session, call.id, CallState.ANSWERED, moment)
        moment += timedelta(seconds=plan.talk)
        await record_call_transition(session, call.id, CallState.ENDED, moment)
    else:
        await record_call_transition(
            session, call.id, CallState.ENDED, moment, end_cause=plan.unanswered_cause
        )
    if plan.outcome is not None:
        await set_call_outcome(
            session, operator.actor, call.id, plan.outcome, now=moment + timedelta(seconds=5)
        )
    return call


@pytest.fixture
async def calls(
    session_factory: async_sessionmaker[AsyncSession], people: People
) -> dict[str, int]:
    made: dict[str, int] = {}
    async with session_factory() as session:
        for name, plan in PLAN.items():
            call = await place_call(session, person_of(people, plan.operator), plan)
            made[name] = call.id
        await session.commit()
    return made


async def report_as(
    session_factory: async_sessionmaker[AsyncSession],
    actor: Actor | None,
    first_day: date = DAY_1,
    last_day: date = DAY_2,
    **options: object,
) -> DailyReport:
    async with session_factory() as session:
        report = await build_daily_report(
            session,
            actor,
            DailyReportQuery(first_day, last_day, **options),  # type: ignore[arg-type]
        )
        await session.commit()
    return report


def by_key(lines: Sequence[ReportLine]) -> dict[object, Metrics]:
    return {line.key: line.metrics for line in lines}


def figures(metrics: Metrics) -> tuple[object, ...]:
    return (
        metrics.calls,
        metrics.answered,
        metrics.failed,
        metrics.talk_seconds_total,
        metrics.talk_seconds_median,
    )


async def test_admin_report_has_exact_figures_per_day_hour_operator_outcome_and_cause(
    session_factory: async_sessionmaker[AsyncSession], people: People, calls: dict[str, int]
) -> None:
    report = await report_as(session_factory, people.admin.actor)

    total = report.total
    assert figures(total) == (8, 5, 2, 345.0, 60.0)
    assert total.answer_rate == pytest.approx(5 / 8)
    assert total.talk_seconds_average == pytest.approx(69.0)
    assert total.ring_count == 7
    assert total.ring_seconds_total == pytest.approx(83.0)
    assert total.ring_seconds_average == pytest.approx(83 / 7)

    days = by_key(report.days)
    assert list(days) == [DAY_1, DAY_2]
    assert figures(days[DAY_1]) == (5, 3, 1, 270.0, 90.0)
    assert figures(days[DAY_2]) == (3, 2, 1, 75.0, 37.5)  # even count: mean of 30 and 45
    assert days[DAY_1].ring_seconds_total == pytest.approx(69.0)

    hours = by_key(report.hours)
    assert len(hours) == 24
    assert figures(hours[9]) == (3, 3, 0, 270.0, 90.0)
    assert figures(hours[10]) == (2, 2, 0, 75.0, 37.5)
    assert [hours[hour].calls for hour in (11, 14, 23)] == [1, 1, 1]
    assert sum(metrics.calls for metrics in hours.values()) == 8

    operators = by_key(report.operators)
    anna, boris, vera = (person_of(people, name).user.id for name in ("anna", "boris", "vera"))
    assert set(operators) == {anna, boris, vera}
    assert figures(operators[anna]) == (4, 3, 1, 210.0, 60.0)
    assert figures(operators[boris]) == (2, 1, 0, 90.0, 90.0)
    assert figures(operators[vera]) == (2, 1, 1, 45.0, 45.0)
    assert operators[vera].ring_count == 1

    outcomes = by_key(report.outcomes)
    assert figures(outcomes["sale"]) == (3, 3, 0, 180.0, 60.0)
    assert figures(outcomes["not_interested"]) == (2, 2, 0, 165.0, 82.5)
    assert figures(outcomes["no_answer"]) == (1, 0, 0, 0.0, None)
    assert figures(outcomes[None]) == (2, 0, 2, 0.0, None)
    labels = {line.key: line.label for line in report.outcomes}
    assert labels["sale"] == "Sale"

    causes = by_key(report.failure_causes)
    assert {cause: metrics.calls for cause, metrics in causes.items()} == {
        "busy": 1,
        "invalid_number": 1,
    }
    assert report.from_rollups


async def test_days_and_hours_follow_the_report_time_zone(
    session_factory: async_sessionmaker[AsyncSession], people: People, calls: dict[str, int]
) -> None:
    moscow = await report_as(session_factory, None, timezone="Europe/Moscow")
    assert moscow.from_rollups
    days = by_key(moscow.days)
    # B2 (23:30 UTC) is 02:30 the next day in Moscow.
    assert [days[DAY_1].calls, days[DAY_2].calls] == [4, 4]
    assert figures(days[DAY_1]) == (4, 3, 1, 270.0, 90.0)
    hours = by_key(moscow.hours)
    assert {hour: metrics.calls for hour, metrics in hours.items() if metrics.calls} == {
        2: 1,
        12: 3,
        13: 2,
        14: 1,
        17: 1,
    }
    assert figures(moscow.total) == (8, 5, 2, 345.0, 60.0)

    # A half-hour zone is counted from the calls table with the same rules.
    kolkata = await report_as(session_factory, None, timezone="Asia/Kolkata")
    assert not kolkata.from_rollups
    assert [line.metrics.calls for line in kolkata.days] == [4, 4]
    hours = by_key(kolkata.hours)
    assert {hour: metrics.calls for hour, metrics in hours.items() if metrics.calls} == {
        5: 1,
        14: 2,
        15: 2,
        16: 2,
        19: 1,
    }
    assert figures(hours[14]) == (2, 2, 0, 150.0, 75.0)
    assert figures(kolkata.total) == figures(moscow.total)
    assert by_key(kolkata.outcomes)["not_interested"] == by_key(moscow.outcomes)["not_interested"]


async def test_each_role_sees_only_its_calls(
    session_factory: async_sessionmaker[AsyncSession], people: People, calls: dict[str, int]
) -> None:
    anna, boris, vera = (person_of(people, name).user for name in ("anna", "boris", "vera"))

    own = await report_as(session_factory, people.north_operator.actor)
    assert own.total.calls == 4
    assert [line.key for line in own.operators] == [anna.id]
    # An operator asking for someone else's figures gets none, not theirs.
    other = await report_as(session_factory, people.north_operator.actor, operator_id=boris.id)
    assert other.total.calls == 0
    assert other.operators == []

    north = await report_as(session_factory, people.north_supervisor.actor)
    assert north.total.calls == 6
    assert {line.key for line in north.operators} == {anna.id, boris.id}
    assert figures(by_key(north.days)[DAY_1]) == (5, 3, 1, 270.0, 90.0)
    assert (
        await report_as(session_factory, people.north_supervisor.actor, operator_id=vera.id)
    ).total.calls == 0
    assert (
        await report_as(session_factory, people.north_supervisor.actor, team_id=vera.team_id)
    ).total.calls == 0
    only_boris = await report_as(
        session_factory, people.north_supervisor.actor, operator_id=boris.id
    )
    assert figures(only_boris.total) == (2, 1, 0, 90.0, 90.0)

    south = await report_as(session_factory, people.south_supervisor.actor)
    assert south.total.calls == 2
    assert by_key(south.failure_causes).keys() == {"invalid_number"}

    admin_team = await report_as(session_factory, people.admin.actor, team_id=anna.team_id)
    assert admin_team.total.calls == 6
    assert by_key(admin_team.outcomes)["sale"].calls == 3


async def test_a_call_ended_a_day_later_and_a_changed_outcome_change_the_report(
    session_factory: async_sessionmaker[AsyncSession], people: People, calls: dict[str, int]
) -> None:
    anna = people.north_operator
    async with session_factory() as session:
        late = await create_call(session, None, PHONE, operator_id=anna.user.id, now=at(DAY_1, 12))
        await record_call_transition(session, late.id, CallState.RINGING, at(DAY_1, 12, 0, 1))
        await record_call_transition(session, late.id, CallState.ANSWERED, at(DAY_1, 12, 0, 4))
        await session.commit()
        late_id = late.id

    before = await report_as(session_factory, None)
    day = by_key(before.days)[DAY_1]
    assert (day.calls, day.answered, day.talk_count, day.talk_seconds_total) == (6, 4, 3, 270.0)
    assert by_key(before.hours)[12].ring_seconds_total == pytest.approx(3.0)

    async with session_factory() as session:
        # The end arrives a day later (e.g. a trunk that reported it late).
        await record_call_transition(session, late_id, CallState.ENDED, at(DAY_2, 12, 0, 4))
        await set_call_outcome(session, anna.actor, late_id, "sale", now=at(DAY_2, 12, 1))
        await session.commit()
    after = await report_as(session_factory, None)
    day = by_key(after.days)[DAY_1]
    assert (day.calls, day.answered, day.talk_count) == (6, 4, 4)
    assert day.talk_seconds_total == pytest.approx(270.0 + 86400.0)
    assert by_key(after.days)[DAY_2].calls == 3  # counted on the day it was placed
    assert by_key(after.outcomes)["sale"].calls == 4
    assert by_key(after.outcomes)[None].calls == 2

    async with session_factory() as session:
        await set_call_outcome(
            session, anna.actor, calls["A1"], "not_interested", now=at(DAY_2, 13)
        )
        await session.commit()
    changed = by_key((await report_as(session_factory, None)).outcomes)
    assert changed["sale"].calls == 3
    assert figures(changed["not_interested"]) == (3, 3, 0, 225.0, 60.0)


async def test_deleted_and_purged_calls_leave_the_report(
    session_factory: async_sessionmaker[AsyncSession], people: People, calls: dict[str, int]
) -> None:
    admin = people.admin.actor
    assert (await report_as(session_factory, admin)).total.calls == 8
    async with session_factory() as session:
        await soft_delete_call(session, admin, calls["B1"], now=at(DAY_2, 20))
        await session.commit()
    hidden = await report_as(session_factory, admin)
    assert figures(hidden.total) == (7, 4, 2, 255.0, 52.5)
    async with session_factory() as session:
        await purge_call(session, admin, calls["B1"], now=at(DAY_2, 21))
        await purge_call(session, admin, calls["A3"], now=at(DAY_2, 21))
        await session.commit()
    purged = await report_as(session_factory, admin)
    assert figures(purged.total) == (6, 4, 1, 255.0, 52.5)
    assert by_key(purged.failure_causes).keys() == {"invalid_number"}
    assert figures(by_key(purged.days)[DAY_1]) == (3, 2, 0, 180.0, 90.0)
    async with session_factory() as session:
        remaining = await session.scalar(select(func.count()).select_from(CallVolumeDirtyHour))
    assert remaining == 0


async def test_a_range_without_calls_and_bad_ranges(
    session_factory: async_sessionmaker[AsyncSession], people: People, calls: dict[str, int]
) -> None:
    empty = await report_as(session_factory, None, date(2025, 1, 1), date(2025, 1, 3))
    assert empty.total == Metrics()
    assert [line.metrics.calls for line in empty.days] == [0, 0, 0]
    with pytest.raises(ReportRangeInvalid) as order:
        await report_as(session_factory, None, DAY_2, DAY_1)
    assert order.value.field == "to"
    with pytest.raises(ReportRangeInvalid) as zone:
        await report_as(session_factory, None, timezone="Mars/Olympus")
    assert zone.value.field == "timezone"
    with pytest.raises(ReportRangeInvalid):
        await report_as(session_factory, None, date(2025, 1, 1), date(2026, 3, 1))


async def test_csv_and_xlsx_hold_every_breakdown(
    session_factory: async_sessionmaker[AsyncSession], people: People, calls: dict[str, int]
) -> None:
    report = await report_as(session_factory, people.north_supervisor.actor)
    data = render_report(report, ReportFormat.CSV)
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    total = next(row for row in rows if row["section"] == "total")
    assert (total["calls"], total["answered"], total["answer_rate"]) == ("6", "4", "0.6667")
    assert (total["talk_seconds_total"], total["talk_seconds_median"]) == ("300", "75")
    days = {row["key"]: row for row in rows if row["section"] == "day"}
    assert days["2026-03-02"]["calls"] == "5"
    assert days["2026-03-03"]["talk_seconds_median"] == "30"
    operators = {row["label"]: row["calls"] for row in rows if row["section"] == "operator"}
    assert operators == {"Anna": "4", "Boris": "2"}
    assert len([row for row in rows if row["section"] == "hour"]) == 24
    causes = [(row["key"], row["calls"]) for row in rows if row["section"] == "failure_cause"]
    assert causes == [("busy", "1")]

    workbook = openpyxl.load_workbook(io.BytesIO(render_report(report, ReportFormat.XLSX)))
    assert workbook.sheetnames == ["Summary", "Days", "Hours", "Operators", "Outcomes", "Failures"]
    summary = [list(row) for row in workbook["Summary"].iter_rows(values_only=True)]
    assert summary[0][:2] == ["from", "2026-03-02"]
    assert summary[-1][:3] == [6, 4, 0.6667]
    outcome_rows = list(workbook["Outcomes"].iter_rows(values_only=True))
    assert outcome_rows[0][:3] == ("key", "label", "calls")
    assert ("sale", "Sale", 3) in {row[:3] for row in outcome_rows[1:]}


@pytest.fixture
def shell_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> Path:
    monkeypatch.setenv("DIALER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DIALER_DATABASE_URL", database_url)
    monkeypatch.delenv("DIALER_REPORT_TIMEZONE", raising=False)
    return tmp_path


def test_report_command_prints_csv_and_writes_xlsx(
    shell_environment: Path,
    people: People,
    calls: dict[str, int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["report", "daily", "--from", "2026-03-02", "--to", "2026-03-03"]) == 0
    printed = capsys.readouterr().out
    assert not printed.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(printed)))
    assert next(row for row in rows if row["section"] == "total")["calls"] == "8"

    code = main(
        [
            "report",
            "daily",
            "--from",
            "2026-03-02",
            "--to",
            "2026-03-03",
            "--timezone",
            "Europe/Moscow",
            "--operator",
            "anna",
        ]
    )
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    day_calls = {row["key"]: row["calls"] for row in rows if row["section"] == "day"}
    assert day_calls == {"2026-03-02": "3", "2026-03-03": "1"}

    output = shell_environment / "north.xlsx"
    code = main(
        [
            "report",
            "daily",
            "--from",
            "2026-03-02",
            "--to",
            "2026-03-02",
            "--team",
            "north",
            "--output",
            str(output),
        ]
    )
    assert code == 0
    assert f"written to {output}" in capsys.readouterr().out
    sheet = openpyxl.load_workbook(output)["Summary"]
    assert [cell.value for cell in sheet[8]][:2] == [5, 3]

    assert main(["report", "daily", "--from", "2026-03-02", "--to", "2026-03-01"]) == 2
    assert "must not be before from" in capsys.readouterr().err
    assert (
        main(
            [
                "report",
                "daily",
                "--from",
                "2026-03-02",
                "--to",
                "2026-03-03",
                "--operator",
                "nobody",
            ]
        )
        == 2
    )


def test_rebuild_command_recomputes_rollups_of_bulk_loaded_calls(
    shell_environment: Path,
    people: People,
    calls: dict[str, int],
    database_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def bulk_load() -> None:
        # Written past the ORM unit of work: no dirty marker.
        engine = create_engine(database_url)
        try:
            async with engine.begin() as connection:
                await connection.execute(
                    insert(Call),
                    [
                        {
                            "phone_e164": PHONE,
                            "operator_id": person_of(people, "vera").user.id,
                            "state": CallState.ENDED.value,
                            "created_at": at(DAY_2, 15),
                            "updated_at": at(DAY_2, 15),
                        }
                    ],
                )
        finally:
            await engine.dispose()

    assert main(["report", "daily", "--from", "2026-03-03", "--to", "2026-03-03"]) == 0
    capsys.readouterr()
    asyncio.run(bulk_load())
    assert main(["report", "rebuild", "--from", "2026-03-03", "--to", "2026-03-03"]) == 0
    assert "rebuilt" in capsys.readouterr().out
    assert main(["report", "daily", "--from", "2026-03-03", "--to", "2026-03-03"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert next(row for row in rows if row["section"] == "total")["calls"] == "4"


async def test_system_report_equals_counting_users_calls(
    session_factory: async_sessionmaker[AsyncSession], people: People, calls: dict[str, int]
) -> None:
    report = await report_as(session_factory, None)
    async with session_factory() as session:
        counted = await session.scalar(select(func.count()).select_from(Call))
        users = (await session.scalars(select(User.id).where(User.role == "operator"))).all()
    assert report.total.calls == counted == 8
    assert {line.key for line in report.operators} <= set(users)


async def rollup_snapshot(
    session_factory: async_sessionmaker[AsyncSession],
) -> list[tuple[object, ...]]:
    async with session_factory() as session:
        rows = await session.execute(
            select(*ROLLUP_TABLE.columns).order_by(*ROLLUP_TABLE.primary_key.columns)
        )
        return [tuple(row) for row in rows]


async def test_incremental_refresh_equals_a_full_rebuild(
    session_factory: async_sessionmaker[AsyncSession], people: People, calls: dict[str, int]
) -> None:
    admin, anna = people.admin.actor, people.north_operator
    await report_as(session_factory, None)
    async with session_factory() as session:
        await set_call_outcome(session, anna.actor, calls["A2"], "sale", now=at(DAY_2, 20))
        await soft_delete_call(session, admin, calls["V1"], now=at(DAY_2, 20))
        extra = await place_call(
            session, anna, Planned("anna", at(DAY_1, 9, 55), 7, talk=3725, outcome="sale")
        )
        await session.commit()
    await report_as(session_factory, None)
    async with session_factory() as session:
        await purge_call(session, admin, calls["A3"], now=at(DAY_2, 21))
        await set_call_outcome(session, anna.actor, extra.id, "not_interested", now=at(DAY_2, 21))
        await session.commit()
    refreshed = await report_as(session_factory, None, timezone="Europe/Moscow")
    incremental = await rollup_snapshot(session_factory)
    assert incremental

    async with session_factory() as session:
        first = epoch_hour(at(DAY_1, 0)) - 24
        await rebuild_call_volume(session, first - first % 192, epoch_hour(at(DAY_2, 0)) + 192)
        await session.commit()
    assert await rollup_snapshot(session_factory) == incremental
    rebuilt = await report_as(session_factory, None, timezone="Europe/Moscow")
    assert rebuilt == refreshed
    # 9 planned - A3 purged - V1 deleted + the extra call; its talk time is over an hour.
    assert figures(rebuilt.total)[:3] == (7, 5, 1)
    assert rebuilt.total.talk_seconds_total == pytest.approx(60 + 120 + 90 + 30 + 3725)


async def test_an_operator_changing_team_takes_their_calls_along(
    session_factory: async_sessionmaker[AsyncSession], people: People, calls: dict[str, int]
) -> None:
    north, south = people.north_supervisor.actor, people.south_supervisor.actor
    assert (await report_as(session_factory, north)).total.calls == 6
    assert (await report_as(session_factory, south)).total.calls == 2
    async with session_factory() as session:
        await update_user(
            session,
            None,
            people.north_operator_2.user.id,
            team_id=people.south_operator.user.team_id,
        )
        await session.commit()
    moved_north = await report_as(session_factory, north)
    moved_south = await report_as(session_factory, south)
    assert figures(moved_north.total) == (4, 3, 1, 210.0, 60.0)
    assert figures(moved_south.total) == (4, 2, 1, 135.0, 67.5)
    assert by_key(moved_south.days)[DAY_1].calls == 2
    incremental = await rollup_snapshot(session_factory)
    async with session_factory() as session:
        first = epoch_hour(at(DAY_1, 0))
        await rebuild_call_volume(session, first - first % 192, epoch_hour(at(DAY_2, 0)) + 192)
        await session.commit()
    assert await rollup_snapshot(session_factory) == incremental


# Months of calls against an independent count --------------------------------------------------

SPREAD_FIRST = date(2026, 1, 20)
SPREAD_DAYS = 150
OUTCOMES = ("sale", "not_interested", "callback", "no_answer", None)
CAUSES = ("busy", "congestion", None)


def random_calls(generator: random.Random, operators: Sequence[int | None]) -> list[Call]:
    """Calls over SPREAD_DAYS days at any hour: answered (some over an hour, some still
    talking), not answered, failed; with and without an operator."""
    made: list[Call] = []
    for _ in range(420):
        created = at(SPREAD_FIRST, 0) + timedelta(
            days=generator.randrange(SPREAD_DAYS), seconds=generator.randrange(86_400)
        )
        kind = generator.random()
        ring = None if generator.random() < 0.15 else round(generator.uniform(1, 40), 3)
        call = Call(
            phone_e164=PHONE,
            operator_id=generator.choice(operators),
            created_at=created,
            updated_at=created,
            ring_seconds=ring,
            outcome=generator.choice(OUTCOMES),
        )
        if kind < 0.5:
            call.state = CallState.ENDED.value
            call.answered_at = created + timedelta(seconds=ring or 0)
            # Unknown (still talking), under a second, around a minute, over an hour.
            talk = generator.choice((None, 0.4, 2.5, 61.49, 4000.0))
            call.talk_seconds = None if talk is None else round(talk * generator.uniform(0.5, 3), 3)
        elif kind < 0.75:
            call.state = CallState.ENDED.value
            call.end_cause = "no_answer"
        else:
            call.state = generator.choice(FAILED_STATES)
            call.end_cause = generator.choice(CAUSES)
        made.append(call)
    return made


def expected_lines(
    calls: Sequence[Call], zone: ZoneInfo, first: date, last: date
) -> dict[str, dict[object, Metrics]]:
    """The report's breakdowns counted call by call, with the report's rules."""
    talks: dict[tuple[str, object], list[float]] = defaultdict(list)
    sums: dict[tuple[str, object], list[float]] = defaultdict(lambda: [0.0] * 7)
    for call in calls:
        local = call.created_at.astimezone(zone)
        if call.deleted_at is not None or not first <= local.date() <= last:
            continue
        failed = call.state in FAILED_STATES
        answered = call.answered_at is not None
        talk_known = answered and call.talk_seconds is not None
        keys: list[tuple[str, object]] = [
            ("total", None),
            ("days", local.date()),
            ("hours", local.hour),
            ("operators", call.operator_id),
            ("outcomes", call.outcome),
        ]
        if failed:
            cause = sums[("causes", call.end_cause)]
            cause[0] += 1
            cause[2] += 1
        for key in keys:
            figures = sums[key]
            figures[0] += 1
            figures[1] += answered
            figures[2] += failed
            if talk_known and call.talk_seconds is not None:
                figures[3] += 1
                figures[4] += round(call.talk_seconds * 1000)
                talks[key].append(histogram.bin_seconds(histogram.talk_bin(call.talk_seconds)))
            if call.ring_seconds is not None:
                figures[5] += 1
                figures[6] += round(call.ring_seconds * 1000)
    lines: dict[str, dict[object, Metrics]] = defaultdict(dict)
    for (section, line_key), figures in sums.items():
        lines[section][line_key] = Metrics(
            calls=int(figures[0]),
            answered=int(figures[1]),
            failed=int(figures[2]),
            talk_count=int(figures[3]),
            talk_seconds_total=figures[4] / 1000,
            talk_seconds_median=statistics.median(talks[(section, line_key)])
            if talks[(section, line_key)]
            else None,
            ring_count=int(figures[5]),
            ring_seconds_total=figures[6] / 1000,
        )
    return lines


def report_lines(report: DailyReport) -> dict[str, dict[object, Metrics]]:
    return {
        "total": {None: report.total},
        "days": {line.key: line.metrics for line in report.days if line.metrics.calls},
        "hours": {line.key: line.metrics for line in report.hours if line.metrics.calls},
        "operators": by_key(report.operators),
        "outcomes": by_key(report.outcomes),
        "causes": by_key(report.failure_causes),
    }


def assert_same_lines(
    got: dict[str, dict[object, Metrics]], wanted: dict[str, dict[object, Metrics]]
) -> None:
    for section in ("total", "days", "hours", "operators", "outcomes", "causes"):
        assert set(got[section]) == set(wanted.get(section, {})), section
        for key, metrics in wanted.get(section, {}).items():
            found = got[section][key]
            assert (found.calls, found.answered, found.failed, found.talk_count) == (
                metrics.calls,
                metrics.answered,
                metrics.failed,
                metrics.talk_count,
            ), (section, key)
            assert found.talk_seconds_total == pytest.approx(metrics.talk_seconds_total)
            assert found.talk_seconds_median == metrics.talk_seconds_median, (section, key)
            assert found.ring_count == metrics.ring_count, (section, key)
            assert found.ring_seconds_total == pytest.approx(metrics.ring_seconds_total)


async def all_calls(session_factory: async_sessionmaker[AsyncSession]) -> list[Call]:
    async with session_factory() as session:
        return list((await session.scalars(select(Call).order_by(Call.id))).all())


async def test_months_of_calls_in_any_zone_match_counting_the_calls(
    session_factory: async_sessionmaker[AsyncSession], people: People
) -> None:
    generator = random.Random(12)
    anna, boris, vera = (person_of(people, name).user.id for name in ("anna", "boris", "vera"))
    async with session_factory() as session:
        session.add_all(random_calls(generator, (anna, boris, vera, None)))
        await session.commit()
    last_day = SPREAD_FIRST + timedelta(days=SPREAD_DAYS - 1)
    await report_as(session_factory, None, SPREAD_FIRST, last_day)  # rollups made

    # Late changes to calls of many hours: outcomes, ends, deletions, a call moved in time.
    async with session_factory() as session:
        calls = list((await session.scalars(select(Call).order_by(Call.id))).all())
        for call in generator.sample(calls, 40):
            call.outcome = generator.choice(OUTCOMES)
        for call in generator.sample(calls, 10):
            call.deleted_at = call.created_at + timedelta(days=1)
        for call in generator.sample([call for call in calls if call.answered_at], 10):
            call.talk_seconds = round(generator.uniform(0, 5000), 2)
        calls[0].created_at = calls[0].created_at - timedelta(days=20, hours=5)
        await session.commit()

    north = people.north_supervisor.actor
    cases: list[tuple[Actor | None, str, date, date]] = [
        (None, "UTC", SPREAD_FIRST, last_day),
        (None, "Europe/Moscow", SPREAD_FIRST + timedelta(days=3), last_day - timedelta(days=2)),
        (north, "Asia/Yekaterinburg", date(2026, 2, 10), date(2026, 4, 20)),
        # Daylight saving time starts on 2026-03-08 in New York.
        (None, "America/New_York", date(2026, 3, 1), date(2026, 3, 15)),
        (people.north_operator.actor, "Asia/Tokyo", SPREAD_FIRST, last_day),
        (None, "Pacific/Kiritimati", date(2026, 5, 30), date(2026, 5, 30)),
    ]
    stored = await all_calls(session_factory)
    members = {
        None: None,
        north: {anna, boris},
        people.north_operator.actor: {anna},
    }
    for actor, zone_name, first, last in cases:
        report = await report_as(session_factory, actor, first, last, timezone=zone_name)
        assert report.from_rollups
        visible = [
            call
            for call in stored
            if members[actor] is None or call.operator_id in (members[actor] or set())
        ]
        wanted = expected_lines(visible, ZoneInfo(zone_name), first, last)
        wanted["operators"] = {
            key or None: metrics for key, metrics in wanted.get("operators", {}).items()
        }
        assert_same_lines(report_lines(report), wanted)


async def test_upgrading_to_64_day_periods_sums_them_from_the_stored_rollups(
    database_url: str, session_factory: async_sessionmaker[AsyncSession], people: People
) -> None:
    generator = random.Random(21)
    async with session_factory() as session:
        session.add_all(random_calls(generator, (person_of(people, "anna").user.id, None)))
        await session.commit()
    last_day = SPREAD_FIRST + timedelta(days=SPREAD_DAYS - 1)
    before = await report_as(session_factory, None, SPREAD_FIRST, last_day, timezone="Asia/Dubai")
    rollups = await rollup_snapshot(session_factory)
    assert {row[0] for row in rollups} == {1, 3, 6, 24, 192, 1536}

    await run_migration(database_url, "downgrade", BEFORE_64_DAY_PERIODS)
    assert {row[0] for row in await rollup_snapshot(session_factory)} == {1, 3, 6, 24, 192}
    await upgrade_database(database_url)
    assert await rollup_snapshot(session_factory) == rollups
    after = await report_as(session_factory, None, SPREAD_FIRST, last_day, timezone="Asia/Dubai")
    assert after == before


BEFORE_64_DAY_PERIODS = "0300_contact_search_indexes"


async def run_migration(database_url: str, direction: str, revision: str) -> None:
    def migrate(connection: Connection) -> None:
        config = alembic_config(database_url)
        config.attributes["connection"] = connection
        getattr(command, direction)(config, revision)

    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(migrate)
    finally:
        await engine.dispose()


async def dirty_hours(session_factory: async_sessionmaker[AsyncSession]) -> int:
    async with session_factory() as session:
        count = await session.scalar(select(func.count()).select_from(CallVolumeDirtyHour))
        await session.commit()
    return count or 0


async def rebuilt_snapshot(
    session_factory: async_sessionmaker[AsyncSession], first_day: date, last_day: date
) -> list[tuple[object, ...]]:
    async with session_factory() as session:
        first = epoch_hour(at(first_day, 0)) - 24
        end = epoch_hour(at(last_day, 0)) + 48
        await rebuild_call_volume(session, first - first % 1536, end + (-end) % 1536)
        await session.commit()
    return await rollup_snapshot(session_factory)


async def test_the_background_refresher_folds_late_changes_before_any_report(
    session_factory: async_sessionmaker[AsyncSession], people: People, calls: dict[str, int]
) -> None:
    anna, admin = people.north_operator, people.admin.actor
    await report_as(session_factory, None)
    async with running_refresher(session_factory, RefresherOptions(interval_seconds=0.05)):
        async with session_factory() as session:
            await set_call_outcome(
                session, anna.actor, calls["A1"], "wrong_number", now=at(DAY_2, 20)
            )
            await soft_delete_call(session, admin, calls["V2"], now=at(DAY_2, 20))
            await session.commit()
        for _ in range(600):  # a liveness wait (up to a minute on a loaded machine)
            if await dirty_hours(session_factory) == 0:
                break
            await asyncio.sleep(0.1)
        assert await dirty_hours(session_factory) == 0
    folded = await rollup_snapshot(session_factory)
    assert await rebuilt_snapshot(session_factory, DAY_1, DAY_2) == folded
    report = await report_as(session_factory, None)
    assert by_key(report.outcomes)["wrong_number"].calls == 1
    assert figures(report.total) == (7, 5, 1, 345.0, 60.0)


async def test_pending_hours_are_folded_a_few_per_transaction_until_none_is_left(
    session_factory: async_sessionmaker[AsyncSession], people: People
) -> None:
    generator = random.Random(30)
    async with session_factory() as session:
        made = random_calls(generator, (person_of(people, "boris").user.id, None))
        session.add_all(made)
        await session.commit()
    hours = {epoch_hour(call.created_at) for call in made}
    assert await dirty_hours(session_factory) == len(hours)
    options = RefresherOptions(hours_per_transaction=7, pause_seconds=0)
    assert await refresh_pending(session_factory, options) == len(hours)
    assert await dirty_hours(session_factory) == 0
    folded = await rollup_snapshot(session_factory)
    last_day = SPREAD_FIRST + timedelta(days=SPREAD_DAYS)
    assert await rebuilt_snapshot(session_factory, SPREAD_FIRST, last_day) == folded


def test_the_refresh_interval_is_configured_in_seconds() -> None:
    assert refresh_interval_seconds({}) == 1.0
    assert refresh_interval_seconds({"DIALER_REPORT_REFRESH_SECONDS": " 0 "}) == 0.0
    assert refresh_interval_seconds({"DIALER_REPORT_REFRESH_SECONDS": "2.5"}) == 2.5
    for wrong in ("soon", "-1", "nan", "1e9"):
        with pytest.raises(ValidationFailed) as refused:
            refresh_interval_seconds({"DIALER_REPORT_REFRESH_SECONDS": wrong})
        assert refused.value.field == "DIALER_REPORT_REFRESH_SECONDS"
