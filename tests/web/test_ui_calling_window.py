"""A call refused by the calling window, in Chromium with the page in Russian: the operator reads
the callee's day, time, zone and that day's hours in Russian, not the server's English."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import expect
from starlette.applications import Starlette

from dialer.calling_window import CallingHours
from tests.conftest import People
from tests.web.browser import chromium, collect_console_errors, serve, sign_in
from tests.web.conftest import client_of
from web.bootstrap import call_service
from web.settings import WebSettings

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]

RUSSIAN_WEEKDAYS = ("пн", "вт", "ср", "чт", "пт", "сб", "вс")


async def test_a_refused_call_names_the_callees_hours_in_the_pages_language(
    app: Starlette, web_settings: WebSettings, people: People, tmp_path: Path
) -> None:
    now_in_moscow = datetime.now(ZoneInfo("Europe/Moscow"))
    window = f"{(now_in_moscow.hour + 2) % 24:02d}:00-{(now_in_moscow.hour + 3) % 24:02d}:00"
    settings = dataclasses.replace(web_settings.core, calling_window=CallingHours.parse(window))
    anna = people.north_operator
    async with client_of(app, anna) as client:
        created = await client.post(
            "/api/contacts", json={"name": "Офис Москва", "phones": [{"number": "+74951234567"}]}
        )
        assert created.status_code == 201, created.text
        contact_id = created.json()["id"]

    async with (
        call_service(app, settings, environ={}),
        serve(app) as base_url,
        chromium(tmp_path) as browser,
    ):
        page = await browser.new_page()
        await page.add_init_script("localStorage.setItem('dialer.language', 'ru')")
        errors = collect_console_errors(page)
        await sign_in(page, base_url, anna.login, anna.password)
        await page.goto(f"{base_url}/contacts/{contact_id}")
        await expect(page.locator("#card-name")).to_have_text("Офис Москва")
        await page.click(".call-button")

        alert = page.locator("#toasts [role=alert]")
        await expect(alert).to_contain_text("У этого контакта сейчас не время для звонков")
        text = await alert.inner_text()
        assert "Europe/Moscow" in text
        assert f"часы звонков в этот день: {window}" in text
        assert RUSSIAN_WEEKDAYS[now_in_moscow.weekday()] in text
        assert "calling hours" not in text  # not the server's English sentence
        await expect(page.locator("#call-bar")).to_contain_text("не время для звонков")
        # The refused POST is logged by Chromium as a failed resource; nothing else went wrong.
        assert [error for error in errors if "status of 403" not in error] == [], errors
