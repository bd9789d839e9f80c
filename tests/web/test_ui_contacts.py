"""The contact screen in Chromium: log in, instant search, follow-ups due, open a card, change
the status; no console errors (a CSP violation would show up there)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from playwright.async_api import expect
from starlette.applications import Starlette

from tests.conftest import People
from tests.web.browser import chromium, collect_console_errors, serve, sign_in
from tests.web.conftest import ManualClock, client_of

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]


async def _add_contacts(app: Starlette, people: People, clock: ManualClock) -> dict[str, int]:
    ids: dict[str, int] = {}
    due = (clock() - timedelta(hours=1)).isoformat()
    later = (clock() + timedelta(days=3)).isoformat()
    async with client_of(app, people.north_operator) as anna:
        for name, company, number, follow_up in (
            ("Ivan Petrov", "Romashka LLC", "+79161112233", None),
            ("Maria Sidorova", "Vasilek JSC", "+79162223344", later),
            ("Olga Smirnova", "Landysh", "+79163334455", due),
        ):
            body: dict[str, object] = {
                "name": name,
                "company": company,
                "phones": [{"number": number}],
            }
            if follow_up is not None:
                body["follow_up_at"] = follow_up
            response = await anna.post("/api/contacts", json=body)
            assert response.status_code == 201, response.text
            ids[name] = response.json()["id"]
    return ids


async def test_search_open_a_card_and_change_its_status(
    app: Starlette, people: People, clock: ManualClock, tmp_path: Path
) -> None:
    ids = await _add_contacts(app, people, clock)
    async with serve(app) as base_url, chromium(tmp_path) as browser:
        page = await browser.new_page()
        errors = collect_console_errors(page)
        await sign_in(page, base_url, "anna", people.north_operator.password)
        names = page.locator("#contact-list li[role=option] .name")
        # Newest first.
        await expect(names).to_have_text(["Olga Smirnova", "Maria Sidorova", "Ivan Petrov"])

        # As-you-type search, no Enter: the list narrows by itself.
        await page.keyboard.press("/")
        await page.keyboard.type("sidor")
        await expect(names).to_have_text(["Maria Sidorova"])

        # A phone typed in another format finds its contact too.
        await page.fill("#contact-search", "8 916 111")
        await expect(names).to_have_text(["Ivan Petrov"])

        # Only my follow-ups that are due.
        await page.fill("#contact-search", "")
        await page.click("#due-filter")
        await expect(names).to_have_text(["Olga Smirnova"])

        # Open the card with the keyboard, change the status.
        await page.focus("#contact-list")
        await page.keyboard.press("ArrowDown")
        await page.keyboard.press("Enter")
        await page.wait_for_selector("#card-name:text('Olga Smirnova')")
        assert page.url.startswith(f"{base_url}/contacts/{ids['Olga Smirnova']}")
        assert await page.locator("button.call-button").count() == 1
        await page.select_option("#card-status", "interested")
        await page.wait_for_selector("#card-status-note:text('Saved.')")

        async with client_of(app, people.north_operator) as anna:
            stored = await anna.get(f"/api/contacts/{ids['Olga Smirnova']}")
        assert stored.json()["status"] == "interested"

        # The card survives a reload (the address is a real page).
        await page.reload()
        await page.wait_for_selector("#card-name:text('Olga Smirnova')")
        assert await page.locator("#card-status").input_value() == "interested"
        assert errors == []
