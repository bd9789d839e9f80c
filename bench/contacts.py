"""Benchmark: contact search, contact import and audit appends on SQLite and PostgreSQL.

For each database (a SQLite file in a temporary directory; a fresh PostgreSQL database on
127.0.0.1:5432 made from DIALER_TEST_POSTGRES_URL's server, dropped afterwards) the schema is made
by ``upgrade_database``, then:

1. ``--contacts`` contacts (default 1 000 000) with realistic Russian and English names,
   companies, e-mails and one or two phones each are bulk-inserted (multi-row INSERTs of 5 000;
   the search index follows through the schema's own triggers / GIN index);
2. ``--queries`` searches (default 200, half name substrings such as "петро" or "ромашка ив",
   half phone prefixes typed as "8 (916) 12", "+7916123", "916 12") go through
   ``dialer.contacts.search_contacts`` as an admin and as an operator; p95 of the wall time of
   the first pass (and of a repeat of the same queries, warm);
3. ``--import-rows`` CSV rows (default 100 000; cp1251, ``;``, Russian titles, "8 (9xx) ..."
   phones, 3 % duplicates of stored contacts and 2 % within the file) go through
   ``dialer.importing.service.import_contacts`` in one transaction; rows per second;
4. ``--audit-events`` events (default 5 000) four ways: through ``dialer.audit_appender.
   AuditAppender`` from ``--audit-callers`` concurrent tasks (default 50), each awaiting its
   own committed append as a request handler does (``audit_events_per_s``; the appender commits
   what is queued in one transaction per batch); through ``dialer.audit.append_audit_event``
   with each event committed on its own, one after another
   (``audit_events_per_s_sequential_transactions``); the same spread over ``--audit-writers``
   concurrent sessions (default 20), each committing every event; as many in one transaction;
   then ``verify_audit_chain`` over the whole chain at two lengths.

Prints one JSON line per database: db, contacts, search_p95_ms (admin), import_rows_per_s,
audit_events_per_s (standalone events from concurrent callers through the appender), plus
details: search p50/max per kind for an admin and an operator (``search_operator_p95_ms``),
import CPU, the appender's events per batch, CPU per event and append latency, audit rates one
transaction per event (sequential and concurrent) and all in one transaction, verification
rate, load time and load average. ``--only audit`` (or any comma-separated subset of search,
import, audit) measures only those parts; the others are null. ``--only import`` still loads the
``--contacts`` contacts first: the import is measured against a database of that size (its
duplicates of stored contacts, its index maintenance). On PostgreSQL the import also reports
``import_server_cpu_seconds``, the CPU of the server process that ran it (read from /proc: the
server is local).

    .venv/bin/python -m bench.contacts [--contacts 1000000] [--databases sqlite,postgresql]
        [--only search,import,audit]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import secrets
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
)

from bench.postgres_admin import create_database, drop_database
from dialer.actors import Actor, Role
from dialer.audit import append_audit_event, verify_audit_chain
from dialer.audit_appender import AuditAppender
from dialer.contacts import ContactQuery, normalise_search_text, search_contacts
from dialer.importing.service import ImportOptions, import_contacts
from dialer.models import AuditEvent, Contact, ContactPhone
from dialer.settings import Settings
from dialer.storage import create_engine, create_session_factory, upgrade_database
from dialer.users import create_team, create_user

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://root@127.0.0.1:5432/test"
LOAD_CHUNK = 5000
OPERATORS = 20
PARTS = ("search", "import", "audit")

LAST_NAMES = [
    "Иванов",
    "Смирнов",
    "Кузнецов",
    "Попов",
    "Васильев",
    "Петров",
    "Соколов",
    "Михайлов",
    "Новиков",
    "Фёдоров",
    "Морозов",
    "Волков",
    "Алексеев",
    "Лебедев",
    "Семёнов",
    "Егоров",
    "Павлов",
    "Козлов",
    "Степанов",
    "Николаев",
    "Орлов",
    "Андреев",
    "Макаров",
    "Никитин",
    "Захаров",
    "Зайцев",
    "Соловьёв",
    "Борисов",
    "Яковлев",
    "Григорьев",
    "Романов",
    "Воробьёв",
    "Сергеев",
    "Кузьмин",
    "Фролов",
    "Александров",
    "Дмитриев",
    "Королёв",
    "Гусев",
    "Киселёв",
    "Ильин",
    "Максимов",
    "Поляков",
    "Сорокин",
    "Виноградов",
    "Ковалёв",
    "Белов",
    "Медведев",
    "Антонов",
    "Тарасов",
    "Жуков",
    "Баранов",
    "Филиппов",
    "Комаров",
]
FIRST_NAMES_MALE = [
    "Александр",
    "Дмитрий",
    "Максим",
    "Сергей",
    "Андрей",
    "Алексей",
    "Артём",
    "Илья",
    "Кирилл",
    "Михаил",
    "Никита",
    "Матвей",
    "Роман",
    "Егор",
    "Арсений",
    "Иван",
    "Денис",
    "Евгений",
    "Даниил",
    "Тимофей",
    "Владислав",
    "Игорь",
    "Владимир",
    "Павел",
]
FIRST_NAMES_FEMALE = [
    "Анастасия",
    "Мария",
    "Анна",
    "Виктория",
    "Екатерина",
    "Наталья",
    "Марина",
    "Полина",
    "Дарья",
    "Алиса",
    "Ксения",
    "Елена",
    "Ольга",
    "Татьяна",
    "Ирина",
    "Юлия",
    "Светлана",
    "Алёна",
    "Вероника",
    "Валерия",
]
ENGLISH_FIRST = [
    "James",
    "Mary",
    "John",
    "Patricia",
    "Robert",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Susan",
]
ENGLISH_LAST = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Miller",
    "Davis",
    "Wilson",
    "Anderson",
    "Taylor",
]
COMPANY_FORMS = ("ООО", "АО", "ИП", "ПАО", "ЗАО")
COMPANY_WORDS = [
    "Ромашка",
    "Вектор",
    "Альфа",
    "Гранит",
    "Север",
    "Прогресс",
    "Технологии",
    "Ресурс",
    "Меридиан",
    "Лидер",
    "Стройсервис",
    "Торговый",
    "дом",
    "Энергия",
    "Горизонт",
    "Сибирь",
    "Капитал",
    "Строй",
    "Логистика",
    "Медиа",
    "Консалт",
    "Агро",
]
EMAIL_DOMAINS = ("mail.ru", "yandex.ru", "gmail.com", "bk.ru", "inbox.ru", "example.com")
MOBILE_PREFIXES = tuple(f"9{code:02d}" for code in range(1, 100))


@dataclass(frozen=True)
class Person:
    name: str
    company: str
    email: str
    mobile: str
    landline: str | None


def mobile_number(index: int) -> str:
    """A unique +79XXXXXXXXX for every index below 10**9 (7919 is coprime with 10**9)."""
    return f"+79{(index * 7919 + 123457) % 1_000_000_000:09d}"


def make_person(index: int, generator: random.Random) -> Person:
    if generator.random() < 0.8:
        female = generator.random() < 0.5
        last = generator.choice(LAST_NAMES) + ("а" if female else "")
        first = generator.choice(FIRST_NAMES_FEMALE if female else FIRST_NAMES_MALE)
        name = f"{last} {first}"
    else:
        name = f"{generator.choice(ENGLISH_FIRST)} {generator.choice(ENGLISH_LAST)}"
    company = (
        f"{generator.choice(COMPANY_FORMS)} «{generator.choice(COMPANY_WORDS)}"
        f" {generator.choice(COMPANY_WORDS)}»"
    )
    email = f"client{index}@{generator.choice(EMAIL_DOMAINS)}"
    landline = f"+7495{index % 10_000_000:07d}" if generator.random() < 0.2 else None
    return Person(name, company, email, mobile_number(index), landline)


# --- databases --------------------------------------------------------------------------------


@dataclass
class Database:
    kind: str
    url: str
    cleanup: str | None  # PostgreSQL database to drop


def sqlite_database(directory: Path) -> Database:
    return Database("sqlite", f"sqlite+aiosqlite:///{directory / 'bench.db'}", None)


async def postgres_database(admin_url: str) -> Database:
    name, url = await create_database(admin_url, "bench_contacts_")
    return Database("postgresql", url, name)


# --- loading ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Staff:
    admin: Actor
    operators: list[Actor]


async def make_staff(sessions: async_sessionmaker[AsyncSession], settings: Settings) -> Staff:
    async with sessions() as session:
        team = await create_team(session, None, "bench")
        admin = await create_user(
            session,
            None,
            settings,
            login="bench-admin",
            password=secrets.token_urlsafe(16),
            display_name="Bench admin",
            role=Role.ADMIN,
        )
        operators = [
            await create_user(
                session,
                None,
                settings,
                login=f"operator{number}",
                password=secrets.token_urlsafe(16),
                display_name=f"Operator {number}",
                role=Role.OPERATOR,
                team_id=team.id,
            )
            for number in range(OPERATORS)
        ]
        await session.commit()
    return Staff(Actor.for_user(admin), [Actor.for_user(user) for user in operators])


def contact_rows(
    start: int, stop: int, staff: Staff, generator: random.Random, now: datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    contacts: list[dict[str, Any]] = []
    phones: list[dict[str, Any]] = []
    for index in range(start, stop):
        person = make_person(index, generator)
        contact_id = index + 1
        owner = staff.operators[index % len(staff.operators)]
        contacts.append(
            {
                "id": contact_id,
                "name": person.name,
                "company": person.company,
                "position": "",
                "email": person.email,
                "owner_id": owner.user_id,
                "status": "new",
                "tags": [],
                "notes": "",
                "custom_fields": {},
                "shared": index % 20 == 0,
                "search_text": normalise_search_text(
                    f"{person.name} {person.company} {person.email}"
                ),
                "created_at": now,
                "updated_at": now,
            }
        )
        phones.append(_phone_row(contact_id, person.mobile, "mobile", 0))
        if person.landline is not None:
            phones.append(_phone_row(contact_id, person.landline, "work", 1))
    return contacts, phones


def _phone_row(contact_id: int, e164: str, kind: str, position: int) -> dict[str, Any]:
    return {
        "contact_id": contact_id,
        "e164": e164,
        "raw": e164,
        "kind": kind,
        "is_primary": position == 0,
        "position": position,
    }


async def load_contacts(engine: AsyncEngine, staff: Staff, count: int) -> float:
    """Bulk-insert ``count`` contacts with explicit ids 1..count; returns seconds taken."""
    generator = random.Random(20260201)
    now = datetime.now(UTC)
    started = time.perf_counter()
    for start in range(0, count, LOAD_CHUNK):
        contacts, phones = contact_rows(
            start, min(start + LOAD_CHUNK, count), staff, generator, now
        )
        async with engine.begin() as connection:
            await connection.execute(insert(Contact), contacts)
            await connection.execute(insert(ContactPhone), phones)
    async with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            await connection.execute(
                text(
                    "SELECT setval(pg_get_serial_sequence('contacts', 'id'),"
                    " (SELECT max(id) FROM contacts))"
                )
            )
            await connection.execute(
                text(
                    "SELECT setval(pg_get_serial_sequence('contact_phones', 'id'),"
                    " (SELECT max(id) FROM contact_phones))"
                )
            )
    if engine.dialect.name == "postgresql":
        # The state autovacuum keeps a live database in: statistics, visibility map (index-only
        # scans), GIN pending lists merged into the trigram indexes.
        async with engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text("VACUUM ANALYZE"))
    return time.perf_counter() - started


# --- measurements -----------------------------------------------------------------------------


def search_queries(count: int, contacts: int, seed: int = 7) -> list[tuple[str, str]]:
    """(kind, text): half name substrings, half phone prefixes in the ways people type them."""
    generator = random.Random(seed)
    queries: list[tuple[str, str]] = []
    for number in range(count):
        person = make_person(generator.randrange(contacts), random.Random(number))
        if number % 2 == 0:
            words = person.name.split()
            if number % 6 == 0:
                query = f"{words[0][: generator.randint(4, len(words[0]))]} {words[1][:3]}"
            elif number % 6 == 2:
                company_word = person.company.split("«")[1].split()[0]
                query = company_word[: generator.randint(4, len(company_word))]
            else:
                word = generator.choice(words)
                begin = generator.randint(0, max(0, len(word) - 4))
                query = word[begin : begin + generator.randint(4, 6)]
            queries.append(("name", query.lower()))
        else:
            digits = mobile_number(generator.randrange(contacts))[2:]  # 9XXXXXXXXX
            length = generator.randint(4, 9)
            shown = digits[:length]
            style = number % 3
            if style == 0:
                query = f"8 ({shown[:3]}) {shown[3:]}"
            elif style == 1:
                query = f"+7{shown}"
            else:
                query = f"{shown[:3]} {shown[3:]}"
            queries.append(("phone", query.strip()))
    return queries


def process_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


async def measure_search(
    sessions: async_sessionmaker[AsyncSession],
    actor: Actor,
    queries: list[tuple[str, str]],
) -> dict[str, float]:
    """Wall time of each query, a first pass (after 10 warm-up queries) and a repeat of the same
    queries: the first pass is the headline (pages of a fresh database may still be on disk or
    out of PostgreSQL's buffers), the repeat shows the same searches with a warm cache."""
    passes: list[dict[str, list[float]]] = []
    async with sessions() as session:
        for _, query in queries[:10]:  # warm caches and prepared statements
            await search_contacts(session, actor, ContactQuery(text=query))
        for _ in range(2):
            timings: dict[str, list[float]] = {"name": [], "phone": []}
            for kind, query in queries:
                started = time.perf_counter()
                await search_contacts(session, actor, ContactQuery(text=query))
                timings[kind].append((time.perf_counter() - started) * 1000)
            passes.append(timings)
    first, repeat = passes
    everything = first["name"] + first["phone"]
    return {
        "p95_ms": round(percentile(everything, 0.95), 2),
        "p50_ms": round(statistics.median(everything), 2),
        "max_ms": round(max(everything), 2),
        "name_p95_ms": round(percentile(first["name"], 0.95), 2),
        "phone_p95_ms": round(percentile(first["phone"], 0.95), 2),
        "repeat_p95_ms": round(percentile(repeat["name"] + repeat["phone"], 0.95), 2),
    }


def write_import_file(path: Path, rows: int, contacts: int) -> None:
    """cp1251, ';', Russian titles; 3 % of rows repeat a stored contact's phone, 2 % repeat an
    earlier row of the file."""
    generator = random.Random(99)
    lines = ["ФИО;Телефон;Компания;E-mail;Комментарий;Источник"]
    for number in range(rows):
        roll = generator.random()
        if roll < 0.03 and contacts:
            mobile = mobile_number(generator.randrange(contacts))
        elif roll < 0.05 and number > 0:
            mobile = mobile_number(contacts + generator.randrange(number))
        else:
            mobile = mobile_number(contacts + number)
        person = make_person(contacts + number, generator)
        digits = mobile[2:]
        phone = f"8 ({digits[:3]}) {digits[3:6]}-{digits[6:8]}-{digits[8:]}"
        lines.append(
            f"{person.name};{phone};{person.company};{person.email};"
            f"импорт {number};выставка {number % 7}"
        )
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1251"))


def server_cpu_seconds(backend_pid: int | None) -> float | None:
    """CPU seconds of a PostgreSQL backend process (read from /proc: the server is local)."""
    if backend_pid is None:
        return None
    try:
        fields = Path(f"/proc/{backend_pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure_import(
    sessions: async_sessionmaker[AsyncSession], actor: Actor, path: Path, rows: int
) -> dict[str, float | None]:
    async with sessions() as session:
        backend_pid: int | None = None
        if session.get_bind().dialect.name == "postgresql":
            backend_pid = await session.scalar(text("SELECT pg_backend_pid()"))
        server_before = server_cpu_seconds(backend_pid)
        cpu_before = process_cpu_seconds()
        started = time.perf_counter()
        report = await import_contacts(session, actor, path, ImportOptions(source_name=path.name))
        await session.commit()
        elapsed = time.perf_counter() - started
        cpu = process_cpu_seconds() - cpu_before
        server_after = server_cpu_seconds(backend_pid)
    server_cpu = (
        round(server_after - server_before, 2)
        if server_before is not None and server_after is not None
        else None
    )
    return {
        "import_rows_per_s": round(rows / elapsed, 1),
        "import_seconds": round(elapsed, 2),
        # This process only (parsing, SQLAlchemy, SQLite itself); not the PostgreSQL server.
        "import_process_cpu_seconds": round(cpu, 2),
        # The PostgreSQL backend that ran the import (index maintenance above all); null on SQLite.
        "import_server_cpu_seconds": server_cpu,
        "import_created": report.created,
        "import_merged": report.merged,
        "import_skipped": report.skipped,
    }


async def measure_audit(
    sessions: async_sessionmaker[AsyncSession],
    staff: Staff,
    events: int,
    writers: int,
    callers: int,
) -> dict[str, float]:
    """Appends four ways, then verification of the whole chain.

    ``audit_events_per_s`` (the headline): standalone events through
    ``dialer.audit_appender.AuditAppender`` from ``callers`` concurrent tasks, each awaiting its
    own append (committed) before the next, as request handlers do; the appender commits what
    is queued together, one transaction and one fsync per batch.
    ``..._sequential_transactions``: ``append_audit_event`` with one committed transaction per
    event, one after another (bound by the commit's fsync). ``..._concurrent_transactions``:
    ``writers`` tasks, each with its own session, each committing every event; the chain head
    serializes them (row lock on PostgreSQL, the single writer on SQLite), so this shows whether
    they queue well, not a gain from parallelism (an append that waits past SQLite's busy
    timeout or the pool's checkout timeout is counted in ``audit_concurrent_transactions_refused``
    and left out of the rate). ``..._one_transaction``: all events in one
    transaction (an import, a bulk change). ``audit_verify_events_per_s``: events checked per
    second by ``verify_audit_chain`` over the whole chain, measured at two chain lengths
    (linear when the two rates agree).
    """
    actor = staff.admin
    async with sessions() as session:
        started = time.perf_counter()
        for number in range(events):
            await append_audit_event(
                session, actor, "contact.view", f"contact:{number + 1}", {"bench": number}
            )
            await session.commit()
        one_by_one = events / (time.perf_counter() - started)
    verify_small = await measure_verify(sessions)

    refused: list[str] = []

    async def writer(first: int, count: int) -> None:
        async with sessions() as session:
            for number in range(first, first + count):
                try:
                    await append_audit_event(
                        session, actor, "contact.view", f"contact:{number + 1}", {"bench": number}
                    )
                    await session.commit()
                except (OperationalError, PoolTimeoutError) as error:
                    # On a loaded machine a writer can wait past SQLite's busy timeout or the
                    # pool's checkout timeout: counted, not fatal.
                    refused.append(type(error).__name__)
                    await session.rollback()

    share = max(1, events // writers)
    started = time.perf_counter()
    await asyncio.gather(*(writer(index * share, share) for index in range(writers)))
    concurrent = (share * writers - len(refused)) / (time.perf_counter() - started)
    appended = await measure_appender(sessions, staff, events, callers)
    async with sessions() as session:
        started = time.perf_counter()
        for number in range(events):
            await append_audit_event(
                session, actor, "contact.view", f"contact:{number + 1}", {"bench": number}
            )
        await session.commit()
        batched = events / (time.perf_counter() - started)
    verify_large = await measure_verify(sessions)
    return {
        **appended,
        "audit_events_per_s_sequential_transactions": round(one_by_one, 1),
        "audit_events_per_s_concurrent_transactions": round(concurrent, 1),
        "audit_concurrent_writers": writers,
        "audit_concurrent_transactions_refused": len(refused),
        "audit_events_per_s_one_transaction": round(batched, 1),
        "audit_verify_events": verify_large[0],
        "audit_verify_events_per_s": round(verify_large[1], 1),
        "audit_verify_events_small": verify_small[0],
        "audit_verify_events_per_s_small": round(verify_small[1], 1),
    }


async def measure_appender(
    sessions: async_sessionmaker[AsyncSession], staff: Staff, events: int, callers: int
) -> dict[str, float]:
    """``callers`` tasks (operators playing recordings) each append ``events // callers``
    events through one ``AuditAppender``, awaiting each before the next; the rate, the mean
    events per committed batch, this process's CPU per event (SQLAlchemy, hashing, SQLite
    itself; not the PostgreSQL server) and the wall latency of one append."""
    share = max(1, events // callers)
    latencies: list[float] = []

    async def caller(appender: AuditAppender, index: int) -> None:
        operator = staff.operators[index % len(staff.operators)]
        for number in range(share):
            call_id = index * share + number + 1
            started = time.perf_counter()
            await appender.append(
                operator,
                "recording.play",
                f"call:{call_id}",
                {"recording_id": call_id, "codec": "opus"},
            )
            latencies.append((time.perf_counter() - started) * 1000)

    cpu_before = process_cpu_seconds()
    started = time.perf_counter()
    async with AuditAppender(sessions) as appender:
        await asyncio.gather(*(caller(appender, index) for index in range(callers)))
    elapsed = time.perf_counter() - started
    cpu = process_cpu_seconds() - cpu_before
    total = share * callers
    return {
        "audit_events_per_s": round(total / elapsed, 1),
        "audit_appender_callers": callers,
        "audit_appender_events_per_batch": round(total / appender.committed_batches, 1),
        "audit_appender_process_cpu_ms_per_event": round(cpu * 1000 / total, 3),
        "audit_appender_append_p50_ms": round(statistics.median(latencies), 2),
        "audit_appender_append_p95_ms": round(percentile(latencies, 0.95), 2),
    }


async def measure_verify(sessions: async_sessionmaker[AsyncSession]) -> tuple[int, float]:
    """(events in the chain, events verified per second); raises if the chain is broken."""
    async with sessions() as session:
        events = await session.scalar(select(func.count()).select_from(AuditEvent)) or 0
        started = time.perf_counter()
        problems = await verify_audit_chain(session)
        elapsed = time.perf_counter() - started
    if problems:
        raise RuntimeError(f"audit chain broken: {problems[:3]}")
    return events, events / elapsed


async def run_one(database: Database, arguments: argparse.Namespace, workdir: Path) -> None:
    load_at_start = os.getloadavg()[0]
    await upgrade_database(database.url)
    engine = create_engine(database.url)
    sessions = create_session_factory(engine)
    settings = Settings(
        data_dir=workdir,
        database_url=database.url,
        recordings_dir=workdir / "recordings",
        argon2_time_cost=1,
        argon2_memory_kib=1024,
        argon2_parallelism=1,
    )
    parts = set(arguments.only.split(","))
    # The import goes into a database that already holds the contacts (duplicates of stored
    # contacts, index maintenance at that size), so ``--only import`` loads them too.
    contacts = arguments.contacts if parts & {"search", "import"} else 0
    load_seconds = 0.0
    admin_search: dict[str, float] = {}
    operator_search: dict[str, float] = {}
    imported: dict[str, float | None] = {}
    audit: dict[str, float] = {}
    try:
        staff = await make_staff(sessions, settings)
        if contacts:
            load_seconds = await load_contacts(engine, staff, contacts)
        if "search" in parts:
            queries = search_queries(arguments.queries, contacts)
            admin_search = await measure_search(sessions, staff.admin, queries)
            operator_search = await measure_search(sessions, staff.operators[0], queries)
        if "import" in parts:
            import_path = workdir / f"import-{database.kind}.csv"
            write_import_file(import_path, arguments.import_rows, contacts)
            imported = await measure_import(
                sessions, staff.admin, import_path, arguments.import_rows
            )
        if "audit" in parts:
            audit = await measure_audit(
                sessions,
                staff,
                arguments.audit_events,
                arguments.audit_writers,
                arguments.audit_callers,
            )
    finally:
        await engine.dispose()
    # The parts not measured (``--only``) are null.
    figures: dict[str, Any] = {
        "db": database.kind,
        "contacts": contacts,
        "search_p95_ms": admin_search.get("p95_ms"),
        "search_operator_p95_ms": operator_search.get("p95_ms"),
        "import_rows_per_s": imported.get("import_rows_per_s"),
        "audit_events_per_s": audit.get("audit_events_per_s"),
        "search_queries": arguments.queries if admin_search else 0,
        "search_admin": admin_search,
        "search_operator": operator_search,
        **imported,
        **audit,
        "load_seconds": round(load_seconds, 1),
        "load_average_1min_at_start": round(load_at_start, 2),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(figures, ensure_ascii=False), flush=True)


async def main_async(arguments: argparse.Namespace) -> None:
    for kind in arguments.databases.split(","):
        with tempfile.TemporaryDirectory(prefix="bench-contacts-") as directory:
            workdir = Path(directory)
            if arguments.workdir is not None:
                workdir = arguments.workdir / kind
                workdir.mkdir(parents=True, exist_ok=True)
            if kind == "sqlite":
                await run_one(sqlite_database(workdir), arguments, workdir)
                continue
            database = await postgres_database(arguments.postgres_url)
            try:
                await run_one(database, arguments, workdir)
            finally:
                if not arguments.keep and database.cleanup is not None:
                    await drop_database(arguments.postgres_url, database.cleanup)


def _parts(value: str) -> str:
    parts = [part.strip() for part in value.split(",") if part.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if not parts or unknown:
        raise argparse.ArgumentTypeError(f"parts are {', '.join(PARTS)}; not {unknown}")
    return ",".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--import-rows", type=int, default=100_000)
    parser.add_argument("--audit-events", type=int, default=5000)
    parser.add_argument("--audit-writers", type=int, default=20)
    parser.add_argument("--audit-callers", type=int, default=50)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL database")
    parser.add_argument(
        "--only",
        type=_parts,
        default=",".join(PARTS),
        help="comma-separated parts to measure: search (loads the contacts), import, audit",
    )
    parser.add_argument(
        "--workdir", type=Path, help="keep the SQLite database and CSV files here (default: tmp)"
    )
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
