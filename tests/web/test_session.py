"""Logging in and out over HTTP: cookies, lockout, throttling, timeouts, allow-lists, CSRF."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pyotp
from starlette.applications import Starlette

from dialer.users import enroll_totp
from tests.conftest import TEST_PASSWORD, People
from tests.web.conftest import AppFactory, ManualClock, client_of, log_in, make_client, with_core
from web.client_address import parse_networks
from web.settings import WebSettings


def _cookie_attributes(response: httpx.Response) -> dict[str, str]:
    header = response.headers["set-cookie"]
    parts = [part.strip() for part in header.split(";")]
    attributes = {}
    for part in parts[1:]:
        name, _, value = part.partition("=")
        attributes[name.lower()] = value
    return attributes


async def test_login_sets_a_server_side_session_cookie(
    anonymous: httpx.AsyncClient, people: People
) -> None:
    response = await anonymous.post(
        "/api/session", json={"login": "anna", "password": TEST_PASSWORD}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["user"]["login"] == "anna"
    assert body["user"]["role"] == "operator"
    assert "password_hash" not in body["user"]
    assert len(body["csrf_token"]) >= 32
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("dialer_session=")
    attributes = _cookie_attributes(response)
    assert "httponly" in attributes
    assert attributes["samesite"].lower() in ("lax", "strict")
    assert attributes["path"] == "/"
    assert "secure" not in attributes  # plain HTTP here

    me = await anonymous.get("/api/session")
    assert me.status_code == 200
    assert me.json()["user"]["id"] == people.north_operator.user.id
    assert me.json()["csrf_token"] == body["csrf_token"]


async def test_cookie_is_secure_over_https(app: Starlette, people: People) -> None:
    async with make_client(app, base_url="https://dialer.test") as client:
        response = await client.post(
            "/api/session", json={"login": "anna", "password": TEST_PASSWORD}
        )
        assert response.status_code == 200
        assert "secure" in _cookie_attributes(response)


async def test_unknown_login_and_wrong_password_get_the_same_answer(
    anonymous: httpx.AsyncClient, people: People
) -> None:
    wrong_password = await anonymous.post(
        "/api/session", json={"login": "anna", "password": "not it at all"}
    )
    unknown_login = await anonymous.post(
        "/api/session", json={"login": "nobody", "password": "not it at all"}
    )
    assert wrong_password.status_code == unknown_login.status_code == 401
    assert wrong_password.json() == unknown_login.json()
    assert "set-cookie" not in wrong_password.headers
    assert (await anonymous.get("/api/session")).status_code == 401


async def test_ten_wrong_passwords_lock_the_account_for_fifteen_minutes(
    anonymous: httpx.AsyncClient, people: People, clock: ManualClock
) -> None:
    statuses = []
    for _ in range(10):
        response = await anonymous.post("/api/session", json={"login": "anna", "password": "guess"})
        statuses.append(response.status_code)
    assert statuses[:9] == [401] * 9
    assert statuses[9] == 423
    assert response.json()["error"]["message"].startswith("account locked until ")

    right = await anonymous.post("/api/session", json={"login": "anna", "password": TEST_PASSWORD})
    assert right.status_code == 423
    assert "account locked until" in right.json()["error"]["message"]

    clock.advance(timedelta(minutes=14))
    still = await anonymous.post("/api/session", json={"login": "anna", "password": TEST_PASSWORD})
    assert still.status_code == 423

    clock.advance(timedelta(minutes=1, seconds=1))
    after = await anonymous.post("/api/session", json={"login": "anna", "password": TEST_PASSWORD})
    assert after.status_code == 200, after.text


async def test_unknown_logins_lock_the_same_way(
    anonymous: httpx.AsyncClient, people: People
) -> None:
    for _ in range(9):
        await anonymous.post("/api/session", json={"login": "ghost", "password": "guess"})
    known = [
        (await anonymous.post("/api/session", json={"login": "anna", "password": "guess"}))
        for _ in range(9)
    ]
    ghost = await anonymous.post("/api/session", json={"login": "ghost", "password": "guess"})
    olga = await anonymous.post("/api/session", json={"login": "anna", "password": "guess"})
    assert {response.status_code for response in known} == {401}
    assert ghost.status_code == olga.status_code == 423
    assert ghost.json()["error"]["code"] == olga.json()["error"]["code"]


async def test_admin_unlocks_a_locked_account(app: Starlette, people: People) -> None:
    async with make_client(app) as client:
        for _ in range(10):
            await client.post("/api/session", json={"login": "anna", "password": "guess"})
    async with client_of(app, people.admin) as admin:
        shown = await admin.get(f"/api/users/{people.north_operator.user.id}")
        assert shown.json()["locked_until"] is not None
        unlocked = await admin.post(f"/api/users/{people.north_operator.user.id}/unlock")
        assert unlocked.status_code == 200
        assert unlocked.json()["locked_until"] is None
    async with make_client(app) as client:
        await log_in(client, "anna")


async def test_login_attempts_are_throttled_per_source_address(
    app_factory: AppFactory, web_settings: WebSettings, people: People
) -> None:
    app = app_factory(with_core(web_settings, max_failures_per_source_per_hour=5))
    async with make_client(app, address="192.0.2.10") as attacker:
        for number in range(5):
            response = await attacker.post(
                "/api/session", json={"login": f"user{number}", "password": "guess"}
            )
            assert response.status_code == 401
        refused = await attacker.post(
            "/api/session", json={"login": "anna", "password": TEST_PASSWORD}
        )
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "throttled"
    async with make_client(app, address="192.0.2.11") as colleague:
        await log_in(colleague, "anna")


async def test_logout_ends_the_session_on_the_server(app: Starlette, people: People) -> None:
    async with client_of(app, people.north_operator) as client:
        token = client.cookies["dialer_session"]
        response = await client.delete("/api/session")
        assert response.status_code == 200
        assert "dialer_session=;" in response.headers["set-cookie"]
    # Replaying the old cookie after logout does not work.
    async with make_client(app) as replay:
        replay.cookies.set("dialer_session", token, domain="dialer.test")
        assert (await replay.get("/api/session")).status_code == 401


async def test_login_issues_a_new_token_and_ends_the_old_session(
    app: Starlette, people: People
) -> None:
    async with client_of(app, people.north_operator) as client:
        old_token = client.cookies["dialer_session"]
        await log_in(client, "anna")
        assert client.cookies["dialer_session"] != old_token
    async with make_client(app) as replay:
        replay.cookies.set("dialer_session", old_token, domain="dialer.test")
        assert (await replay.get("/api/session")).status_code == 401


async def test_idle_sessions_expire_after_thirty_minutes(
    app: Starlette, people: People, clock: ManualClock
) -> None:
    async with client_of(app, people.north_operator) as client:
        clock.advance(timedelta(minutes=29))
        assert (await client.get("/api/session")).status_code == 200
        clock.advance(timedelta(minutes=29))  # counted from the last request
        assert (await client.get("/api/session")).status_code == 200
        clock.advance(timedelta(minutes=30))
        expired = await client.get("/api/session")
        assert expired.status_code == 401
        assert expired.json()["error"]["code"] == "session_expired"
        clock.advance(timedelta(minutes=-30))  # going back does not revive it
        assert (await client.get("/api/session")).status_code == 401


async def test_sessions_end_twelve_hours_after_login_even_when_active(
    app: Starlette, people: People, clock: ManualClock
) -> None:
    async with client_of(app, people.north_operator) as client:
        for _ in range(23):
            clock.advance(timedelta(minutes=29))
            assert (await client.get("/api/session")).status_code == 200
        clock.advance(timedelta(minutes=29))  # 24 * 29 min = 11 h 36 min
        assert (await client.get("/api/session")).status_code == 200
        clock.advance(timedelta(minutes=25))  # 12 h 01 min
        assert (await client.get("/api/session")).status_code == 401


async def test_allow_list_is_checked_at_login_and_on_every_request(
    app: Starlette, people: People
) -> None:
    async with client_of(app, people.north_operator, address="127.0.0.1") as office:
        async with client_of(app, people.admin) as admin:
            changed = await admin.patch(
                f"/api/users/{people.north_operator.user.id}",
                json={"allowed_networks": ["10.0.0.0/8"]},
            )
            assert changed.status_code == 200, changed.text
            assert changed.json()["allowed_networks"] == ["10.0.0.0/8"]
        # The session opened from 127.0.0.1 is refused from now on.
        refused = await office.get("/api/contacts")
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "source_not_allowed"
    async with make_client(app, address="127.0.0.1") as outside:
        response = await outside.post(
            "/api/session", json={"login": "anna", "password": TEST_PASSWORD}
        )
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "source_not_allowed"
    async with client_of(app, people.north_operator, address="10.1.2.3") as inside:
        assert (await inside.get("/api/contacts")).status_code == 200


async def test_forwarded_for_counts_only_from_a_trusted_proxy(
    app_factory: AppFactory, web_settings: WebSettings, people: People
) -> None:
    plain = app_factory(web_settings)
    async with client_of(plain, people.admin) as admin:
        await admin.patch(
            f"/api/users/{people.north_operator.user.id}", json={"allowed_networks": ["10.0.0.0/8"]}
        )
    spoofed = {"X-Forwarded-For": "10.1.2.3"}
    async with make_client(plain, address="127.0.0.1") as client:
        response = await client.post(
            "/api/session", json={"login": "anna", "password": TEST_PASSWORD}, headers=spoofed
        )
        assert response.status_code == 403

    proxied = app_factory(
        WebSettings(
            core=web_settings.core,
            clock=web_settings.clock,
            trusted_proxies=parse_networks("127.0.0.1"),
        )
    )
    async with make_client(proxied, address="127.0.0.1") as client:
        response = await client.post(
            "/api/session", json={"login": "anna", "password": TEST_PASSWORD}, headers=spoofed
        )
        assert response.status_code == 200, response.text
        assert "secure" not in _cookie_attributes(response)
        # The proxy terminated TLS: the cookie must be Secure.
        over_tls = await client.post(
            "/api/session",
            json={"login": "anna", "password": TEST_PASSWORD},
            headers={**spoofed, "X-Forwarded-Proto": "https"},
        )
        assert over_tls.status_code == 200, over_tls.text
        assert "secure" in _cookie_attributes(over_tls)


async def test_state_changes_need_the_session_csrf_token(app: Starlette, people: People) -> None:
    async with client_of(app, people.north_operator) as client:
        token = client.headers.pop("X-CSRF-Token")
        missing = await client.post("/api/contacts", json={"name": "Ivan"})
        assert missing.status_code == 403
        assert missing.json()["error"]["code"] == "csrf_token_missing"
        wrong = await client.post(
            "/api/contacts", json={"name": "Ivan"}, headers={"X-CSRF-Token": "x" + token}
        )
        assert wrong.status_code == 403
        assert wrong.json()["error"]["code"] == "csrf_token_invalid"
        logout_without_token = await client.delete("/api/session")
        assert logout_without_token.status_code == 403
        right = await client.post(
            "/api/contacts", json={"name": "Ivan"}, headers={"X-CSRF-Token": token}
        )
        assert right.status_code == 201
        listed = await client.get("/api/contacts")  # reads need no token
        assert listed.json()["total"] == 1


async def test_foreign_origins_are_refused(app: Starlette, people: People) -> None:
    async with client_of(app, people.north_operator) as client:
        foreign = await client.post(
            "/api/contacts", json={"name": "Ivan"}, headers={"Origin": "https://evil.example"}
        )
        assert foreign.status_code == 403
        assert foreign.json()["error"]["code"] == "origin_refused"
        same = await client.post(
            "/api/contacts", json={"name": "Ivan"}, headers={"Origin": "http://dialer.test"}
        )
        assert same.status_code == 201
    async with make_client(app) as client:
        login = await client.post(
            "/api/session",
            json={"login": "anna", "password": TEST_PASSWORD},
            headers={"Origin": "https://evil.example"},
        )
        assert login.status_code == 403
        assert "set-cookie" not in login.headers


async def test_login_body_must_be_json(anonymous: httpx.AsyncClient, people: People) -> None:
    form = await anonymous.post("/api/session", data={"login": "anna", "password": TEST_PASSWORD})
    assert form.status_code == 415


async def test_role_allow_list_applies_to_every_user_of_the_role(
    app: Starlette, people: People
) -> None:
    async with client_of(app, people.north_operator) as office:
        async with client_of(app, people.admin) as admin:
            saved = await admin.put(
                "/api/allow-lists/operator", json={"networks": ["10.0.0.0/8", "192.0.2.7"]}
            )
            assert saved.status_code == 200, saved.text
            assert saved.json()["networks"] == ["10.0.0.0/8", "192.0.2.7/32"]
            listed = await admin.get("/api/allow-lists")
            assert listed.json() == {
                "operator": ["10.0.0.0/8", "192.0.2.7/32"],
                "supervisor": [],
                "admin": [],
            }
            lockout = await admin.put("/api/allow-lists/admin", json={"networks": ["10.0.0.0/8"]})
            assert lockout.status_code == 409
            bad = await admin.put("/api/allow-lists/operator", json={"networks": ["10.0.0.0/33"]})
            assert bad.status_code == 422
            assert bad.json()["error"]["field"] == "networks"
            # The supervisor role is not limited.
            async with client_of(app, people.north_supervisor) as boss:
                assert (await boss.get("/api/contacts")).status_code == 200
        assert (await office.get("/api/contacts")).status_code == 403
    async with client_of(app, people.north_operator_2, address="192.0.2.7") as inside:
        assert (await inside.get("/api/contacts")).status_code == 200


async def test_one_time_code_is_asked_for_when_enrolled(app: Starlette, people: People) -> None:
    async with app.state.session_factory() as database:
        secret, _ = await enroll_totp(
            database, None, app.state.settings.core, people.north_operator.user.id
        )
        await database.commit()
    credentials = {"login": "anna", "password": TEST_PASSWORD}
    async with make_client(app) as client:
        asked = await client.post("/api/session", json=credentials)
        assert asked.status_code == 401
        assert asked.json()["error"]["code"] == "one_time_code_required"
        wrong = await client.post("/api/session", json={**credentials, "one_time_code": "000000"})
        assert wrong.status_code == 401
        assert wrong.json()["error"]["code"] == "wrong_credentials"
        code = pyotp.TOTP(secret).now()
        right = await client.post("/api/session", json={**credentials, "one_time_code": code})
        assert right.status_code == 200, right.text
