"""The durable queue of transcription jobs, kept in the database (one job per call).

Life of a job::

    enqueue_transcription ──> queued ──claim_job──> running ──complete_job──> done
                                ^  ^                   │
                                │  └──fail_job (attempts left: waits retry_delay_seconds)
                                │                      │
                                └── lease expired ─────┤  (the worker died or hung)
                                                       └──fail_job / lease expired with no
                                                          attempts left──> failed (error kept)

* **Claiming** takes the oldest ready job in one statement: ``UPDATE ... WHERE id = (SELECT id
  ... WHERE state = 'queued' AND available_at <= now ORDER BY available_at, id LIMIT 1 FOR UPDATE
  SKIP LOCKED) RETURNING ...``. On PostgreSQL ``FOR UPDATE SKIP LOCKED`` lets concurrent workers
  pass over each other's rows instead of waiting; SQLite has no row locks (SQLAlchemy drops the
  clause) and needs none: our SQLite transactions start with ``BEGIN IMMEDIATE``, so the single
  UPDATE runs alone. The claim stamps the worker id, counts an attempt and sets a lease.
* **Leases**: a running job belongs to its worker until ``lease_expires_at``; the worker renews
  it while it works (:func:`renew_lease`, which also records progress). A killed worker stops
  renewing; the next claim by anyone first returns expired jobs to the queue (or fails them when
  no attempts are left), so jobs survive dead workers.
* **Retries**: a failed attempt waits ``retry_base_seconds * 2 ** (attempt - 1)`` (capped at
  ``retry_max_seconds``) before it can be claimed again; after ``max_attempts`` attempts the job
  is "failed" and keeps the last error. Completing or failing checks the worker still holds the
  job and raises :class:`~dialer.transcripts.errors.LeaseLost` otherwise.

Every function takes a session; the caller commits (keep claim transactions short).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dialer.errors import ValidationFailed
from dialer.models import Call, utc_now
from dialer.transcripts.errors import LeaseLost
from dialer.transcripts.models import JobState, TranscriptionJob

LEASE_LOST_ERROR = "the worker stopped before finishing (lease expired)"
MAX_ERROR_LENGTH = 2000
STATUS_LIST_LIMIT = 20


@dataclass(frozen=True)
class QueueSettings:
    """How long a claim lasts, how often to try and how long to wait between tries.

    From the environment (:func:`load_queue_settings`): DIALER_TRANSCRIPTION_LEASE_SECONDS,
    DIALER_TRANSCRIPTION_MAX_ATTEMPTS, DIALER_TRANSCRIPTION_RETRY_SECONDS.
    """

    lease_seconds: float = 120.0
    max_attempts: int = 5
    retry_base_seconds: float = 30.0
    retry_max_seconds: float = 3600.0

    def __post_init__(self) -> None:
        if self.lease_seconds <= 0:
            raise ValidationFailed("lease_seconds", "must be positive")
        if self.max_attempts < 1:
            raise ValidationFailed("max_attempts", "must be at least 1")
        if self.retry_base_seconds < 0 or self.retry_max_seconds < 0:
            raise ValidationFailed("retry_base_seconds", "must not be negative")


def load_queue_settings(environ: Mapping[str, str] = os.environ) -> QueueSettings:
    """Queue settings from DIALER_TRANSCRIPTION_* variables (defaults where absent)."""
    defaults = QueueSettings()

    def number(name: str, default: float) -> float:
        text = environ.get(name)
        if not text:
            return default
        try:
            return float(text)
        except ValueError:
            raise ValidationFailed(name, "must be a number") from None

    return QueueSettings(
        lease_seconds=number("DIALER_TRANSCRIPTION_LEASE_SECONDS", defaults.lease_seconds),
        max_attempts=int(number("DIALER_TRANSCRIPTION_MAX_ATTEMPTS", defaults.max_attempts)),
        retry_base_seconds=number(
            "DIALER_TRANSCRIPTION_RETRY_SECONDS", defaults.retry_base_seconds
        ),
        retry_max_seconds=defaults.retry_max_seconds,
    )


def retry_delay_seconds(attempts: int, settings: QueueSettings) -> float:
    """The wait after the ``attempts``-th failed attempt (1, 2, ...): exponential, capped."""
    exponent = max(0, attempts - 1)
    if exponent > 60:
        return settings.retry_max_seconds
    return float(min(settings.retry_base_seconds * 2**exponent, settings.retry_max_seconds))


@dataclass(frozen=True)
class ClaimedJob:
    """A job a worker holds until ``lease_expires_at`` (unless it renews the lease)."""

    job_id: int
    call_id: int
    worker_id: str
    attempt: int
    max_attempts: int
    lease_expires_at: datetime


async def enqueue_transcription(
    session: AsyncSession,
    call_id: int,
    *,
    now: datetime | None = None,
    max_attempts: int | None = None,
) -> TranscriptionJob:
    """Queue the transcription of call ``call_id`` (call it when its recording is stored).

    One job per call: a queued or running job is left as it is; a done or failed one is queued
    again from scratch (a new recording, or a retry asked by a person). The caller commits,
    ideally in the transaction that stores the recording row, so neither exists without the other.
    """
    now = now if now is not None else utc_now()
    if await session.get(Call, call_id) is None:
        raise ValidationFailed("call_id", f"no call {call_id}")
    job = (
        await session.scalars(
            select(TranscriptionJob)
            .where(TranscriptionJob.call_id == call_id)
            .execution_options(populate_existing=True)
        )
    ).one_or_none()
    if job is None:
        job = TranscriptionJob(
            call_id=call_id,
            state=JobState.QUEUED.value,
            attempts=0,
            max_attempts=max_attempts or QueueSettings().max_attempts,
            available_at=now,
            progress=0.0,
            created_at=now,
            updated_at=now,
        )
        session.add(job)
    elif job.state in (JobState.DONE.value, JobState.FAILED.value):
        job.state = JobState.QUEUED.value
        job.attempts = 0
        job.available_at = now
        job.progress = 0.0
        job.worker_id = None
        job.lease_expires_at = None
        job.last_error = None
        job.finished_at = None
        job.updated_at = now
        if max_attempts is not None:
            job.max_attempts = max_attempts
    await session.flush()
    return job


async def release_expired_leases(session: AsyncSession, *, now: datetime | None = None) -> int:
    """Return running jobs whose lease expired to the queue (or fail them when they have used
    all their attempts). Returns how many were released."""
    now = now if now is not None else utc_now()
    out_of_attempts = TranscriptionJob.attempts >= TranscriptionJob.max_attempts
    result = await session.execute(
        update(TranscriptionJob)
        .where(
            TranscriptionJob.state == JobState.RUNNING.value,
            TranscriptionJob.lease_expires_at < now,
        )
        .values(
            state=case((out_of_attempts, JobState.FAILED.value), else_=JobState.QUEUED.value),
            finished_at=case((out_of_attempts, now), else_=None),
            worker_id=None,
            lease_expires_at=None,
            available_at=now,
            last_error=LEASE_LOST_ERROR,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def claim_job(
    session: AsyncSession,
    worker_id: str,
    settings: QueueSettings,
    *,
    now: datetime | None = None,
) -> ClaimedJob | None:
    """Claim the oldest ready job for ``worker_id`` (None when nothing is ready).

    The claiming worker's ``settings.max_attempts`` becomes the job's limit.
    Expired leases are released first. The caller commits right away: the claim only holds
    once committed, and the row lock (PostgreSQL) or write lock (SQLite) is held until then.
    """
    now = now if now is not None else utc_now()
    await release_expired_leases(session, now=now)
    lease_expires_at = now + timedelta(seconds=settings.lease_seconds)
    oldest_ready = (
        select(TranscriptionJob.id)
        .where(
            TranscriptionJob.state == JobState.QUEUED.value,
            TranscriptionJob.available_at <= now,
        )
        .order_by(TranscriptionJob.available_at, TranscriptionJob.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    row = (
        await session.execute(
            update(TranscriptionJob)
            .where(
                TranscriptionJob.id == oldest_ready,
                TranscriptionJob.state == JobState.QUEUED.value,
            )
            .values(
                state=JobState.RUNNING.value,
                worker_id=worker_id,
                lease_expires_at=lease_expires_at,
                attempts=TranscriptionJob.attempts + 1,
                max_attempts=settings.max_attempts,
                progress=0.0,
                started_at=now,
                updated_at=now,
            )
            .returning(
                TranscriptionJob.id,
                TranscriptionJob.call_id,
                TranscriptionJob.attempts,
                TranscriptionJob.max_attempts,
            )
            .execution_options(synchronize_session=False)
        )
    ).one_or_none()
    if row is None:
        return None
    return ClaimedJob(
        job_id=row.id,
        call_id=row.call_id,
        worker_id=worker_id,
        attempt=row.attempts,
        max_attempts=row.max_attempts,
        lease_expires_at=lease_expires_at,
    )


def _held_by(claim: ClaimedJob) -> tuple[object, ...]:
    return (
        TranscriptionJob.id == claim.job_id,
        TranscriptionJob.state == JobState.RUNNING.value,
        TranscriptionJob.worker_id == claim.worker_id,
    )


async def _update_held(session: AsyncSession, claim: ClaimedJob, **values: object) -> None:
    result = await session.execute(
        update(TranscriptionJob)
        .where(*_held_by(claim))  # type: ignore[arg-type]
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if not getattr(result, "rowcount", 0):
        raise LeaseLost(claim.job_id, claim.worker_id)


async def renew_lease(
    session: AsyncSession,
    claim: ClaimedJob,
    settings: QueueSettings,
    *,
    progress: float | None = None,
    now: datetime | None = None,
) -> datetime:
    """Extend the lease by ``lease_seconds`` from ``now`` and record ``progress`` (0..1).
    Returns the new expiry; raises LeaseLost when the job is no longer this worker's."""
    now = now if now is not None else utc_now()
    expires = now + timedelta(seconds=settings.lease_seconds)
    values: dict[str, object] = {"lease_expires_at": expires, "updated_at": now}
    if progress is not None:
        values["progress"] = min(1.0, max(0.0, progress))
    await _update_held(session, claim, **values)
    return expires


async def complete_job(
    session: AsyncSession, claim: ClaimedJob, *, now: datetime | None = None
) -> None:
    """Mark the job done (store its transcript in the same transaction). Raises LeaseLost."""
    now = now if now is not None else utc_now()
    await _update_held(
        session,
        claim,
        state=JobState.DONE.value,
        progress=1.0,
        worker_id=None,
        lease_expires_at=None,
        last_error=None,
        finished_at=now,
        updated_at=now,
    )


async def fail_job(
    session: AsyncSession,
    claim: ClaimedJob,
    error: str,
    settings: QueueSettings,
    *,
    now: datetime | None = None,
) -> JobState:
    """Record a failed attempt: back to the queue after the backoff delay, or "failed" when it
    was the last attempt. Returns the new state; raises LeaseLost."""
    now = now if now is not None else utc_now()
    message = error[:MAX_ERROR_LENGTH] or "unknown error"
    if claim.attempt >= claim.max_attempts:
        await _update_held(
            session,
            claim,
            state=JobState.FAILED.value,
            worker_id=None,
            lease_expires_at=None,
            last_error=message,
            finished_at=now,
            updated_at=now,
        )
        return JobState.FAILED
    delay = timedelta(seconds=retry_delay_seconds(claim.attempt, settings))
    await _update_held(
        session,
        claim,
        state=JobState.QUEUED.value,
        worker_id=None,
        lease_expires_at=None,
        available_at=now + delay,
        last_error=message,
        updated_at=now,
    )
    return JobState.QUEUED


async def job_of_call(session: AsyncSession, call_id: int) -> TranscriptionJob | None:
    """The transcription job of a call (no visibility check: the caller did it)."""
    return (
        await session.scalars(
            select(TranscriptionJob)
            .where(TranscriptionJob.call_id == call_id)
            .execution_options(populate_existing=True)
        )
    ).one_or_none()


@dataclass(frozen=True)
class QueueStatus:
    """Backlog and progress of the queue at ``now``.

    ``ready``: queued and claimable now; ``waiting_retry``: queued, waiting for a backoff;
    ``backlog`` = ready + waiting_retry + running. ``running_jobs`` and ``failed_jobs``
    (newest first) are capped at ``STATUS_LIST_LIMIT``.
    """

    ready: int
    waiting_retry: int
    running: int
    done: int
    failed: int
    oldest_ready_since: datetime | None
    running_jobs: Sequence[TranscriptionJob]
    failed_jobs: Sequence[TranscriptionJob]

    @property
    def backlog(self) -> int:
        return self.ready + self.waiting_retry + self.running


async def queue_status(session: AsyncSession, *, now: datetime | None = None) -> QueueStatus:
    now = now if now is not None else utc_now()
    ready = case((TranscriptionJob.available_at <= now, 1), else_=0)
    rows = (
        await session.execute(
            select(
                TranscriptionJob.state,
                ready,
                func.count(),
                func.min(TranscriptionJob.available_at),
            ).group_by(TranscriptionJob.state, ready)
        )
    ).all()
    counts: dict[tuple[str, bool], int] = {}
    oldest_ready: datetime | None = None
    for state, is_ready, count, oldest in rows:
        counts[(state, bool(is_ready))] = count
        if state == JobState.QUEUED.value and is_ready:
            oldest_ready = oldest

    def total(state: JobState) -> int:
        return counts.get((state.value, True), 0) + counts.get((state.value, False), 0)

    running_jobs = (
        await session.scalars(
            select(TranscriptionJob)
            .where(TranscriptionJob.state == JobState.RUNNING.value)
            .order_by(TranscriptionJob.started_at, TranscriptionJob.id)
            .limit(STATUS_LIST_LIMIT)
        )
    ).all()
    failed_jobs = (
        await session.scalars(
            select(TranscriptionJob)
            .where(TranscriptionJob.state == JobState.FAILED.value)
            .order_by(TranscriptionJob.finished_at.desc(), TranscriptionJob.id.desc())
            .limit(STATUS_LIST_LIMIT)
        )
    ).all()
    return QueueStatus(
        ready=counts.get((JobState.QUEUED.value, True), 0),
        waiting_retry=counts.get((JobState.QUEUED.value, False), 0),
        running=total(JobState.RUNNING),
        done=total(JobState.DONE),
        failed=total(JobState.FAILED),
        oldest_ready_since=oldest_ready,
        running_jobs=running_jobs,
        failed_jobs=failed_jobs,
    )
