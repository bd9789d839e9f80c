"""The after-call form in Chromium, keyboard only: a ``call.ended`` live event opens it focused;
Esc postpones it, o brings it back, a number key picks the outcome, Tab reaches the note, Enter
saves; the call and the contact carry the outcome."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import expect
from starlette.applications import Starlette

from dialer.calls import create_call, record_call_transition
from dialer.models import CallState
from tests.conftest import People
from tests.web.browser import chromium, collect_console_errors, serve, sign_in
from tests.web.conftest import client_of

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]


async def _ended_call(app: Starlette, people: People) -> tuple[int, int]:
    anna = people.north_operator
    async with client_of(app, anna) as client:
        created = await client.post(
            "/api/contacts", json={"name": "Pavel Orlov", "phones": [{"number": "+79165550011"}]}
        )
        contact_id = created.json()["id"]
    async with app.state.session_factory() as database:
        call = await create_call(database, anna.actor, "+79165550011", contact_id=contact_id)
        for state in (CallState.DIALING, CallState.RINGING, CallState.ANSWERED):
            await record_call_transition(database, call.id, state)
        await record_call_transition(
            database, call.id, CallState.ENDED, end_cause="remote_hangup", hangup_by="remote"
        )
        await database.commit()
        return contact_id, call.id


async def test_after_call_form_with_the_keyboard_only(
    app: Starlette, people: People, tmp_path: Path
) -> None:
    contact_id, call_id = await _ended_call(app, people)
    anna = people.north_operator
    async with serve(app) as base_url, chromium(tmp_path) as browser:
        page = await browser.new_page()
        errors = collect_console_errors(page)
        await sign_in(page, base_url, anna.login, anna.password)
        await page.goto(f"{base_url}/contacts/{contact_id}")
        await page.wait_for_selector("#card-name:text('Pavel Orlov')")
        await expect(page.locator("#live-status")).to_have_text("Live")

        await app.state.event_bus.publish(
            [anna.user.id],
            "call.ended",
            {
                "call_id": call_id,
                "contact_id": contact_id,
                "state": "ended",
                "cause": "remote_hangup",
                "sip_code": None,
                "reason": None,
                "at": None,
            },
        )
        form = page.locator("#after-call-form")
        await expect(form).to_be_visible()
        await expect(page.locator("#outcome-new")).to_be_focused()
        await expect(page.locator("[role=dialog]")).to_contain_text(
            "The call ended: The other side hung up."
        )

        await page.keyboard.press("Escape")  # postpone
        await expect(form).to_be_hidden()
        await expect(page.locator("#pending-outcomes")).to_be_visible()
        await page.keyboard.press("o")  # and come back to it
        await expect(form).to_be_visible()

        await page.keyboard.press("7")  # the 7th status: Sale
        await expect(page.locator("#outcome-sale")).to_be_checked()
        await expect(page.locator("#outcome-sale")).to_be_focused()
        await page.keyboard.press("Tab")
        await expect(page.locator("#after-call-note")).to_be_focused()
        await page.keyboard.type("Bought 3 seats")  # digits in the note are text
        async with page.expect_response(f"**/api/calls/{call_id}/outcome") as answer:
            await page.keyboard.press("Enter")
        assert (await answer.value).status == 200
        await expect(form).to_be_hidden()
        await expect(page.locator("#pending-outcomes")).to_be_hidden()
        await expect(page.locator("#card-status")).to_have_value("sale")
        await expect(page.locator(f"#call-history tr[data-call-id='{call_id}']")).to_contain_text(
            "Bought 3 seats"
        )
        assert errors == []

    async with client_of(app, anna) as client:
        call = (await client.get(f"/api/calls/{call_id}")).json()
        contact = (await client.get(f"/api/contacts/{contact_id}")).json()
    assert call["outcome"] == "sale"
    assert call["outcome_note"] == "Bought 3 seats"
    assert contact["status"] == "sale"
