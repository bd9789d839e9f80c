"""The operator's browser audio on a call: a smoothing buffer one way, a bounded feed the other.

Frames from the browser's WebSocket arrive in bursts (the network and the browser's own audio
thread batch them). :class:`OperatorFramePacer` holds them in a small adaptive buffer and hands
exactly one frame per 20 ms media-clock tick to the SIP stream's ``send``. It subscribes to the
clock before the call's stream is opened, so on every tick it runs just before the stream and
the frame it hands over leaves in the same tick (no extra tick of delay).

The buffer plays out as soon as it holds ``target`` frames (1 at first). Running dry (an
underrun: the next burst came late) raises the target by one frame, up to ``max_target``, and
playout waits until that many frames are queued again: the buffer grows just enough to ride out
the jitter it sees. Each trim window (1 s) in which the queue never fell below ``target + 1``
frames loses one frame, and each ``relax_windows`` windows without an underrun lower the target
again, so latency taken on for one bad moment is given back. The queue is bounded
(``capacity_frames``, 200 ms; the oldest frame is dropped beyond). Muted: frames are dropped
and nothing is handed over; the stream then sends (and the recorder taps) silence. Every tick's
frame (or its absence) passes through ``mixer`` when one is set, which is how supervisors who
barge reach the far end (:mod:`dialer.telephony.monitor_hub`).

"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from dialer.call_control import FRAME_BYTES
from sip.errors import StreamClosedError
from sip.media.clock import MediaClock
from sip.media.stream import AudioStream

logger = logging.getLogger(__name__)

DEFAULT_CAPACITY_FRAMES = 10  # 200 ms
DEFAULT_TRIM_WINDOW_TICKS = 50  # 1 s
DEFAULT_MAX_TARGET_FRAMES = 5
DEFAULT_RELAX_WINDOWS = 10
DEFAULT_FAR_END_CAPACITY_FRAMES = 10


@dataclass(frozen=True, slots=True)
class PacerStatistics:
    """Counters of one pacer (a snapshot)."""

    frames_pushed: int
    frames_sent: int
    frames_dropped_overflow: int
    frames_dropped_trim: int
    frames_dropped_muted: int
    underruns: int
    depth: int
    target: int


class OperatorFramePacer:
    """Bursty operator frames in, one frame per media tick out to an ``AudioStream``.

    Create it BEFORE the stream it feeds is opened on the same clock (ticks run subscribers in
    subscription order), then :meth:`attach` the stream.
    """

    def __init__(
        self,
        clock: MediaClock,
        *,
        capacity_frames: int = DEFAULT_CAPACITY_FRAMES,
        trim_window_ticks: int = DEFAULT_TRIM_WINDOW_TICKS,
        max_target_frames: int = DEFAULT_MAX_TARGET_FRAMES,
        relax_windows: int = DEFAULT_RELAX_WINDOWS,
    ) -> None:
        if min(capacity_frames, trim_window_ticks, max_target_frames, relax_windows) < 1:
            raise ValueError("capacity, window, target and relax counts must be at least 1")
        if max_target_frames > capacity_frames:
            raise ValueError("the target cannot exceed the capacity")
        self._frames: collections.deque[bytes] = collections.deque()
        self._capacity = capacity_frames
        self._trim_window = trim_window_ticks
        self._stream: AudioStream | None = None
        self.muted = False
        # Set by the call service: turns this tick's operator frame (None = none) into what is
        # sent (the monitor hub mixes barging supervisors in; see dialer.telephony.monitor_hub).
        self.mixer: Callable[[bytes | None], bytes | None] | None = None
        self._closed = False
        self._window_ticks = 0
        self._window_minimum = 0
        self._max_target = max_target_frames
        self._relax_windows = relax_windows
        self._target = 1
        self._windows_without_underrun = 0
        self._playing = False
        self._pushed = 0
        self._sent = 0
        self._dropped_overflow = 0
        self._dropped_trim = 0
        self._dropped_muted = 0
        self._underruns = 0
        self._subscription = clock.subscribe(self._tick)

    @property
    def statistics(self) -> PacerStatistics:
        return PacerStatistics(
            frames_pushed=self._pushed,
            frames_sent=self._sent,
            frames_dropped_overflow=self._dropped_overflow,
            frames_dropped_trim=self._dropped_trim,
            frames_dropped_muted=self._dropped_muted,
            underruns=self._underruns,
            depth=len(self._frames),
            target=self._target,
        )

    def attach(self, stream: AudioStream) -> None:
        """Start feeding ``stream`` (opened after this pacer, on the same clock)."""
        self._stream = stream

    def push(self, frame: bytes) -> None:
        """Queue one 320-byte frame; the oldest is dropped when the queue is full."""
        if self._closed:
            return
        frames = self._frames
        if len(frames) >= self._capacity:
            frames.popleft()
            self._dropped_overflow += 1
        frames.append(frame)
        self._pushed += 1

    def clear(self) -> None:
        """Forget queued frames (the browser went away: its old audio is stale)."""
        self._frames.clear()
        self._playing = False

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._subscription.cancel()
        self._frames.clear()
        self._stream = None

    def _tick(self, index: int) -> None:
        frame = self._take()
        mixer = self.mixer
        to_send = frame if mixer is None else mixer(frame)
        if to_send is None:
            return
        stream = self._stream
        if stream is None or stream.closed:
            return
        try:
            stream.send(to_send)
        except StreamClosedError:
            return
        if frame is not None:
            self._sent += 1

    def _take(self) -> bytes | None:
        """This tick's operator frame, or None (not playing yet, ran dry, or muted)."""
        frames = self._frames
        if not self._playing:
            if not frames or len(frames) < self._target:
                return None
            self._playing = True
            self._window_ticks = 0
        elif not frames:
            self._underruns += 1
            self._windows_without_underrun = -1
            self._target = min(self._target + 1, self._max_target)
            self._playing = False
            return None
        self._note_depth(len(frames))
        frame = frames.popleft()
        if self.muted:
            self._dropped_muted += 1
            return None
        return frame

    def _note_depth(self, depth: int) -> None:
        """Track the shallowest queue of the window; trim and relax at its end."""
        if self._window_ticks == 0 or depth < self._window_minimum:
            self._window_minimum = depth
        self._window_ticks += 1
        if self._window_ticks < self._trim_window:
            return
        self._window_ticks = 0
        if self._window_minimum > self._target and len(self._frames) > 1:
            self._frames.popleft()
            self._dropped_trim += 1
        self._windows_without_underrun += 1
        if self._windows_without_underrun >= self._relax_windows:
            self._windows_without_underrun = 0
            self._target = max(1, self._target - 1)


class FrameFeed:
    """A bounded queue of frames with one async reader; the oldest is dropped when full."""

    def __init__(self, capacity: int) -> None:
        self._frames: collections.deque[bytes] = collections.deque()
        self._capacity = capacity
        self._waiter: asyncio.Future[None] | None = None
        self.closed = False
        self.dropped = 0

    def put(self, frame: bytes) -> None:
        if self.closed:
            return
        if len(self._frames) >= self._capacity:
            self._frames.popleft()
            self.dropped += 1
        self._frames.append(frame)
        self._wake()

    def close(self) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def frames(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        while True:
            while self._frames:
                yield self._frames.popleft()
            if self.closed:
                return
            self._waiter = loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None


class CallAudioBridge:
    """One attachment of the operator's browser to a call (a ``BrowserAudioBridge``)."""

    def __init__(
        self,
        call_id: int,
        pacer: OperatorFramePacer,
        on_detach: Callable[[CallAudioBridge], None],
        *,
        far_end_capacity_frames: int = DEFAULT_FAR_END_CAPACITY_FRAMES,
    ) -> None:
        self.call_id = call_id
        self._pacer = pacer
        self._on_detach = on_detach
        self._far_end = FrameFeed(far_end_capacity_frames)
        self._reader_started = False
        self.detached = False
        self.bad_frames = 0

    @property
    def far_end_frames_dropped(self) -> int:
        """Frames the browser side did not read in time (oldest dropped)."""
        return self._far_end.dropped

    def push_operator_frame(self, frame: bytes) -> None:
        """One 20 ms microphone frame; wrong sizes are dropped and counted."""
        if self.detached:
            return
        if len(frame) != FRAME_BYTES:
            self.bad_frames += 1
            return
        self._pacer.push(bytes(frame))

    def far_end_frames(self) -> AsyncIterator[bytes]:
        """Frames to play; ends when the call ends or the bridge is detached or replaced."""
        if self._reader_started:
            raise RuntimeError("far_end_frames() already has a reader")
        self._reader_started = True
        return self._far_end.frames()

    def detach(self) -> None:
        """The socket went away: the service starts the grace timer (idempotent)."""
        if self.detached:
            return
        self.detached = True
        self._far_end.close()
        self._on_detach(self)

    # -- used by the call service -----------------------------------------------------------------

    def deliver_far_end(self, frame: bytes) -> None:
        self._far_end.put(frame)

    def end(self) -> None:
        """The call is over (or another tab took the call over): end the far-end stream."""
        self.detached = True
        self._far_end.close()
