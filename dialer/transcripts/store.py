"""Reading and writing transcripts and quality reviews.

A transcript replaces the previous one of the same call (re-transcription). Reading goes
through ``dialer.calls.get_call``, so an actor sees the transcript of exactly the calls they
may see (operators their own, supervisors their team's, admins all). Reviews (a 1-5 score and
a coaching note) are written by supervisors and admins and audited as ``call.review``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from dialer.actors import Actor
from dialer.audit import append_audit_event
from dialer.calls import get_call
from dialer.errors import PermissionDenied, ValidationFailed
from dialer.models import Call, utc_now
from dialer.transcripts.models import CallReview, Transcript, TranscriptionJob, TranscriptUtterance
from dialer.transcripts.queue import job_of_call
from recordings.transcription import Utterance

MAX_NOTE_LENGTH = 4000


async def save_transcript(
    session: AsyncSession,
    call_id: int,
    utterances: Sequence[Utterance],
    *,
    recording_id: int | None,
    model: str,
    now: datetime | None = None,
) -> Transcript:
    """Store the dialogue of a call (replacing an older transcript of it)."""
    now = now if now is not None else utc_now()
    ordered = sorted(utterances, key=lambda utterance: (utterance.start, utterance.speaker))
    text = "\n".join(utterance.text for utterance in ordered)
    words = sum(len(utterance.words) for utterance in ordered)
    await session.execute(
        delete(TranscriptUtterance)
        .where(TranscriptUtterance.call_id == call_id)
        .execution_options(synchronize_session=False)
    )
    transcript = await session.get(Transcript, call_id, populate_existing=True)
    if transcript is None:
        transcript = Transcript(call_id=call_id)
        session.add(transcript)
    transcript.recording_id = recording_id
    transcript.text = text
    transcript.utterance_count = len(ordered)
    transcript.word_count = words
    transcript.model = model[:200]
    transcript.created_at = now
    await session.flush()
    session.add_all(
        TranscriptUtterance(
            call_id=call_id,
            position=position,
            speaker=utterance.speaker,
            start_seconds=round(utterance.start, 3),
            end_seconds=round(utterance.end, 3),
            text=utterance.text,
            words=utterance.as_dict()["words"],
        )
        for position, utterance in enumerate(ordered)
    )
    await session.flush()
    return transcript


@dataclass(frozen=True)
class TranscriptView:
    """What the player shows beside a call: its transcript (None until one exists), the
    transcription job (None when the call was never queued) and the quality review."""

    call: Call
    transcript: Transcript | None
    utterances: Sequence[TranscriptUtterance]
    job: TranscriptionJob | None
    review: CallReview | None


async def read_transcript(session: AsyncSession, actor: Actor, call_id: int) -> TranscriptView:
    """The transcript of a call ``actor`` may see; NotFound otherwise."""
    call = await get_call(session, actor, call_id)
    transcript = await session.get(Transcript, call.id, populate_existing=True)
    utterances: Sequence[TranscriptUtterance] = ()
    if transcript is not None:
        utterances = (
            await session.scalars(
                select(TranscriptUtterance)
                .where(TranscriptUtterance.call_id == call.id)
                .order_by(TranscriptUtterance.position)
            )
        ).all()
    return TranscriptView(
        call=call,
        transcript=transcript,
        utterances=utterances,
        job=await job_of_call(session, call.id),
        review=await session.get(CallReview, call.id, populate_existing=True),
    )


async def review_call(
    session: AsyncSession,
    actor: Actor,
    call_id: int,
    score: int,
    note: str,
    *,
    now: datetime | None = None,
) -> CallReview:
    """Set the quality score (1-5) and coaching note of a call (supervisors of the call's team
    and admins; audited). Replaces the previous review of the call."""
    if not (actor.is_admin or actor.is_supervisor):
        raise PermissionDenied("only supervisors and admins review calls")
    if isinstance(score, bool) or not 1 <= score <= 5:
        raise ValidationFailed("score", "must be between 1 and 5")
    if len(note) > MAX_NOTE_LENGTH:
        raise ValidationFailed("note", f"must be at most {MAX_NOTE_LENGTH} characters")
    now = now if now is not None else utc_now()
    call = await get_call(session, actor, call_id)
    review = await session.get(CallReview, call.id, populate_existing=True)
    if review is None:
        review = CallReview(call_id=call.id, created_at=now)
        session.add(review)
    review.reviewer_id = actor.user_id
    review.score = score
    review.note = note
    review.updated_at = now
    await append_audit_event(
        session,
        actor,
        "call.review",
        f"call:{call.id}",
        {"score": score, "note_length": len(note)},
        actor.source_ip,
        now=now,
    )
    await session.flush()
    return review
