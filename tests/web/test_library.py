"""The library API on SQLite and PostgreSQL: search scoped by role, transcripts, quality
reviews (audited) and the transcription queue's status."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from dialer.calls import attach_recording
from dialer.models import AuditEvent
from dialer.transcripts.queue import QueueSettings, claim_job, enqueue_transcription, fail_job
from tests.conftest import People
from tests.dialer.transcript_samples import DAY, make_library
from tests.web.conftest import client_of


async def test_library_search_is_scoped_by_role_and_combines_filters(
    app: Starlette, session_factory: async_sessionmaker[AsyncSession], people: People
) -> None:
    library = await make_library(session_factory, people)
    names = {call_id: name for name, call_id in library.ids.items()}

    async def found(person: object, **parameters: str) -> set[str]:
        async with client_of(app, person) as client:  # type: ignore[arg-type]
            response = await client.get("/api/library/calls", params=parameters)
        assert response.status_code == 200, response.text
        return {names[item["id"]] for item in response.json()["items"]}

    assert await found(people.north_operator, q="заказ") == {"anna_sale"}
    assert await found(people.north_supervisor, q="заказ") == {"anna_sale", "boris_sale"}
    assert await found(people.admin, q="заказ") == {"anna_sale", "boris_sale", "vera_sale"}
    assert await found(people.north_operator) == {"anna_sale", "anna_korean", "anna_silent"}
    # Filters narrow within what the role may see, never beyond it.
    vera = str(people.south_operator.user.id)
    assert await found(people.north_supervisor, operator_id=vera) == set()
    assert await found(
        people.admin,
        q="заказ",
        outcome="sale",
        **{"from": DAY.isoformat(), "to": (DAY + timedelta(days=1)).isoformat()},
    ) == {"anna_sale", "boris_sale"}
    assert await found(people.admin, min_seconds="90", max_seconds="200") == {"anna_sale"}
    assert await found(people.admin, has_transcript="false") == {"anna_silent"}
    async with client_of(app, people.admin) as admin:
        page = (await admin.get("/api/library/calls", params={"q": "감사", "limit": "1"})).json()
        bad = await admin.get("/api/library/calls", params={"min_seconds": "-1"})
    assert page["total"] == 1
    entry = page["items"][0]
    assert entry["operator_name"] == people.north_operator.user.display_name
    assert (entry["has_transcript"], entry["player_url"]) == (True, f"/calls/{entry['id']}/player")
    assert bad.status_code == 422


async def test_transcript_review_and_visibility(
    app: Starlette, session_factory: async_sessionmaker[AsyncSession], people: People
) -> None:
    library = await make_library(session_factory, people)
    call_id = library.ids["anna_sale"]
    path = f"/api/calls/{call_id}/transcript"
    async with client_of(app, people.north_operator) as anna:
        own = await anna.get(path)
        refused = await anna.post(f"/api/calls/{call_id}/review", json={"score": 5})
    assert own.status_code == 200, own.text
    body = own.json()
    assert body["status"] == "done"
    utterances = body["transcript"]["utterances"]
    assert [item["speaker"] for item in utterances] == ["operator", "customer"]
    assert utterances[1]["text"] == "Да, я готов оформить заказ"
    assert utterances[1]["words"][0] == {"word": "Да,", "start": 4.0, "end": 4.4, "conf": 0.9}
    assert body["review"] is None
    assert refused.status_code == 403

    async with client_of(app, people.south_operator) as vera:
        assert (await vera.get(path)).status_code == 404
    async with client_of(app, people.south_supervisor) as south:
        foreign = await south.post(f"/api/calls/{call_id}/review", json={"score": 2})
        assert foreign.status_code == 404
    async with client_of(app, people.north_supervisor) as boss:
        saved = await boss.post(
            f"/api/calls/{call_id}/review", json={"score": 4, "note": "Confirm the address"}
        )
        out_of_range = await boss.post(f"/api/calls/{call_id}/review", json={"score": 6})
        again = await boss.post(f"/api/calls/{call_id}/review", json={"score": 5})
    assert saved.status_code == 200, saved.text
    assert saved.json()["note"] == "Confirm the address"
    assert out_of_range.status_code == 422
    assert again.json()["score"] == 5
    async with client_of(app, people.north_operator) as anna:
        review = (await anna.get(path)).json()["review"]
        listed = (await anna.get("/api/library/calls", params={"q": "ромашка"})).json()
    assert (review["score"], review["note"]) == (5, "")
    assert review["reviewer_name"] == people.north_supervisor.user.display_name
    assert listed["items"][0]["review_score"] == 5
    async with session_factory() as session:
        events = (
            await session.scalars(select(AuditEvent).where(AuditEvent.action == "call.review"))
        ).all()
    assert [(event.target, event.summary["score"]) for event in events] == [
        (f"call:{call_id}", 4),
        (f"call:{call_id}", 5),
    ]


async def test_transcription_status_and_requeue(
    app: Starlette, session_factory: async_sessionmaker[AsyncSession], people: People
) -> None:
    library = await make_library(session_factory, people)
    silent = library.ids["anna_silent"]
    sale = library.ids["vera_sale"]
    async with session_factory() as session:
        await attach_recording(
            session,
            sale,
            path="2026/02/11/call.ogg",
            codec="opus",
            size_bytes=1,
            duration_seconds=1,
        )
        await enqueue_transcription(session, silent, now=DAY)
        await enqueue_transcription(session, sale, now=DAY)
        claim = await claim_job(session, "gone", QueueSettings(max_attempts=1), now=DAY)
        assert claim is not None
        await fail_job(session, claim, "CompressionError: unreadable", QueueSettings(), now=DAY)
        await session.commit()
    async with client_of(app, people.north_supervisor) as boss:
        status = (await boss.get("/api/transcription/status")).json()
        transcript = (await boss.get(f"/api/calls/{silent}/transcript")).json()
        no_recording = await boss.post(f"/api/calls/{silent}/transcription")
    assert (status["backlog"], status["ready"], status["failed"]) == (1, 1, 1)
    assert status["failed_jobs"][0]["last_error"] == "CompressionError: unreadable"
    assert (transcript["status"], transcript["transcript"]) == ("failed", None)
    assert no_recording.status_code == 409
    async with client_of(app, people.south_supervisor) as south:
        requeued = await south.post(f"/api/calls/{sale}/transcription")
    assert requeued.status_code == 202, requeued.text
    assert (requeued.json()["state"], requeued.json()["attempts"]) == ("queued", 0)
