"""The recordings library: calls found by filters and by words of their transcripts.

Filters combine freely: date range (call creation), operator, contact, outcome, talk-time
range, has a recording, has a transcript, and transcript text. Visibility is the calls' rule
(``dialer.calls.visible_calls``: operators their own, supervisors their team's, admins all).

Transcript text search is word-based and language-neutral, so Korean and Russian work:

* SQLite: the FTS5 table ``transcript_search`` (unicode61 tokenizer), queried as
  ``"word1"* "word2"*`` (every word, each as a prefix);
* PostgreSQL: ``transcripts.search_vector`` (a generated ``to_tsvector('simple', text)`` with a
  GIN index) ``@@ to_tsquery('simple', 'word1:* & word2:*')``.

Words are the runs of letters and digits of the query; other characters only separate them,
so user input never reaches either query language as syntax. Prefixes matter for agglutinative
languages: "감사" finds "감사합니다". Results are newest first; counting stops at ``count_cap``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, ColumnElement, Select, exists, func, literal_column, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from dialer.actors import Actor
from dialer.calls import visible_calls
from dialer.errors import ValidationFailed
from dialer.models import Call, Contact, Recording, User
from dialer.pagination import Page, check_page_bounds, count_cap, page_is_last
from dialer.transcripts.models import CallReview, Transcript

_WORD = re.compile(r"\w+", re.UNICODE)
MAX_SEARCH_WORDS = 8


@dataclass(frozen=True)
class LibraryQuery:
    since: datetime | None = None
    until: datetime | None = None
    operator_id: int | None = None
    contact_id: int | None = None
    outcome: str | None = None
    min_seconds: float | None = None  # talk time
    max_seconds: float | None = None
    has_recording: bool | None = None
    has_transcript: bool | None = None
    text: str | None = None
    limit: int = 50
    offset: int = 0
    count_cap: int = 1000


@dataclass(frozen=True)
class LibraryEntry:
    """One call of the library with what the list shows beside it."""

    call: Call
    contact_name: str | None
    operator_name: str | None
    has_recording: bool
    has_transcript: bool
    review_score: int | None


def search_words(text: str) -> list[str]:
    """The words of a search text, lower-cased (at most MAX_SEARCH_WORDS)."""
    return [word.lower() for word in _WORD.findall(text)][:MAX_SEARCH_WORDS]


def fts5_query(words: Sequence[str]) -> str:
    """An FTS5 MATCH expression: every word, each as a prefix."""
    return " ".join(f'"{word}"*' for word in words)


def tsquery_text(words: Sequence[str]) -> str:
    """A ``to_tsquery`` text: every word, each as a prefix."""
    return " & ".join(f"{word}:*" for word in words)


def transcript_matches(
    dialect: str, words: Sequence[str], *, narrowed: bool = False
) -> ColumnElement[bool]:
    """A condition on ``calls`` true for calls whose transcript holds every word.

    ``narrowed``: other conditions already pick few calls through an index of ``calls``. On
    SQLite the matching row ids are then only a membership test (``calls.id + 0`` keeps the
    planner from driving the query from the full-text matches, which for a common word are
    tens of thousands of rows: measured at 1 M calls, bare query p95 370 ms -> 90 ms).
    """
    if dialect == "postgresql":
        matching = select(Transcript.call_id).where(
            literal_column("transcripts.search_vector").op("@@")(
                func.to_tsquery(literal_column("'simple'"), tsquery_text(words))
            )
        )
        return Call.id.in_(matching)
    matching_rows: Select[int] = (
        select(literal_column("rowid", BigInteger))
        .select_from(text("transcript_search"))
        .where(
            text("transcript_search MATCH :transcript_query").bindparams(
                transcript_query=fts5_query(words)
            )
        )
    )
    subject = Call.id + 0 if narrowed else Call.id
    return subject.in_(matching_rows)


def has_live_recording() -> ColumnElement[bool]:
    return exists(
        select(Recording.id).where(Recording.call_id == Call.id, Recording.deleted_at.is_(None))
    )


def has_transcript() -> ColumnElement[bool]:
    return exists(select(Transcript.call_id).where(Transcript.call_id == Call.id))


def library_statement(dialect: str, actor: Actor, query: LibraryQuery) -> Select[Call]:
    """The filtered, visible calls (without order or paging)."""
    if (
        query.min_seconds is not None
        and query.max_seconds is not None
        and query.min_seconds > query.max_seconds
    ):
        raise ValidationFailed("min_seconds", "must not be larger than max_seconds")
    statement = select(Call).where(visible_calls(actor), Call.deleted_at.is_(None))
    if query.since is not None:
        statement = statement.where(Call.created_at >= query.since)
    if query.until is not None:
        statement = statement.where(Call.created_at < query.until)
    if query.operator_id is not None:
        statement = statement.where(Call.operator_id == query.operator_id)
    if query.contact_id is not None:
        statement = statement.where(Call.contact_id == query.contact_id)
    if query.outcome is not None:
        statement = statement.where(Call.outcome == query.outcome)
    if query.min_seconds is not None:
        statement = statement.where(Call.talk_seconds >= query.min_seconds)
    if query.max_seconds is not None:
        statement = statement.where(Call.talk_seconds <= query.max_seconds)
    if query.has_recording is not None:
        present = has_live_recording()
        statement = statement.where(present if query.has_recording else ~present)
    if query.has_transcript is not None:
        present = has_transcript()
        statement = statement.where(present if query.has_transcript else ~present)
    if query.text:
        words = search_words(query.text)
        if words:
            narrowed = any(
                value is not None
                for value in (
                    query.since,
                    query.until,
                    query.operator_id,
                    query.contact_id,
                    query.outcome,
                )
            )
            statement = statement.where(transcript_matches(dialect, words, narrowed=narrowed))
    return statement


async def search_library(
    session: AsyncSession, actor: Actor, query: LibraryQuery = LibraryQuery()
) -> Page[LibraryEntry]:
    """Visible calls matching ``query``, newest first, one page (see the module docstring)."""
    check_page_bounds(query.limit, query.offset)
    dialect = session.get_bind().dialect.name
    statement = library_statement(dialect, actor, query)
    calls = (
        await session.scalars(
            statement.order_by(Call.created_at.desc(), Call.id.desc())
            .limit(query.limit)
            .offset(query.offset)
        )
    ).all()
    cap = count_cap(query.limit, query.offset, query.count_cap)
    if page_is_last(calls, query.limit, query.offset):
        total = query.offset + len(calls)
    else:
        counted = statement.with_only_columns(Call.id).order_by(None).limit(cap).subquery()
        total = await session.scalar(select(func.count()).select_from(counted)) or 0
    entries = await _entries(session, calls)
    return Page(
        items=entries,
        total=total,
        limit=query.limit,
        offset=query.offset,
        total_is_exact=total < cap,
    )


async def _entries(session: AsyncSession, calls: Sequence[Call]) -> list[LibraryEntry]:
    """The page's calls with contact and operator names, transcript presence and score."""
    if not calls:
        return []
    call_ids = [call.id for call in calls]
    contact_ids = {call.contact_id for call in calls if call.contact_id is not None}
    operator_ids = {call.operator_id for call in calls if call.operator_id is not None}
    contacts: dict[int, str] = {}
    if contact_ids:
        rows = await session.execute(
            select(Contact.id, Contact.name).where(Contact.id.in_(contact_ids))
        )
        contacts = {row.id: row.name for row in rows}
    operators: dict[int, str] = {}
    if operator_ids:
        rows = await session.execute(
            select(User.id, User.display_name).where(User.id.in_(operator_ids))
        )
        operators = {row.id: row.display_name for row in rows}
    transcribed = set(
        (
            await session.scalars(
                select(Transcript.call_id).where(Transcript.call_id.in_(call_ids))
            )
        ).all()
    )
    scores = {
        row.call_id: row.score
        for row in await session.execute(
            select(CallReview.call_id, CallReview.score).where(CallReview.call_id.in_(call_ids))
        )
    }
    return [
        LibraryEntry(
            call=call,
            contact_name=contacts.get(call.contact_id) if call.contact_id is not None else None,
            operator_name=(
                operators.get(call.operator_id) if call.operator_id is not None else None
            ),
            has_recording=any(recording.deleted_at is None for recording in call.recordings),
            has_transcript=call.id in transcribed,
            review_score=scores.get(call.id),
        )
        for call in calls
    ]
