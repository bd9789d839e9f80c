"""How an import writes its new rows (COPY on PostgreSQL, multi-row INSERTs on SQLite): stored
as the rest of the application stores them, with ids that agree with the report."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.contacts import ContactInput, ContactQuery, PhoneInput, create_contact, search_contacts
from dialer.importing.report import RowAction
from dialer.importing.service import ImportOptions, import_contacts
from tests.conftest import People

Sessions = async_sessionmaker[AsyncSession]

SHEET = (
    "ФИО;Телефон;Компания;Теги;Перезвонить;Статус;Любимый цвет\r\n"
    "Орлова Мария;8 (916) 555-01-01;ООО «Север»;vip, выставка;25.12.2026 14:30;перезвонить;"
    "зелёный\r\n"
    "Ильин Павел;+7 916 555 01 02;АО Гранит;;;;\r\n"
).encode("cp1251")

STORED_COLUMNS = (
    "name, company, tags, custom_fields, follow_up_at, status, search_text, timezone,"
    " shared, owner_id"
)


def as_text(dialect: str, columns: str) -> str:
    """The columns as the database holds them, as text on both databases."""
    if dialect == "sqlite":
        return columns
    return ", ".join(f"CAST({column.strip()} AS TEXT)" for column in columns.split(","))


async def stored_row(session: AsyncSession, contact_id: int) -> tuple[object, ...]:
    dialect = session.get_bind().dialect.name
    statement = text(f"SELECT {as_text(dialect, STORED_COLUMNS)} FROM contacts WHERE id = :id")
    row = (await session.execute(statement, {"id": contact_id})).one()
    return tuple(row)


async def test_imported_rows_are_stored_as_the_application_stores_a_contact(
    session_factory: Sessions, people: People
) -> None:
    actor = people.admin.actor
    async with session_factory() as session:
        report = await import_contacts(session, actor, SHEET, ImportOptions(timezone="UTC"))
        await session.commit()
    first = report.outcome_for_row(2)
    assert first.action is RowAction.CREATED
    assert first.contact_id is not None

    async with session_factory() as session:
        # The same contact through the contacts use case (ORM INSERT), for comparison.
        same = await create_contact(
            session,
            actor,
            ContactInput(
                name="Орлова Мария",
                company="ООО «Север»",
                phones=[PhoneInput("+7 916 555 01 99")],
                tags=["vip", "выставка"],
                custom_fields={"Любимый цвет": "зелёный"},
                follow_up_at=datetime(2026, 12, 25, 14, 30, tzinfo=UTC),
                status="callback",
            ),
        )
        await session.commit()
        imported = await stored_row(session, first.contact_id)
        created = await stored_row(session, same.id)
    assert imported == created


async def test_ids_follow_the_rows_and_later_contacts_get_new_ones(
    session_factory: Sessions, people: People
) -> None:
    actor = people.admin.actor
    rows = ["Имя;Телефон"] + [f"Клиент {index};+79165550{index:03d}" for index in range(25)]
    async with session_factory() as session:
        report = await import_contacts(
            session, actor, "\n".join(rows).encode(), ImportOptions(batch_size=10)
        )
        await session.commit()
    assert all(outcome.action is RowAction.CREATED for outcome in report.rows)
    ids = [outcome.contact_id or 0 for outcome in report.rows]
    assert all(ids)
    assert ids == sorted(ids)
    assert len(set(ids)) == 25

    async with session_factory() as session:
        later = await create_contact(
            session, actor, ContactInput(name="Позже", phones=[PhoneInput("+79165551000")])
        )
        await session.commit()
        found = await search_contacts(session, actor, ContactQuery(text="клиент 17"))
        by_phone = await search_contacts(session, actor, ContactQuery(text="8 916 555 00 17"))
    assert later.id not in ids
    assert [contact.id for contact in found.items] == [ids[17]]
    assert [contact.id for contact in by_phone.items] == [ids[17]]


async def test_the_import_leaves_the_sessions_settings_as_they_were(
    session_factory: Sessions, people: People
) -> None:
    async with session_factory() as session:
        if session.get_bind().dialect.name == "postgresql":
            setting = text("SELECT current_setting('plan_cache_mode')")
        else:
            setting = text("PRAGMA cache_size")
        before = await session.scalar(setting)
        await import_contacts(session, people.admin.actor, SHEET, ImportOptions())
        assert await session.scalar(setting) == before
        await session.commit()


async def test_an_import_the_caller_rolls_back_leaves_nothing(
    session_factory: Sessions, people: People
) -> None:
    async with session_factory() as session:
        report = await import_contacts(session, people.admin.actor, SHEET, ImportOptions())
        assert report.created == 2
        await session.rollback()
    async with session_factory() as session:
        found = await search_contacts(session, people.admin.actor, ContactQuery(limit=10))
        phones = await session.scalar(text("SELECT count(*) FROM contact_phones"))
    assert found.items == []
    assert phones == 0
