"""Importing contacts into SQLite and PostgreSQL: what lands in the database and in the report."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import openpyxl
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.actors import Actor
from dialer.contacts import (
    ContactInput,
    ContactQuery,
    PhoneInput,
    create_contact,
    search_contacts,
)
from dialer.errors import PermissionDenied
from dialer.importing.errors import InvalidMapping, NoHeaderRow
from dialer.importing.report import ImportReport, RowAction
from dialer.importing.service import DuplicatePolicy, ImportOptions, import_contacts
from dialer.models import AuditEvent, Contact
from tests.conftest import People

MOSCOW_OPTIONS = ImportOptions(timezone="Europe/Moscow")

MESSY_SHEET = (
    "Клиенты на 01.02.2026;;;;;\r\n"
    ";;;;;\r\n"
    "ФИО;Тел.;Компания;E-mail;Перезвонить;Комментарий\r\n"
    'Иванов Иван;8 (916) 123-45-67;"ООО ""Ромашка""";ivan@romashka.ru;'
    "25.12.2026 14:30;любит утро\r\n"
    'Петрова Анна;"+7 916 765 43 21, 8 (495) 111-22-33 доб. 7";ИП Петрова;;;\r\n'
    ";;;;;\r\n"
    ";нет;;;;\r\n"
    "---;;;;;мусор\r\n"
    "Иванов И.;89161234567;;;;второй звонок\r\n"
    ";;;;;\r\n"
    ";;;;;\r\n"
)


Sessions = async_sessionmaker[AsyncSession]


async def contacts_seen_by(sessions: Sessions, actor: Actor) -> list[Contact]:
    async with sessions() as session:
        page = await search_contacts(session, actor, ContactQuery(limit=500))
        return sorted(page.items, key=lambda contact: contact.id)


async def run_import(
    sessions: Sessions, actor: Actor | None, source: bytes, options: ImportOptions
) -> ImportReport:
    async with sessions() as session:
        report = await import_contacts(session, actor, source, options)
        await session.commit()
    return report


def phones_of(contact: Contact) -> list[str]:
    return [phone.e164 for phone in contact.phones]


async def test_messy_russian_csv_is_imported_and_every_row_reported(
    session_factory: Sessions, people: People
) -> None:
    anna = people.north_operator.actor
    report = await run_import(session_factory, anna, MESSY_SHEET.encode("cp1251"), MOSCOW_OPTIONS)

    assert report.header_row == 3
    assert report.file_format == "CSV, cp1251, separator ';'"
    assert [(row.row_number, row.action) for row in report.rows] == [
        (4, RowAction.CREATED),
        (5, RowAction.CREATED),
        (6, RowAction.SKIPPED),
        (7, RowAction.SKIPPED),
        (8, RowAction.SKIPPED),
        (9, RowAction.MERGED),
    ]
    assert report.outcome_for_row(6).reason == "empty row"
    assert report.outcome_for_row(7).reason == "no name and no valid phone"
    assert report.outcome_for_row(8).reason == "no name and no valid phone"
    ivanov_id = report.outcome_for_row(4).contact_id
    assert report.outcome_for_row(9).contact_id == ivanov_id
    assert report.outcome_for_row(9).reason.startswith("merged into row 4")

    ivanov, petrova = await contacts_seen_by(session_factory, anna)
    assert ivanov.id == ivanov_id
    assert ivanov.name == "Иванов Иван"
    assert ivanov.company == 'ООО "Ромашка"'
    assert ivanov.email == "ivan@romashka.ru"
    assert ivanov.follow_up_at == datetime(2026, 12, 25, 11, 30, tzinfo=UTC)
    assert ivanov.notes == "любит утро\nвторой звонок"
    assert ivanov.owner_id == people.north_operator.user.id
    assert phones_of(ivanov) == ["+79161234567"]
    assert petrova.name == "Петрова Анна"
    assert [(phone.e164, phone.kind, phone.is_primary) for phone in petrova.phones] == [
        ("+79167654321", "mobile", True),
        ("+74951112233", "work", False),
    ]
    assert petrova.phones[1].raw == "8 (495) 111-22-33 доб. 7"


async def test_imported_contacts_are_found_by_search(
    session_factory: Sessions, people: People
) -> None:
    anna = people.north_operator.actor
    await run_import(session_factory, anna, MESSY_SHEET.encode("utf-8-sig"), MOSCOW_OPTIONS)
    async with session_factory() as session:
        by_company = await search_contacts(session, anna, ContactQuery(text="ромашк"))
        by_phone = await search_contacts(session, anna, ContactQuery(text="8 (495) 111"))
        by_name = await search_contacts(session, anna, ContactQuery(text="петрова"))
    assert [contact.name for contact in by_company.items] == ["Иванов Иван"]
    assert [contact.name for contact in by_phone.items] == ["Петрова Анна"]
    assert [contact.name for contact in by_name.items] == ["Петрова Анна"]


async def test_the_import_is_one_audit_event_with_the_counts(
    session_factory: Sessions, people: People
) -> None:
    options = ImportOptions(source_name="clients.csv")
    await run_import(session_factory, people.north_operator.actor, MESSY_SHEET.encode(), options)
    async with session_factory() as session:
        events = (
            await session.scalars(select(AuditEvent).where(AuditEvent.action == "contact.import"))
        ).all()
    assert len(events) == 1
    event = events[0]
    assert event.actor_user_id == people.north_operator.user.id
    assert event.target == "file:clients.csv"
    assert event.summary["rows"] == 6
    assert event.summary["created"] == 2
    assert event.summary["merged"] == 1
    assert event.summary["skipped"] == 3
    assert event.summary["skip_reasons"] == {"no name and no valid phone": 2, "empty row": 1}


async def test_duplicates_in_the_file_can_be_skipped(
    session_factory: Sessions, people: People
) -> None:
    anna = people.north_operator.actor
    options = ImportOptions(on_duplicate=DuplicatePolicy.SKIP)
    report = await run_import(session_factory, anna, MESSY_SHEET.encode(), options)
    skipped = report.outcome_for_row(9)
    assert skipped.action is RowAction.SKIPPED
    assert skipped.reason == "duplicate of row 4 (phone +79161234567)"
    ivanov = (await contacts_seen_by(session_factory, anna))[0]
    assert ivanov.notes == "любит утро"


async def test_merge_into_an_existing_contact_fills_gaps_and_adds_phones(
    session_factory: Sessions, people: People
) -> None:
    anna = people.north_operator.actor
    async with session_factory() as session:
        existing = await create_contact(
            session,
            anna,
            ContactInput(
                name="Иван Иванов",
                phones=[PhoneInput("+79161234567")],
                notes="старая заметка",
                tags=["холодный"],
            ),
        )
        await session.commit()
    sheet = (
        "Имя;Телефон;Компания;Должность;Комментарий;Теги\n"
        "Иванов И.И.;8 916 123-45-67, 8 (495) 000-00-01;Ромашка;директор;новая заметка;vip\n"
    )
    report = await run_import(session_factory, anna, sheet.encode(), ImportOptions())
    outcome = report.outcome_for_row(2)
    assert outcome.action is RowAction.MERGED
    assert outcome.contact_id == existing.id
    assert outcome.reason.startswith(f"merged into contact {existing.id} (phone +79161234567)")

    (merged,) = await contacts_seen_by(session_factory, anna)
    assert merged.name == "Иван Иванов"  # filled fields are never overwritten
    assert merged.company == "Ромашка"
    assert merged.position == "директор"
    assert merged.notes == "старая заметка\nновая заметка"
    assert merged.tags == ["холодный", "vip"]
    assert phones_of(merged) == ["+79161234567", "+74950000001"]
    async with session_factory() as session:
        found = await search_contacts(session, anna, ContactQuery(text="ромашка"))
    assert [contact.id for contact in found.items] == [existing.id]


async def test_skip_leaves_an_existing_contact_alone(
    session_factory: Sessions, people: People
) -> None:
    anna = people.north_operator.actor
    async with session_factory() as session:
        existing = await create_contact(
            session, anna, ContactInput(name="Иван", phones=[PhoneInput("+79161234567")])
        )
        await session.commit()
    sheet = "Имя,Телефон,Компания\nИван,+7 916 123 45 67,Ромашка\nОльга,+7 916 000 00 00,\n"
    options = ImportOptions(on_duplicate=DuplicatePolicy.SKIP)
    report = await run_import(session_factory, anna, sheet.encode(), options)
    assert report.outcome_for_row(2).action is RowAction.SKIPPED
    assert report.outcome_for_row(2).reason == (
        f"duplicate of contact {existing.id} (phone +79161234567)"
    )
    assert report.outcome_for_row(3).action is RowAction.CREATED
    contacts = await contacts_seen_by(session_factory, anna)
    assert [(contact.name, contact.company) for contact in contacts] == [
        ("Иван", ""),
        ("Ольга", ""),
    ]


async def test_importing_the_same_file_twice_creates_nothing_new(
    session_factory: Sessions, people: People
) -> None:
    anna = people.north_operator.actor
    await run_import(session_factory, anna, MESSY_SHEET.encode(), MOSCOW_OPTIONS)
    before = await contacts_seen_by(session_factory, anna)
    again = await run_import(session_factory, anna, MESSY_SHEET.encode(), MOSCOW_OPTIONS)
    assert again.created == 0
    assert again.merged == 3
    assert again.outcome_for_row(4).reason.endswith(": nothing new")
    after = await contacts_seen_by(session_factory, anna)
    assert [(c.id, c.notes, phones_of(c)) for c in after] == [
        (c.id, c.notes, phones_of(c)) for c in before
    ]


async def test_an_operator_cannot_merge_into_a_colleagues_contact(
    session_factory: Sessions, people: People
) -> None:
    async with session_factory() as session:
        boris_contact = await create_contact(
            session,
            people.north_operator_2.actor,
            ContactInput(name="Клиент Бориса", phones=[PhoneInput("+79161234567")]),
        )
        await session.commit()
    sheet = "Имя;Телефон;Компания\nИван;89161234567;Ромашка\n"
    report = await run_import(
        session_factory, people.north_operator.actor, sheet.encode(), ImportOptions()
    )
    outcome = report.outcome_for_row(2)
    assert outcome.action is RowAction.SKIPPED
    assert outcome.reason == "phone +79161234567 belongs to a contact of another user"
    assert await contacts_seen_by(session_factory, people.north_operator.actor) == []

    # Their supervisor sees the team's contacts and merges.
    report = await run_import(
        session_factory, people.north_supervisor.actor, sheet.encode(), ImportOptions()
    )
    assert report.outcome_for_row(2).action is RowAction.MERGED
    (merged,) = await contacts_seen_by(session_factory, people.north_operator_2.actor)
    assert merged.id == boris_contact.id
    assert merged.company == "Ромашка"


async def test_contacts_can_be_given_to_a_team_member(
    session_factory: Sessions, people: People
) -> None:
    supervisor = people.north_supervisor.actor
    anna_id = people.north_operator.user.id
    sheet = "Имя;Телефон\nИван;89161234567\n".encode()
    await run_import(session_factory, supervisor, sheet, ImportOptions(owner_id=anna_id))
    (contact,) = await contacts_seen_by(session_factory, people.north_operator.actor)
    assert contact.owner_id == anna_id

    async with session_factory() as session:
        with pytest.raises(PermissionDenied):
            await import_contacts(
                session, supervisor, sheet, ImportOptions(owner_id=people.south_operator.user.id)
            )
        with pytest.raises(PermissionDenied):
            await import_contacts(
                session,
                people.north_operator.actor,
                sheet,
                ImportOptions(owner_id=people.north_operator_2.user.id),
            )


async def test_xlsx_with_excel_dates_and_numeric_phones(
    session_factory: Sessions, people: People
) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["Name", "Mobile", "Work phone", "Follow-up", "Status", "Tags", "Region"])
    sheet.append(["John Smith", 79161234567, "8 495 111 22 33", datetime(2026, 12, 25, 14, 30)])
    sheet.append(["Jane Doe", "+7 916 765 43 21", None, 45321.5, "Call back", "vip, opt", "North"])
    sheet.append(["", None, None, None, None, None, "orphan"])
    buffer = io.BytesIO()
    workbook.save(buffer)

    report = await run_import(
        session_factory, people.admin.actor, buffer.getvalue(), ImportOptions()
    )
    assert report.file_format.startswith("XLSX")
    assert [row.action for row in report.rows] == [
        RowAction.CREATED,
        RowAction.CREATED,
        RowAction.SKIPPED,
    ]
    john, jane = await contacts_seen_by(session_factory, people.admin.actor)
    assert john.follow_up_at == datetime(2026, 12, 25, 14, 30, tzinfo=UTC)
    assert [(phone.e164, phone.kind) for phone in john.phones] == [
        ("+79161234567", "mobile"),
        ("+74951112233", "work"),
    ]
    assert john.timezone is None  # a mobile range spans the country
    assert jane.follow_up_at == datetime(2024, 1, 30, 12, 0, tzinfo=UTC)
    assert jane.status == "callback"
    assert jane.tags == ["vip", "opt"]
    assert jane.custom_fields == {"Region": "North"}


async def test_rows_and_ids_stay_matched_across_small_batches(
    session_factory: Sessions, people: People
) -> None:
    lines = ["Имя;Телефон"]
    for index in range(7):
        lines.append(f"Клиент {index};+7916000000{index}")
    lines.append("Клиент 0 повтор;+79160000000")  # duplicates a row of an earlier batch
    lines.append("Клиент 5 повтор;+79160000005, +79160000009")
    sheet = "\n".join(lines).encode()
    report = await run_import(
        session_factory, people.admin.actor, sheet, ImportOptions(batch_size=2)
    )
    contacts = {c.id: c for c in await contacts_seen_by(session_factory, people.admin.actor)}
    assert len(contacts) == 7
    for outcome in report.rows[:7]:
        assert outcome.action is RowAction.CREATED
        assert outcome.contact_id is not None
        assert contacts[outcome.contact_id].name == outcome.name
    assert report.outcome_for_row(9).contact_id == report.outcome_for_row(2).contact_id
    fifth = report.outcome_for_row(7).contact_id
    assert fifth is not None
    assert report.outcome_for_row(10).contact_id == fifth
    assert phones_of(contacts[fifth]) == ["+79160000005", "+79160000009"]


async def test_a_mapping_override_names_what_detection_missed(
    session_factory: Sessions, people: People
) -> None:
    sheet = "Абонент;Контактный номер;Откуда\nИван;89161234567;выставка\n".encode()
    admin = people.admin.actor
    async with session_factory() as session:
        with pytest.raises(InvalidMapping, match="no column holds a name"):
            await import_contacts(
                session,
                admin,
                sheet,
                ImportOptions(mapping_overrides={"Контактный номер": "ignore"}),
            )
    overrides = {"Абонент": "name", "Откуда": "custom:Источник"}
    report = await run_import(
        session_factory, admin, sheet, ImportOptions(mapping_overrides=overrides)
    )
    assert report.mapping == (
        "A 'Абонент' -> name",
        "B 'Контактный номер' -> phone",
        "C 'Откуда' -> custom field 'Источник'",
    )
    (contact,) = await contacts_seen_by(session_factory, admin)
    assert contact.name == "Иван"
    assert contact.custom_fields == {"Источник": "выставка"}


async def test_an_empty_file_is_refused(session_factory: Sessions, people: People) -> None:
    async with session_factory() as session:
        with pytest.raises(NoHeaderRow):
            await import_contacts(session, people.admin.actor, b"\r\n;;\r\n", ImportOptions())


async def test_the_system_actor_imports_without_an_owner(
    session_factory: Sessions, people: People
) -> None:
    report = await run_import(
        session_factory, None, b"Name,Phone\nIvan,+79161234567\n", ImportOptions()
    )
    (contact,) = await contacts_seen_by(session_factory, people.admin.actor)
    assert contact.id == report.rows[0].contact_id
    assert contact.owner_id is None
    assert contact.created_by_id is None


async def test_a_row_the_csv_reader_cannot_take_is_reported_and_the_rest_imported(
    session_factory: Sessions, people: People
) -> None:
    huge = "x" * 200_000
    sheet = f'Name,Phone\nAnna,+79160000001\nBoris,"{huge}"\nVera,+79160000003\n'.encode()
    report = await run_import(session_factory, people.admin.actor, sheet, ImportOptions())
    assert [(row.row_number, row.action) for row in report.rows] == [
        (2, RowAction.CREATED),
        (3, RowAction.SKIPPED),
        (4, RowAction.CREATED),
    ]
    assert report.outcome_for_row(3).reason.startswith("unreadable CSV row")


async def test_a_sheet_that_starts_far_down_is_found(
    session_factory: Sessions, people: People
) -> None:
    sheet = ("\n" * 60 + "Name,Phone\nIvan,+79161234567\n").encode()
    report = await run_import(session_factory, people.admin.actor, sheet, ImportOptions())
    assert report.header_row == 61
    assert [(row.row_number, row.action) for row in report.rows] == [(62, RowAction.CREATED)]
