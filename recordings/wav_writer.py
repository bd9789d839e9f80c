"""Record a call as a stereo WAV file while the frames arrive, safely against kill -9.

Design (for asyncio callers, e.g. the SIP media tap):

* :meth:`StereoRecorder.write_frame` is called on the event loop for every 20 ms frame of each
  direction. It does no I/O and no numpy work: it puts the frame's bytes into a per-channel list
  at the 20 ms *slot* given by its media timestamp (the first frame of either side is slot 0, so
  early media starts the recording). Slots a side has nothing for stay empty and become silence.
* Slots are *committed* once they are older than the newest slot of either side by
  ``reorder_window_seconds`` (so a side that is silent, late to start or gone does not hold the
  other one back). Frames arriving for a committed slot, or stamped before the first frame of
  the call, are counted as late and dropped.
* Every ``flush_interval_seconds`` of committed audio, the two channels' bytes are handed to a
  :class:`RecordingWriter`: a small pool of background threads shared by all the recorders of a
  process (each recorder always goes to the same thread, so its writes stay in order). The
  thread interleaves the channels with numpy, appends them with one ``write``, rewrites the
  header (RIFF and data sizes) with one ``pwrite`` and ``fsync``s the file: three system calls
  per recorder per flush, none of them on the event loop. The event loop never waits for the
  disk. With the defaults at most 0.2 + 0.5 s of audio live only in memory, so a kill -9 loses
  less than the last second (plus the writer's own latency, normally well under a millisecond).
* The file is written as ``NAME.wav.part`` and renamed to ``NAME.wav`` on close; an unfinished
  ``.part`` left by a crash is made playable by :mod:`recordings.repair`.

Media timestamps are sample counts at 8 kHz on one timeline shared by both directions, as
``sip.media``'s stream taps give them (``tap(direction, pcm, media_timestamp)``, 160 per 20 ms
tick, the same value for the frame sent and the frame received on one tick), so
``stream.add_tap(recorder.write_frame)`` is all the wiring needed. They are rounded to the
nearest 20 ms slot; they should not run backwards by more than the reorder window.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal

import numpy as np

from recordings.errors import (
    InvalidFrameError,
    RecorderClosedError,
    RecorderFailedError,
)
from recordings.wav_format import (
    FRAME_BYTES,
    FRAME_SECONDS,
    SAMPLES_PER_FRAME,
    seconds_of,
    wav_header,
)

logger = logging.getLogger(__name__)

Direction = Literal["sent", "received"]
PART_SUFFIX = ".part"

_SILENT_FRAME = bytes(FRAME_BYTES)
_CHANNEL_OF: dict[str, int] = {"sent": 0, "received": 1}


@dataclass(frozen=True, slots=True)
class RecordingInfo:
    """What a closed recorder left on disk."""

    path: Path
    duration_seconds: float
    data_bytes: int
    late_frames_dropped: int


class RecordingWriter:
    """Background threads that do every disk operation of the recorders of one process.

    Create one per process (or per test), pass it to every :class:`StereoRecorder`, and
    :meth:`close` it at shutdown after the recorders are closed. ``threads`` > 1 lets fsyncs of
    different files overlap; a recorder's jobs always run on the same thread, in order.
    """

    def __init__(self, threads: int = 2) -> None:
        if threads < 1:
            raise ValueError("a RecordingWriter needs at least one thread")
        self._queues: list[queue.SimpleQueue[Callable[[], None] | None]] = [
            queue.SimpleQueue() for _ in range(threads)
        ]
        self._threads = [
            threading.Thread(
                target=self._run, args=(job_queue,), name=f"recording-writer-{index}", daemon=True
            )
            for index, job_queue in enumerate(self._queues)
        ]
        self._next_lane = 0
        self._closed = False
        for thread in self._threads:
            thread.start()

    def lane(self) -> int:
        """Pick the thread for a new recorder (round robin)."""
        lane = self._next_lane
        self._next_lane = (lane + 1) % len(self._queues)
        return lane

    def submit(self, lane: int, job: Callable[[], None]) -> None:
        """Run ``job`` on the thread ``lane``, after the jobs submitted to it before."""
        if self._closed:
            raise RecorderClosedError("the recording writer is closed")
        self._queues[lane].put(job)

    def close(self) -> None:
        """Finish every submitted job, then stop the threads."""
        if self._closed:
            return
        self._closed = True
        for job_queue in self._queues:
            job_queue.put(None)
        for thread in self._threads:
            thread.join()

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @staticmethod
    def _run(job_queue: queue.SimpleQueue[Callable[[], None] | None]) -> None:
        while True:
            job = job_queue.get()
            if job is None:
                return
            job()


class _WavFile:
    """The file side of one recorder; every method runs on the recorder's writer thread."""

    def __init__(self, part_path: Path, final_path: Path) -> None:
        self.part_path = part_path
        self.final_path = final_path
        self.data_bytes = 0
        self.error: BaseException | None = None
        self._descriptor: int | None = None

    def open(self) -> None:
        if self.error is not None:
            return
        try:
            self.part_path.parent.mkdir(parents=True, exist_ok=True)
            self._descriptor = os.open(self.part_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
            os.write(self._descriptor, wav_header(0))
            os.fsync(self._descriptor)
            _fsync_directory(self.part_path.parent)
        except OSError as error:
            self._fail(error)

    def append(self, left: bytes, right: bytes) -> None:
        if self.error is not None or self._descriptor is None:
            return
        try:
            stereo = np.empty(len(left), dtype="<i2")
            stereo[0::2] = np.frombuffer(left, dtype="<i2")
            stereo[1::2] = np.frombuffer(right, dtype="<i2")
            chunk = stereo.tobytes()
            view = memoryview(chunk)
            while view:
                written = os.write(self._descriptor, view)
                view = view[written:]
            self.data_bytes += len(chunk)
            os.pwrite(self._descriptor, wav_header(self.data_bytes), 0)
            os.fsync(self._descriptor)
        except (OSError, ValueError) as error:
            self._fail(error)

    def finish(self, done: Future[int]) -> None:
        if self.error is None and self._descriptor is not None:
            try:
                os.close(self._descriptor)
                self._descriptor = None
                os.replace(self.part_path, self.final_path)
                _fsync_directory(self.final_path.parent)
            except OSError as error:
                self._fail(error)
        if self.error is not None:
            failure = RecorderFailedError(f"recording {self.final_path} failed: {self.error}")
            failure.__cause__ = self.error
            done.set_exception(failure)
        else:
            done.set_result(self.data_bytes)

    def _fail(self, error: BaseException) -> None:
        logger.error("recording %s failed: %s", self.part_path, error)
        self.error = error
        if self._descriptor is not None:
            try:
                os.close(self._descriptor)
            except OSError:
                logger.warning("could not close %s after a failure", self.part_path)
            self._descriptor = None


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class StereoRecorder:
    """One call's stereo recording: operator (``"sent"``) left, far end (``"received"``) right.

    ``path`` is the final ``.wav`` path; audio goes to ``path + ".part"`` until :meth:`close`.
    Not thread-safe: call it from one thread (the event loop).
    """

    def __init__(
        self,
        path: Path,
        writer: RecordingWriter,
        *,
        flush_interval_seconds: float = 0.5,
        reorder_window_seconds: float = 0.2,
    ) -> None:
        if flush_interval_seconds <= 0 or reorder_window_seconds < 0:
            raise ValueError("flush interval must be positive, reorder window not negative")
        self.path = path
        self.part_path = path.with_name(path.name + PART_SUFFIX)
        self._writer = writer
        self._lane = writer.lane()
        self._file = _WavFile(self.part_path, path)
        self._flush_slots = max(1, round(flush_interval_seconds / FRAME_SECONDS))
        self._reorder_slots = round(reorder_window_seconds / FRAME_SECONDS)
        self._origin: int | None = None
        self._base_slot = 0  # first slot not yet committed
        self._pending: tuple[list[bytes | None], list[bytes | None]] = ([], [])
        self._newest_slot = [-1, -1]
        self._late_frames = 0
        self._closed: Future[RecordingInfo] | None = None
        writer.submit(self._lane, self._file.open)

    @property
    def committed_seconds(self) -> float:
        """Audio handed to the writer so far (on disk within a few milliseconds)."""
        return self._base_slot * FRAME_SECONDS

    @property
    def error(self) -> BaseException | None:
        """Why the writer could not write this recording, or ``None`` while all is well."""
        return self._file.error

    @property
    def late_frames_dropped(self) -> int:
        return self._late_frames

    def write_frame(self, direction: Direction, frame: bytes, media_timestamp: int) -> None:
        """Take one frame (or several back to back) of 8 kHz 16-bit mono PCM for one side.

        ``media_timestamp`` is the frame's first sample on the call's 8 kHz timeline.

        Never blocks on I/O. Raises :class:`InvalidFrameError` for a frame whose length is not a
        multiple of 320 bytes or an unknown direction, and :class:`RecorderClosedError` after
        close. Once the writer has failed (disk full...) frames are dropped without an
        exception, so a media tap calling this never breaks the call's audio; :attr:`error`
        tells, and :meth:`close` raises :class:`RecorderFailedError`.
        """
        if self._closed is not None:
            raise RecorderClosedError(f"recorder {self.path} is closed")
        if self._file.error is not None:
            return
        channel = _CHANNEL_OF.get(direction)
        if channel is None:
            raise InvalidFrameError(f"unknown direction {direction!r}")
        length = len(frame)
        if length == 0 or length % FRAME_BYTES:
            raise InvalidFrameError(f"frame of {length} bytes is not a multiple of {FRAME_BYTES}")
        if self._origin is None:
            self._origin = media_timestamp
        slot = round((media_timestamp - self._origin) / SAMPLES_PER_FRAME)
        if length == FRAME_BYTES:
            self._place(channel, slot, bytes(frame))
        else:
            for index in range(length // FRAME_BYTES):
                start = index * FRAME_BYTES
                self._place(channel, slot + index, bytes(frame[start : start + FRAME_BYTES]))
        self._maybe_commit()

    def close(self) -> Future[RecordingInfo]:
        """Write what is left, fsync, rename ``.part`` to ``.wav``; the future tells when done.

        Calling it again returns the same future.
        """
        if self._closed is not None:
            return self._closed
        result: Future[RecordingInfo] = Future()
        self._closed = result
        last_slot = max(self._newest_slot)
        if last_slot + 1 > self._base_slot:
            self._commit(last_slot + 1)
        written: Future[int] = Future()
        self._writer.submit(self._lane, lambda: self._file.finish(written))
        late = self._late_frames

        def complete(done: Future[int]) -> None:
            error = done.exception()
            if error is not None:
                result.set_exception(error)
                return
            data_bytes = done.result()
            result.set_result(
                RecordingInfo(
                    path=self.path,
                    duration_seconds=seconds_of(data_bytes),
                    data_bytes=data_bytes,
                    late_frames_dropped=late,
                )
            )

        written.add_done_callback(complete)
        return result

    def written(self) -> Future[None]:
        """A future that completes once everything committed so far is written and fsynced."""
        reached: Future[None] = Future()
        self._writer.submit(self._lane, lambda: reached.set_result(None))
        return reached

    async def aclose(self) -> RecordingInfo:
        """:meth:`close` for coroutines: waits for the file without blocking the loop."""
        return await asyncio.wrap_future(self.close())

    def _place(self, channel: int, slot: int, frame: bytes) -> None:
        index = slot - self._base_slot
        if index < 0:
            self._late_frames += 1
            return
        pending = self._pending[channel]
        missing = index + 2 - len(pending)
        if missing > 0:
            pending.extend([None] * missing)
        if pending[index] is not None:
            # Two frames rounded to the same slot (timestamps jittering around a slot edge):
            # the newer one takes the next slot if it is still free.
            index += 1
            if pending[index] is not None:
                self._late_frames += 1
                return
        pending[index] = frame
        placed_slot = self._base_slot + index
        if placed_slot > self._newest_slot[channel]:
            self._newest_slot[channel] = placed_slot

    def _maybe_commit(self) -> None:
        commit_to = max(self._newest_slot) + 1 - self._reorder_slots
        if commit_to - self._base_slot >= self._flush_slots:
            self._commit(commit_to)

    def _commit(self, end_slot: int) -> None:
        count = end_slot - self._base_slot
        left = self._take(self._pending[0], count)
        right = self._take(self._pending[1], count)
        self._base_slot = end_slot
        file = self._file
        self._writer.submit(self._lane, lambda: file.append(left, right))

    @staticmethod
    def _take(pending: list[bytes | None], count: int) -> bytes:
        chunk = pending[:count]
        del pending[:count]
        joined = b"".join([_SILENT_FRAME if frame is None else frame for frame in chunk])
        shortfall = count - len(chunk)
        if shortfall > 0:
            joined += _SILENT_FRAME * shortfall
        return joined
