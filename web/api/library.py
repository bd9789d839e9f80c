"""The recordings library: search calls, read a call's transcript, review a call, and watch
the transcription queue.

- ``GET /api/library/calls``: calls by date range, operator, contact, outcome, talk time,
  recording / transcript presence and transcript words (``q``), newest first, paginated;
  scoped like ``/api/calls`` (operators their own calls, supervisors their team's, admins all).
- ``GET /api/calls/{id}/transcript``: the dialogue with speakers and word timings, the job
  state and the quality review (anyone who may see the call).
- ``POST /api/calls/{id}/review``: a 1-5 quality score and coaching note (supervisors, admins).
- ``POST /api/calls/{id}/transcription``: queue the call's recording (again) (supervisors,
  admins), e.g. after a failed job.
- ``GET /api/transcription/status``: backlog, running and failed jobs (supervisors, admins).
"""

from __future__ import annotations

from dialer.calls import get_call
from dialer.errors import Conflict
from dialer.models import User
from dialer.transcripts.models import CallReview, TranscriptionJob, TranscriptUtterance
from dialer.transcripts.queue import enqueue_transcription, queue_status
from dialer.transcripts.search import LibraryEntry, LibraryQuery, search_library
from dialer.transcripts.store import read_transcript, review_call
from web.api.representations import call_json, timestamp
from web.permissions import SIGNED_IN, SUPERVISOR_OR_ADMIN
from web.routing import Call, Endpoint
from web.validation import (
    INTEGER_COLUMN_MAXIMUM,
    Integer,
    ObjectSchema,
    QuerySchema,
    Text,
    pagination_parameters,
    query_boolean,
    query_datetime,
    query_integer,
    query_text,
)

DEFAULT_PAGE_SIZE = 50
MAX_SECONDS = 10 * 24 * 3600

LIBRARY_QUERY = QuerySchema(
    {
        "from": query_datetime("calls created at or after this time"),
        "to": query_datetime("calls created before this time"),
        "operator_id": query_integer(
            "calls of this operator", minimum=1, maximum=INTEGER_COLUMN_MAXIMUM
        ),
        "contact_id": query_integer("calls of this contact", minimum=1),
        "outcome": query_text("outcome (status code)", max_length=40),
        "min_seconds": query_integer("talk time at least", minimum=0, maximum=MAX_SECONDS),
        "max_seconds": query_integer("talk time at most", minimum=0, maximum=MAX_SECONDS),
        "has_recording": query_boolean("only calls with (true) or without (false) a recording"),
        "has_transcript": query_boolean("only calls with (true) or without (false) a transcript"),
        "q": query_text("words of the transcript (each as a prefix)", max_length=200),
        **pagination_parameters(DEFAULT_PAGE_SIZE),
    }
)

REVIEW_BODY = ObjectSchema(
    {
        "score": Integer(minimum=1, maximum=5),
        "note": Text(max_length=4000, description="coaching note"),
    },
    required=frozenset({"score"}),
)


def library_entry_json(entry: LibraryEntry) -> dict[str, object]:
    call = entry.call
    return {
        "id": call.id,
        "created_at": timestamp(call.created_at),
        "direction": call.direction,
        "phone_e164": call.phone_e164,
        "contact_id": call.contact_id,
        "contact_name": entry.contact_name,
        "operator_id": call.operator_id,
        "operator_name": entry.operator_name,
        "state": call.state,
        "outcome": call.outcome,
        "talk_seconds": call.talk_seconds,
        "has_recording": entry.has_recording,
        "has_transcript": entry.has_transcript,
        "review_score": entry.review_score,
        "player_url": f"/calls/{call.id}/player",
    }


async def library_calls(call: Call) -> object:
    query = call.query
    minimum = query.optional_integer("min_seconds")
    maximum = query.optional_integer("max_seconds")
    page = await search_library(
        call.database,
        call.require_actor(),
        LibraryQuery(
            since=query.optional_datetime("from"),
            until=query.optional_datetime("to"),
            operator_id=query.optional_integer("operator_id"),
            contact_id=query.optional_integer("contact_id"),
            outcome=query.optional_text("outcome") or None,
            min_seconds=float(minimum) if minimum is not None else None,
            max_seconds=float(maximum) if maximum is not None else None,
            has_recording=query.optional_boolean("has_recording"),
            has_transcript=query.optional_boolean("has_transcript"),
            text=query.optional_text("q") or None,
            limit=query.optional_integer("limit") or DEFAULT_PAGE_SIZE,
            offset=query.optional_integer("offset") or 0,
        ),
    )
    return {
        "items": [library_entry_json(entry) for entry in page.items],
        "total": page.total,
        "total_is_exact": page.total_is_exact,
        "limit": page.limit,
        "offset": page.offset,
    }


def utterance_json(utterance: TranscriptUtterance) -> dict[str, object]:
    return {
        "speaker": utterance.speaker,
        "start": utterance.start_seconds,
        "end": utterance.end_seconds,
        "text": utterance.text,
        "words": list(utterance.words or []),
    }


def job_json(job: TranscriptionJob) -> dict[str, object]:
    return {
        "call_id": job.call_id,
        "state": job.state,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "progress": job.progress,
        "last_error": job.last_error,
        "worker_id": job.worker_id,
        "created_at": timestamp(job.created_at),
        "started_at": timestamp(job.started_at),
        "finished_at": timestamp(job.finished_at),
        "available_at": timestamp(job.available_at),
    }


async def review_json(call: Call, review: CallReview | None) -> dict[str, object] | None:
    if review is None:
        return None
    reviewer = (
        await call.database.get(User, review.reviewer_id)
        if review.reviewer_id is not None
        else None
    )
    return {
        "score": review.score,
        "note": review.note,
        "reviewer_id": review.reviewer_id,
        "reviewer_name": reviewer.display_name if reviewer is not None else None,
        "updated_at": timestamp(review.updated_at),
    }


async def transcript(call: Call) -> object:
    view = await read_transcript(call.database, call.require_actor(), call.path_id())
    status = view.job.state if view.job is not None else "none"
    if view.transcript is not None and (view.job is None or view.job.state != "running"):
        status = "done"
    return {
        "call": call_json(view.call),
        "status": status,
        "job": job_json(view.job) if view.job is not None else None,
        "transcript": (
            {
                "model": view.transcript.model,
                "created_at": timestamp(view.transcript.created_at),
                "utterances": [utterance_json(utterance) for utterance in view.utterances],
            }
            if view.transcript is not None
            else None
        ),
        "review": await review_json(call, view.review),
    }


async def review(call: Call) -> object:
    saved = await review_call(
        call.database,
        call.require_actor(),
        call.path_id(),
        call.body.integer("score"),
        call.body.optional_text("note") or "",
        now=call.now,
    )
    return await review_json(call, saved)


async def queue_transcription(call: Call) -> object:
    row = await get_call(call.database, call.require_actor(), call.path_id())
    if not any(recording.deleted_at is None for recording in row.recordings):
        raise Conflict(f"call {row.id} has no recording to transcribe")
    job = await enqueue_transcription(call.database, row.id, now=call.now)
    return job_json(job)


async def transcription_status(call: Call) -> object:
    status = await queue_status(call.database, now=call.now)
    return {
        "backlog": status.backlog,
        "ready": status.ready,
        "waiting_retry": status.waiting_retry,
        "running": status.running,
        "done": status.done,
        "failed": status.failed,
        "oldest_ready_since": timestamp(status.oldest_ready_since),
        "running_jobs": [job_json(job) for job in status.running_jobs],
        "failed_jobs": [job_json(job) for job in status.failed_jobs],
    }


ENDPOINTS = (
    Endpoint(
        "GET",
        "/api/library/calls",
        library_calls,
        SIGNED_IN,
        "Search recorded calls by filters and transcript words, newest first",
        "library",
        query=LIBRARY_QUERY,
        read_only=True,
    ),
    Endpoint(
        "GET",
        "/api/calls/{id:int}/transcript",
        transcript,
        SIGNED_IN,
        "The call's transcript (speakers, word timings), its job state and quality review",
        "library",
        read_only=True,
    ),
    Endpoint(
        "POST",
        "/api/calls/{id:int}/review",
        review,
        SUPERVISOR_OR_ADMIN,
        "Set the call's quality score (1-5) and coaching note (audited)",
        "library",
        body=REVIEW_BODY,
    ),
    Endpoint(
        "POST",
        "/api/calls/{id:int}/transcription",
        queue_transcription,
        SUPERVISOR_OR_ADMIN,
        "Queue the call's recording for transcription (again)",
        "library",
        status=202,
    ),
    Endpoint(
        "GET",
        "/api/transcription/status",
        transcription_status,
        SUPERVISOR_OR_ADMIN,
        "Transcription backlog, running and failed jobs",
        "library",
        read_only=True,
    ),
)
