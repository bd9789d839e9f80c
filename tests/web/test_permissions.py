"""Every endpoint called as every role: allowed roles get through, others get 401/403.

``EXPECTED_ACCESS`` is written here by hand from the product rules, independently of the route
table, and a test checks that the two cover the same endpoints. One application and database per
database kind serve the whole module (logins are cheap, and nothing here depends on the order).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
import pytest_asyncio
from starlette.applications import Starlette

from dialer.actors import Role
from dialer.settings import Settings
from dialer.storage import upgrade_database
from dialer.users import create_team, create_user
from tests.conftest import (
    TEST_PASSWORD,
    migrated_postgres_database,
    postgres_reachable,
    postgres_url_for,
)
from tests.web.conftest import log_in, make_client
from web.app import api_endpoints
from web.routing import Endpoint
from web.settings import WebSettings

ANONYMOUS = "anonymous"
OPERATOR = Role.OPERATOR.value
SUPERVISOR = Role.SUPERVISOR.value
ADMIN = Role.ADMIN.value
CALLERS = (ANONYMOUS, OPERATOR, SUPERVISOR, ADMIN)

EVERYONE = frozenset(CALLERS)
SIGNED_IN = frozenset({OPERATOR, SUPERVISOR, ADMIN})
STAFF = frozenset({SUPERVISOR, ADMIN})
ADMINS = frozenset({ADMIN})

EXPECTED_ACCESS: dict[str, frozenset[str]] = {
    "POST /api/session": EVERYONE,
    "GET /api/session": SIGNED_IN,
    "DELETE /api/session": SIGNED_IN,
    "GET /api/contacts": SIGNED_IN,
    "POST /api/contacts": SIGNED_IN,
    "GET /api/contacts/{id:int}": SIGNED_IN,
    "PATCH /api/contacts/{id:int}": SIGNED_IN,
    "DELETE /api/contacts/{id:int}": SIGNED_IN,
    "POST /api/contacts/{id:int}/restore": ADMINS,
    "POST /api/contacts/{id:int}/purge": ADMINS,
    "GET /api/calls": SIGNED_IN,
    "GET /api/calls/{id:int}": SIGNED_IN,
    "POST /api/calls/{id:int}/outcome": SIGNED_IN,
    "POST /api/calls": SIGNED_IN,
    "GET /api/calls/current": SIGNED_IN,
    "POST /api/calls/{id:int}/hangup": SIGNED_IN,
    "POST /api/calls/{id:int}/mute": SIGNED_IN,
    "POST /api/calls/{id:int}/hold": SIGNED_IN,
    "POST /api/calls/{id:int}/dtmf": SIGNED_IN,
    "GET /api/calls/{id:int}/recording": SIGNED_IN,
    "GET /api/library/calls": SIGNED_IN,
    "GET /api/calls/{id:int}/transcript": SIGNED_IN,
    "POST /api/calls/{id:int}/review": STAFF,
    "POST /api/calls/{id:int}/transcription": STAFF,
    "GET /api/transcription/status": STAFF,
    "GET /api/statuses": SIGNED_IN,
    "GET /api/users": ADMINS,
    "POST /api/users": ADMINS,
    "GET /api/users/{id:int}": ADMINS,
    "PATCH /api/users/{id:int}": ADMINS,
    "POST /api/users/{id:int}/unlock": ADMINS,
    "POST /api/users/{id:int}/reset-password": ADMINS,
    "GET /api/teams": SIGNED_IN,
    "POST /api/teams": ADMINS,
    "GET /api/allow-lists": ADMINS,
    "PUT /api/allow-lists/{role}": ADMINS,
    "GET /api/audit": STAFF,
    "GET /api/audit/verify": ADMINS,
    "GET /api/reports/daily": SIGNED_IN,
    "GET /api/reports/daily.csv": SIGNED_IN,
    "GET /api/reports/daily.xlsx": SIGNED_IN,
    "GET /api/floor": STAFF,
    "POST /api/calls/{id:int}/monitor": STAFF,
    "GET /api/openapi.json": EVERYONE,
}

# A valid body per endpoint that takes one, so allowed callers reach the handler.
MISSING_ID = 999_999
# Telephony handlers answer this when no call service runs (none does in these tests).
CALL_SERVICE_UNAVAILABLE = "call_service_unavailable"


def sample_body(endpoint: Endpoint, login: str) -> dict[str, object] | None:
    if endpoint.body is None:
        return None
    samples: dict[str, dict[str, object]] = {
        "POST /api/session": {"login": login, "password": TEST_PASSWORD},
        "POST /api/contacts": {"name": "Matrix Contact", "phones": [{"number": "+79161234567"}]},
        "PATCH /api/contacts/{id:int}": {"company": "Matrix LLC"},
        "POST /api/calls/{id:int}/outcome": {"outcome": "no_answer"},
        "POST /api/calls": {"number": "+79161234567", "audio_leg": "browser"},
        "POST /api/calls/{id:int}/mute": {"muted": True},
        "POST /api/calls/{id:int}/hold": {"held": True},
        "POST /api/calls/{id:int}/dtmf": {"digits": "1"},
        "POST /api/users": {
            "login": f"made-{uuid.uuid4().hex[:8]}",
            "password": "a long enough password",
            "role": "operator",
        },
        "PATCH /api/users/{id:int}": {"display_name": "Renamed"},
        "POST /api/users/{id:int}/reset-password": {"password": "another long password"},
        "POST /api/teams": {"name": f"Team {uuid.uuid4().hex[:8]}"},
        "PUT /api/allow-lists/{role}": {"networks": []},
        "POST /api/calls/{id:int}/review": {"score": 4, "note": "Good opening"},
        "POST /api/calls/{id:int}/monitor": {"mode": "listen"},
    }
    return samples[endpoint.name]


def request_path(endpoint: Endpoint) -> str:
    return endpoint.path.replace("{id:int}", str(MISSING_ID)).replace("{role}", "nobody")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A migrated database of each kind shared by this module's tests."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("permissions") / "dialer.db"
        url = f"sqlite+aiosqlite:///{path}"
        asyncio.run(upgrade_database(url))
        yield url
        return
    if not postgres_reachable():
        pytest.skip("PostgreSQL is not reachable")
    with migrated_postgres_database("dialer_web_permissions") as name:
        yield postgres_url_for(name)


@dataclass(frozen=True)
class Matrix:
    app: Starlette
    logins: dict[str, str]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def matrix(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Matrix]:
    data_dir = tmp_path_factory.mktemp("permissions-data")
    settings = Settings(
        data_dir=data_dir,
        database_url=module_database_url,
        recordings_dir=data_dir / "recordings",
        argon2_time_cost=1,
        argon2_memory_kib=1024,
        argon2_parallelism=1,
    )
    from web.app import create_app

    app = create_app(WebSettings(core=settings))
    logins = {OPERATOR: "matrix-operator", SUPERVISOR: "matrix-supervisor", ADMIN: "matrix-admin"}
    async with app.state.session_factory() as database:
        team = await create_team(database, None, "Matrix")
        for role, login in logins.items():
            await create_user(
                database,
                None,
                settings,
                login=login,
                password=TEST_PASSWORD,
                display_name=login,
                role=Role(role),
                team_id=team.id if role != ADMIN else None,
            )
        await database.commit()
    yield Matrix(app, logins)
    await app.state.engine.dispose()


ENDPOINTS_BY_NAME = {endpoint.name: endpoint for endpoint in api_endpoints()}


def test_expectations_cover_exactly_the_route_table() -> None:
    assert set(ENDPOINTS_BY_NAME) == set(EXPECTED_ACCESS)


@pytest.mark.parametrize("endpoint_name", sorted(EXPECTED_ACCESS))
def test_route_table_declares_the_expected_roles(endpoint_name: str) -> None:
    access = ENDPOINTS_BY_NAME[endpoint_name].access
    declared = {role.value for role in Role if access.allows(role)}
    if access.public:
        declared.add(ANONYMOUS)
    assert declared == EXPECTED_ACCESS[endpoint_name]


async def _call_as(matrix: Matrix, caller: str, endpoint: Endpoint) -> httpx.Response:
    async with make_client(matrix.app) as client:
        login = matrix.logins.get(caller, matrix.logins[OPERATOR])
        if caller != ANONYMOUS:
            await log_in(client, login)
        return await client.request(
            endpoint.method, request_path(endpoint), json=sample_body(endpoint, login)
        )


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("endpoint_name", sorted(EXPECTED_ACCESS))
async def test_endpoint_admits_only_its_roles(
    matrix: Matrix, endpoint_name: str, caller: str
) -> None:
    endpoint = ENDPOINTS_BY_NAME[endpoint_name]
    response = await _call_as(matrix, caller, endpoint)
    error = response.json().get("error") if response.status_code >= 400 else None
    if caller in EXPECTED_ACCESS[endpoint_name]:
        if error is not None and error["code"] == CALL_SERVICE_UNAVAILABLE:
            # The handler ran and found no call service: this module's app starts none.
            assert response.status_code == 503
            return
        assert response.status_code < 500, response.text
        assert response.status_code != 401, response.text
        assert error is None or error["code"] != "role_forbidden", response.text
        if "{" not in endpoint.path:
            assert response.status_code in (200, 201), response.text
        else:
            assert response.status_code == 404, response.text
    elif caller == ANONYMOUS:
        assert response.status_code == 401, response.text
        assert error is not None
        assert error["code"] == "not_authenticated"
    else:
        assert response.status_code == 403, response.text
        assert error is not None
        assert error["code"] == "role_forbidden"
