"""Supervisors on a call: the per-call hub where their audio is mixed in and out.

Every call has one :class:`CallMonitorHub`. The call service routes the call's audio through
two mix points (both are a plain pass-through while nobody monitors the call):

- :meth:`CallMonitorHub.operator_out`: the operator's frame on its way to the far end comes back
  with the voices of the supervisors who *barge* mixed in;
- :meth:`CallMonitorHub.far_end_in`: the far end's frame on its way to the operator's ear comes
  back with the voices of the supervisors who *whisper* or *barge* mixed in (a browser leg,
  which hands the operator the far end's frames as they arrive, uses its two halves:
  :meth:`CallMonitorHub.note_far_end` on the tick, :meth:`CallMonitorHub.to_operator` on
  arrival).

A supervisor joins with :meth:`CallMonitorHub.join` and gets a :class:`CallMonitor`: what they
hear is the operator as the operator spoke (before any barge voice) plus the far end plus the
other supervisors who barge; what they say (``push_frame``, bursty as a WebSocket delivers it)
goes nowhere in ``listen`` mode, to the operator only in ``whisper`` mode and to the operator and
the far end in ``barge`` mode. The mode may change at any moment.

Timing: while at least one supervisor is joined the hub is subscribed to the media clock. On each
tick it hands every supervisor one frame (the operator and far-end frames noted since the last
tick; silence when there were none, so a supervisor's stream is continuous) and then takes one
frame from each supervisor's small playout buffer; those are mixed in on the next tick.

Recording: the recorder taps what the stream sends and receives, so the left channel holds what
went to the far end (the operator, and a barging supervisor, whom the customer heard) and the
right channel the far end. A whisper reaches neither channel: the customer never heard it.
"""

from __future__ import annotations

import collections
import logging
import secrets
from collections.abc import AsyncIterator, Iterable
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

from dialer.call_control import FRAME_BYTES
from dialer.telephony.bridge import FrameFeed
from sip.media.clock import MediaClock, Subscription

logger = logging.getLogger(__name__)

MonitorMode = Literal["listen", "whisper", "barge"]
MONITOR_MODES: tuple[MonitorMode, ...] = get_args(MonitorMode)

SAMPLES_PER_FRAME = FRAME_BYTES // 2
DEFAULT_VOICE_CAPACITY_FRAMES = 10  # 200 ms of a supervisor's microphone
DEFAULT_VOICE_TARGET_FRAMES = 2
DEFAULT_LISTEN_CAPACITY_FRAMES = 25  # 500 ms the supervisor's socket may fall behind

Samples = npt.NDArray[np.int32]


def is_monitor_mode(value: object) -> bool:
    return value in MONITOR_MODES


def _samples(frame: bytes) -> Samples:
    return np.frombuffer(frame, dtype="<i2").astype(np.int32)


def _to_frame(total: Samples) -> bytes:
    return np.clip(total, -32768, 32767).astype("<i2").tobytes()


def mix_frames(frames: Iterable[bytes | None]) -> bytes:
    """The sum of 320-byte frames (None = silence), clipped to 16 bits."""
    total = np.zeros(SAMPLES_PER_FRAME, dtype=np.int32)
    for frame in frames:
        if frame is not None:
            total += _samples(frame)
    return _to_frame(total)


class _VoiceBuffer:
    """A supervisor's microphone frames: bursty in, one per tick out once ``target`` are queued."""

    def __init__(self, capacity: int, target: int) -> None:
        self._frames: collections.deque[bytes] = collections.deque()
        self._capacity = capacity
        self._target = target
        self._playing = False
        self.dropped = 0

    def push(self, frame: bytes) -> None:
        if len(self._frames) >= self._capacity:
            self._frames.popleft()
            self.dropped += 1
        self._frames.append(frame)

    def pull(self) -> bytes | None:
        if not self._playing:
            if len(self._frames) < self._target:
                return None
            self._playing = True
        if not self._frames:
            self._playing = False  # ran dry: wait for the target again
            return None
        return self._frames.popleft()

    def clear(self) -> None:
        self._frames.clear()
        self._playing = False


class CallMonitor:
    """One supervisor on one call. Made by :meth:`CallMonitorHub.join`."""

    def __init__(
        self,
        hub: CallMonitorHub,
        user_id: int,
        mode: MonitorMode,
        *,
        listen_capacity_frames: int,
        voice_capacity_frames: int,
        voice_target_frames: int,
    ) -> None:
        self.monitor_id = secrets.token_urlsafe(12)
        self.user_id = user_id
        self._hub = hub
        self._mode: MonitorMode = mode
        self._feed = FrameFeed(listen_capacity_frames)
        self._voice = _VoiceBuffer(voice_capacity_frames, voice_target_frames)
        self._reader_started = False
        self.detached = False
        self.bad_frames = 0

    @property
    def call_id(self) -> int:
        return self._hub.call_id

    @property
    def operator_id(self) -> int:
        return self._hub.operator_id

    @property
    def mode(self) -> MonitorMode:
        return self._mode

    @mode.setter
    def mode(self, mode: MonitorMode) -> None:
        if not is_monitor_mode(mode):
            raise ValueError(f"unknown monitor mode {mode!r}")
        if mode == "listen":
            self._voice.clear()
        self._mode = mode

    @property
    def frames_dropped(self) -> int:
        """Frames of the mix the supervisor's side did not read in time (oldest dropped)."""
        return self._feed.dropped

    def push_frame(self, frame: bytes) -> None:
        """One 20 ms frame of the supervisor's microphone (ignored while only listening)."""
        if self.detached or self._mode == "listen":
            return
        if len(frame) != FRAME_BYTES:
            self.bad_frames += 1
            return
        self._voice.push(bytes(frame))

    def frames(self) -> AsyncIterator[bytes]:
        """The mix to play, one frame per tick; ends when the call ends or on :meth:`detach`."""
        if self._reader_started:
            raise RuntimeError("frames() already has a reader")
        self._reader_started = True
        return self._feed.frames()

    def detach(self) -> None:
        """Leave the call (idempotent)."""
        if self.detached:
            return
        self.detached = True
        self._feed.close()
        self._hub._leave(self)

    # -- used by the hub --------------------------------------------------------------------------

    def _deliver(self, frame: bytes) -> None:
        self._feed.put(frame)

    def _pull_voice(self) -> bytes | None:
        if self._mode == "listen":
            return None
        return self._voice.pull()

    def _end(self) -> None:
        self.detached = True
        self._feed.close()


class CallMonitorHub:
    """The mix points of one call (see the module docstring)."""

    def __init__(
        self,
        clock: MediaClock,
        call_id: int,
        operator_id: int,
        *,
        listen_capacity_frames: int = DEFAULT_LISTEN_CAPACITY_FRAMES,
        voice_capacity_frames: int = DEFAULT_VOICE_CAPACITY_FRAMES,
        voice_target_frames: int = DEFAULT_VOICE_TARGET_FRAMES,
    ) -> None:
        if voice_target_frames > voice_capacity_frames or voice_target_frames < 1:
            raise ValueError("the voice target must be between 1 and the capacity")
        self.call_id = call_id
        self.operator_id = operator_id
        self._clock = clock
        self._listen_capacity = listen_capacity_frames
        self._voice_capacity = voice_capacity_frames
        self._voice_target = voice_target_frames
        self._monitors: tuple[CallMonitor, ...] = ()
        self._subscription: Subscription | None = None
        self._operator_frame: bytes | None = None
        self._far_end_frame: bytes | None = None
        # Supervisors' frames taken on the last tick, mixed in on this one.
        self._voices: tuple[tuple[CallMonitor, bytes], ...] = ()
        self._to_operator: Samples | None = None
        self._to_far_end: Samples | None = None
        self.closed = False

    @property
    def monitors(self) -> tuple[CallMonitor, ...]:
        return self._monitors

    def join(self, user_id: int, mode: MonitorMode) -> CallMonitor:
        """A new supervisor on the call; raises ``RuntimeError`` once the call is over."""
        if self.closed:
            raise RuntimeError("the call is over")
        if not is_monitor_mode(mode):
            raise ValueError(f"unknown monitor mode {mode!r}")
        monitor = CallMonitor(
            self,
            user_id,
            mode,
            listen_capacity_frames=self._listen_capacity,
            voice_capacity_frames=self._voice_capacity,
            voice_target_frames=self._voice_target,
        )
        self._monitors = (*self._monitors, monitor)
        if self._subscription is None:
            self._subscription = self._clock.subscribe(self._tick)
        logger.info("call %d: user %d joined as %s", self.call_id, user_id, mode)
        return monitor

    def close(self) -> None:
        """The call is over: every supervisor's stream ends (idempotent)."""
        self.closed = True
        monitors, self._monitors = self._monitors, ()
        for monitor in monitors:
            monitor._end()
        self._stop()

    # -- the mix points ---------------------------------------------------------------------------

    def operator_out(self, frame: bytes | None) -> bytes | None:
        """What goes to the far end for the operator's ``frame`` (None = nothing to send)."""
        if not self._monitors:
            return frame
        self._operator_frame = frame
        barge = self._to_far_end
        if barge is None:
            return frame
        if frame is None:
            return _to_frame(barge)
        return _to_frame(barge + _samples(frame))

    def far_end_in(self, frame: bytes) -> bytes:
        """What the operator hears for the far end's ``frame`` (:meth:`note_far_end` and
        :meth:`to_operator` in one, for a leg that hands the operator the tick's frame)."""
        self.note_far_end(frame)
        return self.to_operator(frame)

    def note_far_end(self, frame: bytes) -> None:
        """The far end's frame of this tick, for the supervisors to hear."""
        if self._monitors:
            self._far_end_frame = frame

    def to_operator(self, frame: bytes) -> bytes:
        """``frame`` of the far end with the supervisors who whisper or barge mixed in."""
        if not self._monitors:
            return frame
        voices = self._to_operator
        if voices is None:
            return frame
        return _to_frame(voices + _samples(frame))

    # -- the tick ---------------------------------------------------------------------------------

    def _tick(self, index: int) -> None:
        operator, far_end = self._operator_frame, self._far_end_frame
        self._operator_frame = self._far_end_frame = None
        voices = self._voices
        for monitor in self._monitors:
            barging_others = (
                frame for other, frame in voices if other is not monitor and other.mode == "barge"
            )
            monitor._deliver(mix_frames((operator, far_end, *barging_others)))
        taken: list[tuple[CallMonitor, bytes]] = []
        for monitor in self._monitors:
            frame = monitor._pull_voice()
            if frame is not None:
                taken.append((monitor, frame))
        self._voices = tuple(taken)
        to_operator: Samples | None = None
        to_far_end: Samples | None = None
        for monitor, frame in taken:
            samples = _samples(frame)
            to_operator = samples if to_operator is None else to_operator + samples
            if monitor.mode == "barge":
                to_far_end = samples if to_far_end is None else to_far_end + samples
        self._to_operator = to_operator
        self._to_far_end = to_far_end

    def _leave(self, monitor: CallMonitor) -> None:
        self._monitors = tuple(other for other in self._monitors if other is not monitor)
        self._voices = tuple(pair for pair in self._voices if pair[0] is not monitor)
        if not self._monitors:
            self._stop()
            self._to_operator = self._to_far_end = None
            self._operator_frame = self._far_end_frame = None
            logger.info("call %d: no supervisor left on the call", self.call_id)

    def _stop(self) -> None:
        if self._subscription is not None:
            self._subscription.cancel()
            self._subscription = None
