"""Benchmark: recordings library search at scale, on SQLite and PostgreSQL.

Generates --calls calls (default 1 000 000) over a year by 50 operators in 5 teams, with
outcomes, talk times and a recording each; --transcribed (default 0.3) of them get a transcript
of 20-80 words drawn Zipf-like from a 3000-word Korean/Russian vocabulary. Then runs --queries
library searches as a supervisor through ``dialer.transcripts.search.search_library`` (one page of
50 plus the capped count): a 14-day range + one of the team's operators + an outcome + a
transcript word of middling frequency. Prints one JSON line per database with db, calls,
search_p95_ms (that search), plus text_only_p95_ms (a transcript word and nothing else, as an
admin, over the whole year) and load_seconds.

    .venv/bin/python -m bench.library [--calls 1000000] [--databases sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import create_async_engine

from bench.postgres_admin import fresh_database
from dialer.actors import Actor, Role
from dialer.storage import create_engine, create_session_factory, upgrade_database
from dialer.transcripts.search import LibraryQuery, search_library

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://root@127.0.0.1:5432/test"
START = datetime(2025, 1, 1, tzinfo=UTC)
YEAR_SECONDS = 365 * 24 * 3600
OUTCOMES = (
    "no_answer",
    "callback",
    "interested",
    "not_interested",
    "do_not_call",
    "sale",
    "wrong_number",
    "new",
)
TEAMS = 5
OPERATORS_PER_TEAM = 10
BATCH = 20_000
SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"
KOREAN_SYLLABLES = "가나다라마바사아자차카타파하고노도로모보소오조초코토포호구누두루무부수우주"
RUSSIAN_SYLLABLES = ("ка", "ло", "ми", "на", "ре", "сто", "ва", "ли", "за", "ро", "ту", "пе")


@dataclass(frozen=True)
class Operator:
    user_id: int
    team_id: int


def vocabulary(randomness: random.Random, size: int = 3000) -> list[str]:
    words: set[str] = set()
    while len(words) < size:
        if randomness.random() < 0.5:
            length = randomness.randint(2, 4)
            words.add("".join(randomness.choice(KOREAN_SYLLABLES) for _ in range(length)))
        else:
            length = randomness.randint(2, 4)
            words.add("".join(randomness.choice(RUSSIAN_SYLLABLES) for _ in range(length)))
    return sorted(words)


def zipf_weights(size: int) -> list[float]:
    return [1.0 / (rank + 1) for rank in range(size)]


@dataclass(frozen=True)
class CallRow:
    call_id: int
    operator_id: int
    created_at: datetime
    outcome: str
    talk_seconds: float
    transcript: str | None


def generate_calls(
    count: int, operators: Sequence[Operator], words: Sequence[str], transcribed: float, seed: int
) -> Iterator[CallRow]:
    randomness = random.Random(seed)
    weights = zipf_weights(len(words))
    cumulative: list[float] = []
    total = 0.0
    for weight in weights:
        total += weight
        cumulative.append(total)
    for index in range(count):
        created = START + timedelta(seconds=YEAR_SECONDS * index / count)
        transcript = None
        if randomness.random() < transcribed:
            length = randomness.randint(20, 80)
            chosen = randomness.choices(words, cum_weights=cumulative, k=length)
            transcript = " ".join(chosen)
        yield CallRow(
            call_id=index + 1,
            operator_id=randomness.choice(operators).user_id,
            created_at=created,
            outcome=randomness.choice(OUTCOMES),
            talk_seconds=round(randomness.expovariate(1 / 90), 1),
            transcript=transcript,
        )


def batches(rows: Iterator[CallRow], size: int) -> Iterator[list[CallRow]]:
    batch: list[CallRow] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def operators() -> list[Operator]:
    # Users: 1 = admin, then per team a supervisor followed by its operators.
    result = []
    user_id = 2
    for team in range(1, TEAMS + 1):
        user_id += 1  # the team's supervisor
        for _ in range(OPERATORS_PER_TEAM):
            result.append(Operator(user_id, team))
            user_id += 1
    return result


def supervisor_of(team_id: int) -> int:
    return 2 + (team_id - 1) * (OPERATORS_PER_TEAM + 1) + 1


USER_COLUMNS = (
    "id, login, login_key, display_name, role, team_id, password_hash, password_changed_at, "
    "allowed_networks, disabled, created_at, updated_at"
)


def user_rows() -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = [(1, "admin", "admin", "Admin", "admin", None)]
    user_id = 2
    for team in range(1, TEAMS + 1):
        user_id += 1
        rows.append((user_id, f"boss{team}", f"boss{team}", f"Boss {team}", "supervisor", team))
        for number in range(OPERATORS_PER_TEAM):
            user_id += 1
            login = f"op{team}-{number}"
            rows.append((user_id, login, login, login, "operator", team))
    return rows


def load_sqlite(path: Path, rows: Iterator[CallRow]) -> None:
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=OFF")
    now = START.replace(tzinfo=None).strftime(SQLITE_TIME)
    connection.executemany(
        "INSERT INTO teams (id, name, created_at) VALUES (?, ?, ?)",
        [(team, f"Team {team}", now) for team in range(1, TEAMS + 1)],
    )
    connection.executemany(
        f"INSERT INTO users ({USER_COLUMNS}) "  # noqa: S608 (constant column list)
        "VALUES (?, ?, ?, ?, ?, ?, 'x', ?, '[]', 0, ?, ?)",
        [(*row, now, now, now) for row in user_rows()],
    )
    for batch in batches(rows, BATCH):
        calls = []
        recordings = []
        transcripts = []
        for row in batch:
            created = row.created_at.replace(tzinfo=None).strftime(SQLITE_TIME)
            calls.append(
                (row.call_id, row.operator_id, created, row.outcome, row.talk_seconds, created)
            )
            recordings.append((row.call_id, row.call_id, f"x/call-{row.call_id}.ogg", created))
            if row.transcript is not None:
                transcripts.append((row.call_id, row.transcript, created))
        connection.executemany(
            "INSERT INTO calls (id, direction, phone_e164, phone_raw, operator_id, state, "
            "created_at, outcome, talk_seconds, updated_at) "
            "VALUES (?, 'outbound', '+79160000000', '', ?, 'ended', ?, ?, ?, ?)",
            calls,
        )
        connection.executemany(
            "INSERT INTO recordings (id, call_id, path, codec, channels, size_bytes, "
            "duration_seconds, created_at) VALUES (?, ?, ?, 'opus', 2, 1, 1.0, ?)",
            recordings,
        )
        connection.executemany(
            "INSERT INTO transcripts (call_id, text, utterance_count, word_count, model, "
            "created_at) VALUES (?, ?, 1, 1, 'bench', ?)",
            transcripts,
        )
        connection.commit()
    connection.execute("ANALYZE")
    connection.commit()
    connection.close()


async def load_postgresql(url: str, rows: Iterator[CallRow]) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as wrapper:
            raw = await wrapper.get_raw_connection()
            await _copy_postgresql(raw.driver_connection, rows)
    finally:
        await engine.dispose()


async def _copy_postgresql(connection: Any, rows: Iterator[CallRow]) -> None:
    """Bulk load through asyncpg's COPY (``connection`` is an asyncpg connection)."""
    await connection.executemany(
        "INSERT INTO teams (id, name, created_at) VALUES ($1, $2, $3)",
        [(team, f"Team {team}", START) for team in range(1, TEAMS + 1)],
    )
    await connection.executemany(
        f"INSERT INTO users ({USER_COLUMNS}) "  # noqa: S608 (constant column list)
        "VALUES ($1, $2, $3, $4, $5, $6, 'x', $7, '[]', false, $7, $7)",
        [(*row, START) for row in user_rows()],
    )
    for batch in batches(rows, BATCH):
        await connection.copy_records_to_table(
            "calls",
            columns=[
                "id",
                "direction",
                "phone_e164",
                "phone_raw",
                "operator_id",
                "state",
                "created_at",
                "outcome",
                "talk_seconds",
                "updated_at",
            ],
            records=[
                (
                    row.call_id,
                    "outbound",
                    "+79160000000",
                    "",
                    row.operator_id,
                    "ended",
                    row.created_at,
                    row.outcome,
                    row.talk_seconds,
                    row.created_at,
                )
                for row in batch
            ],
        )
        await connection.copy_records_to_table(
            "recordings",
            columns=[
                "id",
                "call_id",
                "path",
                "codec",
                "channels",
                "size_bytes",
                "duration_seconds",
                "created_at",
            ],
            records=[
                (row.call_id, row.call_id, "x.ogg", "opus", 2, 1, 1.0, row.created_at)
                for row in batch
            ],
        )
        await connection.copy_records_to_table(
            "transcripts",
            columns=[
                "call_id",
                "text",
                "utterance_count",
                "word_count",
                "model",
                "created_at",
            ],
            records=[
                (row.call_id, row.transcript, 1, 1, "bench", row.created_at)
                for row in batch
                if row.transcript is not None
            ],
        )
    for table in ("calls", "recordings", "teams", "users"):
        sequence = await connection.fetchval("SELECT pg_get_serial_sequence($1, 'id')", table)
        if sequence:
            await connection.execute(
                f"SELECT setval('{sequence}', (SELECT max(id) FROM {table}))"  # noqa: S608
            )
    await connection.execute("VACUUM ANALYZE")


def remove_database_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


async def measure(
    url: str, words: Sequence[str], queries: int, seed: int
) -> tuple[list[float], list[float]]:
    randomness = random.Random(seed)
    team_operators = operators()
    middling = words[40:400]  # neither stop-word-common nor one-off rare (Zipf ranks)
    engine = create_engine(url)
    sessions = create_session_factory(engine)
    combined: list[float] = []
    text_only: list[float] = []
    try:
        for index in range(queries + 5):
            operator = randomness.choice(team_operators)
            supervisor = Actor(supervisor_of(operator.team_id), Role.SUPERVISOR, operator.team_id)
            since = START + timedelta(days=randomness.randint(0, 350))
            query = LibraryQuery(
                since=since,
                until=since + timedelta(days=14),
                operator_id=operator.user_id,
                outcome=randomness.choice(OUTCOMES),
                text=randomness.choice(middling),
            )
            async with sessions() as session:
                started = time.perf_counter()
                await search_library(session, supervisor, query)
                elapsed = (time.perf_counter() - started) * 1000
            if index >= 5:  # warm-up
                combined.append(elapsed)
            admin = Actor(1, Role.ADMIN, None)
            async with sessions() as session:
                started = time.perf_counter()
                await search_library(session, admin, LibraryQuery(text=randomness.choice(middling)))
                elapsed = (time.perf_counter() - started) * 1000
            if index >= 5:
                text_only.append(elapsed)
    finally:
        await engine.dispose()
    return combined, text_only


async def run_database(
    kind: str, calls: int, transcribed: float, queries: int, workdir: Path, postgres_url: str
) -> dict[str, object]:
    seed = 7
    words = vocabulary(random.Random(seed))
    rows = generate_calls(calls, operators(), words, transcribed, seed)
    if kind == "sqlite":
        path = workdir / f"library-{uuid.uuid4().hex[:8]}.db"
        url = f"sqlite+aiosqlite:///{path}"
        await upgrade_database(url)
        started = time.perf_counter()
        await asyncio.to_thread(load_sqlite, path, rows)
        load_seconds = time.perf_counter() - started
        try:
            combined, text_only = await measure(url, words, queries, seed)
        finally:
            await asyncio.to_thread(remove_database_files, path)
    else:
        async with fresh_database(postgres_url, "bench_library_") as url:
            await upgrade_database(url)
            started = time.perf_counter()
            await load_postgresql(url, rows)
            load_seconds = time.perf_counter() - started
            combined, text_only = await measure(url, words, queries, seed)
    return {
        "db": kind,
        "calls": calls,
        "transcribed": round(calls * transcribed),
        "queries": queries,
        "search_p95_ms": round(percentile(combined, 0.95), 1),
        "search_median_ms": round(percentile(combined, 0.5), 1),
        "text_only_p95_ms": round(percentile(text_only, 0.95), 1),
        "load_seconds": round(load_seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--transcribed", type=float, default=0.3)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    arguments = parser.parse_args()
    for kind in arguments.databases.split(","):
        result = asyncio.run(
            run_database(
                kind.strip(),
                arguments.calls,
                arguments.transcribed,
                arguments.queries,
                arguments.workdir,
                arguments.postgres_url,
            )
        )
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
