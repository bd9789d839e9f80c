"""A jitter buffer that turns arriving RTP audio into one PCM frame per 20 ms slot.

Pure: ``push()`` hands it a decoded packet (sequence number, timestamp, SSRC, PCM) and
``pull()`` takes the frame of the next slot; it never reads a clock, the caller pulls once per
tick. Frames are placed by RTP timestamp on a grid of ``samples_per_frame`` slots, so the
output is a continuous 20 ms timeline once playout has started:

- before the first packet ``pull()`` returns ``None``; after it, ``depth_frames`` slots of
  silence build the cushion, then audio plays in timestamp order (reordering is free);
- a packet whose slot has already been played is *late* and dropped; a sequence number seen
  before is a *duplicate* and dropped;
- a missing slot is concealed by repeating the last frame attenuated (``conceal_frames``
  times, each quieter), then silence;
- when more than ``2 * depth_frames + 2`` frames wait, one is skipped to keep latency bounded
  (sender clock faster than ours, bursts after a stall); a packet beyond ``capacity_frames``
  realigns playout on it;
- sequence numbers and timestamps are extended across their 16/32-bit wraps; a sequence jump
  of more than ``MAX_DROPOUT`` restarts loss accounting; several late packets in a row that are
  newer in sequence mean the sender's timeline jumped back, and playout realigns;
- a new SSRC is adopted once two consecutive packets agree on it (a lone stray packet of
  another source never disturbs playout); adopting resets the timeline and re-primes.

Packets should carry a multiple of 20 ms of audio (ptime 20, 40, ...); each 20 ms piece goes
to its own slot and a trailing partial piece is padded with silence.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from sip.media.rtp import extend_sequence, sequence_difference

MAX_DROPOUT = 3000
MAX_MISORDER = 100
LATE_PACKETS_BEFORE_REALIGN = 5
SEEN_WINDOW = 1024


class FrameKind(enum.Enum):
    """Where a pulled frame came from."""

    AUDIO = "audio"
    CONCEALED = "concealed"
    SILENCE = "silence"


class PushOutcome(enum.Enum):
    """What the buffer did with a pushed packet."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    LATE = "late"
    HELD = "held"  # first packet of a possible new SSRC, waiting for confirmation


@dataclass(slots=True)
class JitterStatistics:
    """Counters since the buffer was created (all packet counts, except the frame counts)."""

    received: int = 0
    lost: int = 0
    late: int = 0
    duplicate: int = 0
    reordered: int = 0
    concealed_frames: int = 0
    silent_frames: int = 0
    skipped_frames: int = 0
    resynchronized: int = 0


@dataclass(slots=True)
class _Candidate:
    sequence_number: int
    timestamp: int
    ssrc: int
    pcm: bytes


_ACCEPTED = PushOutcome.ACCEPTED
_AUDIO = FrameKind.AUDIO


class JitterBuffer:
    """Reorders, de-duplicates and conceals one incoming audio stream. See module docstring."""

    def __init__(
        self,
        *,
        depth_frames: int = 2,
        capacity_frames: int = 50,
        samples_per_frame: int = 160,
        conceal_frames: int = 2,
        attenuation: float = 0.5,
    ) -> None:
        if depth_frames < 0 or capacity_frames <= depth_frames:
            raise ValueError("need 0 <= depth_frames < capacity_frames")
        self.depth_frames = depth_frames
        self.capacity_frames = capacity_frames
        self.samples_per_frame = samples_per_frame
        self.frame_bytes = samples_per_frame * 2
        self.conceal_frames = conceal_frames
        self.attenuation = attenuation
        self.silence = bytes(self.frame_bytes)
        self._backlog_limit = 2 * depth_frames + 2
        self.last_kind: FrameKind | None = None
        self._statistics = JitterStatistics()
        self._ssrc: int | None = None
        self._candidate: _Candidate | None = None
        self._slots: dict[int, bytes] = {}
        self._play_timestamp = 0
        self._capacity_samples = capacity_frames * samples_per_frame
        # The RTP timestamp that the audio right after the frame placed last would carry, and
        # the slot it goes to (-1: none). Both are on the current slot grid: playout moves by
        # whole slots, and only a new epoch moves the grid (which forgets them).
        self._follow_timestamp = -1
        self._follow_slot = 0
        self._priming = 0
        self._last_frame: bytes | None = None
        self._concealed_run = 0
        self._consecutive_late = 0
        # sequence accounting of the current epoch (reset on SSRC change or sequence restart)
        self._first_sequence = 0
        self._highest_sequence = 0
        self._unique_in_epoch = 0
        self._lost_before_epoch = 0
        # Duplicate detection: of the extended sequence numbers from the epoch's first to the
        # highest, the ones not received yet (within ``SEEN_WINDOW`` of the highest; older
        # numbers are not checked). Packets in order touch nothing here.
        self._missing: set[int] = set()
        self._received = 0
        self._restart_candidate: int | None = None

    # ------------------------------------------------------------------ queries
    @property
    def ssrc(self) -> int | None:
        """SSRC of the stream being played, ``None`` before the first packet."""
        return self._ssrc

    @property
    def started(self) -> bool:
        """True once the first packet arrived (``pull()`` then always returns a frame)."""
        return self._ssrc is not None

    @property
    def buffered_frames(self) -> int:
        """Frames waiting to be played."""
        return len(self._slots)

    @property
    def statistics(self) -> JitterStatistics:
        """A snapshot of the counters; ``lost`` = expected minus distinct packets received."""
        snapshot = JitterStatistics(
            received=self._received,
            lost=self._lost(),
            late=self._statistics.late,
            duplicate=self._statistics.duplicate,
            reordered=self._statistics.reordered,
            concealed_frames=self._statistics.concealed_frames,
            silent_frames=self._statistics.silent_frames,
            skipped_frames=self._statistics.skipped_frames,
            resynchronized=self._statistics.resynchronized,
        )
        return snapshot

    def _lost(self) -> int:
        if self._ssrc is None:
            return self._lost_before_epoch
        expected = self._highest_sequence - self._first_sequence + 1
        return self._lost_before_epoch + max(0, expected - self._unique_in_epoch)

    # ------------------------------------------------------------------ input
    def push(self, sequence_number: int, timestamp: int, ssrc: int, pcm: bytes) -> PushOutcome:
        """Offer one packet's decoded audio (16-bit PCM); returns what became of it."""
        self._received += 1
        if ssrc == self._ssrc:
            if self._candidate is not None:
                self._candidate = None
            highest = self._highest_sequence
            if (sequence_number - highest) & 0xFFFF == 1:
                # in order, the common case: the next sequence number cannot have been seen
                self._highest_sequence = highest + 1
                self._unique_in_epoch += 1
                # the common placement inline: one whole frame right after the frame placed
                # last goes to the slot after that one's, if it is not played yet and within
                # capacity (what ``_place_audio`` works out, without the modular arithmetic;
                # it does everything else)
                if timestamp == self._follow_timestamp and len(pcm) == self.frame_bytes:
                    slot = self._follow_slot
                    play = self._play_timestamp
                    if play <= slot < play + self._capacity_samples:
                        self._consecutive_late = 0
                        self._slots.setdefault(slot, pcm)
                        samples_per_frame = self.samples_per_frame
                        self._follow_timestamp = (timestamp + samples_per_frame) & 0xFFFFFFFF
                        self._follow_slot = slot + samples_per_frame
                        return _ACCEPTED
                return self._place_audio(1, timestamp, pcm)
            return self._place(sequence_number, timestamp, pcm)
        if self._ssrc is None:
            self._start_epoch(sequence_number, timestamp, ssrc)
        elif ssrc != self._ssrc:
            candidate = self._candidate
            if (
                candidate is not None
                and candidate.ssrc == ssrc
                and 0 < sequence_difference(sequence_number, candidate.sequence_number) <= 10
            ):
                self._candidate = None
                self._statistics.resynchronized += 1
                self._start_epoch(candidate.sequence_number, candidate.timestamp, ssrc)
                self._place(candidate.sequence_number, candidate.timestamp, candidate.pcm)
            else:
                self._candidate = _Candidate(sequence_number, timestamp, ssrc, pcm)
                return PushOutcome.HELD
        return self._place(sequence_number, timestamp, pcm)

    def _start_epoch(self, sequence_number: int, timestamp: int, ssrc: int) -> None:
        if self._ssrc is not None:
            self._lost_before_epoch = self._lost()
        self._ssrc = ssrc
        self._slots.clear()
        self._missing.clear()
        self._first_sequence = self._highest_sequence = sequence_number
        self._unique_in_epoch = 0
        self._consecutive_late = 0
        self._play_timestamp = timestamp
        self._follow_timestamp = -1  # the slot grid moves with the new epoch
        self._priming = self.depth_frames
        self._last_frame = None  # never conceal a new stream with the old one's audio

    def _restart_sequence(self, extended: int) -> None:
        self._lost_before_epoch = self._lost()
        self._first_sequence = self._highest_sequence = extended
        self._unique_in_epoch = 0
        self._missing.clear()
        self._statistics.resynchronized += 1

    def note_without_audio(self, sequence_number: int, ssrc: int) -> PushOutcome:
        """Account a packet of the stream that carries no audio (DTMF, comfort noise).

        Its sequence number then does not count as lost; playout is untouched.
        """
        if ssrc != self._ssrc:
            return PushOutcome.HELD
        self._received += 1
        if self._track_sequence(sequence_number) is None:
            return PushOutcome.DUPLICATE
        return PushOutcome.ACCEPTED

    def _track_sequence(self, sequence_number: int) -> int | None:
        """Record a sequence number; its distance past the highest, ``None`` if duplicate."""
        statistics = self._statistics
        highest = self._highest_sequence
        extended_sequence = extend_sequence(sequence_number, highest)
        sequence_delta = extended_sequence - highest
        if sequence_delta <= 0 and self._was_seen(extended_sequence):
            statistics.duplicate += 1
            return None
        if sequence_delta > MAX_DROPOUT or sequence_delta < -MAX_MISORDER:
            # RFC 3550 A.1: a big jump is a restart only if the next packet follows it;
            # until then the packet is placed by its timestamp but not accounted
            if sequence_number != self._restart_candidate:
                self._restart_candidate = (sequence_number + 1) & 0xFFFF
                return 0
            self._restart_sequence(extended_sequence)
            sequence_delta = 0
        elif sequence_delta < 0:
            statistics.reordered += 1
            self._missing.discard(extended_sequence)
        if extended_sequence < self._first_sequence:
            self._note_missing(extended_sequence + 1, self._first_sequence)
            self._first_sequence = extended_sequence
        self._unique_in_epoch += 1
        if sequence_delta > 0:
            if sequence_delta > 1:
                self._note_missing(highest + 1, extended_sequence)
            self._highest_sequence = extended_sequence
            if len(self._missing) > 2 * SEEN_WINDOW:
                horizon = extended_sequence - SEEN_WINDOW
                self._missing = {value for value in self._missing if value > horizon}
        return sequence_delta

    def _was_seen(self, extended_sequence: int) -> bool:
        """Whether a sequence number at or below the highest was received in this epoch."""
        return (
            self._unique_in_epoch > 0
            and extended_sequence >= self._first_sequence
            and extended_sequence > self._highest_sequence - SEEN_WINDOW
            and extended_sequence not in self._missing
        )

    def _note_missing(self, start: int, stop: int) -> None:
        """Sequence numbers ``start`` up to ``stop`` (excluded) were skipped."""
        self._missing.update(range(max(start, stop - SEEN_WINDOW), stop))

    def _place(self, sequence_number: int, timestamp: int, pcm: bytes) -> PushOutcome:
        sequence_delta = self._track_sequence(sequence_number)
        if sequence_delta is None:
            return PushOutcome.DUPLICATE
        return self._place_audio(sequence_delta, timestamp, pcm)

    def _place_audio(self, sequence_delta: int, timestamp: int, pcm: bytes) -> PushOutcome:
        statistics = self._statistics
        samples_per_frame = self.samples_per_frame
        play = self._play_timestamp
        offset = ((timestamp - play + 0x80000000) & 0xFFFFFFFF) - 0x80000000
        slot_offset = (offset + samples_per_frame // 2) // samples_per_frame  # nearest slot
        if slot_offset < 0:
            statistics.late += 1
            self._consecutive_late += 1
            if sequence_delta <= 0 or self._consecutive_late < LATE_PACKETS_BEFORE_REALIGN:
                return PushOutcome.LATE
            # the sender's timeline jumped back: play from this packet on
            self._statistics.resynchronized += 1
            self._statistics.skipped_frames += len(self._slots)
            self._slots.clear()
            self._realign(play + slot_offset * samples_per_frame)
            slot_offset = self.depth_frames
        self._consecutive_late = 0
        if slot_offset >= self.capacity_frames:
            self._statistics.resynchronized += 1
            self._realign(play + slot_offset * samples_per_frame)
            slot_offset = self.depth_frames
        slot = self._play_timestamp + slot_offset * samples_per_frame
        frame_bytes = self.frame_bytes
        slots = self._slots
        if len(pcm) == frame_bytes:
            slots.setdefault(slot, pcm)
            self._follow_timestamp = (timestamp + samples_per_frame) & 0xFFFFFFFF
            self._follow_slot = slot + samples_per_frame
        else:
            self._follow_timestamp = -1
            for start in range(0, len(pcm), frame_bytes):
                piece = pcm[start : start + frame_bytes]
                if len(piece) < frame_bytes:
                    piece += bytes(frame_bytes - len(piece))
                slots.setdefault(slot, piece)
                slot += samples_per_frame
        return PushOutcome.ACCEPTED

    def _realign(self, packet_slot: int) -> None:
        """Move playout so ``packet_slot`` plays after ``depth_frames`` slots."""
        new_play = packet_slot - self.depth_frames * self.samples_per_frame
        dropped = [slot for slot in self._slots if slot < new_play]
        for slot in dropped:
            del self._slots[slot]
        self._statistics.skipped_frames += len(dropped)
        self._play_timestamp = new_play
        self._consecutive_late = 0

    # ------------------------------------------------------------------ output
    def pull(self, *, trim: bool = True) -> bytes | None:
        """The PCM frame of the next 20 ms slot, or ``None`` before the first packet.

        ``trim=False`` plays the slot even when too many frames wait (a caller catching up on
        slots it missed drains the backlog itself, losing nothing)."""
        if self._ssrc is None:
            self.last_kind = None
            return None
        if self._priming > 0:
            self._priming -= 1
            return self._silent()
        slots = self._slots
        if trim and len(slots) > self._backlog_limit and self._play_timestamp in slots:
            del slots[self._play_timestamp]
            self._play_timestamp += self.samples_per_frame
            self._statistics.skipped_frames += 1
        frame = slots.pop(self._play_timestamp, None)
        self._play_timestamp += self.samples_per_frame
        if frame is not None:
            self._last_frame = frame
            self._concealed_run = 0
            self.last_kind = _AUDIO
            return frame
        if self._last_frame is not None and self._concealed_run < self.conceal_frames:
            self._concealed_run += 1
            self._statistics.concealed_frames += 1
            self.last_kind = FrameKind.CONCEALED
            return attenuate(self._last_frame, self.attenuation**self._concealed_run)
        self._last_frame = None
        return self._silent()

    def _silent(self) -> bytes:
        self._statistics.silent_frames += 1
        self.last_kind = FrameKind.SILENCE
        return self.silence


def attenuate(pcm16: bytes, gain: float) -> bytes:
    """Scale 16-bit little-endian PCM by ``gain`` (0..1), rounding toward zero."""
    samples = np.frombuffer(pcm16, dtype="<i2").astype(np.float32)
    return (samples * gain).astype("<i2").tobytes()
