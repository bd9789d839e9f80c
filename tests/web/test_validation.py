"""Bad requests get 4xx answers naming the field and the problem, never a 500.

The fuzz test sends garbage (not JSON, wrong JSON types, deep nesting, huge bodies, random
objects built from each endpoint's own field names) to every endpoint of the route table as an
admin and requires a JSON error or success every time.
"""

from __future__ import annotations

import dataclasses
import json
import random

import httpx
from starlette.applications import Starlette

from tests.conftest import People
from tests.web.conftest import AppFactory, client_of, log_in
from web.app import api_endpoints
from web.settings import WebSettings


async def _error(response: httpx.Response, status: int) -> dict[str, str]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert isinstance(error, dict)
    return error


BAD_CONTACT_BODIES: list[tuple[dict[str, object], str, str]] = [
    ({"name": 5}, "name", "must be a string"),
    ({"name": "Ivan", "nickname": "Vanya"}, "nickname", "unknown field"),
    ({"phones": [{"number": "12"}]}, "phones[0].number", "not a possible phone number"),
    ({"phones": [{"kind": "work"}]}, "phones[0].number", "is required"),
    ({"phones": [{"number": "+79161234567", "kind": "fax"}]}, "phones[0].kind", "one of"),
    ({"phones": "+79161234567"}, "phones", "must be a list"),
    ({"name": "Ivan", "follow_up_at": "tomorrow"}, "follow_up_at", "ISO 8601"),
    ({"name": "Ivan", "follow_up_at": "2030-01-01T10:00:00"}, "follow_up_at", "UTC offset"),
    ({"name": "Ivan", "follow_up_at": 1700000000}, "follow_up_at", "date-time string"),
    ({"name": "Ivan", "shared": "yes"}, "shared", "true or false"),
    ({"name": "Ivan", "owner_id": "7"}, "owner_id", "integer"),
    ({"name": "Ivan", "owner_id": True}, "owner_id", "integer"),
    ({"name": "Ivan", "custom_fields": {"a": [1]}}, "custom_fields.a", "string, number"),
    ({"name": "Ivan", "email": "not-an-address"}, "email", "not an e-mail address"),
    ({"name": "Ivan", "timezone": "Mars/Olympus"}, "timezone", "unknown time zone"),
    ({"name": "x" * 201}, "name", "at most 200"),
    ({}, "name", "a contact needs"),
]


async def test_bad_contact_bodies_name_the_field(app: Starlette, people: People) -> None:
    async with client_of(app, people.north_operator) as client:
        for body, field, problem in BAD_CONTACT_BODIES:
            error = await _error(await client.post("/api/contacts", json=body), 422)
            assert (error["field"], body) == (field, body)
            assert problem in error["message"], (body, error)
        assert (await client.get("/api/contacts")).json()["total"] == 0


async def test_missing_required_fields_and_wrong_shapes(app: Starlette, people: People) -> None:
    async with client_of(app, people.admin) as admin:
        missing = await _error(
            await admin.post("/api/users", json={"password": "long enough pw", "role": "admin"}),
            422,
        )
        assert (missing["field"], missing["message"]) == ("login", "is required")
        role = await _error(
            await admin.post(
                "/api/users", json={"login": "x", "password": "long enough pw", "role": "boss"}
            ),
            422,
        )
        assert role["field"] == "role"
        array = await _error(await admin.post("/api/contacts", json=["name"]), 422)
        assert array["field"] == "body"
        empty_patch = await _error(
            await admin.patch(f"/api/users/{people.admin.user.id}", json={}), 422
        )
        assert empty_patch["field"] == "body"
        network = await _error(
            await admin.patch(
                f"/api/users/{people.north_operator.user.id}",
                json={"allowed_networks": ["10.0.0.0/33"]},
            ),
            422,
        )
        assert network["field"] == "allowed_networks"


async def test_bad_query_strings_name_the_parameter(app: Starlette, people: People) -> None:
    async with client_of(app, people.admin) as admin:
        for params, field in [
            ({"limit": "ten"}, "limit"),
            ({"limit": "0"}, "limit"),
            ({"limit": "100000"}, "limit"),
            ({"offset": "-1"}, "offset"),
            ({"follow_up_due": "maybe"}, "follow_up_due"),
            ({"sort": "name"}, "sort"),
        ]:
            error = await _error(await admin.get("/api/contacts", params=params), 422)
            assert error["field"] == field
        bad_time = await _error(await admin.get("/api/calls", params={"from": "yesterday"}), 422)
        assert bad_time["field"] == "from"
        state = await _error(await admin.get("/api/calls", params={"state": "melted"}), 422)
        assert state["field"] == "state"


async def test_not_json_and_too_large_bodies(
    app_factory: AppFactory, web_settings: WebSettings, people: People
) -> None:
    small = WebSettings(core=web_settings.core, clock=web_settings.clock, max_body_bytes=1000)
    app = app_factory(small)
    async with client_of(app, people.north_operator) as client:
        broken = await client.post(
            "/api/contacts", content=b'{"name": ', headers={"Content-Type": "application/json"}
        )
        assert (await _error(broken, 400))["code"] == "malformed_request"
        form = await client.post("/api/contacts", data={"name": "Ivan"})
        assert (await _error(form, 415))["code"] == "unsupported_media_type"
        large = await client.post("/api/contacts", json={"notes": "x" * 2000})
        assert (await _error(large, 413))["code"] == "body_too_large"
        latin1 = await client.post(
            "/api/contacts",
            content='{"name": "Jos\u00e9"}'.encode("latin-1"),
            headers={"Content-Type": "application/json"},
        )
        assert (await _error(latin1, 400))["code"] == "malformed_request"
        unexpected = await client.request(
            "GET", "/api/contacts", content=b"{}", headers={"Content-Type": "application/json"}
        )
        assert unexpected.status_code == 400


async def test_unknown_paths_and_methods_answer_json(app: Starlette, people: People) -> None:
    async with client_of(app, people.admin) as admin:
        missing = await _error(await admin.get("/api/nothing-here"), 404)
        assert missing["code"] == "not_found"
        wrong_method = await _error(await admin.put("/api/contacts"), 405)
        assert wrong_method["code"] == "method_not_allowed"
        not_a_number = await admin.get("/api/contacts/abc")
        assert not_a_number.status_code == 404
        head = await admin.head("/api/contacts")
        assert head.status_code == 200
        assert head.content == b""
        options = await admin.options("/api/contacts")
        assert options.status_code == 405


FUZZ_BODY_LIMIT = 64 * 1024


DOWNLOAD_OR_JSON = (
    "application/json",
    "text/csv",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "audio/",
)


def _not_a_server_error(response: httpx.Response) -> bool:
    """Below 500, or the telephony handlers' 503 for "no call service" (none runs here)."""
    if response.status_code < 500:
        return True
    error = response.json().get("error", {})
    return response.status_code == 503 and error.get("code") == "call_service_unavailable"


def _random_value(generator: random.Random, depth: int = 0) -> object:
    choices: list[object] = [
        None,
        True,
        False,
        0,
        -1,
        2**63,
        10**400,
        1.5,
        1e308,
        "",
        " ",
        "x" * 5000,
        "+7 916 123-45-67",
        "2030-01-01T10:00:00Z",
        "2030-13-45",
        "\u0000\ud7ff\U0001f600",
        "'; DROP TABLE contacts; --",
        "../../etc/passwd",
        "admin",
        "operator",
        "10.0.0.0/8",
    ]
    if depth < 3:
        choices.append(
            [_random_value(generator, depth + 1) for _ in range(generator.randint(0, 3))]
        )
        choices.append(
            {
                generator.choice(["number", "kind", "a", "", "primary"]): _random_value(
                    generator, depth + 1
                )
                for _ in range(generator.randint(0, 3))
            }
        )
    return generator.choice(choices)


def _garbage_bodies(generator: random.Random, field_names: list[str]) -> list[bytes]:
    bodies = [
        b"",
        b"{",
        b"null",
        b"[]",
        b'"text"',
        b"12",
        b"NaN",
        b'{"a": Infinity}',
        b"\xff\xfe\x00garbage",
        b"[" * 20_000 + b"]" * 20_000,
        b'{"x": ' * 5_000 + b"1" + b"}" * 5_000,
        json.dumps({"k" * 1000: 1}).encode(),
        b"9" * 5000,
        b'{"name": "a", "name": 5}',
        b" " * 50_000 + b"{}",
        b"x" * (FUZZ_BODY_LIMIT + 1),
    ]
    keys = [*field_names, "unknown", "__proto__", "id"]
    for _ in range(15):
        body = {
            generator.choice(keys): _random_value(generator)
            for _ in range(generator.randint(1, len(keys)))
        }
        bodies.append(json.dumps(body).encode())
    return bodies


async def test_garbage_never_causes_a_server_error(
    app_factory: AppFactory, web_settings: WebSettings, people: People
) -> None:
    app = app_factory(dataclasses.replace(web_settings, max_body_bytes=FUZZ_BODY_LIMIT))
    generator = random.Random(20260131)
    other_user = people.north_operator_2.user.id
    async with client_of(app, people.admin) as admin:
        for endpoint in api_endpoints():
            field_names = list(endpoint.body.fields) if endpoint.body is not None else ["name"]
            path = endpoint.path.replace(
                "{id:int}", str(other_user if "users" in endpoint.path else 1)
            ).replace("{role}", "operator")
            for body in _garbage_bodies(generator, field_names):
                response = await admin.request(
                    endpoint.method,
                    path,
                    content=body,
                    headers={"Content-Type": "application/json"},
                )
                assert _not_a_server_error(response), (endpoint.name, body[:80], response.text)
                content_type = response.headers["content-type"]
                if response.status_code >= 400:
                    assert content_type.startswith("application/json")
                    assert set(response.json()["error"]) >= {"code", "message"}
                else:  # JSON, or one of the file downloads (reports, recordings)
                    assert content_type.startswith(DOWNLOAD_OR_JSON), (endpoint.name, content_type)
                if response.status_code == 401:  # a garbage body logged us out (DELETE session)
                    await log_in(admin, people.admin.login)
            if "{id:int}" in endpoint.path:
                for huge in ("3000000000", "9223372036854775808", "9" * 40):
                    response = await admin.request(
                        endpoint.method, endpoint.path.replace("{id:int}", huge)
                    )
                    assert _not_a_server_error(response), (endpoint.name, huge, response.text)
                    if response.status_code == 401:
                        await log_in(admin, people.admin.login)
            for params in (
                {"limit": "1e9"},
                {"q": "\x00"},
                {"offset": "99999999999999999999"},
                {"owner_id": "3000000000"},
                {"operator_id": "3000000000"},
                {"actor_user_id": "3000000000"},
                {"contact_id": "9223372036854775808"},
            ):
                response = await admin.request(endpoint.method, path, params=params)
                assert _not_a_server_error(response), (endpoint.name, params, response.text)
                if response.status_code == 401:
                    await log_in(admin, people.admin.login)
