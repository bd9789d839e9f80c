"""Calls over HTTP: who sees which calls, filters, and recording an outcome."""

from __future__ import annotations

from datetime import timedelta

from starlette.applications import Starlette

from dialer.calls import create_call
from tests.conftest import People, Person
from tests.web.conftest import ManualClock, client_of


async def _call_for(
    app: Starlette, person: Person, phone: str, contact_id: int | None = None
) -> int:
    async with app.state.session_factory() as database:
        call = await create_call(database, person.actor, phone, contact_id=contact_id)
        await database.commit()
        return call.id


async def _visible_calls(app: Starlette, person: Person, **params: str | int) -> list[int]:
    async with client_of(app, person) as client:
        response = await client.get("/api/calls", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        return [item["id"] for item in body["items"]]


async def test_each_role_sees_its_own_scope_of_calls(app: Starlette, people: People) -> None:
    anna_call = await _call_for(app, people.north_operator, "+79160000001")
    boris_call = await _call_for(app, people.north_operator_2, "+79160000002")
    vera_call = await _call_for(app, people.south_operator, "+79160000003")

    assert await _visible_calls(app, people.north_operator) == [anna_call]
    assert set(await _visible_calls(app, people.north_supervisor)) == {anna_call, boris_call}
    assert await _visible_calls(app, people.south_supervisor) == [vera_call]
    assert set(await _visible_calls(app, people.admin)) == {anna_call, boris_call, vera_call}

    async with client_of(app, people.north_operator) as anna:
        assert (await anna.get(f"/api/calls/{boris_call}")).status_code == 404
        refused = await anna.post(f"/api/calls/{boris_call}/outcome", json={"outcome": "sale"})
        assert refused.status_code == 404
        shown = await anna.get(f"/api/calls/{anna_call}")
        assert shown.status_code == 200
        assert shown.json()["phone_e164"] == "+79160000001"
        assert shown.json()["operator_id"] == people.north_operator.user.id


async def test_call_filters(app: Starlette, people: People, clock: ManualClock) -> None:
    async with client_of(app, people.north_operator) as anna:
        created = await anna.post(
            "/api/contacts", json={"name": "Ivan", "phones": [{"number": "+79161112233"}]}
        )
        contact_id = created.json()["id"]
    with_contact = await _call_for(app, people.north_operator, "+79161112233", contact_id)
    other = await _call_for(app, people.north_operator_2, "+79160000009")

    admin = people.admin
    assert await _visible_calls(app, admin, contact_id=contact_id) == [with_contact]
    assert await _visible_calls(app, admin, operator_id=people.north_operator_2.user.id) == [other]
    # Calls are stamped with the real time; a window around it finds both, one after it none.
    real_now = clock()
    window = {
        "from": (real_now - timedelta(hours=1)).isoformat(),
        "to": (real_now + timedelta(hours=1)).isoformat(),
    }
    assert set(await _visible_calls(app, admin, **window)) == {with_contact, other}
    later = {"from": (real_now + timedelta(hours=1)).isoformat()}
    assert await _visible_calls(app, admin, **later) == []

    async with client_of(app, people.north_operator) as anna:
        answered = await anna.post(
            f"/api/calls/{with_contact}/outcome", json={"outcome": "sale", "note": "2 licences"}
        )
        assert answered.status_code == 200, answered.text
        assert answered.json()["outcome"] == "sale"
        contact = await anna.get(f"/api/contacts/{contact_id}")
        assert contact.json()["status"] == "sale"
    assert await _visible_calls(app, admin, outcome="sale") == [with_contact]


async def test_outcome_rules_come_back_as_field_errors(app: Starlette, people: People) -> None:
    call_id = await _call_for(app, people.north_operator, "+79160000001")
    async with client_of(app, people.north_operator) as anna:
        no_time = await anna.post(f"/api/calls/{call_id}/outcome", json={"outcome": "callback"})
        assert no_time.status_code == 422
        assert no_time.json()["error"]["field"] == "follow_up_at"
        unknown = await anna.post(f"/api/calls/{call_id}/outcome", json={"outcome": "maybe"})
        assert unknown.status_code == 422
        assert unknown.json()["error"]["field"] == "outcome"
        done = await anna.post(
            f"/api/calls/{call_id}/outcome",
            json={"outcome": "callback", "follow_up_at": "2030-01-01T10:00:00+03:00"},
        )
        assert done.status_code == 200
        assert done.json()["follow_up_at"] == "2030-01-01T07:00:00+00:00"
