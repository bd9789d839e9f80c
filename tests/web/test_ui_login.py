"""The login page in Chromium: wrong credentials in words, then the lockout message with the time
the account opens again (threshold lowered to 3 for the test), then in after the lock ends."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from tests.conftest import People
from tests.web.browser import chromium, collect_console_errors, serve
from tests.web.conftest import AppFactory, ManualClock, with_core
from web.settings import WebSettings

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]


async def _submit(page: Page, password: str) -> str:
    await page.fill("#login-password", password)
    async with page.expect_response("**/api/session"):
        await page.press("#login-password", "Enter")
    await expect(page.locator("#login-error")).not_to_be_empty()
    return await page.locator("#login-error").inner_text()


async def test_wrong_passwords_then_lockout_then_login(
    app_factory: AppFactory,
    web_settings: WebSettings,
    people: People,
    clock: ManualClock,
    tmp_path: Path,
) -> None:
    app = app_factory(with_core(web_settings, lockout_threshold=3, lockout_minutes=15))
    async with serve(app) as base_url, chromium(tmp_path) as browser:
        page = await browser.new_page()
        errors = collect_console_errors(page)
        await page.goto(f"{base_url}/contacts/1")
        await expect(page).to_have_url(f"{base_url}/login")
        await page.fill("#login-name", "anna")

        messages = [await _submit(page, f"wrong password {attempt}") for attempt in range(4)]
        assert messages[0] == "Wrong login or password."
        assert messages[-1].startswith("Too many failed attempts: the account is locked until ")
        # Even the right password waits for the lock to end.
        locked = await _submit(page, people.north_operator.password)
        assert locked.startswith("Too many failed attempts")

        clock.advance(timedelta(minutes=16))
        await page.fill("#login-password", people.north_operator.password)
        await page.press("#login-password", "Enter")
        # Back on the page asked for before logging in.
        await page.wait_for_selector("#contact-search")
        await expect(page).to_have_url(f"{base_url}/contacts/1")
        await expect(page.locator("#user-name")).to_have_text("Anna")
        # Refused logins are 401/423 answers the page turned into words; nothing else failed.
        assert [error for error in errors if "Failed to load resource" not in error] == []
