"""Call recordings: the live stereo recorder on the audio taps, then compression and storage.

A call's recording is ``<recordings root>/YYYY/MM/DD/call-<id>.wav`` (``.wav.part`` while the
call runs; :mod:`recordings.wav_writer` writes it as the frames arrive). Left channel = the
operator, right channel = the far end, early media included. Frames carry tick timestamps in
samples on one clock for both channels (see :meth:`CallRecording.write`).

After the call :meth:`RecordingStore.store` compresses the WAV in a worker thread with
:mod:`recordings.compression` (which verifies the result before it removes the WAV), then
attaches path, codec, size, duration and SHA-256 to the call row. If compression fails, the WAV
itself is attached (nothing is lost). A call that produced no audio leaves no recording.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.calls import attach_recording
from dialer.errors import DialerError
from dialer.models import Recording
from dialer.transcripts.queue import enqueue_transcription
from recordings.compression import Codec, compress_recording, probe_audio
from recordings.errors import CompressionError, RecordingError
from recordings.hashing import sha256_of_file
from recordings.layout import RecordingLayout
from recordings.wav_format import HEADER_BYTES, seconds_of
from recordings.wav_writer import RecordingInfo, RecordingWriter, StereoRecorder

logger = logging.getLogger(__name__)

Channel = Literal["left", "right"]
WAV_CODEC = "pcm_s16le"
# A recording a locked database refused is attached again after this long, then twice as long
# each time up to the longest.
ATTACH_RETRY_FIRST_SECONDS = 0.5
ATTACH_RETRY_LONGEST_SECONDS = 10.0
RECORDING_NAME_PATTERN = re.compile(r"^call-(\d+)\.wav$")
# What compression leaves: ``call-<id>.ogg`` (Opus) or ``call-<id>.mp3``.
COMPRESSED_NAME_PATTERN = re.compile(r"^call-(\d+)\.(?:ogg|mp3)$")
_DIRECTION_OF: dict[Channel, Literal["sent", "received"]] = {"left": "sent", "right": "received"}


def recording_name(call_id: int) -> str:
    """The file name (without extension) of a call's recording."""
    return f"call-{call_id}"


def call_id_of_recording(path: Path) -> int | None:
    """The call id in a recording's ``call-<id>.wav`` name (None for other names)."""
    match = RECORDING_NAME_PATTERN.match(path.name)
    return int(match.group(1)) if match else None


def call_id_of_compressed_recording(path: Path) -> int | None:
    """The call id in a compressed recording's ``call-<id>.ogg`` / ``.mp3`` name (None for
    other names)."""
    match = COMPRESSED_NAME_PATTERN.match(path.name)
    return int(match.group(1)) if match else None


class CallRecording:
    """The live recording of one call. Call :meth:`write` from the event loop only."""

    def __init__(self, call_id: int, recorder: StereoRecorder) -> None:
        self.call_id = call_id
        self.recorder = recorder
        self.failed = False
        self.stopped = False

    @property
    def wav_path(self) -> Path:
        return self.recorder.path

    def write(self, channel: Channel, frame: bytes, tick_samples: int) -> None:
        """One 20 ms frame of ``channel`` at ``tick_samples`` (8 kHz samples on the call's
        shared media-clock timeline). Never raises: a failing disk stops the recording and
        is logged once, the call goes on."""
        if self.failed or self.stopped:
            return
        try:
            self.recorder.write_frame(_DIRECTION_OF[channel], frame, tick_samples)
        except RecordingError as error:
            self.failed = True
            logger.error("recording of call %d stopped: %s", self.call_id, error)

    def write_tick(self, sent: bytes | None, received: bytes | None, tick_samples: int) -> None:
        """Both channels' frames of one tick (either may be None: that side had none), in one
        call: what :meth:`write` does for each (a stream's duplex tap)."""
        if self.failed or self.stopped:
            return
        try:
            self.recorder.write_frames(sent, received, tick_samples)
        except RecordingError as error:
            self.failed = True
            logger.error("recording of call %d stopped: %s", self.call_id, error)

    async def finish(self) -> RecordingInfo | None:
        """Close the file (renamed from ``.part`` to ``.wav``); None if the writer failed.
        Frames written after this are ignored."""
        self.stopped = True
        try:
            return await self.recorder.aclose()
        except RecordingError as error:
            logger.error("recording of call %d could not be finished: %s", self.call_id, error)
            return None


@dataclass(frozen=True, slots=True)
class StoredFile:
    """A recording file ready to be attached to its call."""

    path: Path
    codec: str
    size_bytes: int
    duration_seconds: float
    sha256: str
    channels: int = 2


class RecordingStore:
    """Starts recorders and stores finished recordings; one per call service."""

    def __init__(
        self,
        root: Path,
        writer: RecordingWriter,
        executor: Executor,
        session_factory: async_sessionmaker[AsyncSession],
        *,
        codec: Codec = "opus",
        bitrate_kbps: int | None = None,
    ) -> None:
        self.layout = RecordingLayout(root)
        self._writer = writer
        self._executor = executor
        self._session_factory = session_factory
        self._codec: Codec = codec
        self._bitrate_kbps = bitrate_kbps
        # Set by the call service on SQLite: one transaction at a time.
        self.write_turn: contextlib.AbstractAsyncContextManager[object] = contextlib.nullcontext()

    @property
    def root(self) -> Path:
        return self.layout.root

    def start(self, call_id: int, started_at: datetime) -> CallRecording:
        """A recorder writing ``call-<id>.wav.part`` under the date of ``started_at``."""
        path = self.layout.path_for(recording_name(call_id), started_at, "wav")
        return CallRecording(call_id, StereoRecorder(path, self._writer))

    async def store(self, recording: CallRecording) -> Recording | None:
        """Finish, compress and attach a call's recording; None when there is nothing to keep."""
        info = await recording.finish()
        if info is None:
            return None
        if info.data_bytes == 0:
            await asyncio.get_running_loop().run_in_executor(
                self._executor, _remove_empty, info.path
            )
            return None
        return await self.store_file(recording.call_id, info.path)

    async def store_file(self, call_id: int, wav_path: Path) -> Recording | None:
        """Compress ``wav_path`` (a finished stereo WAV) and attach it to call ``call_id``.

        While the database is locked or unreachable the attachment is tried again, after
        ``ATTACH_RETRY_FIRST_SECONDS`` and then twice as long each time (up to
        ``ATTACH_RETRY_LONGEST_SECONDS``), until it is written or the task is cancelled (at
        shutdown: start-up recovery attaches the file then, ``dialer.telephony.recovery``)."""
        loop = asyncio.get_running_loop()
        stored = await loop.run_in_executor(self._executor, self._compress_or_keep, wav_path)
        try:
            return await self._attach_until_written(call_id, stored)
        except asyncio.CancelledError:
            logger.error(
                "recording %s was not attached to call %d before shutdown; the next start "
                "attaches it",
                stored.path,
                call_id,
            )
            raise

    async def attach_compressed(self, call_id: int, path: Path) -> Recording | None:
        """Attach an already compressed recording (``call-<id>.ogg`` / ``.mp3``, e.g. one whose
        attachment a database refused until shutdown) to call ``call_id``, with what ffprobe
        and its checksum say of it; None (logged) when it is not readable audio."""
        loop = asyncio.get_running_loop()
        try:
            stored = await loop.run_in_executor(self._executor, _describe_compressed, path)
        except (CompressionError, OSError) as error:
            logger.error("recording %s could not be attached to call %d: %s", path, call_id, error)
            return None
        return await self._attach_until_written(call_id, stored)

    async def _attach_until_written(self, call_id: int, stored: StoredFile) -> Recording | None:
        delay = ATTACH_RETRY_FIRST_SECONDS
        while True:
            try:
                return await self._attach(call_id, stored)
            except OperationalError as error:
                logger.warning(
                    "recording %s not attached to call %d yet (%s); trying again in %.1f s",
                    stored.path,
                    call_id,
                    error,
                    delay,
                )
            except (SQLAlchemyError, DialerError, RecordingError) as error:
                logger.error(
                    "recording %s could not be attached to call %d: %s",
                    stored.path,
                    call_id,
                    error,
                )
                return None
            await asyncio.sleep(delay)
            delay = min(delay * 2, ATTACH_RETRY_LONGEST_SECONDS)

    async def _attach(self, call_id: int, stored: StoredFile) -> Recording:
        async with self.write_turn, self._session_factory() as session:
            row = await attach_recording(
                session,
                call_id,
                path=self.layout.relative(stored.path),
                codec=stored.codec,
                size_bytes=stored.size_bytes,
                duration_seconds=stored.duration_seconds,
                sha256=stored.sha256,
                channels=stored.channels,
            )
            # Queued in the same transaction: a stored recording always gets transcribed.
            await enqueue_transcription(session, call_id)
            await session.commit()
            return row

    def _compress_or_keep(self, wav_path: Path) -> StoredFile:
        """Runs in a worker thread."""
        try:
            compressed = compress_recording(
                wav_path, codec=self._codec, bitrate_kbps=self._bitrate_kbps
            )
        except CompressionError as error:
            logger.error("keeping %s uncompressed: %s", wav_path, error)
            size = wav_path.stat().st_size
            return StoredFile(
                path=wav_path,
                codec=WAV_CODEC,
                size_bytes=size,
                duration_seconds=seconds_of(max(0, size - HEADER_BYTES)),
                sha256=sha256_of_file(wav_path),
            )
        return StoredFile(
            path=compressed.path,
            codec=compressed.codec,
            size_bytes=compressed.size_bytes,
            duration_seconds=compressed.duration_seconds,
            sha256=compressed.sha256,
            channels=compressed.channels,
        )


def _describe_compressed(path: Path) -> StoredFile:
    """Runs in a worker thread."""
    probe = probe_audio(path)
    return StoredFile(
        path=path,
        codec=probe.codec,
        size_bytes=path.stat().st_size,
        duration_seconds=probe.duration_seconds,
        sha256=sha256_of_file(path),
        channels=probe.channels,
    )


def _remove_empty(path: Path) -> None:
    path.unlink(missing_ok=True)
