"""Benchmark: daily call-volume reports and the calls search at millions of calls.

For each database (a SQLite file in a temporary directory; a fresh PostgreSQL database on
127.0.0.1:5432 made through DIALER_TEST_POSTGRES_URL's server, dropped afterwards), with the schema
made by ``upgrade_database``:

1. ``--calls`` calls (default 10 000 000) over the 365 days before 2026-11-01 are bulk-loaded
   (SQLite: ``executemany`` in transactions of 200 000 rows; PostgreSQL: asyncpg
   ``copy_records_to_table``). One operator per 100 000 calls (at least 10), twelve to a team;
   weekdays busier than weekends; hours 08-21 Moscow with a late-morning peak; 40 % answered
   (talk time log-normal, median ~80 s), 35 % unanswered, 25 % failed by cause; outcomes by result.
2. The rollups are built with ``dialer.reports.rebuild_call_volume``, eight days per
   transaction (the calls were written past the ORM, as a bulk load would be), then analysed
   (PostgreSQL: ``VACUUM ANALYZE``, what autovacuum does after bulk inserts; SQLite: ``ANALYZE``).
3. ``--reports`` reports (default 60) through ``dialer.reports.build_daily_report``, each in its
   own session: random ranges (1, 7, 31, 92 or 365 days; mostly short), zones (Europe/Moscow or
   UTC) and viewers (admin for everyone, admin for one team, a supervisor, an operator).
   ``live_report_p95_ms`` repeats one-day reports of the last day right after changing one call
   of its busiest hour each time (the report refreshes the dirty hour itself: the fallback).
   ``live_report_after_refresher_p95_ms`` does the same with the background refresher of
   ``dialer serve`` running (``dialer.reports.refresher``, every 0.1 s): the report is read once
   the refresher has folded the change, which takes ``refresher_fold_p95_ms`` after the commit.
4. ``--searches`` searches (default 60) through ``dialer.calls.list_calls`` with a date range +
   operator + outcome filter (the recordings library's call search without transcript text,
   which is not part of this benchmark), as an admin and as a supervisor.

Prints one JSON line per database: db, calls, report_p95_ms, search_p95_ms, plus details
(``report_p95_process_cpu_ms`` is this process's CPU time per report: on SQLite that includes the
database work, on PostgreSQL not; it shows what the wall time would be on an idle machine;
``load_average`` is the machine's 1-minute load before and after the measurements).

    .venv/bin/python -m bench.reports [--calls 10000000] [--databases sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import numpy as np
import numpy.typing as npt
from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
)

from bench.postgres_admin import create_database, drop_database
from dialer.actors import Actor, Role
from dialer.calls import CallQuery, list_calls
from dialer.models import Call, Team, User
from dialer.reports import DailyReportQuery, build_daily_report, rebuild_call_volume
from dialer.reports.grid import epoch_hour
from dialer.reports.models import CallVolumeDirtyHour, CallVolumeRollup
from dialer.reports.refresher import RefresherOptions, running_refresher
from dialer.storage import create_engine, create_session_factory, upgrade_database

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://root@127.0.0.1:5432/test"
LAST_DAY = date(2026, 10, 31)
DAYS = 365
CALLS_PER_OPERATOR = 100_000
TEAM_SIZE = 12
# Bench users never log in: a value no password hash can equal.
NO_LOGIN_HASH = "!"
SQLITE_BATCH = 200_000
CHUNK_DAYS = 10
# Rollups are rebuilt one aligned eight-day period per transaction.
REBUILD_HOURS = 192
RANGE_DAYS = (1, 7, 31, 92, 365)
RANGE_WEIGHTS = (0.35, 0.3, 0.2, 0.1, 0.05)
FAILURE_CAUSES = ("busy", "congestion", "invalid_number", "unavailable", "declined", "timeout")
FAILURE_WEIGHTS = (0.45, 0.15, 0.15, 0.1, 0.1, 0.05)
ANSWERED_OUTCOMES = ("sale", "interested", "not_interested", "callback", "wrong_number", "")
ANSWERED_WEIGHTS = (0.1, 0.15, 0.4, 0.2, 0.05, 0.1)
# Moscow hours 08..21 are UTC 05..18; weights of those 14 hours (late-morning peak).
HOUR_WEIGHTS = np.array([2, 5, 8, 9, 8, 6, 7, 8, 8, 7, 6, 5, 3, 2], dtype=np.float64)
FIRST_UTC_HOUR = 5
REFRESHER_INTERVAL_SECONDS = 0.1
FOLD_POLL_SECONDS = 0.02
FOLD_POLLS = 3000

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Database:
    kind: str
    url: str
    cleanup: str | None = None


@dataclass(frozen=True)
class Staff:
    admin: Actor
    supervisors: list[Actor]
    operators: list[Actor]
    teams: list[int]
    operator_ids: list[int]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


async def make_staff(sessions: async_sessionmaker[AsyncSession], operators: int) -> Staff:
    team_count = -(-operators // TEAM_SIZE)
    async with sessions() as session:
        teams = [
            (
                await session.execute(insert(Team).values(name=f"Team {n}").returning(Team.id))
            ).scalar_one()
            for n in range(team_count)
        ]

        async def user(login: str, role: Role, team_id: int | None) -> Actor:
            user_id = (
                await session.execute(
                    insert(User)
                    .values(
                        login=login,
                        login_key=login,
                        display_name=login.title(),
                        role=role.value,
                        team_id=team_id,
                        password_hash=NO_LOGIN_HASH,
                    )
                    .returning(User.id)
                )
            ).scalar_one()
            return Actor(user_id, role, team_id)

        admin = await user("admin", Role.ADMIN, None)
        supervisors = [
            await user(f"boss{n}", Role.SUPERVISOR, team) for n, team in enumerate(teams)
        ]
        operator_actors = [
            await user(f"operator{n}", Role.OPERATOR, teams[n // TEAM_SIZE])
            for n in range(operators)
        ]
        await session.commit()
    return Staff(
        admin, supervisors, operator_actors, teams, [actor.user_id for actor in operator_actors]
    )


@dataclass(frozen=True)
class Chunk:
    """Columns of generated calls (times as microseconds since the epoch)."""

    created: IntArray
    operator: IntArray
    state: list[str]
    answered: npt.NDArray[np.bool_]
    ring: FloatArray
    has_ring: npt.NDArray[np.bool_]
    talk: FloatArray
    cause: list[str | None]
    outcome: list[str | None]

    def __len__(self) -> int:
        return len(self.created)


def generate_calls(total: int, operator_ids: list[int], seed: int = 11) -> Iterator[Chunk]:
    """``total`` calls over DAYS days ending LAST_DAY, in chunks of CHUNK_DAYS days."""
    generator = np.random.default_rng(seed)
    first_day = LAST_DAY - timedelta(days=DAYS - 1)
    weekday_weight = np.array(
        [1.0 if (first_day + timedelta(days=d)).weekday() < 5 else 0.3 for d in range(DAYS)]
    )
    per_day = generator.multinomial(total, weekday_weight / weekday_weight.sum())
    hour_probability = HOUR_WEIGHTS / HOUR_WEIGHTS.sum()
    operators = np.array(operator_ids, dtype=np.int64)
    failure_p = np.array(FAILURE_WEIGHTS) / sum(FAILURE_WEIGHTS)
    answered_p = np.array(ANSWERED_WEIGHTS) / sum(ANSWERED_WEIGHTS)
    for chunk_start in range(0, DAYS, CHUNK_DAYS):
        days = range(chunk_start, min(DAYS, chunk_start + CHUNK_DAYS))
        counts = per_day[list(days)]
        count = int(counts.sum())
        if count == 0:
            continue
        day_index = np.repeat(np.array(list(days), dtype=np.int64), counts)
        hours = generator.choice(len(HOUR_WEIGHTS), size=count, p=hour_probability)
        seconds = generator.integers(0, 3600, size=count)
        epoch_day0 = int(
            datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC).timestamp()
        )
        created = (
            (epoch_day0 + day_index * 86400 + (FIRST_UTC_HOUR + hours) * 3600 + seconds) * 1_000_000
            + generator.integers(0, 1_000_000, size=count)
        ).astype(np.int64)
        operator = operators[generator.integers(0, len(operators), size=count)]
        result = generator.random(count)
        answered = result < 0.40
        failed = result >= 0.75
        ring = np.where(answered, generator.uniform(3, 25, count), generator.uniform(10, 45, count))
        has_ring = ~(failed & (generator.random(count) < 0.4))
        talk = np.clip(generator.lognormal(np.log(80), 1.0, count), 1, 7200)
        failure_names = generator.choice(len(FAILURE_CAUSES), size=count, p=failure_p)
        answered_outcomes = generator.choice(len(ANSWERED_OUTCOMES), size=count, p=answered_p)
        unanswered_outcome = generator.random(count) < 0.7
        states: list[str] = []
        causes: list[str | None] = []
        outcomes: list[str | None] = []
        for index in range(count):
            if answered[index]:
                states.append("ended")
                causes.append("remote_hangup")
                outcomes.append(ANSWERED_OUTCOMES[answered_outcomes[index]] or None)
            elif failed[index]:
                states.append("failed")
                causes.append(FAILURE_CAUSES[failure_names[index]])
                outcomes.append(None)
            else:
                states.append("ended")
                causes.append("no_answer")
                outcomes.append("no_answer" if unanswered_outcome[index] else None)
        yield Chunk(created, operator, states, answered, ring, has_ring, talk, causes, outcomes)


def _sqlite_time(microseconds: IntArray) -> list[str]:
    stamps = np.datetime_as_string(microseconds.astype("datetime64[us]"), unit="us")
    return [stamp.replace("T", " ") for stamp in stamps.tolist()]


def load_sqlite(path: Path, chunks: Iterator[Chunk]) -> int:
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=OFF")
    loaded = 0
    statement = (
        "INSERT INTO calls (direction, phone_e164, phone_raw, operator_id, state, created_at,"
        " answered_at, ended_at, ring_seconds, talk_seconds, end_cause, outcome, updated_at)"
        " VALUES ('outbound', '+79160000000', '', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    for chunk in chunks:
        created = _sqlite_time(chunk.created)
        answered_at = _sqlite_time(chunk.created + (chunk.ring * 1e6).astype(np.int64))
        rows: list[tuple[Any, ...]] = []
        for index in range(len(chunk)):
            answered = bool(chunk.answered[index])
            rows.append(
                (
                    int(chunk.operator[index]),
                    chunk.state[index],
                    created[index],
                    answered_at[index] if answered else None,
                    created[index],
                    float(chunk.ring[index]) if chunk.has_ring[index] else None,
                    float(chunk.talk[index]) if answered else 0.0,
                    chunk.cause[index],
                    chunk.outcome[index],
                    created[index],
                )
            )
        for start in range(0, len(rows), SQLITE_BATCH):
            with connection:
                connection.executemany(statement, rows[start : start + SQLITE_BATCH])
        loaded += len(rows)
    connection.execute("ANALYZE")
    connection.close()
    return loaded


async def load_postgres(url: str, chunks: Iterator[Chunk]) -> int:
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(dsn)
    loaded = 0
    columns = (
        "direction",
        "phone_e164",
        "phone_raw",
        "operator_id",
        "state",
        "created_at",
        "answered_at",
        "ended_at",
        "ring_seconds",
        "talk_seconds",
        "end_cause",
        "outcome",
        "updated_at",
    )
    try:
        for chunk in chunks:
            records = []
            for index in range(len(chunk)):
                created = datetime.fromtimestamp(int(chunk.created[index]) / 1e6, UTC)
                answered = bool(chunk.answered[index])
                records.append(
                    (
                        "outbound",
                        "+79160000000",
                        "",
                        int(chunk.operator[index]),
                        chunk.state[index],
                        created,
                        created + timedelta(seconds=float(chunk.ring[index])) if answered else None,
                        created,
                        float(chunk.ring[index]) if chunk.has_ring[index] else None,
                        float(chunk.talk[index]) if answered else 0.0,
                        chunk.cause[index],
                        chunk.outcome[index],
                        created,
                    )
                )
            await connection.copy_records_to_table("calls", records=records, columns=columns)
            loaded += len(records)
        await connection.execute("ANALYZE")
    finally:
        await connection.close()
    return loaded


async def build_rollups(sessions: async_sessionmaker[AsyncSession]) -> float:
    started = time.perf_counter()
    first = epoch_hour(datetime.combine(LAST_DAY - timedelta(days=DAYS), datetime.min.time(), UTC))
    end = epoch_hour(datetime.combine(LAST_DAY + timedelta(days=2), datetime.min.time(), UTC))
    first -= first % REBUILD_HOURS
    for chunk_start in range(first, end, REBUILD_HOURS):
        async with sessions() as session:
            await rebuild_call_volume(session, chunk_start, chunk_start + REBUILD_HOURS)
            await session.commit()
    return time.perf_counter() - started


async def settle_rollups(engine: AsyncEngine) -> float:
    """What a running system has done long before anyone reads these rows: statistics for the
    planner (ANALYZE) and, on PostgreSQL, the vacuum autovacuum runs after bulk inserts (it
    would otherwise run during the measurements, and first reads would set hint bits)."""
    started = time.perf_counter()
    async with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text("VACUUM ANALYZE call_volume_rollup"))
        else:
            await connection.execute(text("ANALYZE call_volume_rollup"))
            await connection.commit()
    return time.perf_counter() - started


def random_report(generator: random.Random, staff: Staff) -> tuple[Actor, DailyReportQuery, int]:
    days = generator.choices(RANGE_DAYS, RANGE_WEIGHTS)[0]
    last = LAST_DAY - timedelta(days=generator.randrange(0, DAYS - days + 1))
    first = last - timedelta(days=days - 1)
    zone = "Europe/Moscow" if generator.random() < 0.7 else "UTC"
    viewer = generator.random()
    team_id: int | None = None
    if viewer < 0.35:
        actor = staff.admin
    elif viewer < 0.5:
        actor = staff.admin
        team_id = generator.choice(staff.teams)
    elif viewer < 0.8:
        actor = generator.choice(staff.supervisors)
    else:
        actor = generator.choice(staff.operators)
    return actor, DailyReportQuery(first, last, zone, None, team_id), days


async def measure_reports(
    sessions: async_sessionmaker[AsyncSession], staff: Staff, count: int
) -> dict[str, Any]:
    generator = random.Random(5)
    timings: list[float] = []
    processor: list[float] = []
    by_days: dict[int, list[float]] = {}
    for _ in range(count):
        actor, query, days = random_report(generator, staff)
        started, started_cpu = time.perf_counter(), time.process_time()
        async with sessions() as session:
            await build_daily_report(session, actor, query)
            await session.commit()
        elapsed = (time.perf_counter() - started) * 1000
        processor.append((time.process_time() - started_cpu) * 1000)
        timings.append(elapsed)
        by_days.setdefault(days, []).append(elapsed)
    return {
        "report_p95_ms": round(percentile(timings, 0.95), 1),
        "report_p50_ms": round(statistics.median(timings), 1),
        "report_p95_process_cpu_ms": round(percentile(processor, 0.95), 1),
        "report_max_ms": round(max(timings), 1),
        "report_p95_ms_by_days": {
            str(days): round(percentile(values, 0.95), 1)
            for days, values in sorted(by_days.items())
        },
    }


async def change_one_call(
    sessions: async_sessionmaker[AsyncSession], start: datetime, round_number: int
) -> None:
    async with sessions() as session:
        in_the_hour = (Call.created_at >= start, Call.created_at < start + timedelta(hours=1))
        calls_in_the_hour = await session.scalar(
            select(func.count()).select_from(Call).where(*in_the_hour)
        )
        if not calls_in_the_hour:
            raise RuntimeError(f"no call was made in the hour from {start}: use more --calls")
        # round after round a different call, starting over when the hour has fewer calls
        call = (
            await session.scalars(
                select(Call)
                .where(*in_the_hour)
                .order_by(Call.id)
                .offset(round_number % calls_in_the_hour)
                .limit(1)
            )
        ).one()
        call.outcome = "sale" if call.outcome != "sale" else "interested"
        await session.commit()


async def timed_last_day_report(sessions: async_sessionmaker[AsyncSession], staff: Staff) -> float:
    started = time.perf_counter()
    async with sessions() as session:
        await build_daily_report(
            session, staff.admin, DailyReportQuery(LAST_DAY, LAST_DAY, "Europe/Moscow")
        )
        await session.commit()
    return (time.perf_counter() - started) * 1000


async def dirty_hour_count(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        count = await session.scalar(select(func.count()).select_from(CallVolumeDirtyHour))
        await session.commit()
    return int(count or 0)


async def measure_live_reports(
    sessions: async_sessionmaker[AsyncSession], staff: Staff, count: int
) -> dict[str, float]:
    """One-day reports of the last day, each after one call of it changed (dirty hour): read at
    once (the report refreshes the hour), then with the background refresher folding it first."""
    start = datetime.combine(LAST_DAY, datetime.min.time(), UTC) + timedelta(hours=9)
    immediate: list[float] = []
    for round_number in range(count):
        await change_one_call(sessions, start, round_number)
        immediate.append(await timed_last_day_report(sessions, staff))
    after_refresher: list[float] = []
    folding: list[float] = []
    options = RefresherOptions(interval_seconds=REFRESHER_INTERVAL_SECONDS)
    async with running_refresher(sessions, options):
        for round_number in range(count, 2 * count):
            await change_one_call(sessions, start, round_number)
            changed = time.perf_counter()
            for _poll in range(FOLD_POLLS):  # the database is polled, as another process would
                if not await dirty_hour_count(sessions):
                    break
                await asyncio.sleep(FOLD_POLL_SECONDS)
            folding.append((time.perf_counter() - changed) * 1000)
            after_refresher.append(await timed_last_day_report(sessions, staff))
    return {
        "live_report_p95_ms": round(percentile(immediate, 0.95), 1),
        "live_report_after_refresher_p95_ms": round(percentile(after_refresher, 0.95), 1),
        "refresher_fold_p95_ms": round(percentile(folding, 0.95), 1),
    }


async def measure_search(
    sessions: async_sessionmaker[AsyncSession], staff: Staff, count: int
) -> float:
    generator = random.Random(9)
    outcomes = ("sale", "not_interested", "callback", "no_answer")
    timings: list[float] = []
    for number in range(count):
        operator = generator.choice(staff.operators)
        actor = (
            staff.admin
            if number % 2
            else staff.supervisors[staff.teams.index(operator.team_id or 0)]
        )
        days = generator.choice((1, 7, 31))
        last = LAST_DAY - timedelta(days=generator.randrange(0, DAYS - days))
        since = datetime.combine(last - timedelta(days=days - 1), datetime.min.time(), UTC)
        query = CallQuery(
            operator_id=operator.user_id,
            since=since,
            until=since + timedelta(days=days),
            outcome=generator.choice(outcomes),
            limit=50,
        )
        started = time.perf_counter()
        async with sessions() as session:
            await list_calls(session, actor, query)
        timings.append((time.perf_counter() - started) * 1000)
    return round(percentile(timings, 0.95), 1)


async def run_one(database: Database, arguments: argparse.Namespace) -> dict[str, Any]:
    await upgrade_database(database.url)
    operators = max(10, arguments.calls // CALLS_PER_OPERATOR)
    engine = create_engine(database.url)
    sessions = create_session_factory(engine)
    try:
        staff = await make_staff(sessions, operators)
        started = time.perf_counter()
        chunks = generate_calls(arguments.calls, staff.operator_ids)
        if database.kind == "sqlite":
            path = Path(make_url(database.url).database or "")
            loaded = await asyncio.to_thread(load_sqlite, path, chunks)
        else:
            loaded = await load_postgres(database.url, chunks)
        load_seconds = time.perf_counter() - started
        rollup_seconds = await build_rollups(sessions)
        settle_seconds = await settle_rollups(engine)
        async with sessions() as session:
            rollup_rows = await session.scalar(select(func.count()).select_from(CallVolumeRollup))
        load_before = os.getloadavg()[0]
        reports = await measure_reports(sessions, staff, arguments.reports)
        live = await measure_live_reports(sessions, staff, arguments.live_reports)
        search = await measure_search(sessions, staff, arguments.searches)
        load_after = os.getloadavg()[0]
    finally:
        await engine.dispose()
    return {
        "db": database.kind,
        "calls": loaded,
        "report_p95_ms": reports.pop("report_p95_ms"),
        "search_p95_ms": search,
        **reports,
        **live,
        "operators": operators,
        "rollup_rows": rollup_rows,
        "load_s": round(load_seconds, 1),
        "rollup_build_s": round(rollup_seconds, 1),
        "rollup_analyze_s": round(settle_seconds, 1),
        "load_average": [round(load_before, 2), round(load_after, 2)],
    }


async def main_async(arguments: argparse.Namespace) -> None:
    admin_url = os.environ.get("DIALER_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    with tempfile.TemporaryDirectory(prefix="bench-reports-") as workdir:
        for kind in arguments.databases.split(","):
            if kind == "sqlite":
                database = Database("sqlite", f"sqlite+aiosqlite:///{Path(workdir) / 'bench.db'}")
            else:
                name, url = await create_database(admin_url, "dialer_bench_reports_")
                database = Database("postgresql", url, name)
            try:
                print(json.dumps(await run_one(database, arguments)), flush=True)
            finally:
                if database.cleanup is not None:
                    await drop_database(admin_url, database.cleanup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000_000)
    parser.add_argument("--reports", type=int, default=60)
    parser.add_argument("--live-reports", type=int, default=20)
    parser.add_argument("--searches", type=int, default=60)
    parser.add_argument("--databases", default="sqlite,postgresql")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
