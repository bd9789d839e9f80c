"""Record a call as a stereo WAV file while the frames arrive, safely against kill -9.

Design (for asyncio callers, e.g. the SIP media tap):

* :meth:`StereoRecorder.write_frame` is called on the event loop for every 20 ms frame of each
  direction. It does no I/O and no numpy work: it puts the frame's bytes into a per-channel list
  at the 20 ms *slot* given by its media timestamp (the first frame of either side is slot 0, so
  early media starts the recording). Slots a side has nothing for stay empty and become silence.
  The usual frame, the one right after its side's newest, is a bare list append.
* Slots are *committed* once they are older than the newest slot of either side by
  ``reorder_window_seconds`` (so a side that is silent, late to start or gone does not hold the
  other one back). Frames arriving for a committed slot, or stamped before the first frame of
  the call, are counted as late and dropped.
* Every ``flush_interval_seconds`` of committed audio, the two channels are interleaved (numpy,
  on the event loop: a few microseconds) and handed to a :class:`RecordingWriter`: a small pool
  of background threads shared by all the recorders of a process (each recorder always goes to
  the same thread, so its writes stay in order), which appends them with one ``write``, none of
  it on the event loop. Jobs submitted from an event loop are handed to the threads together
  once the loop's current callback is done (``call_soon``): for a media tick that is right
  after the tick, while the loop idles until the next one, so the threads' few moments under
  the interpreter lock do not interrupt the tick (a thread that wants the lock takes it
  whenever the tick releases it around a system call, and the tick then waits for it back).
  The recorders of one writer commit on different ticks: the first chunk of each is shorter
  by a phase the writer hands out in turn (0, 1, ... up to the chunk length), so calls that
  started together (a campaign's first batch, a benchmark) do not all interleave and hand
  over their chunk on the same tick, every flush interval (a tick taking hundreds of commits
  at once, and the writer threads hundreds of writes right after it).
  Once written, the audio survives a kill -9 of the process (it is in the kernel's page
  cache); with the defaults at most 0.2 + 0.5 s of audio live only in memory, so a kill -9
  loses less than the last second. The header's RIFF and data sizes are rewritten (one
  ``pwrite``) when the file is made durable, below, so they may lag the data by up to the sync
  interval after a kill -9: :mod:`recordings.repair` sets them from the real length.
* Durability against a machine crash is batched: each writer thread makes its dirty files
  durable once per ``sync_interval_seconds`` (default 1 s; up to 0.1 s later, as the pass
  waits for the writer's next batch of jobs, which comes right after a media tick, to run in
  the loop's idle time before the next one) in one pass: an ``fsync`` per file,
  or, when many files are dirty, one ``syncfs`` per filesystem (Linux), since a disk takes a few
  hundred fsyncs a second at best (about 4 ms each measured here) and a thousand recorded calls
  would need thousands. Closing a recorder fsyncs its file before the rename.
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
import ctypes
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal, cast

import numpy as np
import numpy.typing as npt

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
# A sync pass with at least this many dirty files on one filesystem uses one syncfs for them.
SYNCFS_MIN_FILES = 8
# How long a due sync pass may wait for the next batch of jobs (see ``RecordingWriter._run``).
SYNC_GRACE_SECONDS = 0.1


def _load_syncfs() -> Callable[[int], int] | None:
    """``syncfs(2)`` from the C library (Linux), or ``None`` where there is none."""
    try:
        function = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int]
    function.restype = ctypes.c_int

    def syncfs(descriptor: int) -> int:
        result: int = function(descriptor)
        return result

    return syncfs


_SYNCFS = _load_syncfs()


@dataclass(frozen=True, slots=True)
class RecordingInfo:
    """What a closed recorder left on disk."""

    path: Path
    duration_seconds: float
    data_bytes: int
    late_frames_dropped: int


class _Lane:
    """One writer thread's job queue and the files it wrote and has not made durable yet."""

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue[list[Callable[[], None]] | None] = queue.SimpleQueue()
        self.dirty: dict[_WavFile, None] = {}
        self.dirty_since = 0.0


class RecordingWriter:
    """Background threads that do every disk operation of the recorders of one process.

    Create one per process (or per test), pass it to every :class:`StereoRecorder`, and
    :meth:`close` it at shutdown after the recorders are closed. ``threads`` > 1 lets writes of
    different files overlap; a recorder's jobs always run on the same thread, in order. Jobs
    submitted from a running event loop reach the threads in one batch after the loop's current
    callback (see the module docstring). Each thread makes the files it wrote durable at most
    ``sync_interval_seconds`` after writing them (one batched pass, see the module docstring).
    Submit from one thread only (the event loop's, or any one thread without a loop).
    """

    def __init__(
        self,
        threads: int = 2,
        *,
        sync_interval_seconds: float = 1.0,
    ) -> None:
        if threads < 1:
            raise ValueError("a RecordingWriter needs at least one thread")
        if sync_interval_seconds <= 0:
            raise ValueError("the sync interval must be positive")
        self.sync_interval_seconds = sync_interval_seconds
        # jobs submitted from the running event loop, handed to the threads by ``_hand_over``
        self._pending: list[tuple[int, Callable[[], None]]] = []
        self._hand_over_handle: asyncio.Handle | None = None
        self._lanes = [_Lane() for _ in range(threads)]
        self._threads = [
            threading.Thread(
                target=self._run, args=(lane,), name=f"recording-writer-{index}", daemon=True
            )
            for index, lane in enumerate(self._lanes)
        ]
        self._next_lane = 0
        self._recorders = 0  # recorders that asked for a phase (``commit_phase``)
        self._closed = False
        self.sync_passes = 0
        for thread in self._threads:
            thread.start()

    def lane(self) -> int:
        """Pick the thread for a new recorder (round robin)."""
        lane = self._next_lane
        self._next_lane = (lane + 1) % len(self._lanes)
        return lane

    def commit_phase(self, period: int) -> int:
        """The phase (``0 <= phase < period``) of a new recorder's commits: in turn, so the
        recorders of this writer spread their commits over the ticks of a flush interval."""
        phase = self._recorders % period
        self._recorders += 1
        return phase

    def submit(self, lane: int, job: Callable[[], None]) -> None:
        """Run ``job`` on the thread ``lane``, after the jobs submitted to it before."""
        if self._closed:
            raise RecorderClosedError("the recording writer is closed")
        if self._hand_over_handle is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self._lanes[lane].jobs.put([job])  # no event loop: straight to the thread
                return
            self._hand_over_handle = loop.call_soon(self._hand_over)
        self._pending.append((lane, job))

    def _hand_over(self) -> None:
        """Give the jobs submitted since the last hand-over to their threads, one batch each."""
        self._hand_over_handle = None
        pending, self._pending = self._pending, []
        batches: dict[int, list[Callable[[], None]]] = {}
        for lane, job in pending:
            batches.setdefault(lane, []).append(job)
        for lane, jobs in batches.items():
            self._lanes[lane].jobs.put(jobs)

    def close(self) -> None:
        """Finish every submitted job, make every file durable, then stop the threads."""
        if self._closed:
            return
        self._closed = True
        if self._hand_over_handle is not None:
            self._hand_over_handle.cancel()
        self._hand_over()
        for lane in self._lanes:
            lane.jobs.put(None)
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

    def _dirty_files(self, lane: int) -> dict[_WavFile, None]:
        return self._lanes[lane].dirty

    def _run(self, lane: _Lane) -> None:
        interval = self.sync_interval_seconds
        while True:
            jobs: list[Callable[[], None]] | None
            if lane.dirty:
                # A due sync pass waits (up to SYNC_GRACE_SECONDS) for the next batch of jobs:
                # batches come right after a media tick, and the pass then has the loop's idle
                # time until the next tick for its moments under the interpreter lock.
                remaining = lane.dirty_since + interval - time.monotonic()
                if remaining <= -SYNC_GRACE_SECONDS:
                    self._sync_pass(lane)
                    continue
                try:
                    jobs = lane.jobs.get(timeout=remaining + SYNC_GRACE_SECONDS)
                except queue.Empty:
                    continue
            else:
                jobs = lane.jobs.get()
            if jobs is None:
                self._sync_pass(lane)
                return
            was_clean = not lane.dirty
            for job in jobs:
                job()
            if was_clean and lane.dirty:
                lane.dirty_since = time.monotonic()
            elif lane.dirty and time.monotonic() >= lane.dirty_since + interval:
                self._sync_pass(lane)

    def _sync_pass(self, lane: _Lane) -> None:
        """Make every dirty file of ``lane`` durable: one syncfs per busy filesystem, or fsyncs."""
        files = list(lane.dirty)
        lane.dirty.clear()
        if not files:
            return
        self.sync_passes += 1
        by_device: dict[int, list[_WavFile]] = {}
        for file in files:
            by_device.setdefault(file.device, []).append(file)
        for group in by_device.values():
            if len(group) >= SYNCFS_MIN_FILES:
                for file in group:
                    file.write_header()
                if _sync_filesystem(group):
                    continue
            for file in group:
                file.sync()


def _sync_filesystem(files: list[_WavFile]) -> bool:
    """One syncfs for files on the same filesystem; False if it could not be done."""
    if _SYNCFS is None:
        return False
    for file in files:
        descriptor = file.descriptor
        if descriptor is None:
            continue
        if _SYNCFS(descriptor) != 0:
            logger.warning("syncfs failed: %s", os.strerror(ctypes.get_errno()))
            return False
        for synced in files:
            synced.mark_synced()
        return True
    return True


class _WavFile:
    """The file side of one recorder; every method runs on the recorder's writer thread."""

    def __init__(
        self, part_path: Path, final_path: Path, dirty_files: dict[_WavFile, None]
    ) -> None:
        self.part_path = part_path
        self.final_path = final_path
        self.data_bytes = 0
        self.error: BaseException | None = None
        self.device = 0
        self._descriptor: int | None = None
        self._dirty_files = dirty_files  # the lane's files written but not yet durable
        self._unsynced = False
        self._directory_unsynced = False
        self._header_stale = False

    @property
    def descriptor(self) -> int | None:
        return self._descriptor

    def open(self) -> None:
        if self.error is not None:
            return
        try:
            self.part_path.parent.mkdir(parents=True, exist_ok=True)
            self._descriptor = os.open(self.part_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
            self.device = os.fstat(self._descriptor).st_dev
            os.write(self._descriptor, wav_header(0))
            self._directory_unsynced = True
            self._mark_dirty()
        except OSError as error:
            self._fail(error)

    def append(self, stereo: npt.NDArray[np.int16]) -> None:
        """Append interleaved samples; the header follows at the next sync (``write_header``)."""
        if self.error is not None or self._descriptor is None:
            return
        try:
            view = stereo.data.cast("B")
            while view:
                written = os.write(self._descriptor, view)
                view = view[written:]
            self.data_bytes += stereo.nbytes
            self._header_stale = True
            self._mark_dirty()
        except OSError as error:
            self._fail(error)

    def write_header(self) -> None:
        """Rewrite the RIFF and data sizes if data was appended since they were last written."""
        if not self._header_stale or self.error is not None or self._descriptor is None:
            return
        try:
            os.pwrite(self._descriptor, wav_header(self.data_bytes), 0)
            self._header_stale = False
        except OSError as error:
            self._fail(error)

    def _mark_dirty(self) -> None:
        self._unsynced = True
        self._dirty_files[self] = None

    def mark_synced(self) -> None:
        """The whole filesystem was synced (syncfs): data and directory entry are durable."""
        self._unsynced = False
        self._directory_unsynced = False

    def sync(self) -> None:
        """fsync the file (and its directory once, after creating it) if anything is pending."""
        self._dirty_files.pop(self, None)
        self.write_header()
        if self.error is not None or self._descriptor is None:
            return
        try:
            if self._unsynced:
                os.fsync(self._descriptor)
                self._unsynced = False
            if self._directory_unsynced:
                _fsync_directory(self.part_path.parent)
                self._directory_unsynced = False
        except OSError as error:
            self._fail(error)

    def finish(self, done: Future[int]) -> None:
        if self.error is None and self._descriptor is not None:
            self.sync()
            try:
                if self._descriptor is not None:
                    os.close(self._descriptor)
                    self._descriptor = None
                    os.replace(self.part_path, self.final_path)
                    _fsync_directory(self.final_path.parent)
            except OSError as error:
                self._fail(error)
        self._dirty_files.pop(self, None)
        if self.error is not None:
            failure = RecorderFailedError(f"recording {self.final_path} failed: {self.error}")
            failure.__cause__ = self.error
            done.set_exception(failure)
        else:
            done.set_result(self.data_bytes)

    def _fail(self, error: BaseException) -> None:
        logger.error("recording %s failed: %s", self.part_path, error)
        self.error = error
        self._dirty_files.pop(self, None)
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
        self._file = _WavFile(self.part_path, path, writer._dirty_files(self._lane))
        self._flush_slots = max(1, round(flush_interval_seconds / FRAME_SECONDS))
        self._reorder_slots = round(reorder_window_seconds / FRAME_SECONDS)
        # a channel holding this many uncommitted slots triggers a commit; the first chunk is
        # shorter by this recorder's phase (see the module docstring)
        self._full_commit_length = self._flush_slots + self._reorder_slots
        self._commit_length = self._full_commit_length - writer.commit_phase(self._flush_slots)
        self._origin: int | None = None
        self._base_slot = 0  # first slot not yet committed
        # Per channel, the uncommitted slots from ``_base_slot`` on up to the newest frame of
        # that channel (None: no frame, silence); empty when it has nothing newer than the base.
        self._pending: tuple[list[bytes | None], list[bytes | None]] = ([], [])
        self._pending_of: dict[str, list[bytes | None]] = dict(
            zip(_CHANNEL_OF, self._pending, strict=True)
        )
        self._base_timestamp = 0  # media timestamp of ``_base_slot`` (once there is an origin)
        # the next frame of a channel, if exactly one slot after its newest, takes the short path
        self._in_order_path = False
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
        if self._in_order_path:
            # the usual case, once per tick and side: the frame right after the side's newest
            pending = self._pending_of.get(direction)
            if (
                pending is not None
                and len(frame) == FRAME_BYTES
                and media_timestamp - self._base_timestamp == len(pending) * SAMPLES_PER_FRAME
            ):
                # a frame that is bytes already is kept as it is (bytes(frame) would be the
                # same object, after a constructor call)
                pending.append(frame if frame.__class__ is bytes else bytes(frame))
                if len(pending) >= self._commit_length:
                    self._commit(self._base_slot + len(pending) - self._reorder_slots)
                return
        self._write_frame(direction, frame, media_timestamp)

    def write_frames(
        self, sent: bytes | None, received: bytes | None, media_timestamp: int
    ) -> None:
        """Both sides' frames of one tick at once (either may be ``None``): what
        :meth:`write_frame` does for each, in one call (``stream.add_duplex_tap(
        recorder.write_frames)``)."""
        if self._in_order_path and sent is not None and received is not None:
            # the usual case, once per tick: each frame right after its side's newest
            left, right = self._pending
            length = len(left)
            if (
                len(right) == length
                and len(sent) == FRAME_BYTES
                and len(received) == FRAME_BYTES
                and media_timestamp - self._base_timestamp == length * SAMPLES_PER_FRAME
            ):
                left.append(sent if sent.__class__ is bytes else bytes(sent))
                right.append(received if received.__class__ is bytes else bytes(received))
                if length + 1 >= self._commit_length:
                    self._commit(self._base_slot + length + 1 - self._reorder_slots)
                return
        if sent is not None:
            self.write_frame("sent", sent, media_timestamp)
        if received is not None:
            self.write_frame("received", received, media_timestamp)

    def _write_frame(self, direction: Direction, frame: bytes, media_timestamp: int) -> None:
        """``write_frame`` for every case (first frame, reordered, several frames, errors)."""
        if self._closed is not None:
            raise RecorderClosedError(f"recorder {self.path} is closed")
        if self._file.error is not None:
            return
        channel = _CHANNEL_OF.get(direction)
        if channel is None:
            raise InvalidFrameError(f"unknown direction {direction!r}")
        length = len(frame)
        if length != FRAME_BYTES and (length == 0 or length % FRAME_BYTES):
            raise InvalidFrameError(f"frame of {length} bytes is not a multiple of {FRAME_BYTES}")
        origin = self._origin
        if origin is None:
            origin = self._origin = self._base_timestamp = media_timestamp
            self._in_order_path = True
        offset = media_timestamp - origin
        if offset % SAMPLES_PER_FRAME:
            slot = round(offset / SAMPLES_PER_FRAME)
        else:
            slot = offset // SAMPLES_PER_FRAME  # exact and without a float
        if length == FRAME_BYTES:
            self._place(channel, slot, bytes(frame))
        else:
            for index in range(length // FRAME_BYTES):
                start = index * FRAME_BYTES
                self._place(channel, slot + index, bytes(frame[start : start + FRAME_BYTES]))
        newest_length = max(len(self._pending[0]), len(self._pending[1]))
        if newest_length >= self._commit_length:
            self._commit(self._base_slot + newest_length - self._reorder_slots)

    def close(self) -> Future[RecordingInfo]:
        """Write what is left, fsync, rename ``.part`` to ``.wav``; the future tells when done.

        Calling it again returns the same future.
        """
        if self._closed is not None:
            return self._closed
        result: Future[RecordingInfo] = Future()
        self._closed = result
        self._in_order_path = False
        newest_length = max(len(self._pending[0]), len(self._pending[1]))
        if newest_length > 0:
            self._commit(self._base_slot + newest_length)
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
        file = self._file

        def sync_then_report() -> None:
            file.sync()
            reached.set_result(None)

        self._writer.submit(self._lane, sync_then_report)
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
        if index >= len(pending):
            if index > len(pending):
                pending.extend([None] * (index - len(pending)))
            pending.append(frame)
            return
        if pending[index] is not None:
            # Two frames rounded to the same slot (timestamps jittering around a slot edge):
            # the newer one takes the next slot if it is still free.
            index += 1
            if index == len(pending):
                pending.append(frame)
                return
            if pending[index] is not None:
                self._late_frames += 1
                return
        pending[index] = frame

    def _commit(self, end_slot: int) -> None:
        self._commit_length = self._full_commit_length
        count = end_slot - self._base_slot
        left = self._take(self._pending[0], count)
        right = self._take(self._pending[1], count)
        self._base_slot = end_slot
        self._base_timestamp += count * SAMPLES_PER_FRAME
        file = self._file
        if file.error is not None:
            self._in_order_path = False  # the writer failed: frames are dropped from now on
            return
        # Interleaved here (numpy, a few microseconds) rather than on the writer thread, which
        # then only needs the interpreter lock around its write, not for array work as well.
        stereo = np.empty(2 * count * SAMPLES_PER_FRAME, dtype="<i2")
        stereo[0::2] = np.frombuffer(left, dtype="<i2")
        stereo[1::2] = np.frombuffer(right, dtype="<i2")
        self._writer.submit(self._lane, lambda: file.append(stereo))

    @staticmethod
    def _take(pending: list[bytes | None], count: int) -> bytes:
        chunk = pending[:count]
        del pending[:count]
        frames: list[bytes]
        if None in chunk:  # slots with no frame (rare): silence
            frames = [_SILENT_FRAME if frame is None else frame for frame in chunk]
        else:
            frames = cast("list[bytes]", chunk)  # no None in it: only frames
        joined = b"".join(frames)
        shortfall = count - len(chunk)
        if shortfall > 0:
            joined += _SILENT_FRAME * shortfall
        return joined
