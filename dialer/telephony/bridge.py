"""The operator's browser audio on a call: a smoothing buffer one way, a bounded feed the other.

Frames from the browser's WebSocket arrive in bursts (the network and the browser's own audio
thread batch them). :class:`OperatorFramePacer` holds them in a small adaptive buffer and hands
exactly one frame per 20 ms media-clock tick to the SIP stream's ``send``. It subscribes to the
clock before the call's stream is opened, so on every tick it runs just before the stream and
the frame it hands over leaves in the same tick (no extra tick of delay).

The buffer plays out as soon as it holds ``target`` frames (1 at first). Running dry (an
underrun: the next burst came late) raises the target by one frame, up to ``max_target``, and
playout waits until that many frames are queued again: the buffer grows just enough to ride out
the jitter it sees. Latency taken on for one bad moment is given back quickly:

- each trim window (1 s) notes the shallowest the queue was when a frame was taken; frames
  above ``target`` at that moment were never needed, so over the next two windows at most that
  many are dropped, one every ``trim_spacing_ticks`` ticks at most, quiet frames (pauses in
  speech) rather than loud ones while the time left allows (a 20 ms gap in a pause is not
  heard; one in a word is);
- ``relax_windows`` windows' time (3 s) in a row without an underrun lowers the target by one;
- when the server itself fell behind (the clock skipped ticks, or runs a tick more than one
  interval late), the frames that were due on the skipped ticks are dropped as they show up
  (their slot of the RTP timeline is gone: sending them later would only add their age to every
  frame after them), and running dry on such a late tick is not the browser's jitter, so it
  does not raise the target.

The queue is bounded (``capacity_frames``, 200 ms; the oldest frame is dropped beyond). Muted:
frames are dropped and nothing is handed over; the stream then sends (and the recorder taps)
silence. Every tick's frame (or its absence) passes through ``mixer`` when one is set, which is
how supervisors who barge reach the far end (:mod:`dialer.telephony.monitor_hub`).

The other way, :class:`FarEndRelay` hands the far end's frames to the browser as their RTP
packets arrive (the SIP stream's arrival listener), not out of the stream's jitter buffer on the
tick: the browser has a playout buffer of its own, and a second one here would only add its
depth (40 ms) and the wait for the tick (up to 20 ms) to what the operator hears. While the far
end sends nothing (hold, silence suppression, a lost stretch) for ``quiet_ticks`` ticks, the
relay hands over the jitter buffer's frames of each tick instead (concealment, then silence), so
the operator's stream stays continuous and whispering supervisors are still heard.
:class:`CallAudioBridge` queues them for the socket; nothing is held beyond what the socket has
not taken yet.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import numpy as np

from dialer.call_control import FRAME_BYTES
from sip.errors import StreamClosedError
from sip.media.clock import MediaClock
from sip.media.stream import AudioStream

logger = logging.getLogger(__name__)

DEFAULT_CAPACITY_FRAMES = 10  # 200 ms
DEFAULT_TRIM_WINDOW_TICKS = 50  # 1 s
DEFAULT_TRIM_SPACING_TICKS = 4  # at most one frame in 4 dropped while trimming
DEFAULT_MAX_TARGET_FRAMES = 5
DEFAULT_RELAX_WINDOWS = 3
DEFAULT_FAR_END_CAPACITY_FRAMES = 10
DEFAULT_QUIET_TICKS = 3  # far end silent for 60 ms: the tick's frames go to the browser
QUIET_PEAK = 600  # a frame whose samples all stay within +-600 (about -35 dBFS) is a pause


@dataclass(frozen=True, slots=True)
class PacerStatistics:
    """Counters of one pacer (a snapshot)."""

    frames_pushed: int
    frames_sent: int
    frames_dropped_overflow: int
    frames_dropped_trim: int
    frames_dropped_muted: int
    frames_dropped_late: int
    underruns: int
    depth: int
    target: int


def is_quiet(frame: bytes) -> bool:
    """Whether a 16-bit PCM frame is a pause (every sample within ``QUIET_PEAK``)."""
    samples = np.frombuffer(frame, dtype="<i2")
    return int(samples.max()) <= QUIET_PEAK and int(samples.min()) >= -QUIET_PEAK


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
        trim_spacing_ticks: int = DEFAULT_TRIM_SPACING_TICKS,
        max_target_frames: int = DEFAULT_MAX_TARGET_FRAMES,
        relax_windows: int = DEFAULT_RELAX_WINDOWS,
    ) -> None:
        counts = (capacity_frames, trim_window_ticks, trim_spacing_ticks, max_target_frames)
        if min(*counts, relax_windows) < 1:
            raise ValueError("capacity, window, spacing, target and relax counts must be >= 1")
        if max_target_frames > capacity_frames:
            raise ValueError("the target cannot exceed the capacity")
        self._clock = clock
        self._frames: collections.deque[bytes] = collections.deque()
        self._capacity = capacity_frames
        self._trim_window = trim_window_ticks
        self._trim_spacing = trim_spacing_ticks
        self._stream: AudioStream | None = None
        self.muted = False
        # Set by the call service: turns this tick's operator frame (None = none) into what is
        # sent (the monitor hub mixes barging supervisors in; see dialer.telephony.monitor_hub).
        self.mixer: Callable[[bytes | None], bytes | None] | None = None
        self._closed = False
        self._window_ticks = 0
        self._window_minimum = 0
        self._excess = 0  # frames still to trim (a plan lasts two windows at most)
        self._since_trim = 0
        self._plan_ticks = 0
        self._max_target = max_target_frames
        self._relax_windows = relax_windows
        self._target = 1
        self._ticks_without_underrun = 0
        self._playing = False
        self._last_index: int | None = None
        self._stale = 0  # frames due on skipped ticks, dropped as they show up
        self._stale_ticks = 0
        self._pushed = 0
        self._sent = 0
        self._dropped_overflow = 0
        self._dropped_trim = 0
        self._dropped_muted = 0
        self._dropped_late = 0
        self._underruns = 0
        self._subscription = clock.subscribe(self._tick)
        # Read on every tick of every leg: looked up once (the clock keeps its deadline grid
        # for its life once it has had a subscriber).
        self._loop_time = clock.loop.time
        self._interval = clock.interval
        self._schedule = clock.schedule

    @property
    def statistics(self) -> PacerStatistics:
        return PacerStatistics(
            frames_pushed=self._pushed,
            frames_sent=self._sent,
            frames_dropped_overflow=self._dropped_overflow,
            frames_dropped_trim=self._dropped_trim,
            frames_dropped_muted=self._dropped_muted,
            frames_dropped_late=self._dropped_late,
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
            if self._stale:
                self._stale -= 1  # that one was due on a skipped tick anyway
        frames.append(frame)
        self._pushed += 1

    def clear(self) -> None:
        """Forget queued frames (the browser went away: its old audio is stale)."""
        self._frames.clear()
        self._playing = False
        self._stale = 0
        self._end_trim()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._subscription.cancel()
        self._frames.clear()
        stream, self._stream = self._stream, None
        if logger.isEnabledFor(logging.INFO):
            logger.info(
                "operator audio: %s; stream: %s",
                self.statistics,
                stream.statistics if stream is not None else None,
            )

    def _tick(self, index: int) -> None:
        # The common case (the tick after the last one and on time, nothing stale, playing,
        # a frame queued, not muted) in line: what _catching_up and _take do then.
        last = self._last_index
        frames = self._frames
        schedule = self._schedule
        if (
            last is not None
            and index == last + 1
            and not self._stale
            and self._playing
            and frames
            and not self.muted
            and schedule is not None
            and self._loop_time() - schedule.deadline(index) <= self._interval
        ):
            self._last_index = index
            self._note_depth(len(frames))
            taken = frames.popleft()
            frame: bytes | None = self._trim(taken) if self._excess else taken
        else:
            frame = self._take(self._catching_up(index))
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

    def _catching_up(self, index: int) -> int | None:
        """Ticks still due after this one when the server runs behind (None: on time).

        Notes the ticks the clock skipped: their frames arrive around now (the loop was busy or
        asleep), and that many are dropped as they show up, over the next few ticks.
        """
        last = self._last_index
        self._last_index = index
        skipped = 0 if last is None else index - last - 1
        if skipped > 0:
            self._stale += skipped
            self._stale_ticks = 0
        elif self._stale:
            self._stale_ticks += 1
            if self._stale_ticks > self._capacity:
                self._stale = 0
        schedule = self._schedule
        if schedule is None:
            schedule = self._schedule = self._clock.schedule
            if schedule is None:
                return 0 if skipped > 0 else None
        now = self._loop_time()
        if skipped == 0 and now - schedule.deadline(index) <= self._interval:
            return None
        return max(0, schedule.last_due_index(now) - index)

    def _take(self, still_due: int | None) -> bytes | None:
        """This tick's operator frame, or None (not playing yet, ran dry, or muted)."""
        frames = self._frames
        if self._stale:
            # Keep what the ticks still due right now (back to back) and the target need.
            keep = self._target + (still_due or 0)
            if len(frames) > keep:
                dropped = min(self._stale, len(frames) - keep)
                for _ in range(dropped):
                    frames.popleft()
                self._stale -= dropped
                self._dropped_late += dropped
        if not self._playing:
            if not frames or len(frames) < self._target:
                if still_due is not None:
                    self._stale += 1  # this late tick's frame, too, will show up stale
                return None
            self._playing = True
            self._window_ticks = 0
        elif not frames:
            self._playing = False
            if still_due is None:
                self._underruns += 1
                self._ticks_without_underrun = 0
                self._target = min(self._target + 1, self._max_target)
            else:
                self._stale += 1  # the server ran late, not the browser: not jitter to learn
            return None
        self._note_depth(len(frames))
        frame = frames.popleft()
        if self._excess:
            frame = self._trim(frame)
        if self.muted:
            self._dropped_muted += 1
            return None
        return frame

    def _trim(self, frame: bytes) -> bytes:
        """While trimming: skip this frame for the next one if it is quiet, or if it is time."""
        self._plan_ticks += 1
        self._since_trim += 1
        frames = self._frames
        if len(frames) < self._target:
            self._end_trim()  # the excess is gone already (overflow or stale drops)
            return frame
        # Quiet frames first; a loud one only when the rest of the plan's time (two windows)
        # just has room for the drops left at the spacing.
        left = 2 * self._trim_window - self._plan_ticks
        due = self._excess * self._trim_spacing >= left
        if self._since_trim >= self._trim_spacing and (due or is_quiet(frame)):
            self._excess -= 1
            self._since_trim = 0
            self._dropped_trim += 1
            if not self._excess:
                self._end_trim()
            return frames.popleft()
        return frame

    def _end_trim(self) -> None:
        """The excess is gone: measure the queue afresh from here."""
        self._excess = 0
        self._window_ticks = 0

    def _note_depth(self, depth: int) -> None:
        """Track the shallowest queue of the window, plan the trim at its end; relax."""
        self._ticks_without_underrun += 1
        if self._ticks_without_underrun >= self._relax_windows * self._trim_window:
            self._ticks_without_underrun = 0
            self._target = max(1, self._target - 1)
        if self._window_ticks == 0 or depth < self._window_minimum:
            self._window_minimum = depth
        self._window_ticks += 1
        if self._window_ticks < self._trim_window:
            return
        self._window_ticks = 0
        if not self._excess:
            # Frames above the target at the shallowest moment were never needed: drop them
            # over the next two windows at most (a plan still running is not re-measured).
            self._excess = max(0, self._window_minimum - self._target)
            self._since_trim = self._trim_spacing
            self._plan_ticks = 0


class FarEndRelay:
    """The far end's audio on its way to the operator: frames as they arrive, the tick's when
    none arrive (see the module docstring).

    ``deliver(frame)`` takes each frame for the operator (the call service passes it through
    the monitor hub's whisper mix to the current browser bridge).
    """

    def __init__(
        self, deliver: Callable[[bytes], None], *, quiet_ticks: int = DEFAULT_QUIET_TICKS
    ) -> None:
        if quiet_ticks < 1:
            raise ValueError("quiet_ticks must be >= 1")
        self._deliver = deliver
        self._quiet_ticks = quiet_ticks
        self._arrived_since_tick = False
        self._quiet_ticks_in_a_row = 0
        self.frames_arrived = 0
        self.frames_from_ticks = 0

    def arrived(self, frame: bytes) -> None:
        """A frame of a packet just read from the far end (the stream's arrival listener)."""
        self._arrived_since_tick = True
        self.frames_arrived += 1
        self._deliver(frame)

    def played(self, frame: bytes) -> None:
        """The frame the stream's jitter buffer played out on this tick."""
        if self._arrived_since_tick:
            self._arrived_since_tick = False
            self._quiet_ticks_in_a_row = 0
            return
        self._quiet_ticks_in_a_row += 1
        if self._quiet_ticks_in_a_row > self._quiet_ticks:
            self.frames_from_ticks += 1
            self._deliver(frame)


class FrameFeed:
    """A bounded queue of frames with one async reader; the oldest is dropped when full."""

    def __init__(self, capacity: int) -> None:
        self._frames: collections.deque[bytes] = collections.deque()
        self._capacity = capacity
        self._waiter: asyncio.Future[None] | None = None
        self._handed_out = False  # the reader has a frame it has not finished with
        self.closed = False
        self.dropped = 0

    @property
    def idle(self) -> bool:
        """Nothing queued and the reader not busy with a frame (it waits, or never started):
        a frame delivered some other way now cannot overtake one of this feed."""
        return not self._frames and not self._handed_out

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
                self._handed_out = True
                try:
                    yield self._frames.popleft()
                finally:
                    self._handed_out = False
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
        self._write_directly: Callable[[bytes], bool] | None = None
        self.detached = False
        self.bad_frames = 0
        self.frames_written_directly = 0

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

    def deliver_directly(self, write: Callable[[bytes], bool] | None) -> None:
        """From now on, hand far-end frames to ``write`` as they come (None: stop), while the
        reader of :meth:`far_end_frames` has nothing queued or in hand (so no frame overtakes
        another). ``write`` returns False when it cannot take a frame now (the socket pushes
        back): that frame, and the ones after it until the queue is empty again, are queued
        for the reader as before."""
        self._write_directly = write

    def detach(self) -> None:
        """The socket went away: the service starts the grace timer (idempotent)."""
        if self.detached:
            return
        self.detached = True
        self._write_directly = None
        self._far_end.close()
        self._on_detach(self)

    # -- used by the call service -----------------------------------------------------------------

    def deliver_far_end(self, frame: bytes) -> None:
        feed = self._far_end
        write = self._write_directly
        if write is not None and not feed.closed and feed.idle and write(frame):
            self.frames_written_directly += 1
            return
        feed.put(frame)

    def end(self) -> None:
        """The call is over (or another tab took the call over): end the far-end stream."""
        self.detached = True
        self._write_directly = None
        self._far_end.close()
