"""``dialer worker``: processes that take transcription jobs from the queue and run Vosk.

* One :class:`~recordings.transcription.SpeechModel` per process, loaded once and shared by
  the process's ``threads`` job slots (a Vosk model is safe to share; each job makes its own
  recognisers). Several processes (``--processes N``) each load their own model.
* A slot loops: claim a job (short transaction), transcribe the call's newest recording in a
  thread while the event loop renews the job's lease and records progress, then store the
  utterances (speaker, times, words with timings) and mark the job done in one transaction.
* Any failure of one recording (missing or undecodable file, decoder error) fails that job's
  attempt only (retried with backoff, then "failed" with the error kept); the slot goes on with
  the next job. If the lease was lost meanwhile (the worker hung past it and another worker took
  the job), the result is thrown away.
* ``drain``: stop once nothing is queued or running (tests, catch-up runs); otherwise poll.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.models import Recording
from dialer.storage import create_engine, create_session_factory
from dialer.transcripts.errors import LeaseLost, RecordingUnavailableError
from dialer.transcripts.models import JobState, TranscriptionJob
from dialer.transcripts.queue import (
    ClaimedJob,
    QueueSettings,
    claim_job,
    complete_job,
    fail_job,
    renew_lease,
)
from dialer.transcripts.store import save_transcript
from recordings.errors import RecordingError, UnsafeNameError
from recordings.layout import RecordingLayout
from recordings.transcription import (
    CALL_SAMPLE_RATE,
    Speaker,
    SpeechModel,
    TranscriptionSettings,
    Utterance,
    read_stereo_recording,
    transcribe_channel,
)

logger = logging.getLogger(__name__)

MAX_HEARTBEAT_SECONDS = 10.0


@dataclass(frozen=True)
class WorkerOptions:
    database_url: str
    recordings_dir: Path
    model_path: Path
    threads: int = 1
    queue: QueueSettings = field(default_factory=QueueSettings)
    poll_seconds: float = 2.0
    drain: bool = False
    transcription: TranscriptionSettings = field(default_factory=TranscriptionSettings)

    @property
    def heartbeat_seconds(self) -> float:
        return min(self.queue.lease_seconds / 3, MAX_HEARTBEAT_SECONDS)


@dataclass
class WorkerReport:
    """What one worker process did."""

    done: int = 0
    retried: int = 0
    failed: int = 0
    lost: int = 0


class _Progress:
    """Progress of one job, written by its thread and read by the event loop."""

    def __init__(self) -> None:
        self.fraction = 0.0


def worker_name() -> str:
    return f"{socket.gethostname()}/{os.getpid()}"


def transcribe_file(
    model: SpeechModel,
    path: Path,
    settings: TranscriptionSettings,
    progress: Callable[[float], None],
) -> list[Utterance]:
    """The dialogue of the recording at ``path``, like ``transcribe_recording`` but one side
    after the other so ``progress`` (0..1) can follow it. Runs in a worker thread."""
    stereo = read_stereo_recording(path)
    progress(0.05)
    dialogue: list[Utterance] = []
    sides: tuple[Speaker, Speaker] = ("operator", "customer")
    for index, speaker in enumerate(sides):
        samples = np.ascontiguousarray(stereo[:, index])
        dialogue.extend(transcribe_channel(model, samples, speaker, settings, CALL_SAMPLE_RATE))
        progress(0.05 + 0.45 * (index + 1))
    dialogue.sort(key=lambda utterance: (utterance.start, utterance.speaker))
    return dialogue


class TranscriptionWorker:
    """Job slots of one process sharing one model (see the module docstring)."""

    def __init__(
        self,
        options: WorkerOptions,
        model: SpeechModel,
        session_factory: async_sessionmaker[AsyncSession],
        *,
        name: str | None = None,
    ) -> None:
        self.options = options
        self.model = model
        self.session_factory = session_factory
        self.name = name or worker_name()
        self.layout = RecordingLayout(options.recordings_dir)
        self.report = WorkerReport()

    async def run(self, stop: asyncio.Event | None = None) -> WorkerReport:
        """Run ``threads`` slots until ``stop`` is set (or, draining, the queue is empty)."""
        stop = stop or asyncio.Event()
        with ThreadPoolExecutor(
            max_workers=self.options.threads, thread_name_prefix="transcription"
        ) as executor:
            await asyncio.gather(
                *(
                    self._slot(f"{self.name}/{slot}", executor, stop)
                    for slot in range(self.options.threads)
                )
            )
        return self.report

    async def _slot(
        self, worker_id: str, executor: ThreadPoolExecutor, stop: asyncio.Event
    ) -> None:
        while not stop.is_set():
            claim = await self._claim(worker_id)
            if claim is not None:
                await self._process(claim, executor)
                continue
            if self.options.drain and not await self._work_remains():
                return
            try:
                await asyncio.wait_for(stop.wait(), self.options.poll_seconds)
            except TimeoutError:
                continue

    async def _claim(self, worker_id: str) -> ClaimedJob | None:
        try:
            async with self.session_factory() as session:
                claim = await claim_job(session, worker_id, self.options.queue)
                await session.commit()
                return claim
        except SQLAlchemyError:
            logger.exception("could not claim a transcription job; retrying later")
            return None

    async def _work_remains(self) -> bool:
        async with self.session_factory() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(TranscriptionJob)
                .where(TranscriptionJob.state.in_((JobState.QUEUED.value, JobState.RUNNING.value)))
            )
        return bool(count)

    async def _recording_of(self, call_id: int) -> tuple[Recording, Path]:
        async with self.session_factory() as session:
            recording = (
                await session.scalars(
                    select(Recording)
                    .where(Recording.call_id == call_id, Recording.deleted_at.is_(None))
                    .order_by(Recording.id.desc())
                    .limit(1)
                )
            ).first()
        if recording is None:
            raise RecordingUnavailableError(f"call {call_id} has no recording")
        try:
            path = self.layout.resolve(recording.path)
        except UnsafeNameError as error:
            raise RecordingUnavailableError(str(error)) from error
        if not path.is_file():
            raise RecordingUnavailableError(f"the recording file {recording.path} is missing")
        return recording, path

    async def _process(self, claim: ClaimedJob, executor: ThreadPoolExecutor) -> None:
        logger.info(
            "transcribing call %d (job %d, attempt %d/%d)",
            claim.call_id,
            claim.job_id,
            claim.attempt,
            claim.max_attempts,
        )
        progress = _Progress()
        lease_lost = asyncio.Event()
        heartbeat = asyncio.create_task(self._heartbeat(claim, progress, lease_lost))
        try:
            recording, path = await self._recording_of(claim.call_id)

            def report(fraction: float) -> None:
                progress.fraction = fraction

            loop = asyncio.get_running_loop()
            dialogue = await loop.run_in_executor(
                executor,
                transcribe_file,
                self.model,
                path,
                self.options.transcription,
                report,
            )
        except (RecordingError, RecordingUnavailableError, OSError, ValueError) as error:
            await self._fail(claim, f"{type(error).__name__}: {error}", heartbeat)
            return
        except Exception as error:  # one odd file must never stop the worker
            logger.exception("unexpected error transcribing call %d", claim.call_id)
            await self._fail(claim, f"{type(error).__name__}: {error}", heartbeat)
            return
        heartbeat.cancel()
        if lease_lost.is_set():
            self.report.lost += 1
            logger.warning("job %d was taken over; dropping its transcript", claim.job_id)
            return
        try:
            async with self.session_factory() as session:
                await complete_job(session, claim)
                await save_transcript(
                    session,
                    claim.call_id,
                    dialogue,
                    recording_id=recording.id,
                    model=self.model.path.name,
                )
                await session.commit()
        except LeaseLost:
            self.report.lost += 1
            logger.warning("job %d was taken over; dropping its transcript", claim.job_id)
            return
        self.report.done += 1
        logger.info("call %d transcribed: %d utterances", claim.call_id, len(dialogue))

    async def _fail(self, claim: ClaimedJob, message: str, heartbeat: asyncio.Task[None]) -> None:
        heartbeat.cancel()
        logger.warning("transcription of call %d failed: %s", claim.call_id, message)
        try:
            async with self.session_factory() as session:
                state = await fail_job(session, claim, message, self.options.queue)
                await session.commit()
        except LeaseLost:
            self.report.lost += 1
            return
        if state is JobState.FAILED:
            self.report.failed += 1
        else:
            self.report.retried += 1

    async def _heartbeat(
        self, claim: ClaimedJob, progress: _Progress, lease_lost: asyncio.Event
    ) -> None:
        while True:
            await asyncio.sleep(self.options.heartbeat_seconds)
            try:
                async with self.session_factory() as session:
                    await renew_lease(
                        session, claim, self.options.queue, progress=progress.fraction
                    )
                    await session.commit()
            except LeaseLost:
                lease_lost.set()
                return
            except SQLAlchemyError:
                logger.exception("could not renew the lease of job %d", claim.job_id)


async def run_worker(
    options: WorkerOptions, *, model: SpeechModel | None = None, stop: asyncio.Event | None = None
) -> WorkerReport:
    """One worker process's work: load the model (unless given), run the slots."""
    speech_model = model or SpeechModel(options.model_path)
    engine = create_engine(options.database_url)
    try:
        worker = TranscriptionWorker(options, speech_model, create_session_factory(engine))
        return await worker.run(stop)
    finally:
        await engine.dispose()


async def _run_until_signalled(options: WorkerOptions) -> WorkerReport:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, stop.set)
    return await run_worker(options, stop=stop)


def run_worker_process(options: WorkerOptions) -> WorkerReport:
    """The body of one worker process: stops claiming on SIGTERM/SIGINT, finishes its jobs."""
    return asyncio.run(_run_until_signalled(options))


def _child(options: WorkerOptions) -> None:
    logging.basicConfig(level=logging.INFO)
    run_worker_process(options)


def run_worker_processes(options: WorkerOptions, processes: int) -> int:
    """Run ``processes`` worker processes (1 = this process); returns an exit status."""
    if processes <= 1:
        report = run_worker_process(options)
        logger.info("worker finished: %s", report)
        return 0
    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(target=_child, args=(options,), name=f"transcription-{index}")
        for index in range(processes)
    ]
    for child in children:
        child.start()

    def forward(number: int, _frame: object) -> None:
        for child in children:
            if child.pid is not None and child.is_alive():
                os.kill(child.pid, number)

    previous = {
        number: signal.signal(number, forward) for number in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        for child in children:
            child.join()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    return 0 if all(child.exitcode == 0 for child in children) else 1
