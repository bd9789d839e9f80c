"""The wallboard in Chromium: a supervisor opens the floor and sees an operator's state change
the moment the event is published, with the time in state counting up on its own."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.async_api import expect
from starlette.applications import Starlette

from tests.conftest import People
from tests.web.browser import chromium, collect_console_errors, serve, sign_in

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]


async def test_the_wallboard_shows_a_live_state_change(
    app: Starlette, people: People, tmp_path: Path
) -> None:
    anna, boss = people.north_operator, people.north_supervisor
    async with serve(app) as base_url, chromium(tmp_path) as browser:
        page = await browser.new_page()
        errors = collect_console_errors(page)
        await sign_in(page, base_url, boss.login, boss.password)
        await page.click('.nav a[href="/floor"]')
        await expect(page).to_have_url(f"{base_url}/floor")
        row = page.locator(f'#floor tr[data-operator-id="{anna.user.id}"]')
        await expect(row).to_have_attribute("data-state", "offline")
        await expect(row.locator(".state")).to_have_text("Offline")
        await expect(
            page.locator(f'#floor tr[data-operator-id="{people.south_operator.user.id}"]')
        ).to_have_count(0)

        await app.state.event_bus.publish(
            [boss.user.id],
            "operator.state",
            {
                "operator_id": anna.user.id,
                "state": "talking",
                "call_id": 77,
                "contact_id": 5,
                "contact_name": "Ivan Smirnov",
                "at": datetime.now(UTC).isoformat(),
            },
        )
        await expect(row).to_have_attribute("data-state", "talking")
        await expect(row.locator(".state")).to_have_text("Talking")
        await expect(row.locator(".contact")).to_have_text("Ivan Smirnov")
        await expect(row.locator('button[data-mode="listen"]')).to_be_visible()
        await expect(row.locator('button[data-mode="barge"]')).to_be_visible()
        # The display timer moves the time in state without any request.
        shown = await row.locator(".since").inner_text()
        await expect(row.locator(".since")).not_to_have_text(shown)
        assert errors == []


async def test_operators_have_no_floor_link(app: Starlette, people: People, tmp_path: Path) -> None:
    async with serve(app) as base_url, chromium(tmp_path) as browser:
        page = await browser.new_page()
        await sign_in(page, base_url, people.north_operator.login, people.north_operator.password)
        await expect(page.locator('.nav a[href="/floor"]')).to_be_hidden()
