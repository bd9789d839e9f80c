"""Contacts over HTTP: who sees what, search and filters, changes, soft delete and purge."""

from __future__ import annotations

from datetime import timedelta

import httpx
from starlette.applications import Starlette

from tests.conftest import People, Person
from tests.web.conftest import ManualClock, client_of


async def _create(client: httpx.AsyncClient, **fields: object) -> int:
    response = await client.post("/api/contacts", json=fields)
    assert response.status_code == 201, response.text
    contact_id = response.json()["id"]
    assert isinstance(contact_id, int)
    return contact_id


async def _visible_names(app: Starlette, person: Person) -> set[str]:
    async with client_of(app, person) as client:
        response = await client.get("/api/contacts", params={"limit": 500})
        assert response.status_code == 200
        body = response.json()
        assert body["total"] == len(body["items"])
        return {item["name"] for item in body["items"]}


async def test_each_role_sees_its_own_scope_of_contacts(app: Starlette, people: People) -> None:
    async with client_of(app, people.north_operator) as anna:
        anna_own = await _create(anna, name="Anna's lead")
    async with client_of(app, people.north_operator_2) as boris:
        boris_own = await _create(boris, name="Boris's lead")
        await _create(boris, name="Shared lead", shared=True)
    async with client_of(app, people.south_operator) as vera:
        await _create(vera, name="Vera's lead")

    assert await _visible_names(app, people.north_operator) == {"Anna's lead", "Shared lead"}
    assert await _visible_names(app, people.north_operator_2) == {"Boris's lead", "Shared lead"}
    assert await _visible_names(app, people.north_supervisor) == {
        "Anna's lead",
        "Boris's lead",
        "Shared lead",
    }
    assert await _visible_names(app, people.south_supervisor) == {"Vera's lead", "Shared lead"}
    assert await _visible_names(app, people.admin) == {
        "Anna's lead",
        "Boris's lead",
        "Shared lead",
        "Vera's lead",
    }

    async with client_of(app, people.north_operator) as anna:
        assert (await anna.get(f"/api/contacts/{boris_own}")).status_code == 404
        hidden = await anna.patch(f"/api/contacts/{boris_own}", json={"name": "Mine now"})
        assert hidden.status_code == 404
        assert (await anna.delete(f"/api/contacts/{boris_own}")).status_code == 404
        assert (await anna.get(f"/api/contacts/{anna_own}")).status_code == 200
    async with client_of(app, people.south_supervisor) as svetlana:
        assert (await svetlana.get(f"/api/contacts/{anna_own}")).status_code == 404
    async with client_of(app, people.north_supervisor) as boss:
        changed = await boss.patch(f"/api/contacts/{anna_own}", json={"company": "Acme"})
        assert changed.status_code == 200
        assert changed.json()["company"] == "Acme"


async def test_search_by_name_company_and_phone_in_any_format(
    app: Starlette, people: People
) -> None:
    async with client_of(app, people.north_operator) as client:
        ivanov = await _create(
            client,
            name="Пётр Иванов",
            company="Ромашка",
            phones=[{"number": "8 (916) 123-45-67"}],
        )
        smith = await _create(
            client,
            name="John Smith",
            company="Acme Widgets",
            phones=[{"number": "+1 212 555 0100"}],
        )

        async def found(query: str) -> set[int]:
            response = await client.get("/api/contacts", params={"q": query})
            assert response.status_code == 200, response.text
            return {item["id"] for item in response.json()["items"]}

        assert await found("иванов") == {ivanov}
        assert await found("ромаш") == {ivanov}
        assert await found("widget") == {smith}
        assert await found("+7 916 123") == {ivanov}
        assert await found("8916123") == {ivanov}
        assert await found("(916) 123-45") == {ivanov}
        assert await found("+1212555") == {smith}
        assert await found("nothing like it") == set()

        shown = (await client.get(f"/api/contacts/{ivanov}")).json()
        assert shown["phones"][0]["e164"] == "+79161234567"
        assert shown["phones"][0]["raw"] == "8 (916) 123-45-67"


async def test_filters_and_pagination(app: Starlette, people: People, clock: ManualClock) -> None:
    async with client_of(app, people.north_operator) as anna:
        soon = (clock() + timedelta(minutes=10)).isoformat()
        later = (clock() + timedelta(days=2)).isoformat()
        due = await _create(anna, name="Due soon", follow_up_at=soon, status="callback")
        await _create(anna, name="Due later", follow_up_at=later, status="callback")
        for number in range(5):
            await _create(anna, name=f"Plain {number}")
    async with client_of(app, people.north_supervisor) as boss:
        await _create(boss, name="Boss's own")
        mine = await boss.get(
            "/api/contacts", params={"owner_id": people.north_operator.user.id, "limit": 100}
        )
        assert mine.json()["total"] == 7

        callbacks = await boss.get("/api/contacts", params={"status": "callback"})
        assert {item["name"] for item in callbacks.json()["items"]} == {"Due soon", "Due later"}

        none_due = await boss.get("/api/contacts", params={"follow_up_due": "true"})
        assert none_due.json()["total"] == 0
        clock.advance(timedelta(minutes=20))  # within the idle limit
        now_due = await boss.get("/api/contacts", params={"follow_up_due": "true"})
        assert [item["id"] for item in now_due.json()["items"]] == [due]

        first = (await boss.get("/api/contacts", params={"limit": 3})).json()
        second = (await boss.get("/api/contacts", params={"limit": 3, "offset": 3})).json()
        assert first["total"] == second["total"] == 8
        assert (first["limit"], first["offset"], second["offset"]) == (3, 0, 3)
        first_ids = {item["id"] for item in first["items"]}
        second_ids = {item["id"] for item in second["items"]}
        assert len(first_ids) == len(second_ids) == 3
        assert not first_ids & second_ids


async def test_change_delete_restore_and_purge(app: Starlette, people: People) -> None:
    async with client_of(app, people.north_operator) as anna:
        contact_id = await _create(
            anna, name="Olga", phones=[{"number": "+7 916 000-00-01", "kind": "work"}]
        )
        changed = await anna.patch(
            f"/api/contacts/{contact_id}",
            json={
                "phones": [{"number": "+7 495 111-22-33"}, {"number": "+7 916 000-00-02"}],
                "tags": ["vip", "moscow"],
                "custom_fields": {"inn": "7700000000", "employees": 40},
                "email": None,
            },
        )
        assert changed.status_code == 200, changed.text
        body = changed.json()
        assert [phone["e164"] for phone in body["phones"]] == ["+74951112233", "+79160000002"]
        assert body["tags"] == ["vip", "moscow"]
        assert body["custom_fields"] == {"inn": "7700000000", "employees": 40}

        deleted = await anna.delete(f"/api/contacts/{contact_id}")
        assert deleted.status_code == 200
        assert (await anna.get(f"/api/contacts/{contact_id}")).status_code == 404
        assert (await anna.get("/api/contacts")).json()["total"] == 0

    async with client_of(app, people.admin) as admin:
        listed = await admin.get("/api/contacts", params={"deleted": "true"})
        assert [item["id"] for item in listed.json()["items"]] == [contact_id]
        restored = await admin.post(f"/api/contacts/{contact_id}/restore")
        assert restored.status_code == 200
        assert (await admin.get(f"/api/contacts/{contact_id}")).status_code == 200
        purged = await admin.post(f"/api/contacts/{contact_id}/purge")
        assert purged.status_code == 200
        assert (await admin.get(f"/api/contacts/{contact_id}")).status_code == 404
        assert (await admin.post(f"/api/contacts/{contact_id}/purge")).status_code == 404
        audit = await admin.get("/api/audit", params={"target": f"contact:{contact_id}"})
        actions = [event["action"] for event in audit.json()["items"]]
        assert actions[0] == "contact.purge"
        assert "contact.delete" in actions
        assert "contact.create" in actions
