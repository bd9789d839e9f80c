"""Fixtures of the web tests: the application on a real database and HTTP clients.

``database_url``, ``settings`` and ``people`` come from tests/conftest.py (each test runs on SQLite
and on PostgreSQL). Time comes from ``clock``, a ``ManualClock`` tests advance instead of
sleeping.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from starlette.applications import Starlette

from dialer.settings import Settings
from tests.conftest import TEST_PASSWORD, Person
from web.app import create_app
from web.settings import WebSettings

CLIENT_ADDRESS = "127.0.0.1"
BASE_URL = "http://dialer.test"


class ManualClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime) -> None:
        self.current = start

    def __call__(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> None:
        self.current += delta


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def web_settings(settings: Settings, clock: ManualClock) -> WebSettings:
    return WebSettings(core=settings, clock=clock)


AppFactory = Callable[[WebSettings], Starlette]


@pytest.fixture
async def app_factory(database_url: str) -> AsyncIterator[AppFactory]:
    """Makes applications (with other web settings when a test needs them); disposes them
    before the database is dropped."""
    del database_url  # requested only to be torn down after the applications
    apps: list[Starlette] = []

    def make(settings: WebSettings) -> Starlette:
        app = create_app(settings)
        apps.append(app)
        return app

    yield make
    for app in apps:
        await app.state.engine.dispose()


@pytest.fixture
def app(app_factory: AppFactory, web_settings: WebSettings) -> Starlette:
    return app_factory(web_settings)


def make_client(
    app: Starlette, address: str = CLIENT_ADDRESS, base_url: str = BASE_URL
) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url=base_url)


@pytest.fixture
async def anonymous(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(app) as client:
        yield client


async def log_in(client: httpx.AsyncClient, login: str, password: str = TEST_PASSWORD) -> str:
    """Log ``client`` in; later requests carry the cookie and the CSRF header. Returns the token."""
    response = await client.post("/api/session", json={"login": login, "password": password})
    assert response.status_code == 200, response.text
    token = response.json()["csrf_token"]
    assert isinstance(token, str)
    client.headers["X-CSRF-Token"] = token
    return token


@asynccontextmanager
async def client_of(
    app: Starlette, person: Person | None, address: str = CLIENT_ADDRESS
) -> AsyncIterator[httpx.AsyncClient]:
    """A client logged in as ``person`` (anonymous for None)."""
    async with make_client(app, address) as client:
        if person is not None:
            await log_in(client, person.login, person.password)
        yield client


def with_core(settings: WebSettings, **changes: object) -> WebSettings:
    """``settings`` with some domain-core settings changed (e.g. throttling limits)."""
    core = dataclasses.replace(settings.core, **changes)  # type: ignore[arg-type]
    return dataclasses.replace(settings, core=core)
