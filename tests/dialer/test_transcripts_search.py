"""Library search on SQLite (FTS5) and PostgreSQL (tsvector): transcript words combined with
the other filters, in Russian and Korean, scoped by role."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.actors import Actor
from dialer.errors import ValidationFailed
from dialer.transcripts.search import LibraryQuery, fts5_query, search_library, search_words
from dialer.transcripts.store import save_transcript
from tests.conftest import People
from tests.dialer.transcript_samples import DAY, Library, make_library, utterance


async def _found(
    session_factory: async_sessionmaker[AsyncSession],
    actor: Actor,
    library: Library,
    query: LibraryQuery,
) -> set[str]:
    names = {call_id: name for name, call_id in library.ids.items()}
    async with session_factory() as session:
        page = await search_library(session, actor, query)
    return {names[entry.call.id] for entry in page.items}


@pytest.fixture
async def library(session_factory: async_sessionmaker[AsyncSession], people: People) -> Library:
    return await make_library(session_factory, people)


async def test_a_word_of_the_transcript_finds_the_call(
    session_factory: async_sessionmaker[AsyncSession], people: People, library: Library
) -> None:
    admin = people.admin.actor
    found = await _found(session_factory, admin, library, LibraryQuery(text="заказ"))
    assert found == {"anna_sale", "boris_sale", "vera_sale"}
    # Case does not matter, and every word must be there (each as a prefix).
    assert await _found(session_factory, admin, library, LibraryQuery(text="РОМАШКА заказ")) == {
        "anna_sale",
        "vera_sale",
    }
    assert await _found(session_factory, admin, library, LibraryQuery(text="оформ")) == {
        "anna_sale",
        "boris_sale",
        "vera_sale",
    }
    # Korean: a word, and a prefix of a longer word.
    assert await _found(session_factory, admin, library, LibraryQuery(text="전화")) == {
        "anna_korean"
    }
    assert await _found(session_factory, admin, library, LibraryQuery(text="감사")) == {
        "anna_korean"
    }
    assert await _found(session_factory, admin, library, LibraryQuery(text="пицца")) == set()
    # Query syntax typed by a user is only text.
    assert await _found(session_factory, admin, library, LibraryQuery(text="'заказ\":* & (!|")) == {
        "anna_sale",
        "boris_sale",
        "vera_sale",
    }


async def test_words_combine_with_operator_date_outcome_and_duration_filters(
    session_factory: async_sessionmaker[AsyncSession], people: People, library: Library
) -> None:
    admin = people.admin.actor
    anna = people.north_operator.user.id
    by_operator = LibraryQuery(text="заказ", operator_id=anna)
    assert await _found(session_factory, admin, library, by_operator) == {"anna_sale"}
    second_day = LibraryQuery(
        text="заказ", since=DAY + timedelta(days=1), until=DAY + timedelta(days=2)
    )
    assert await _found(session_factory, admin, library, second_day) == {"vera_sale"}
    first_day_sales = LibraryQuery(
        text="заказ", outcome="sale", since=DAY, until=DAY + timedelta(days=1)
    )
    assert await _found(session_factory, admin, library, first_day_sales) == {
        "anna_sale",
        "boris_sale",
    }
    long_calls = LibraryQuery(text="заказ", min_seconds=90, max_seconds=120)
    assert await _found(session_factory, admin, library, long_calls) == {"anna_sale"}
    untranscribed = LibraryQuery(has_transcript=False)
    assert await _found(session_factory, admin, library, untranscribed) == {"anna_silent"}
    with pytest.raises(ValidationFailed):
        await _found(session_factory, admin, library, LibraryQuery(min_seconds=10, max_seconds=5))


async def test_search_is_scoped_by_role(
    session_factory: async_sessionmaker[AsyncSession], people: People, library: Library
) -> None:
    query = LibraryQuery(text="заказ")
    assert await _found(session_factory, people.north_operator.actor, library, query) == {
        "anna_sale"
    }
    assert await _found(session_factory, people.north_supervisor.actor, library, query) == {
        "anna_sale",
        "boris_sale",
    }
    assert await _found(session_factory, people.south_supervisor.actor, library, query) == {
        "vera_sale"
    }
    # Naming another team's operator does not widen what a supervisor sees.
    vera = people.south_operator.user.id
    foreign = LibraryQuery(text="заказ", operator_id=vera)
    assert await _found(session_factory, people.north_supervisor.actor, library, foreign) == set()


async def test_newest_first_pages_and_entries(
    session_factory: async_sessionmaker[AsyncSession], people: People, library: Library
) -> None:
    async with session_factory() as session:
        first = await search_library(session, people.admin.actor, LibraryQuery(limit=2))
        rest = await search_library(session, people.admin.actor, LibraryQuery(limit=2, offset=2))
    assert first.total == 5
    assert first.has_more
    created = [entry.call.created_at for entry in [*first.items, *rest.items]]
    assert created == sorted(created, reverse=True)
    entry = next(item for item in first.items if item.call.id == library.ids["anna_silent"])
    assert entry.operator_name == people.north_operator.user.display_name
    assert (entry.has_transcript, entry.has_recording, entry.review_score) == (False, False, None)


async def test_a_new_transcript_replaces_the_old_one_in_the_index(
    session_factory: async_sessionmaker[AsyncSession], people: People, library: Library
) -> None:
    call_id = library.ids["boris_sale"]
    async with session_factory() as session:
        await save_transcript(
            session,
            call_id,
            [utterance("customer", 2.0, "Перезвоните завтра")],
            recording_id=None,
            model="test",
        )
        await session.commit()
    admin = people.admin.actor
    assert await _found(session_factory, admin, library, LibraryQuery(text="завтра")) == {
        "boris_sale"
    }
    assert "boris_sale" not in await _found(
        session_factory, admin, library, LibraryQuery(text="заказ")
    )


def test_query_words_never_carry_syntax() -> None:
    assert search_words('Заказ "OR" *x NEAR(') == ["заказ", "or", "x", "near"]
    assert fts5_query(["заказ", "or"]) == '"заказ"* "or"*'
