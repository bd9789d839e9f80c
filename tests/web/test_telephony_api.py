"""The call endpoints on the real call service: a real SIP phone calling the built-in test line
(or a SIPp registrar), real databases, every endpoint called as every kind of caller."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from starlette.applications import Starlette

from dialer.calling_window import CallingHours
from dialer.telephony import CallService
from tests.conftest import People
from tests.dialer.test_telephony_support import EventLog, event_log
from tests.sip import peers
from tests.web.conftest import client_of, make_client
from web.bootstrap import call_service
from web.settings import WebSettings

HERE = Path(__file__).resolve().parent
CONTROL_PATHS = ("hangup", "mute", "hold", "dtmf")
CONTROL_BODIES: dict[str, dict[str, object] | None] = {
    "hangup": None,
    "mute": {"muted": True},
    "hold": {"held": True},
    "dtmf": {"digits": "1"},
}


@pytest.fixture
async def service(app: Starlette, web_settings: WebSettings) -> AsyncIterator[CallService]:
    """The real call service on the built-in test line, as ``dialer serve`` starts it."""
    async with call_service(app, web_settings.core, environ={}) as running:
        yield running


async def _contact(client: httpx.AsyncClient, name: str, number: str) -> int:
    response = await client.post(
        "/api/contacts", json={"name": name, "phones": [{"number": number}]}
    )
    assert response.status_code == 201, response.text
    contact_id = response.json()["id"]
    assert isinstance(contact_id, int)
    return contact_id


async def _answered_call(
    app: Starlette, client: httpx.AsyncClient, log: EventLog, contact_id: int
) -> int:
    response = await client.post(
        "/api/calls", json={"contact_id": contact_id, "audio_leg": "browser"}
    )
    assert response.status_code == 201, response.text
    call_id = response.json()["call_id"]
    assert isinstance(call_id, int)
    await log.wait_for("call.answered")
    return call_id


async def test_operator_places_and_controls_a_call_others_are_kept_out(
    app: Starlette, service: CallService, people: People
) -> None:
    anna = people.north_operator
    async with (
        client_of(app, anna) as operator,
        event_log(app.state.event_bus, anna.user.id) as log,
    ):
        contact_id = await _contact(operator, "Pavel Orlov", "+7 916 555-00-11")
        assert (await operator.get("/api/calls/current")).json() == {"current_call": None}

        placed = await operator.post(
            "/api/calls", json={"contact_id": contact_id, "audio_leg": "browser"}
        )
        assert placed.status_code == 201, placed.text
        live = placed.json()
        call_id = live["call_id"]
        assert live["operator_id"] == anna.user.id
        assert live["contact_id"] == contact_id
        assert live["number"] == "+79165550011"
        assert (live["muted"], live["held"]) == (False, False)
        await log.wait_for("call.answered")

        current = (await operator.get("/api/calls/current")).json()["current_call"]
        assert (current["call_id"], current["state"]) == (call_id, "answered")

        second = await operator.post(
            "/api/calls", json={"number": "+79165550012", "audio_leg": "browser"}
        )
        assert second.status_code == 409, second.text
        assert "already" in second.json()["error"]["message"]

        muted = await operator.post(f"/api/calls/{call_id}/mute", json={"muted": True})
        assert muted.status_code == 200, muted.text
        assert muted.json()["muted"] is True
        held = await operator.post(f"/api/calls/{call_id}/hold", json={"held": True})
        assert held.json()["held"] is True
        resumed = await operator.post(f"/api/calls/{call_id}/hold", json={"held": False})
        assert resumed.json()["held"] is False
        tones = await operator.post(f"/api/calls/{call_id}/dtmf", json={"digits": "12#"})
        assert tones.status_code == 200, tones.text
        assert tones.json() == {"call_id": call_id, "digits": "12#"}
        bad_tones = await operator.post(f"/api/calls/{call_id}/dtmf", json={"digits": "12x"})
        assert bad_tones.status_code == 422
        assert bad_tones.json()["error"]["field"] == "digits"

        # Another operator of the team, and the other team's people, cannot see the call.
        for outsider in (people.north_operator_2, people.south_supervisor, people.south_operator):
            async with client_of(app, outsider) as client:
                for path in CONTROL_PATHS:
                    response = await client.post(
                        f"/api/calls/{call_id}/{path}", json=CONTROL_BODIES[path]
                    )
                    assert response.status_code == 404, (outsider.login, path, response.text)
                current_of_outsider = (await client.get("/api/calls/current")).json()
                assert current_of_outsider == {"current_call": None}
        # The team's supervisor may hang it up but not work the operator's controls.
        async with client_of(app, people.north_supervisor) as supervisor:
            for path in ("mute", "hold", "dtmf"):
                response = await supervisor.post(
                    f"/api/calls/{call_id}/{path}", json=CONTROL_BODIES[path]
                )
                assert response.status_code == 403, (path, response.text)
            hung_up = await supervisor.post(f"/api/calls/{call_id}/hangup")
            assert hung_up.status_code == 202, hung_up.text
        ended = await log.wait_for("call.ended")
        assert ended.payload["call_id"] == call_id

        row = (await operator.get(f"/api/calls/{call_id}")).json()
        assert row["state"] == "ended"
        assert row["answered_at"] is not None
        assert row["ended_at"] is not None
        assert row["hangup_by"] == "system"
        assert (await operator.get("/api/calls/current")).json() == {"current_call": None}
        late = await operator.post(f"/api/calls/{call_id}/hangup")
        assert late.status_code == 409, late.text

        # Saving the outcome ends the wrap-up: the floor sees the operator idle again.
        assert log.operator_states()[-1] == "wrap-up"
        saved = await operator.post(
            f"/api/calls/{call_id}/outcome", json={"outcome": "sale", "note": "paid by card"}
        )
        assert saved.status_code == 200, saved.text
        async with asyncio.timeout(10):
            while log.operator_states()[-1] != "idle":
                await log.wait_for_more()

    async with make_client(app) as anonymous:
        for path in CONTROL_PATHS:
            response = await anonymous.post(
                f"/api/calls/{call_id}/{path}", json=CONTROL_BODIES[path]
            )
            assert response.status_code == 401
        assert (await anonymous.get("/api/calls/current")).status_code == 401
        refused = await anonymous.post(
            "/api/calls", json={"number": "+79165550011", "audio_leg": "browser"}
        )
        assert refused.status_code == 401


async def test_supervisors_and_admins_place_calls_and_admins_hang_up_any(
    app: Starlette, service: CallService, people: People
) -> None:
    for caller in (people.north_supervisor, people.admin):
        async with (
            client_of(app, caller) as client,
            event_log(app.state.event_bus, caller.user.id) as log,
        ):
            placed = await client.post(
                "/api/calls", json={"number": "8 916 555-77-00", "audio_leg": "browser"}
            )
            assert placed.status_code == 201, placed.text
            call_id = placed.json()["call_id"]
            await log.wait_for("call.answered")
            own_hangup = await client.post(f"/api/calls/{call_id}/hangup")
            assert own_hangup.status_code == 202
            await log.wait_for("call.ended")

    anna = people.south_operator
    async with (
        client_of(app, anna) as operator,
        event_log(app.state.event_bus, anna.user.id) as log,
    ):
        contact_id = await _contact(operator, "Far Away", "+7 916 555-00-99")
        call_id = await _answered_call(app, operator, log, contact_id)
        async with client_of(app, people.admin) as admin:
            assert (
                await admin.post(f"/api/calls/{call_id}/mute", json={"muted": True})
            ).status_code == 403
            assert (await admin.post(f"/api/calls/{call_id}/hangup")).status_code == 202
        await log.wait_for("call.ended")


async def test_refusals_are_explained(app: Starlette, service: CallService, people: People) -> None:
    anna = people.north_operator
    async with client_of(app, anna) as operator:
        blocked = await _contact(operator, "Leave Me Alone", "+7 916 555-00-13")
        marked = await operator.patch(f"/api/contacts/{blocked}", json={"status": "do_not_call"})
        assert marked.status_code == 200, marked.text
        refused = await operator.post(
            "/api/calls", json={"contact_id": blocked, "audio_leg": "browser"}
        )
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "do_not_call"
        # The same number typed by hand is refused too.
        typed = await operator.post(
            "/api/calls", json={"number": "+79165550013", "audio_leg": "browser"}
        )
        assert typed.status_code == 403
        assert typed.json()["error"]["code"] == "do_not_call"

        for number in ("hello", "12"):
            invalid = await operator.post(
                "/api/calls", json={"number": number, "audio_leg": "browser"}
            )
            assert invalid.status_code == 422, invalid.text
            assert invalid.json()["error"]["field"] in ("number", "phone")

        nothing = await operator.post("/api/calls", json={"audio_leg": "browser"})
        assert nothing.status_code == 422
        no_phone = await operator.post(
            "/api/calls", json={"number": "+79165550014", "audio_leg": "phone"}
        )
        assert no_phone.status_code == 422
        assert no_phone.json()["error"]["field"] == "audio_leg"
        wrong_leg = await operator.post(
            "/api/calls", json={"number": "+79165550014", "audio_leg": "pigeon"}
        )
        assert wrong_leg.status_code == 422
        missing = await operator.post(
            "/api/calls", json={"contact_id": 999_999, "audio_leg": "browser"}
        )
        assert missing.status_code == 404
        assert (await operator.get("/api/calls/current")).json() == {"current_call": None}


async def test_without_a_call_service_calls_are_unavailable(app: Starlette, people: People) -> None:
    async with client_of(app, people.north_operator) as operator:
        response = await operator.post(
            "/api/calls", json={"number": "+79165550011", "audio_leg": "browser"}
        )
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "call_service_unavailable"
        assert "not running" in response.json()["error"]["message"]
        assert (await operator.get("/api/calls/current")).json() == {"current_call": None}


@pytest.mark.peers
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_an_account_that_cannot_register_is_a_trunk_down(
    app: Starlette, web_settings: WebSettings, people: People, tmp_path: Path
) -> None:
    async with peers.sipp(
        str(HERE / "scenarios" / "register_forbidden"), tmp_path / "sipp"
    ) as registrar:
        accounts = tmp_path / "accounts.toml"
        accounts.write_text(
            "[accounts.office]\n"
            f'host = "127.0.0.1"\nport = {registrar.sip_port}\n'
            'username = "office"\npassword = "wrong"\nregister = true\n',
            encoding="utf-8",
        )
        environ = {"DIALER_SIP_ACCOUNTS": str(accounts)}
        async with (
            call_service(app, web_settings.core, environ=environ),
            client_of(app, people.north_operator) as operator,
        ):
            response = await operator.post(
                "/api/calls", json={"number": "+79165550011", "audio_leg": "browser"}
            )
            assert response.status_code == 503, response.text
            error = response.json()["error"]
            assert error["code"] == "trunk_down"
            assert "office" in error["message"]
            assert "403" in error["message"]


async def test_a_call_outside_the_callees_calling_hours_is_refused_in_words(
    app: Starlette, web_settings: WebSettings, people: People
) -> None:
    """With DIALER_CALLING_WINDOW set, a Moscow landline is refused outside its hours there."""
    moscow_hour = datetime.now(ZoneInfo("Europe/Moscow")).hour
    window = f"{(moscow_hour + 2) % 24:02d}:00-{(moscow_hour + 3) % 24:02d}:00"
    closed_now = CallingHours.parse(window)
    settings = dataclasses.replace(web_settings.core, calling_window=closed_now)
    async with (
        call_service(app, settings, environ={}),
        client_of(app, people.north_operator) as operator,
    ):
        office = await _contact(operator, "Moscow Office", "+7 495 123-45-67")
        refused = await operator.post(
            "/api/calls", json={"contact_id": office, "audio_leg": "browser"}
        )
        assert refused.status_code == 403, refused.text
        error = refused.json()["error"]
        assert error["code"] == "outside_calling_window"
        assert "Europe/Moscow" in error["message"]
        assert window in error["message"]
        # The same in parts, for the page to word in its own language.
        details = error["details"]
        local = datetime.strptime(details.pop("local_time"), "%H:%M")
        now_there = datetime.now(ZoneInfo("Europe/Moscow"))
        minutes_apart = (now_there.hour * 60 + now_there.minute) - (local.hour * 60 + local.minute)
        assert minutes_apart % (24 * 60) <= 2
        assert details == {
            "number": "+74951234567",
            "timezone": "Europe/Moscow",
            "weekday": now_there.weekday(),
            "hours": window,
        }
        history = await operator.get("/api/calls", params={"contact_id": office})
        assert history.json()["items"] == []
