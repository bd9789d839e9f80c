"""The transcription job queue on SQLite and PostgreSQL: claims, leases, retries, status.

Time is passed explicitly (``now=``), so backoff and lease expiry are tested without sleeping.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.calls import create_call
from dialer.errors import ValidationFailed
from dialer.transcripts.errors import LeaseLost
from dialer.transcripts.models import JobState
from dialer.transcripts.queue import (
    LEASE_LOST_ERROR,
    ClaimedJob,
    QueueSettings,
    claim_job,
    complete_job,
    enqueue_transcription,
    fail_job,
    job_of_call,
    queue_status,
    renew_lease,
    retry_delay_seconds,
)
from tests.conftest import People

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SETTINGS = QueueSettings(lease_seconds=60, max_attempts=3, retry_base_seconds=10)


async def _calls(
    session_factory: async_sessionmaker[AsyncSession], people: People, count: int
) -> list[int]:
    async with session_factory() as session:
        ids = []
        for index in range(count):
            call = await create_call(
                session, people.north_operator.actor, f"+7916555{index:04d}", now=START
            )
            ids.append(call.id)
        await session.commit()
    return ids


async def _enqueue(
    session_factory: async_sessionmaker[AsyncSession], call_ids: list[int], now: datetime = START
) -> None:
    async with session_factory() as session:
        for call_id in call_ids:
            await enqueue_transcription(session, call_id, now=now)
        await session.commit()


async def _claim(
    session_factory: async_sessionmaker[AsyncSession],
    worker_id: str,
    now: datetime,
    settings: QueueSettings = SETTINGS,
) -> ClaimedJob | None:
    async with session_factory() as session:
        claim = await claim_job(session, worker_id, settings, now=now)
        await session.commit()
        return claim


async def test_jobs_are_claimed_oldest_first_once_each(
    session_factory: async_sessionmaker[AsyncSession], people: People
) -> None:
    first, second = await _calls(session_factory, people, 2)
    await _enqueue(session_factory, [first], START)
    await _enqueue(session_factory, [second], START + timedelta(seconds=1))
    await _enqueue(session_factory, [first], START + timedelta(seconds=2))  # no duplicate
    now = START + timedelta(seconds=5)
    claims = [await _claim(session_factory, f"w{index}", now) for index in range(3)]
    assert [(claim.call_id if claim else None) for claim in claims] == [first, second, None]
    async with session_factory() as session:
        job = await job_of_call(session, first)
        assert job is not None
        assert job.state == JobState.RUNNING.value
        assert job.worker_id == "w0"
        assert job.attempts == 1
        assert job.lease_expires_at == now + timedelta(seconds=SETTINGS.lease_seconds)


async def test_concurrent_claimers_never_share_a_job(
    session_factory: async_sessionmaker[AsyncSession], people: People
) -> None:
    call_ids = await _calls(session_factory, people, 6)
    await _enqueue(session_factory, call_ids)
    now = START + timedelta(seconds=1)
    claims = await asyncio.gather(
        *(_claim(session_factory, f"worker-{index}", now) for index in range(8))
    )
    claimed = [claim.call_id for claim in claims if claim is not None]
    assert sorted(claimed) == sorted(call_ids)


async def test_failed_attempts_back_off_exponentially_then_fail_keeping_the_error(
    session_factory: async_sessionmaker[AsyncSession], people: People
) -> None:
    (call_id,) = await _calls(session_factory, people, 1)
    await _enqueue(session_factory, [call_id])
    now = START
    waits = []
    for attempt in range(1, SETTINGS.max_attempts + 1):
        claim = await _claim(session_factory, "w", now)
        assert claim is not None, f"attempt {attempt} was not claimable at {now}"
        async with session_factory() as session:
            state = await fail_job(session, claim, f"broken file #{attempt}", SETTINGS, now=now)
            await session.commit()
            job = await job_of_call(session, call_id)
        assert job is not None
        if attempt < SETTINGS.max_attempts:
            assert state is JobState.QUEUED
            wait = job.available_at - now
            waits.append(wait.total_seconds())
            # Not claimable a moment before the backoff ends, claimable right at its end.
            assert await _claim(session_factory, "w", now + wait - timedelta(seconds=1)) is None
            now += wait
        else:
            assert state is JobState.FAILED
            assert job.state == JobState.FAILED.value
            assert job.last_error == f"broken file #{attempt}"
            assert job.attempts == SETTINGS.max_attempts
    assert waits == [10.0, 20.0]
    assert await _claim(session_factory, "w", now + timedelta(days=1)) is None


def test_retry_delay_is_capped() -> None:
    settings = QueueSettings(retry_base_seconds=30, retry_max_seconds=3600)
    assert [retry_delay_seconds(n, settings) for n in (1, 2, 3, 8, 200)] == [
        30.0,
        60.0,
        120.0,
        3600.0,
        3600.0,
    ]
    with pytest.raises(ValidationFailed):
        QueueSettings(max_attempts=0)


async def test_an_expired_lease_returns_the_job_to_another_worker(
    session_factory: async_sessionmaker[AsyncSession], people: People
) -> None:
    (call_id,) = await _calls(session_factory, people, 1)
    await _enqueue(session_factory, [call_id])
    lost = await _claim(session_factory, "dead-worker", START)
    assert lost is not None
    # Renewing keeps it: a lease renewed at +50 s lasts until +110 s.
    async with session_factory() as session:
        await renew_lease(session, lost, SETTINGS, progress=0.4, now=START + timedelta(seconds=50))
        await session.commit()
    assert await _claim(session_factory, "other", START + timedelta(seconds=100)) is None
    async with session_factory() as session:
        status = await queue_status(session, now=START + timedelta(seconds=100))
    assert (status.running, status.ready) == (1, 0)
    assert status.running_jobs[0].progress == pytest.approx(0.4)
    taken = await _claim(session_factory, "other", START + timedelta(seconds=111))
    assert taken is not None
    assert taken.attempt == 2
    async with session_factory() as session:
        job = await job_of_call(session, call_id)
        assert job is not None
        assert job.last_error == LEASE_LOST_ERROR
        assert job.worker_id == "other"
        # The worker that lost its lease can neither renew nor complete.
        with pytest.raises(LeaseLost):
            await renew_lease(session, lost, SETTINGS)
        with pytest.raises(LeaseLost):
            await complete_job(session, lost)
        await complete_job(session, taken)
        await session.commit()
        job = await job_of_call(session, call_id)
        assert job is not None
        assert (job.state, job.progress, job.last_error) == (JobState.DONE.value, 1.0, None)


async def test_a_job_whose_workers_keep_dying_fails_after_its_attempts(
    session_factory: async_sessionmaker[AsyncSession], people: People
) -> None:
    (call_id,) = await _calls(session_factory, people, 1)
    await _enqueue(session_factory, [call_id])
    now = START
    for _ in range(SETTINGS.max_attempts):
        assert await _claim(session_factory, "crashing", now) is not None
        now += timedelta(seconds=SETTINGS.lease_seconds + 1)
    assert await _claim(session_factory, "crashing", now) is None
    async with session_factory() as session:
        job = await job_of_call(session, call_id)
        status = await queue_status(session, now=now)
    assert job is not None
    assert (job.state, job.last_error) == (JobState.FAILED.value, LEASE_LOST_ERROR)
    assert (status.failed, status.backlog) == (1, 0)
    assert [failed.call_id for failed in status.failed_jobs] == [call_id]


async def test_status_counts_the_backlog_and_done_jobs_can_be_queued_again(
    session_factory: async_sessionmaker[AsyncSession], people: People
) -> None:
    call_ids = await _calls(session_factory, people, 4)
    await _enqueue(session_factory, call_ids)
    now = START + timedelta(seconds=1)
    done = await _claim(session_factory, "w", now)
    retry = await _claim(session_factory, "w", now)
    await _claim(session_factory, "w", now)  # stays running
    assert done is not None
    assert retry is not None
    async with session_factory() as session:
        await complete_job(session, done, now=now)
        await fail_job(session, retry, "decoder error", SETTINGS, now=now)
        await session.commit()
        status = await queue_status(session, now=now)
    assert (status.ready, status.waiting_retry, status.running, status.done, status.failed) == (
        1,
        1,
        1,
        1,
        0,
    )
    assert status.backlog == 3
    assert status.oldest_ready_since == START
    async with session_factory() as session:
        job = await enqueue_transcription(session, done.call_id, now=now)
        await session.commit()
        assert (job.state, job.attempts) == (JobState.QUEUED.value, 0)
        with pytest.raises(ValidationFailed):
            await enqueue_transcription(session, 987654)
