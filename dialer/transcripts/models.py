"""Tables of transcription jobs, transcripts and quality reviews (on ``dialer.models.Base``).

- ``TranscriptionJob``: one per call, the durable queue entry (see :mod:`.queue`);
- ``Transcript``: one per call, the whole text (indexed for full-text search: a SQLite FTS5
  table ``transcript_search`` kept by triggers, a PostgreSQL generated ``search_vector``
  tsvector column with a GIN index; both made by migration ``0200_transcripts``);
- ``TranscriptUtterance``: the dialogue, one row per utterance with speaker and word timings;
- ``CallReview``: a supervisor's quality score (1-5) and coaching note on a call.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from dialer.models import Base, BigKey, UtcDateTime, utc_now


class JobState(StrEnum):
    """queued -> running -> done; running -> queued (retry, lost lease) | failed (gave up)."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class TranscriptionJob(Base):
    __tablename__ = "transcription_jobs"

    id: Mapped[int] = mapped_column(BigKey, primary_key=True)
    call_id: Mapped[int] = mapped_column(
        BigKey, ForeignKey("calls.id", ondelete="CASCADE"), unique=True
    )
    state: Mapped[str] = mapped_column(String(10), default=JobState.QUEUED.value)
    # Claims so far (a claim whose worker died counts too).
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=5)
    # A queued job may be claimed from this time on (retries wait here with backoff).
    available_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    worker_id: Mapped[str | None] = mapped_column(String(120))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Fraction of the recording's audio transcribed by the current attempt (0..1).
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("ix_transcription_jobs_state_available_at", "state", "available_at"),
        Index("ix_transcription_jobs_state_lease_expires_at", "state", "lease_expires_at"),
        CheckConstraint(
            "state IN ('queued', 'running', 'done', 'failed')", name="ck_transcription_jobs_state"
        ),
    )


class Transcript(Base):
    __tablename__ = "transcripts"

    call_id: Mapped[int] = mapped_column(
        BigKey, ForeignKey("calls.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    recording_id: Mapped[int | None] = mapped_column(
        BigKey, ForeignKey("recordings.id", ondelete="SET NULL")
    )
    # Every utterance's text in time order, one per line: what full-text search indexes.
    text: Mapped[str] = mapped_column(Text, default="")
    utterance_count: Mapped[int] = mapped_column(Integer, default=0)
    word_count: Mapped[int] = mapped_column(Integer, default=0)
    model: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


class TranscriptUtterance(Base):
    __tablename__ = "transcript_utterances"

    id: Mapped[int] = mapped_column(BigKey, primary_key=True)
    call_id: Mapped[int] = mapped_column(
        BigKey, ForeignKey("transcripts.call_id", ondelete="CASCADE")
    )
    position: Mapped[int] = mapped_column(Integer)
    speaker: Mapped[str] = mapped_column(String(10))  # 'operator' | 'customer'
    start_seconds: Mapped[float] = mapped_column(Float)
    end_seconds: Mapped[float] = mapped_column(Float)
    text: Mapped[str] = mapped_column(Text)
    # [{"word": str, "start": float, "end": float, "conf": float}, ...] in call seconds
    words: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)

    __table_args__ = (
        Index("ix_transcript_utterances_call_id_position", "call_id", "position"),
        CheckConstraint(
            "speaker IN ('operator', 'customer')", name="ck_transcript_utterances_speaker"
        ),
    )


class CallReview(Base):
    """The quality score and coaching note of a call (the latest reviewer's)."""

    __tablename__ = "call_reviews"

    call_id: Mapped[int] = mapped_column(
        BigKey, ForeignKey("calls.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    score: Mapped[int] = mapped_column(Integer)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)

    __table_args__ = (
        CheckConstraint("score BETWEEN 1 AND 5", name="ck_call_reviews_score"),
        Index("ix_call_reviews_reviewer_id", "reviewer_id"),
    )
