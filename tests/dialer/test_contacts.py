"""Contacts: create and change, search by text and phone, visibility per role, delete, purge."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dialer.audit import verify_audit_chain
from dialer.contacts import (
    ContactInput,
    ContactQuery,
    PhoneInput,
    create_contact,
    find_contacts_by_phone,
    get_contact,
    purge_contact,
    restore_contact,
    search_contacts,
    soft_delete_contact,
    update_contact,
)
from dialer.errors import NotFound, PermissionDenied, ValidationFailed
from dialer.models import AuditEvent, Contact, ContactPhone
from dialer.statuses import list_statuses
from tests.conftest import People, Person

DUE = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)


async def _contact(
    session: AsyncSession, owner: Person, name: str, phone: str, **fields: object
) -> Contact:
    data = ContactInput(name=name, phones=[PhoneInput(phone)], **fields)  # type: ignore[arg-type]
    contact = await create_contact(session, owner.actor, data)
    await session.commit()
    return contact


async def _ids(session: AsyncSession, person: Person, query: ContactQuery) -> set[int]:
    page = await search_contacts(session, person.actor, query)
    return {contact.id for contact in page.items}


async def test_create_keeps_everything_and_derives_the_time_zone(
    session: AsyncSession, people: People
) -> None:
    contact = await create_contact(
        session,
        people.north_operator.actor,
        ContactInput(
            name="Иван Петров",
            company="ООО Ромашка",
            position="Закупщик",
            phones=[
                PhoneInput("8 (495) 123-45-67", "work"),
                PhoneInput("8 916 765-43-21", primary=True),
            ],
            email="ivan@romashka.example",
            tags=["опт", "опт", " vip "],
            notes="Звонить после обеда",
            custom_fields={"inn": "7701234567", "employees": 40},
            follow_up_at=DUE,
            follow_up_note="прислать КП",
        ),
    )
    await session.commit()
    session.expunge_all()
    loaded = await get_contact(session, people.north_operator.actor, contact.id)
    assert loaded.status == "new"
    assert loaded.owner_id == people.north_operator.user.id
    assert loaded.created_by_id == people.north_operator.user.id
    assert [(p.e164, p.raw, p.kind, p.is_primary) for p in loaded.phones] == [
        ("+74951234567", "8 (495) 123-45-67", "work", False),
        ("+79167654321", "8 916 765-43-21", "mobile", True),
    ]
    assert loaded.primary_phone is not None
    assert loaded.primary_phone.e164 == "+79167654321"
    # The primary (mobile) number has no single zone; nothing is guessed.
    assert loaded.timezone is None
    assert loaded.tags == ["опт", "vip"]
    assert loaded.custom_fields == {"inn": "7701234567", "employees": 40}
    assert loaded.follow_up_at == DUE
    landline = await create_contact(
        session,
        people.north_operator.actor,
        ContactInput(name="Офис", phones=[PhoneInput("8 383 212-34-56")]),
    )
    assert landline.timezone == "Asia/Novosibirsk"


@pytest.mark.parametrize(
    ("fields", "bad_field"),
    [
        ({"phones": [PhoneInput("not a phone")]}, "phone"),
        ({"email": "nobody"}, "email"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"status": "no_such_status"}, "status"),
        ({"phones": [PhoneInput("+79161234567"), PhoneInput("8 916 123 45 67")]}, "phones"),
    ],
)
async def test_invalid_input_names_the_field(
    session: AsyncSession, people: People, fields: dict[str, object], bad_field: str
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        await create_contact(
            session,
            people.north_operator.actor,
            ContactInput(name="X", **fields),  # type: ignore[arg-type]
        )
    assert caught.value.field == bad_field


async def test_update_changes_fields_phones_and_search(
    session: AsyncSession, people: People
) -> None:
    anna = people.north_operator
    contact = await _contact(session, anna, "Old Name", "+79161112233")
    await update_contact(
        session,
        anna.actor,
        contact.id,
        {
            "name": "Новое Имя",
            "status": "callback",
            "phones": [{"raw": "8 (916) 999-88-77", "kind": "home"}],
            "shared": True,
        },
    )
    await session.commit()
    session.expunge_all()
    loaded = await get_contact(session, anna.actor, contact.id)
    assert loaded.name == "Новое Имя"
    assert loaded.status == "callback"
    assert loaded.shared is True
    assert [(p.e164, p.kind) for p in loaded.phones] == [("+79169998877", "home")]
    assert await _ids(session, anna, ContactQuery(text="новое")) == {contact.id}
    assert await _ids(session, anna, ContactQuery(text="old name")) == set()
    assert await _ids(session, anna, ContactQuery(text="8916999")) == {contact.id}
    assert await _ids(session, anna, ContactQuery(text="+7916111")) == set()
    assert await session.scalar(select(func.count()).select_from(ContactPhone)) == 1
    with pytest.raises(ValidationFailed):
        await update_contact(session, anna.actor, contact.id, {"colour": "red"})
    summaries = list(
        await session.scalars(
            select(AuditEvent.summary).where(AuditEvent.action == "contact.update")
        )
    )
    assert sorted(summaries[0]["fields"]) == ["name", "phones", "shared", "status"]


async def test_search_by_substring_words_phone_prefix_and_filters(
    session: AsyncSession, people: People
) -> None:
    anna = people.north_operator
    ivan = await _contact(session, anna, "Иван Петров", "+79161234567", company="Ромашка")
    pyotr = await _contact(session, anna, "Пётр Иванов", "+79031234567", company="Лютик")
    acme = await _contact(
        session, anna, "John Smith", "+12125551234", company="ACME Corp", status="interested"
    )
    due = await _contact(session, anna, "Due Person", "+79055550000", follow_up_at=DUE)

    assert await _ids(session, anna, ContactQuery(text="иван")) == {ivan.id, pyotr.id}
    assert await _ids(session, anna, ContactQuery(text="ПЕТР")) == {ivan.id, pyotr.id}  # ё = е
    assert await _ids(session, anna, ContactQuery(text="иван ромаш")) == {ivan.id}
    assert await _ids(session, anna, ContactQuery(text="cme")) == {acme.id}
    assert await _ids(session, anna, ContactQuery(text="jo")) == {acme.id}  # short: LIKE
    assert await _ids(session, anna, ContactQuery(text="100%")) == set()
    assert await _ids(session, anna, ContactQuery(text="+7916")) == {ivan.id}
    assert await _ids(session, anna, ContactQuery(text="8 (903) 123")) == {pyotr.id}
    assert await _ids(session, anna, ContactQuery(text="+1 212")) == {acme.id}
    assert await _ids(session, anna, ContactQuery(status="interested")) == {acme.id}
    assert await _ids(
        session, anna, ContactQuery(follow_up_due_before=DUE + timedelta(minutes=1))
    ) == {due.id}
    page = await search_contacts(session, anna.actor, ContactQuery(limit=2))
    assert page.total == 4
    assert len(page.items) == 2
    assert page.has_more
    assert [c.id for c in page.items] == [due.id, acme.id]  # newest first
    with pytest.raises(ValidationFailed):
        await search_contacts(session, anna.actor, ContactQuery(limit=0))


async def test_search_by_tag(session: AsyncSession, people: People) -> None:
    anna = people.north_operator
    tagged = await _contact(session, anna, "Tagged", "+79160000001", tags=["vip", "опт"])
    await _contact(session, anna, "Untagged", "+79160000002", tags=["vipish"])
    assert await _ids(session, anna, ContactQuery(tag="vip")) == {tagged.id}
    assert await _ids(session, anna, ContactQuery(tag="опт")) == {tagged.id}


async def test_visibility_per_role(session: AsyncSession, people: People) -> None:
    anna_own = await _contact(session, people.north_operator, "Anna Own", "+79160000011")
    boris_own = await _contact(session, people.north_operator_2, "Boris Own", "+79160000012")
    boris_shared = await _contact(
        session, people.north_operator_2, "Boris Shared", "+79160000013", shared=True
    )
    vera_own = await _contact(session, people.south_operator, "Vera Own", "+79160000014")
    everything = {anna_own.id, boris_own.id, boris_shared.id, vera_own.id}

    assert await _ids(session, people.north_operator, ContactQuery()) == {
        anna_own.id,
        boris_shared.id,
    }
    assert await _ids(session, people.north_supervisor, ContactQuery()) == {
        anna_own.id,
        boris_own.id,
        boris_shared.id,
    }
    assert await _ids(session, people.south_supervisor, ContactQuery()) == {
        vera_own.id,
        boris_shared.id,
    }
    assert await _ids(session, people.admin, ContactQuery()) == everything
    with pytest.raises(NotFound):
        await get_contact(session, people.north_operator.actor, boris_own.id)
    with pytest.raises(NotFound):
        await update_contact(session, people.north_operator.actor, vera_own.id, {"name": "x"})
    # Operators cannot give contacts away; supervisors can within their team only.
    with pytest.raises(PermissionDenied):
        await update_contact(
            session,
            people.north_operator.actor,
            anna_own.id,
            {"owner_id": people.north_operator_2.user.id},
        )
    await update_contact(
        session,
        people.north_supervisor.actor,
        anna_own.id,
        {"owner_id": people.north_operator_2.user.id},
    )
    with pytest.raises(PermissionDenied):
        await update_contact(
            session,
            people.north_supervisor.actor,
            anna_own.id,
            {"owner_id": people.south_operator.user.id},
        )
    matches = await find_contacts_by_phone(session, "+79160000012", people.north_operator.actor)
    assert matches == []
    matches = await find_contacts_by_phone(session, "+79160000012")
    assert [c.id for c in matches] == [boris_own.id]


async def test_soft_delete_restore_and_purge(session: AsyncSession, people: People) -> None:
    anna = people.north_operator
    contact = await _contact(session, anna, "To Delete", "+79160000021")
    await soft_delete_contact(session, anna.actor, contact.id)
    await session.commit()
    assert await _ids(session, anna, ContactQuery(text="delete")) == set()
    assert await find_contacts_by_phone(session, "+79160000021") == []
    with pytest.raises(NotFound):
        await get_contact(session, anna.actor, contact.id)
    admin = people.admin
    assert await _ids(session, admin, ContactQuery(only_deleted=True)) == {contact.id}
    deleted = await get_contact(session, admin.actor, contact.id, include_deleted=True)
    assert deleted.deleted_by_id == anna.user.id
    assert deleted.deleted_at is not None

    with pytest.raises(PermissionDenied):
        await restore_contact(session, anna.actor, contact.id)
    await restore_contact(session, admin.actor, contact.id)
    await session.commit()
    assert await _ids(session, anna, ContactQuery(text="delete")) == {contact.id}

    with pytest.raises(PermissionDenied):
        await purge_contact(session, people.north_supervisor.actor, contact.id)
    await purge_contact(session, admin.actor, contact.id)
    await session.commit()
    assert await session.get(Contact, contact.id) is None
    assert await session.scalar(select(func.count()).select_from(ContactPhone)) == 0
    assert await _ids(session, admin, ContactQuery(text="delete")) == set()
    actions = list(await session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))
    assert (
        actions[-4:]
        == ["contact.create", "contact.delete", "contact.restore", "contact.purge"][-4:]
    )
    assert await verify_audit_chain(session) == []


async def test_default_statuses_carry_flags(session: AsyncSession) -> None:
    statuses = {status.code: status for status in await list_statuses(session)}
    assert {
        "new",
        "callback",
        "interested",
        "not_interested",
        "do_not_call",
        "sale",
        "wrong_number",
    } <= set(statuses)
    assert statuses["do_not_call"].is_do_not_call
    assert statuses["do_not_call"].is_final
    assert statuses["callback"].is_callback
    assert not statuses["callback"].is_final
    assert statuses["sale"].is_final


async def test_short_text_matches_the_start_of_the_name(
    session: AsyncSession, people: People
) -> None:
    anna = people.north_operator
    olga = await _contact(session, anna, "Ольга Волкова", "+79160000031")
    await _contact(session, anna, "Николай Олегов", "+79160000032")
    assert await _ids(session, anna, ContactQuery(text="ол")) == {olga.id}
    assert await _ids(session, anna, ContactQuery(text="Ол")) == {olga.id}


async def test_broad_searches_stop_counting_but_page_correctly(
    session: AsyncSession, people: People
) -> None:
    anna = people.north_operator
    for number in range(7):
        await create_contact(
            session, anna.actor, ContactInput(name=f"Same Name {number}"), audit=False
        )
    await session.commit()
    first = await search_contacts(
        session, anna.actor, ContactQuery(text="same", limit=2, count_cap=4)
    )
    assert (first.total, first.total_is_exact, first.has_more) == (4, False, True)
    last = await search_contacts(
        session, anna.actor, ContactQuery(text="same", limit=2, offset=6, count_cap=4)
    )
    assert (last.total, last.total_is_exact, last.has_more) == (7, True, False)
    assert len(last.items) == 1
