"""Contact search gives the same pages whichever way the database is asked.

PostgreSQL counts first and then reads few matches through the index, many by walking newest
first; phone prefixes with few numbers are looked up by contact id. These tests build result
sets on both sides of those bounds (small pages make the bounds small) and check every page
against the newest-first order, the totals and the visibility rules.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from dialer.contacts import ContactInput, ContactQuery, PhoneInput, create_contact, search_contacts
from dialer.models import Contact
from tests.conftest import People, Person


async def _make(
    session: AsyncSession, owner: Person, count: int, name: str, phone_start: int, **fields: object
) -> list[int]:
    ids: list[int] = []
    for number in range(count):
        data = ContactInput(
            name=f"{name} {number}",
            phones=[PhoneInput(f"+7916{phone_start + number:07d}")],
            **fields,  # type: ignore[arg-type]
        )
        ids.append((await create_contact(session, owner.actor, data, audit=False)).id)
    await session.commit()
    return ids


async def _all_pages(
    session: AsyncSession, person: Person, text: str, limit: int, count_cap: int = 500
) -> tuple[list[int], list[tuple[int, bool]]]:
    """Every page's ids in order, and each page's (total, total_is_exact)."""
    ids: list[int] = []
    totals: list[tuple[int, bool]] = []
    offset = 0
    while True:
        query = ContactQuery(text=text, limit=limit, offset=offset, count_cap=count_cap)
        page = await search_contacts(session, person.actor, query)
        ids.extend(contact.id for contact in page.items)
        totals.append((page.total, page.total_is_exact))
        if not page.has_more:
            return ids, totals
        offset += limit


async def test_many_and_few_substring_matches_page_newest_first(
    session: AsyncSession, people: People
) -> None:
    anna = people.north_operator
    common = await _make(session, anna, 45, "Общий Клиент", 1000)
    rare = await _make(session, anna, 3, "Редкая Фамилия", 2000)
    # Pages of 1 counted to 5: "few" ends at 10 matches, so "клиент" (45) is walked, "редкая"
    # (3) read through the index; pages of 20: both are "few".
    for limit, count_cap in ((1, 5), (1, 500), (20, 5)):
        found, totals = await _all_pages(session, anna, "клиент", limit, count_cap)
        assert found == sorted(common, reverse=True)
        assert totals[-1] == (45, True)
        found, totals = await _all_pages(session, anna, "редкая", limit, count_cap)
        assert found == sorted(rare, reverse=True)
    capped = await search_contacts(
        session, anna.actor, ContactQuery(text="клиент", limit=2, count_cap=5)
    )
    assert (capped.total, capped.total_is_exact, capped.has_more) == (5, False, True)
    assert [contact.id for contact in capped.items] == sorted(common, reverse=True)[:2]


async def test_a_word_inside_another_word_changes_nothing(
    session: AsyncSession, people: People
) -> None:
    anna = people.north_operator
    polyakov = await _make(session, anna, 2, "Поляков Пётр", 3000)
    await _make(session, anna, 2, "Полевой Иван", 3100)
    assert (await _all_pages(session, anna, "поляк пол", 5))[0] == sorted(polyakov, reverse=True)
    assert (await _all_pages(session, anna, "пол поляк поляк", 1))[0] == sorted(
        polyakov, reverse=True
    )
    # Short words still mean "the name starts with": "ив и" is not "ив".
    iv = await _make(session, anna, 1, "Ив Иванов", 3200)
    await _make(session, anna, 1, "Ивлев Сергей", 3300)
    assert (await _all_pages(session, anna, "ив и", 5))[0] == iv


async def test_phone_prefixes_with_many_and_few_numbers(
    session: AsyncSession, people: People
) -> None:
    anna = people.north_operator
    many = await _make(session, anna, 45, "Номер", 4000)  # +79160004000..+79160004044
    for limit in (1, 50):  # pages of 1: "few" ends at 500 numbers, pages of 50 too
        found, totals = await _all_pages(session, anna, "8 916 000 40", limit)
        assert found == sorted(many, reverse=True)
        assert totals[-1] == (45, True)
    found, _ = await _all_pages(session, anna, "+7 916 000-40-0", 3)
    assert found == sorted(many[:10], reverse=True)
    capped = await search_contacts(
        session, anna.actor, ContactQuery(text="8916", limit=1, count_cap=1)
    )
    assert capped.total_is_exact is False
    assert capped.has_more is True


async def test_phone_prefix_with_more_numbers_than_the_lookup_bound(
    session: AsyncSession, people: People
) -> None:
    anna = people.north_operator
    # count_cap 1 and pages of 1: the id lookup takes at most 40 numbers, so 45 are walked.
    many = await _make(session, anna, 45, "Номер", 5000)
    found, totals = await _all_pages(session, anna, "8916000", 1, count_cap=1)
    assert found == sorted(many, reverse=True)
    assert totals[0] == (2, False)


async def test_the_plans_keep_visibility_and_deleted_contacts_out(
    session: AsyncSession, people: People
) -> None:
    anna, boris, admin = people.north_operator, people.north_operator_2, people.admin
    mine = await _make(session, anna, 12, "Видимость Тест", 6000)
    shared = await _make(session, boris, 12, "Видимость Тест", 6100, shared=True)
    hidden = await _make(session, boris, 12, "Видимость Тест", 6200)
    gone = await session.get(Contact, mine[0])
    assert gone is not None
    gone.deleted_at = gone.created_at
    await session.commit()
    visible = sorted(mine[1:] + shared, reverse=True)
    everything = sorted(mine[1:] + shared + hidden, reverse=True)
    for text in ("видимость", "+7916000 6", "8916000"):
        for limit, cap in ((1, 2), (7, 500), (50, 500)):
            for person, expected in ((anna, visible), (admin, everything)):
                found, _ = await _all_pages(session, person, text, limit, cap)
                assert found == expected, (text, limit, person.user.login)
