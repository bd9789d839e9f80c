"""``/api/reports/daily`` (JSON, CSV, XLSX) over HTTP as each role, on SQLite and PostgreSQL.

The calls are the hand-built set of ``tests/dialer/test_reports.py`` (8 calls over two days:
anna 4, boris 2 in team north; vera 2 in team south).
"""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path

import openpyxl
import pytest
from playwright.async_api import expect
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from dialer.models import AuditEvent
from dialer.reports.models import ALL_OPERATORS, CallVolumeDirtyHour, Dimension
from dialer.reports.rollup import ROLLUP_TABLE
from dialer.storage import create_engine
from tests.conftest import People
from tests.dialer.test_reports import PLAN, person_of, place_call
from tests.e2e.server import (
    call_first_contact,
    first_start_credentials,
    signed_in,
    start_server,
    wait_for_call,
)
from tests.web.browser import chromium, collect_console_errors, serve, sign_in
from tests.web.conftest import client_of

RANGE = {"from": "2026-03-02", "to": "2026-03-03"}


@pytest.fixture
async def placed(session_factory: async_sessionmaker[AsyncSession], people: People) -> None:
    async with session_factory() as session:
        for plan in PLAN.values():
            await place_call(session, person_of(people, plan.operator), plan)
        await session.commit()


async def exports(session_factory: async_sessionmaker[AsyncSession]) -> list[AuditEvent]:
    async with session_factory() as session:
        rows = await session.scalars(
            select(AuditEvent).where(AuditEvent.action == "report.export").order_by(AuditEvent.id)
        )
        return list(rows)


async def test_each_role_reads_its_own_scope(app: Starlette, people: People, placed: None) -> None:
    async with client_of(app, people.north_operator) as client:
        response = await client.get("/api/reports/daily", params=RANGE)
        assert response.status_code == 200, response.text
        own = response.json()
        # Naming another operator does not widen an operator's view.
        other = await client.get(
            "/api/reports/daily",
            params={**RANGE, "operator_id": str(people.south_operator.user.id)},
        )
    assert own["total"]["calls"] == 4
    assert own["total"]["talk_seconds_median"] == 60.0
    assert [line["name"] for line in own["operators"]] == ["Anna"]
    assert other.json()["total"]["calls"] == 0

    async with client_of(app, people.north_supervisor) as client:
        team = (await client.get("/api/reports/daily", params=RANGE)).json()
    assert team["total"]["calls"] == 6
    assert sorted(line["name"] for line in team["operators"]) == ["Anna", "Boris"]

    async with client_of(app, people.admin) as client:
        everyone = (await client.get("/api/reports/daily", params=RANGE)).json()
        south = (
            await client.get(
                "/api/reports/daily",
                params={**RANGE, "team_id": str(people.south_operator.user.team_id)},
            )
        ).json()
    assert everyone["total"] == {
        "calls": 8,
        "answered": 5,
        "answer_rate": 0.625,
        "failed": 2,
        "talk_seconds_total": 345.0,
        "talk_seconds_average": 69.0,
        "talk_seconds_median": 60.0,
        "ring_seconds_total": 83.0,
        "ring_seconds_average": round(83 / 7, 3),
    }
    assert [(day["day"], day["calls"]) for day in everyone["days"]] == [
        ("2026-03-02", 5),
        ("2026-03-03", 3),
    ]
    assert everyone["days"][1]["talk_seconds_median"] == 37.5
    assert len(everyone["hours"]) == 24
    assert everyone["hours"][9]["calls"] == 3
    outcomes = {line["outcome"]: line["calls"] for line in everyone["outcomes"]}
    assert outcomes == {"sale": 3, "not_interested": 2, "no_answer": 1, None: 2}
    causes = {line["cause"]: line["failures"] for line in everyone["failure_causes"]}
    assert causes == {"busy": 1, "invalid_number": 1}
    assert south["total"]["calls"] == 2


async def test_time_zone_and_invalid_queries(app: Starlette, people: People, placed: None) -> None:
    async with client_of(app, people.admin) as client:
        moscow = await client.get(
            "/api/reports/daily", params={**RANGE, "timezone": "Europe/Moscow"}
        )
        assert [day["calls"] for day in moscow.json()["days"]] == [4, 4]
        assert moscow.json()["timezone"] == "Europe/Moscow"
        refused = {
            "timezone": await client.get(
                "/api/reports/daily", params={**RANGE, "timezone": "Nowhere/Land"}
            ),
            "to": await client.get(
                "/api/reports/daily", params={"from": "2026-03-03", "to": "2026-03-02"}
            ),
            "from": await client.get("/api/reports/daily", params={"from": "03.02.2026"}),
        }
        default = await client.get("/api/reports/daily")
    for field, response in refused.items():
        assert response.status_code == 422, response.text
        assert response.json()["error"]["field"] == field
    assert default.status_code == 200
    assert len(default.json()["days"]) == 7


async def test_csv_and_xlsx_downloads_are_audited(
    app: Starlette,
    people: People,
    placed: None,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    async with client_of(app, people.north_supervisor) as client:
        response = await client.get(
            "/api/reports/daily.csv", params={**RANGE, "timezone": "Europe/Moscow"}
        )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert (
        response.headers["content-disposition"]
        == 'attachment; filename="calls-2026-03-02-2026-03-03.csv"'
    )
    assert response.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    days = {row["key"]: row["calls"] for row in rows if row["section"] == "day"}
    assert days == {"2026-03-02": "4", "2026-03-03": "2"}

    async with client_of(app, people.admin) as client:
        workbook_response = await client.get("/api/reports/daily.xlsx", params=RANGE)
    assert workbook_response.status_code == 200
    workbook = openpyxl.load_workbook(io.BytesIO(workbook_response.content))
    operators = {
        row[1]: row[2] for row in workbook["Operators"].iter_rows(min_row=2, values_only=True)
    }
    assert operators == {"Anna": 4, "Boris": 2, "Vera": 2}

    events = await exports(session_factory)
    assert [(event.actor_user_id, event.summary["format"]) for event in events] == [
        (people.north_supervisor.user.id, "csv"),
        (people.admin.user.id, "xlsx"),
    ]
    assert events[0].target == "report:daily"
    assert events[0].summary["timezone"] == "Europe/Moscow"
    assert events[0].summary["calls"] == 6


async def test_json_reads_are_not_audited(
    app: Starlette,
    people: People,
    placed: None,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    async with client_of(app, people.admin) as client:
        assert (await client.get("/api/reports/daily", params=RANGE)).status_code == 200
    assert await exports(session_factory) == []


@pytest.mark.browser
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_reports_page_draws_charts_and_tables(
    app: Starlette, people: People, placed: None, tmp_path: Path
) -> None:
    boss = people.north_supervisor
    async with serve(app) as base_url, chromium(tmp_path) as browser:
        page = await browser.new_page()
        errors = collect_console_errors(page)
        await sign_in(page, base_url, boss.login, boss.password)
        await page.click("a[href='/reports']")
        await page.fill("#report-from", "2026-03-02")
        await page.fill("#report-to", "2026-03-03")
        await page.fill("#report-timezone", "UTC")
        await page.click("#report-show")
        await expect(page.locator("[data-figure='calls']")).to_have_text("6")
        await expect(page.locator("[data-figure='talk_median']")).to_have_text("1:15")
        charts = page.locator("svg.report-chart")
        await expect(charts).to_have_count(2)
        await expect(charts.nth(0).locator("g.bar")).to_have_count(2)
        await expect(charts.nth(1).locator("g.bar")).to_have_count(24)
        day_heights = [
            float(await rect.get_attribute("height") or 0)
            for rect in await charts.nth(0).locator("rect.total").all()
        ]
        assert day_heights[0] > day_heights[1] > 0  # 5 calls, then 1
        operators = page.locator("table.report-table").first
        await expect(operators.locator("tbody tr")).to_have_count(2)
        await expect(operators).to_contain_text("Anna")
        csv_link = await page.locator("#report-csv").get_attribute("href")
        assert csv_link is not None
        assert "timezone=UTC" in csv_link
        await page.select_option("#report-operator", label="Boris")
        await page.click("#report-show")
        await expect(page.locator("[data-figure='calls']")).to_have_text("2")
    assert errors == []


async def test_dialer_serve_folds_a_finished_call_into_the_rollups_before_any_report(
    tmp_path: Path, database_url: str
) -> None:
    """``dialer serve`` runs the rollup refresher: a call's hour is folded in shortly after the
    call, with no report read meanwhile (reports would refresh it themselves otherwise)."""
    server = await start_server(
        tmp_path / "data",
        tmp_path / "serve.log",
        {"DIALER_DATABASE_URL": database_url, "DIALER_REPORT_REFRESH_SECONDS": "0.2"},
    )
    engine = create_engine(database_url)
    try:
        login, password = first_start_credentials(server.console())
        async with signed_in(server.base_url, login, password) as admin:
            call_id = await call_first_contact(admin)
            await wait_for_call(admin, call_id, states=("answered", "ended", "failed"))
            await admin.post(f"/api/calls/{call_id}/hangup")
            await wait_for_call(admin, call_id, states=("ended", "failed"))
            folded: tuple[int, int] = (-1, -1)
            for _ in range(600):  # a liveness wait, up to a minute on a loaded machine
                async with engine.connect() as connection:
                    dirty = await connection.scalar(
                        select(func.count()).select_from(CallVolumeDirtyHour)
                    )
                    counted = await connection.scalar(
                        select(func.coalesce(func.sum(ROLLUP_TABLE.c.calls), 0)).where(
                            ROLLUP_TABLE.c.grain == 1,
                            ROLLUP_TABLE.c.dimension == Dimension.TOTAL,
                            ROLLUP_TABLE.c.operator_key == ALL_OPERATORS,
                        )
                    )
                    await connection.commit()
                folded = (int(dirty or 0), int(counted or 0))
                if folded == (0, 1):
                    break
                await asyncio.sleep(0.1)
            assert folded == (0, 1)
            report = (await admin.get("/api/reports/daily", params={"timezone": "UTC"})).json()
            assert report["total"]["calls"] == 1
    finally:
        await engine.dispose()
        await server.stop()
