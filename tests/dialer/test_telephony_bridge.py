"""The operator's frame pacer: what the far end hears when the browser or the server stumbles.

A real ``AudioStream`` sends RTP to a UDP socket of the test, on a media clock whose time only
moves when the test says so: "the browser" hands the pacer one numbered frame every 20 ms (its
phase 5 ms after the server's tick), and each frame that leaves is read back from its packet.
What is asserted is what a listener notices: how far behind the microphone the audio is once
things have settled, and which audio was left out.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from dialer.telephony.bridge import OperatorFramePacer
from sip.media.clock import MediaClock
from sip.media.codecs import PCMU
from sip.media.stream import AudioStream
from tests.sip.media.conftest import ManualLoop

TICK = 0.020
PHASE = 0.005  # the browser's frames arrive 5 ms after the server's ticks
LOUD_CODES = bytes(range(0x80, 0xA0))  # mu-law codes of loud samples (8000 to 32000)
QUIET_CODES = bytes(range(0xE0, 0xF0))  # mu-law codes of faint samples (130 to 370)


@dataclass
class Line:
    """The pacer feeding a real stream; the far end is a UDP socket of the test."""

    loop: ManualLoop
    clock: MediaClock
    pacer: OperatorFramePacer
    stream: AudioStream
    far_end: socket.socket
    frames: dict[int, bytes] = field(default_factory=dict)  # number -> frame
    numbers: dict[bytes, int] = field(default_factory=dict)
    heard: list[tuple[float, int | None]] = field(default_factory=list)  # (sent at, number)

    def frame(self, number: int, *, quiet: bool = False) -> bytes:
        """Frame ``number``: its digits in the first samples, all loud or all faint."""
        codes = QUIET_CODES if quiet else LOUD_CODES
        digits = [codes[(number // len(codes) ** place) % len(codes)] for place in range(3)]
        frame = PCMU.decode(bytes(digits) + bytes([codes[0]]) * 157)  # exact through PCMU
        self.frames[number] = frame
        self.numbers[frame] = number
        return frame

    def run_until(self, moment: float, arrivals: list[tuple[float, bytes]]) -> None:
        """Move time to ``moment``: ticks and the browser's frames in the order they happen."""
        while True:
            due_arrival = arrivals[0][0] if arrivals else float("inf")
            next_timer = self.loop.next_deadline()
            step = min(due_arrival, next_timer)
            if step > moment:
                break
            self.loop.now = max(self.loop.now, step)
            if not self.loop.run_one_due():
                while arrivals and arrivals[0][0] <= self.loop.now:
                    self.pacer.push(arrivals.pop(0)[1])
            self._read_far_end()
        self.loop.now = moment

    def stall(self, seconds: float, arrivals: list[tuple[float, bytes]]) -> None:
        """The server's loop is blocked: then its timers run first, the socket's frames after."""
        self.loop.now += seconds
        while self.loop.run_one_due():
            self._read_far_end()
            while arrivals and arrivals[0][0] <= self.loop.now:
                self.pacer.push(arrivals.pop(0)[1])

    def _read_far_end(self) -> None:
        while True:
            try:
                packet = self.far_end.recv(2048)
            except BlockingIOError:
                return
            pcm = PCMU.decode(packet[12:])
            self.heard.append((self.loop.now, self.numbers.get(pcm)))

    def delays_after(self, moment: float, spoken_at: Callable[[int], float]) -> list[float]:
        """For each frame heard after ``moment``: how long after it was spoken it left."""
        return [
            round(sent - spoken_at(number), 3)
            for sent, number in self.heard
            if sent >= moment and number is not None
        ]


@pytest.fixture
async def line() -> AsyncIterator[Line]:
    loop = ManualLoop(now=1000.0)
    clock = MediaClock(loop)
    pacer = OperatorFramePacer(clock)  # before the stream: its frame leaves on the same tick
    stream = await AudioStream.open(clock, "127.0.0.1")
    far_end = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    far_end.bind(("127.0.0.1", 0))
    far_end.setblocking(False)
    stream.set_remote("127.0.0.1", far_end.getsockname()[1], PCMU.payload_type)
    pacer.attach(stream)
    yield Line(loop, clock, pacer, stream, far_end)
    pacer.close()
    stream.close()
    clock.close()
    far_end.close()


def speak(
    line: Line, start: float, count: int, quiet: Callable[[int], bool] = lambda _: False
) -> list[tuple[float, bytes]]:
    """``count`` frames, frame ``n`` arriving at ``start + n * 20 ms + 5 ms``."""
    return [
        (start + number * TICK + PHASE, line.frame(number, quiet=quiet(number)))
        for number in range(count)
    ]


async def test_after_the_server_stalls_the_far_end_hears_the_operator_as_promptly_as_before(
    line: Line,
) -> None:
    start = line.loop.now
    arrivals = speak(line, start, 400)
    line.run_until(start + 3.0, arrivals)
    before = line.delays_after(start + 2.0, lambda number: start + number * TICK + PHASE)
    line.stall(0.3, arrivals)  # 15 ticks: 3 run late in a row, 12 are skipped
    line.run_until(start + 7.9, arrivals)
    after = line.delays_after(start + 4.3, lambda number: start + number * TICK + PHASE)

    # Before, and a second after: the frame that arrived just before a tick leaves on it; the
    # frames of the skipped ticks were left out rather than sent late.
    assert set(before) == set(after) == {round(TICK - PHASE, 3)}
    heard = [number for _sent, number in line.heard if number is not None]
    assert heard == sorted(heard)
    assert len(set(range(heard[-1] + 1)) - set(heard)) >= 12
    # The server was late, not the browser: no cushion is added for it.
    assert line.pacer.statistics.underruns == 0


async def test_a_burst_after_the_browser_stalls_is_given_back_in_its_pauses(line: Line) -> None:
    start = line.loop.now
    # Speech: 0.3 s of voice, then 0.2 s of pause, over and over.
    arrivals = speak(line, start, 500, quiet=lambda number: number % 25 >= 15)
    line.run_until(start + 2.0, arrivals)
    # The browser's tab stalls for 160 ms, then its 8 frames arrive at once.
    stalled = [(moment, frame) for moment, frame in arrivals if moment < start + 2.16]
    for index in range(len(stalled)):
        arrivals[index] = (start + 2.16 + PHASE, arrivals[index][1])
    line.run_until(start + 9.9, arrivals)

    heard = {number for _sent, number in line.heard if number is not None}
    dropped = set(range(min(heard), max(heard))) - heard
    spoken_at = {number: start + number * TICK + PHASE for number in line.frames}
    settled = line.delays_after(start + 7.0, spoken_at.__getitem__)
    # Once settled, the audio is no later than before the stall plus the one extra frame of
    # cushion a stall teaches the pacer (it ran dry once).
    assert max(settled) <= round(2 * TICK - PHASE, 3)
    # What was left out to get there were pauses, not words.
    assert dropped
    assert all(number % 25 >= 15 for number in dropped)


async def test_muted_the_far_end_hears_none_of_the_operator_then_every_frame_again(
    line: Line,
) -> None:
    start = line.loop.now
    arrivals = speak(line, start, 200)
    line.run_until(start + 1.0, arrivals)
    line.pacer.muted = True
    line.run_until(start + 2.0, arrivals)
    line.pacer.muted = False
    line.run_until(start + 3.0, arrivals)

    def heard_between(first: float, last: float) -> list[int | None]:
        return [number for sent, number in line.heard if first < sent <= last]

    before = heard_between(start, start + 1.0)
    muted = heard_between(start + 1.0 + TICK, start + 2.0)
    after = heard_between(start + 2.0 + TICK, start + 3.0)
    assert before == list(range(len(before)))  # every frame, in order, from the first
    assert len(muted) >= 45
    assert set(muted) == {None}  # silence: no frame of the operator's
    # Straight back to what is being said now (nothing held back from the muted second),
    # every frame, in order.
    first = after[0]
    assert first is not None
    assert after == list(range(first, first + len(after)))
    assert first >= round(1.0 / TICK) + len(muted) - 2
