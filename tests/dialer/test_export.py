"""Exporting contacts and calls to CSV and XLSX on SQLite and PostgreSQL, and back again."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.actors import Actor
from dialer.calls import create_call, record_call_transition, set_call_outcome
from dialer.contacts import (
    ContactInput,
    ContactQuery,
    PhoneInput,
    create_contact,
    purge_contact,
    search_contacts,
)
from dialer.exporting import (
    CALL_COLUMNS,
    CONTACT_COLUMNS,
    CallExportFilter,
    ContactExportFilter,
    ExportFormat,
    ExportOptions,
    export_calls,
    export_contacts,
)
from dialer.importing.report import RowAction
from dialer.importing.service import ImportOptions, import_contacts
from dialer.models import AuditEvent, CallState, Contact
from tests.conftest import People

Sessions = async_sessionmaker[AsyncSession]


def read_csv(path: Path, delimiter: str = ",") -> list[dict[str, str]]:
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf"), "Excel needs the BOM to read UTF-8"
    return list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig")), delimiter=delimiter))


def read_xlsx(path: Path) -> list[dict[str, Any]]:
    workbook = openpyxl.load_workbook(path, read_only=True)
    rows = list(workbook.active.iter_rows(values_only=True))
    header = [str(title) for title in rows[0]]
    return [dict(zip(header, row, strict=False)) for row in rows[1:]]


async def make_contact(sessions: Sessions, actor: Actor, data: ContactInput) -> Contact:
    async with sessions() as session:
        contact = await create_contact(session, actor, data)
        await session.commit()
    return contact


async def all_contacts(sessions: Sessions, actor: Actor) -> list[Contact]:
    async with sessions() as session:
        page = await search_contacts(session, actor, ContactQuery(limit=500))
        return sorted(page.items, key=lambda contact: contact.id)


async def test_contacts_csv_with_semicolons_and_cyrillic_for_excel(
    session_factory: Sessions, people: People, tmp_path: Path
) -> None:
    anna = people.north_operator.actor
    await make_contact(
        session_factory,
        anna,
        ContactInput(
            name="Петрова Анна",
            company="ИП Петрова",
            phones=[PhoneInput("+79167654321"), PhoneInput("8 495 111-22-33", kind="work")],
            tags=["vip", "опт"],
            notes="первая строка\nвторая; строка",
            custom_fields={"Источник": "выставка"},
        ),
    )
    await make_contact(
        session_factory,
        people.north_operator_2.actor,
        ContactInput(name="Клиент Бориса", phones=[PhoneInput("+79160000001")]),
    )
    destination = tmp_path / "contacts.csv"
    async with session_factory() as session:
        result = await export_contacts(session, anna, destination, ExportOptions(delimiter=";"))
        await session.commit()
    assert result.rows == 1  # Boris's contact is not Anna's to see

    (line,) = read_csv(destination, ";")
    assert list(line) == [*CONTACT_COLUMNS, "Источник"]
    assert line["Name"] == "Петрова Анна"
    assert line["Mobile phone"] == "+79167654321"
    assert line["Work phone"] == "+74951112233"
    assert line["Tags"] == "vip, опт"
    assert line["Notes"] == "первая строка\nвторая; строка"
    assert line["Status"] == "New"
    assert line["Owner"] == "anna"
    assert line["Источник"] == "выставка"
    assert line["Timezone"] == ""  # a mobile number spans the country's zones

    async with session_factory() as session:
        event = (
            await session.scalars(select(AuditEvent).where(AuditEvent.action == "contact.export"))
        ).one()
    assert event.actor_user_id == people.north_operator.user.id
    assert event.summary == {"rows": 1, "format": "csv", "file": "contacts.csv", "filters": {}}


async def test_contacts_xlsx_has_date_cells_and_never_formulas(
    session_factory: Sessions, people: People, tmp_path: Path
) -> None:
    admin = people.admin.actor
    follow_up = datetime(2026, 12, 25, 11, 30, tzinfo=UTC)
    await make_contact(
        session_factory,
        admin,
        ContactInput(
            name='=HYPERLINK("http://evil")',
            phones=[PhoneInput("+79161234567")],
            follow_up_at=follow_up,
            status="callback",
        ),
    )
    destination = tmp_path / "contacts.xlsx"
    async with session_factory() as session:
        options = ExportOptions(format=ExportFormat.XLSX, timezone="Europe/Moscow")
        await export_contacts(session, admin, destination, options)
    (line,) = read_xlsx(destination)
    assert line["Name"] == '=HYPERLINK("http://evil")'
    workbook = openpyxl.load_workbook(destination)
    assert workbook.active["B2"].data_type == "s"
    assert line["Follow-up"] == datetime(2026, 12, 25, 14, 30)  # Moscow local time
    assert line["Status"] == "Call back"


async def test_formula_like_text_is_defused_in_csv(
    session_factory: Sessions, people: People, tmp_path: Path
) -> None:
    admin = people.admin.actor
    await make_contact(
        session_factory,
        admin,
        ContactInput(name="@SUM(1+1)*cmd", phones=[PhoneInput("+79161234567")], notes="-5%"),
    )
    destination = tmp_path / "contacts.csv"
    async with session_factory() as session:
        await export_contacts(session, admin, destination)
    (line,) = read_csv(destination)
    assert line["Name"] == "'@SUM(1+1)*cmd"
    assert line["Notes"] == "'-5%"
    assert line["Mobile phone"] == "+79161234567"  # a plain number stays as it is


async def test_contact_export_filters_by_status(
    session_factory: Sessions, people: People, tmp_path: Path
) -> None:
    admin = people.admin.actor
    await make_contact(
        session_factory, admin, ContactInput(name="Новый", phones=[PhoneInput("+79160000001")])
    )
    await make_contact(
        session_factory,
        admin,
        ContactInput(name="Продажа", phones=[PhoneInput("+79160000002")], status="sale"),
    )
    destination = tmp_path / "sales.csv"
    async with session_factory() as session:
        result = await export_contacts(
            session, admin, destination, filters=ContactExportFilter(status="sale")
        )
        await session.commit()
    assert result.rows == 1
    assert [line["Name"] for line in read_csv(destination)] == ["Продажа"]
    async with session_factory() as session:
        event = (
            await session.scalars(select(AuditEvent).where(AuditEvent.action == "contact.export"))
        ).one()
    assert event.summary["filters"] == {"status": "sale"}


def contact_facts(contact: Contact) -> tuple[object, ...]:
    return (
        contact.name,
        contact.company,
        contact.position,
        contact.email,
        contact.timezone,
        contact.status,
        contact.follow_up_at,
        contact.follow_up_note,
        tuple(contact.tags),
        contact.notes,
        tuple(sorted(contact.custom_fields.items())),
        tuple(sorted((phone.e164, phone.kind) for phone in contact.phones)),
    )


ROUND_TRIP_CONTACTS = (
    ContactInput(
        name="Иванов Иван Иванович",
        company='ООО "Ромашка"',
        position="директор",
        phones=[
            PhoneInput("+79161234567"),
            PhoneInput("+74951112233", kind="work"),
            PhoneInput("+74957654321", kind="home"),
        ],
        email="ivan@romashka.ru",
        status="callback",
        follow_up_at=datetime(2026, 12, 25, 11, 30, tzinfo=UTC),
        follow_up_note="про договор",
        tags=["vip", "опт"],
        notes='многострочная\nзаметка; с разделителями, "кавычками"',
        custom_fields={"Источник": "выставка", "ИНН": "7701234567"},
    ),
    ContactInput(
        name="John Smith",
        phones=[PhoneInput("+16502530000")],
        timezone="America/Los_Angeles",
        status="not_interested",
        notes="=1+1 is not a formula",
    ),
    ContactInput(company="Без имени", phones=[PhoneInput("+74951230000")]),
    ContactInput(name="Без телефона", custom_fields={"Город": "Тверь"}),
)


@pytest.mark.parametrize("export_format", [ExportFormat.CSV, ExportFormat.XLSX])
async def test_export_then_import_into_an_empty_database_gives_the_same_contacts(
    session_factory: Sessions, people: People, tmp_path: Path, export_format: ExportFormat
) -> None:
    admin = people.admin.actor
    for data in ROUND_TRIP_CONTACTS:
        await make_contact(session_factory, admin, data)
    stored = await all_contacts(session_factory, admin)
    originals = sorted(contact_facts(contact) for contact in stored)
    destination = tmp_path / f"contacts.{export_format.value}"
    options = ExportOptions(format=export_format, delimiter=";", timezone="Asia/Yekaterinburg")
    async with session_factory() as session:
        await export_contacts(session, admin, destination, options)
        for contact in stored:
            await purge_contact(session, admin, contact.id)
        await session.commit()
    assert await all_contacts(session_factory, admin) == []

    async with session_factory() as session:
        report = await import_contacts(
            session,
            admin,
            destination,
            ImportOptions(region="US", timezone="Asia/Yekaterinburg"),
        )
        await session.commit()
    assert [row.action for row in report.rows] == [RowAction.CREATED] * len(ROUND_TRIP_CONTACTS)
    assert all(not row.warnings for row in report.rows), [row.warnings for row in report.rows]
    restored = sorted(contact_facts(c) for c in await all_contacts(session_factory, admin))
    assert restored == originals


async def test_calls_export_shows_each_role_its_calls(
    session_factory: Sessions, people: People, tmp_path: Path
) -> None:
    anna = people.north_operator.actor
    boris = people.north_operator_2.actor
    contact = await make_contact(
        session_factory,
        anna,
        ContactInput(name="Иванов Иван", phones=[PhoneInput("+79161234567")]),
    )
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    async with session_factory() as session:
        call = await create_call(session, anna, "8 916 123-45-67", now=start)
        await record_call_transition(session, call.id, CallState.DIALING, start)
        await record_call_transition(
            session, call.id, CallState.ANSWERED, start + timedelta(seconds=8)
        )
        await record_call_transition(
            session, call.id, CallState.ENDED, start + timedelta(seconds=68), hangup_by="remote"
        )
        await set_call_outcome(
            session, anna, call.id, "sale", "купил", now=start + timedelta(seconds=90)
        )
        await create_call(session, boris, "+79160000009", now=start + timedelta(hours=1))
        await session.commit()

    async def export_as(actor: Actor, name: str, **filters: Any) -> list[dict[str, str]]:
        destination = tmp_path / name
        async with session_factory() as session:
            await export_calls(session, actor, destination, filters=CallExportFilter(**filters))
            await session.commit()
        return read_csv(destination)

    (anna_line,) = await export_as(anna, "anna.csv")
    assert list(anna_line) == list(CALL_COLUMNS)
    assert anna_line["Contact ID"] == str(contact.id)
    assert anna_line["Contact"] == "Иванов Иван"
    assert anna_line["Phone"] == "+79161234567"
    assert anna_line["Operator"] == "anna"
    assert anna_line["Started"] == "2026-03-02 09:00"
    assert anna_line["State"] == "ended"
    assert anna_line["Talk seconds"] == "60.0"
    assert anna_line["Outcome"] == "Sale"
    assert anna_line["Outcome note"] == "купил"
    assert anna_line["Hangup by"] == "remote"

    team = await export_as(people.north_supervisor.actor, "team.csv")
    assert [line["Operator"] for line in team] == ["anna", "boris"]
    assert await export_as(people.south_supervisor.actor, "south.csv") == []
    only_boris = await export_as(
        people.admin.actor, "boris.csv", operator_id=people.north_operator_2.user.id
    )
    assert [line["Phone"] for line in only_boris] == ["+79160000009"]

    async with session_factory() as session:
        events = (
            await session.scalars(select(AuditEvent).where(AuditEvent.action == "call.export"))
        ).all()
    assert [event.summary["rows"] for event in events] == [1, 2, 0, 1]


async def test_an_export_with_nothing_to_show_still_has_the_titles(
    session_factory: Sessions, people: People, tmp_path: Path
) -> None:
    destination = tmp_path / "empty.xlsx"
    async with session_factory() as session:
        result = await export_contacts(
            session, people.admin.actor, destination, ExportOptions(format=ExportFormat.XLSX)
        )
    assert result.rows == 0
    workbook = openpyxl.load_workbook(destination, read_only=True)
    assert list(workbook.active.iter_rows(values_only=True)) == [CONTACT_COLUMNS]
