"""Shared fixtures: every database test runs on SQLite and PostgreSQL.

- ``database_url``: parametrized ``sqlite`` (a file in tmp_path, copied from a migrated template)
  / ``postgresql`` (a uniquely named database on 127.0.0.1:5432 made via DIALER_TEST_POSTGRES_URL
  once per test session, emptied back to its seeded rows before each test, dropped at the end).
  The schema is at Alembic head. Dispose engines you make yourself, or the reset waits for them.
- ``settings``: dialer Settings on that database with a tmp data dir and cheap argon2 costs.
- ``engine``, ``session_factory``, ``session`` (an AsyncSession; the test commits).
- ``people``: an admin, two teams (north, south) with a supervisor and operators, as ``Person``
  (``.user``, ``.actor``, ``.password``); ``make_person`` makes more.
- ``test_line``: the built-in SIP test line on 127.0.0.1 (a free port), playing
  ``test_line_prompt`` (None: its own prompt; a module overrides that fixture for another).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from dialer.actors import Actor, Role
from dialer.models import Team, User
from dialer.settings import Settings
from dialer.storage import create_engine, create_session_factory, upgrade_database
from dialer.users import create_team, create_user
from sip.testline import TestLine
from tests import compiled

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://root@127.0.0.1:5432/test"


def pytest_configure(config: pytest.Config) -> None:
    """Stop before testing a stale build of the compiled modules (see tests/compiled.py)."""
    if compiled.pure_python_requested():
        return
    stale = compiled.stale_extensions()
    if stale:
        names = ", ".join(str(source.relative_to(compiled.ROOT)) for source in stale)
        pytest.exit(
            f"edited since they were compiled: {names}; rebuild: {compiled.REBUILD_COMMAND}",
            returncode=4,
        )


TEST_PASSWORD = "correct horse battery"


def postgres_admin_url() -> str:
    import os

    return os.environ.get("DIALER_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


def postgres_url_for(database: str) -> str:
    return (
        make_url(postgres_admin_url()).set(database=database).render_as_string(hide_password=False)
    )


async def postgres_admin(statement: str) -> None:
    """Run one statement outside a transaction on the administrative database."""
    engine = create_async_engine(postgres_admin_url(), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


def postgres_reachable() -> bool:
    try:
        asyncio.run(postgres_admin("SELECT 1"))
    except (OSError, DBAPIError):
        return False
    return True


@contextlib.contextmanager
def migrated_postgres_database(prefix: str) -> Iterator[str]:
    """A new PostgreSQL database named ``prefix`` and a random suffix, at Alembic head; dropped
    on exit."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    asyncio.run(postgres_admin(f'CREATE DATABASE "{name}"'))
    try:
        asyncio.run(upgrade_database(postgres_url_for(name)))
        yield name
    finally:
        asyncio.run(postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database file, copied for each test."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    asyncio.run(upgrade_database(f"sqlite+aiosqlite:///{path}"))
    return path


@dataclass(frozen=True)
class _PostgresDatabase:
    """A migrated database for this test session and the rows the migrations seeded."""

    name: str
    tables: tuple[str, ...]
    seeded_rows: dict[str, list[dict[str, object]]]


async def _snapshot_seed(name: str) -> _PostgresDatabase:
    engine = create_async_engine(postgres_url_for(name))
    try:
        async with engine.connect() as connection:
            tables = tuple(
                (
                    await connection.execute(
                        text(
                            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                            " AND tablename <> 'alembic_version'"
                        )
                    )
                ).scalars()
            )
            seeded: dict[str, list[dict[str, object]]] = {}
            for table in tables:
                rows = (await connection.execute(text(f'SELECT * FROM "{table}"'))).mappings()
                values = [dict(row) for row in rows]
                if values:
                    seeded[table] = values
        return _PostgresDatabase(name, tables, seeded)
    finally:
        await engine.dispose()


async def _reset_postgres(database: _PostgresDatabase) -> None:
    """Empty every table and put the seeded rows back (much faster than a new database)."""
    engine = create_async_engine(postgres_url_for(database.name))
    try:
        async with engine.begin() as connection:
            await connection.execute(text("SET LOCAL lock_timeout = '20s'"))
            # Replica mode skips the append-only trigger on audit_events.
            await connection.execute(text("SET LOCAL session_replication_role = replica"))
            table_list = ", ".join(f'"{table}"' for table in database.tables)
            await connection.execute(text(f"TRUNCATE {table_list} RESTART IDENTITY CASCADE"))
            for table, rows in database.seeded_rows.items():
                columns = list(rows[0])
                statement = text(
                    f'INSERT INTO "{table}" ({", ".join(columns)}) '
                    f"VALUES ({', '.join(':' + column for column in columns)})"
                )
                await connection.execute(statement, rows)
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[_PostgresDatabase | None]:
    """A migrated PostgreSQL database for the test session (None if PostgreSQL is down)."""
    if not postgres_reachable():
        yield None
        return
    with migrated_postgres_database("dialer_test") as name:
        yield asyncio.run(_snapshot_seed(name))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    sqlite_template: Path,
    postgres_database: _PostgresDatabase | None,
) -> str:
    """A migrated database of each kind holding only the seeded rows."""
    if request.param == "sqlite":
        path = tmp_path / "dialer.db"
        shutil.copyfile(sqlite_template, path)
        return f"sqlite+aiosqlite:///{path}"
    if postgres_database is None:
        pytest.skip("PostgreSQL is not reachable at DIALER_TEST_POSTGRES_URL")
    asyncio.run(_reset_postgres(postgres_database))
    return postgres_url_for(postgres_database.name)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    data_dir = tmp_path / "data"
    data_dir.mkdir(exist_ok=True)
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        recordings_dir=data_dir / "recordings",
        argon2_time_cost=1,
        argon2_memory_kib=1024,
        argon2_parallelism=1,
    )


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_session_factory(engine)


@pytest.fixture
async def session(
    session_factory: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    async with session_factory() as session:
        yield session


@dataclass(frozen=True)
class Person:
    user: User
    password: str
    source_ip: str = "127.0.0.1"

    @property
    def actor(self) -> Actor:
        return Actor.for_user(self.user, self.source_ip)

    @property
    def login(self) -> str:
        return self.user.login


PersonMaker = Callable[..., Awaitable[Person]]


@pytest.fixture
def make_person(
    session_factory: async_sessionmaker[AsyncSession], settings: Settings
) -> PersonMaker:
    """``await make_person(role, team_name=None, login=None, password=TEST_PASSWORD)``: a
    committed user (the team is made if missing)."""

    async def make(
        role: Role,
        team_name: str | None = None,
        login: str | None = None,
        password: str = TEST_PASSWORD,
        **options: object,
    ) -> Person:
        async with session_factory() as session:
            team_id: int | None = None
            if team_name is not None:
                from dialer.users import find_team

                team: Team | None = await find_team(session, team_name)
                if team is None:
                    team = await create_team(session, None, team_name)
                team_id = team.id
            user = await create_user(
                session,
                None,
                settings,
                login=login or f"{role.value}-{uuid.uuid4().hex[:8]}",
                password=password,
                display_name=(login or role.value).title(),
                role=role,
                team_id=team_id,
                **options,  # type: ignore[arg-type]
            )
            await session.commit()
        return Person(user=user, password=password)

    return make


@dataclass(frozen=True)
class People:
    admin: Person
    north_supervisor: Person
    north_operator: Person
    north_operator_2: Person
    south_supervisor: Person
    south_operator: Person


@pytest.fixture
async def people(make_person: PersonMaker) -> People:
    return People(
        admin=await make_person(Role.ADMIN, login="admin"),
        north_supervisor=await make_person(Role.SUPERVISOR, "north", login="north-boss"),
        north_operator=await make_person(Role.OPERATOR, "north", login="anna"),
        north_operator_2=await make_person(Role.OPERATOR, "north", login="boris"),
        south_supervisor=await make_person(Role.SUPERVISOR, "south", login="south-boss"),
        south_operator=await make_person(Role.OPERATOR, "south", login="vera"),
    )


def with_settings(settings: Settings, **changes: object) -> Settings:
    """A copy of ``settings`` with some fields changed (e.g. lockout_threshold)."""
    return replace(settings, **changes)  # type: ignore[arg-type]


@pytest.fixture
def test_line_prompt() -> Path | None:
    """The WAV the ``test_line`` plays when it answers; None for its built-in prompt."""
    return None


@pytest.fixture
async def test_line(test_line_prompt: Path | None) -> AsyncIterator[TestLine]:
    line = await TestLine.start(host="127.0.0.1", port=0, prompt_wav=test_line_prompt)
    yield line
    await line.aclose()
