"""Calls with transcripts written straight into the tables (no recognition involved), for the
library search tests of the core and the web API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.calls import create_call, record_call_transition, set_call_outcome
from dialer.models import CallState
from dialer.transcripts.store import save_transcript
from recordings.transcription import Utterance, Word
from tests.conftest import People, Person

DAY = datetime(2026, 2, 10, 9, 0, tzinfo=UTC)


def utterance(speaker: str, start: float, text: str) -> Utterance:
    words = []
    position = start
    for token in text.split():
        words.append(Word(token, position, position + 0.4, 0.9))
        position += 0.5
    return Utterance(
        speaker="operator" if speaker == "operator" else "customer",
        start=start,
        end=position - 0.1,
        text=text,
        words=tuple(words),
    )


@dataclass(frozen=True)
class Library:
    """Call ids by name."""

    ids: dict[str, int]


SAMPLES: tuple[tuple[str, str, int, str, float, list[tuple[str, str]] | None], ...] = (
    # name, person attribute, day offset, outcome, talk seconds, transcript
    (
        "anna_sale",
        "north_operator",
        0,
        "sale",
        95.0,
        [("operator", "Добрый день, компания Ромашка"), ("customer", "Да, я готов оформить заказ")],
    ),
    (
        "anna_korean",
        "north_operator",
        1,
        "not_interested",
        40.0,
        [("operator", "안녕하세요"), ("customer", "감사합니다 내일 다시 전화 드리겠습니다")],
    ),
    ("anna_silent", "north_operator", 2, "no_answer", 0.0, None),
    (
        "boris_sale",
        "north_operator_2",
        0,
        "sale",
        300.0,
        [("operator", "Здравствуйте, заказ оформлен"), ("customer", "Спасибо")],
    ),
    (
        "vera_sale",
        "south_operator",
        1,
        "sale",
        61.0,
        [("operator", "Ромашка слушает"), ("customer", "Хочу оформить заказ")],
    ),
)


async def make_library(
    session_factory: async_sessionmaker[AsyncSession], people: People
) -> Library:
    ids: dict[str, int] = {}
    async with session_factory() as session:
        for name, attribute, day, outcome, talk, transcript in SAMPLES:
            person: Person = getattr(people, attribute)
            created = DAY + timedelta(days=day)
            call = await create_call(session, person.actor, "+79161234567", now=created)
            answered = created + timedelta(seconds=5)
            await record_call_transition(session, call.id, CallState.DIALING, created)
            if talk:
                await record_call_transition(session, call.id, CallState.ANSWERED, answered)
            await record_call_transition(
                session, call.id, CallState.ENDED, answered + timedelta(seconds=talk)
            )
            await set_call_outcome(session, person.actor, call.id, outcome, now=created)
            if transcript is not None:
                await save_transcript(
                    session,
                    call.id,
                    [
                        utterance(speaker, 1.0 + 3.0 * index, text)
                        for index, (speaker, text) in enumerate(transcript)
                    ],
                    recording_id=None,
                    model="test",
                )
            ids[name] = call.id
        await session.commit()
    return Library(ids)
