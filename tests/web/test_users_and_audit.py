"""User management and the audit log over HTTP (admins; supervisors read their team's audit)."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from starlette.applications import Starlette

from tests.conftest import TEST_PASSWORD, People
from tests.web.conftest import client_of, log_in, make_client


async def test_admin_creates_changes_and_disables_a_user(app: Starlette, people: People) -> None:
    async with client_of(app, people.admin) as admin:
        created = await admin.post(
            "/api/users",
            json={
                "login": "dmitry",
                "password": "a long enough password",
                "display_name": "Dmitry",
                "role": "operator",
                "team_id": people.north_operator.user.team_id,
            },
        )
        assert created.status_code == 201, created.text
        user_id = created.json()["id"]
        duplicate = await admin.post(
            "/api/users",
            json={"login": "DMITRY", "password": "a long enough password", "role": "operator"},
        )
        assert duplicate.status_code == 409
        short = await admin.post(
            "/api/users", json={"login": "ivan", "password": "short", "role": "operator"}
        )
        assert short.status_code == 422
        assert short.json()["error"]["field"] == "password"

        listed = await admin.get("/api/users")
        assert "dmitry" in {user["login"] for user in listed.json()["items"]}

        promoted = await admin.patch(
            f"/api/users/{user_id}", json={"role": "supervisor", "team_id": None}
        )
        assert promoted.status_code == 200, promoted.text
        assert promoted.json()["role"] == "supervisor"
        assert promoted.json()["team_id"] is None

    async with make_client(app) as dmitry:
        await log_in(dmitry, "dmitry", "a long enough password")
        assert (await dmitry.get("/api/session")).json()["user"]["role"] == "supervisor"
        async with client_of(app, people.admin) as admin:
            disabled = await admin.patch(f"/api/users/{user_id}", json={"disabled": True})
            assert disabled.json()["disabled"] is True
            self_disable = await admin.patch(
                f"/api/users/{people.admin.user.id}", json={"disabled": True}
            )
            assert self_disable.status_code == 409
        # Disabling ends the live session at once.
        assert (await dmitry.get("/api/session")).status_code == 401
        again = await dmitry.post(
            "/api/session", json={"login": "dmitry", "password": "a long enough password"}
        )
        assert again.status_code == 401


async def test_reset_password_ends_sessions_and_changes_the_password(
    app: Starlette, people: People
) -> None:
    async with client_of(app, people.north_operator) as anna:
        async with client_of(app, people.admin) as admin:
            reset = await admin.post(
                f"/api/users/{people.north_operator.user.id}/reset-password",
                json={"password": "brand new password"},
            )
            assert reset.status_code == 200, reset.text
        assert (await anna.get("/api/session")).status_code == 401
    async with make_client(app) as client:
        old = await client.post("/api/session", json={"login": "anna", "password": TEST_PASSWORD})
        assert old.status_code == 401
        await log_in(client, "anna", "brand new password")


async def test_audit_log_lists_and_verifies(app: Starlette, people: People) -> None:
    async with client_of(app, people.north_operator) as anna:
        await anna.post("/api/contacts", json={"name": "Audited"})
    async with client_of(app, people.south_operator) as vera:
        await vera.post("/api/contacts", json={"name": "Elsewhere"})
    async with client_of(app, people.admin) as admin:
        events = await admin.get("/api/audit", params={"action": "contact.create"})
        assert events.status_code == 200
        assert events.json()["total"] == 2
        logins = await admin.get(
            "/api/audit",
            params={"action": "user.login", "actor_user_id": people.north_operator.user.id},
        )
        assert logins.json()["total"] == 1
        assert logins.json()["items"][0]["source_ip"] == "127.0.0.1"
        verified = await admin.get("/api/audit/verify")
        assert verified.json() == {"intact": True, "problems": []}
    async with client_of(app, people.north_supervisor) as boss:
        team_view = await boss.get("/api/audit", params={"action": "contact.create"})
        assert [event["actor_user_id"] for event in team_view.json()["items"]] == [
            people.north_operator.user.id
        ]

    # Someone with database access switches the append-only guard off and edits a row.
    async with app.state.session_factory() as database:
        if database.get_bind().dialect.name == "postgresql":
            await database.execute(text("SET LOCAL session_replication_role = replica"))
        else:
            await database.execute(text("DROP TRIGGER audit_events_no_update"))
        await database.execute(
            text("UPDATE audit_events SET target = 'contact:0' WHERE action = 'contact.create'")
        )
        await database.commit()
    async with client_of(app, people.admin) as admin:
        verified = await admin.get("/api/audit/verify")
        assert verified.json()["intact"] is False
        assert {problem["kind"] for problem in verified.json()["problems"]} == {"edited"}


async def test_creating_the_same_login_twice_at_once_gives_one_conflict(
    app: Starlette, people: People
) -> None:
    async with client_of(app, people.admin) as admin:
        body = {"login": "twin", "password": "a long enough password", "role": "operator"}
        first, second = await asyncio.gather(
            admin.post("/api/users", json=body), admin.post("/api/users", json=body)
        )
        assert sorted([first.status_code, second.status_code]) == [201, 409], (
            first.text,
            second.text,
        )
        listed = await admin.get("/api/users")
        assert [user["login"] for user in listed.json()["items"]].count("twin") == 1
