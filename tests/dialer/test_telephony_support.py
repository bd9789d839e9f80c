"""Helpers shared by the telephony tests (no tests here): event capture, audio, waiting."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.live_events import EventBus, LiveEvent
from dialer.models import Call, Recording
from dialer.telephony.bridge import CallAudioBridge

FRAME_BYTES = 320
SAMPLE_RATE = 8000


@dataclass
class EventLog:
    """Every event one user receives, in order, collected by a background task."""

    user_id: int
    events: list[LiveEvent] = field(default_factory=list)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def kinds(self, prefix: str = "call.") -> list[str]:
        return [event.kind for event in self.events if event.kind.startswith(prefix)]

    def operator_states(self) -> list[object]:
        return [event.payload["state"] for event in self.events if event.kind == "operator.state"]

    async def wait_for(self, kind: str, seconds: float = 10.0) -> LiveEvent:
        async with asyncio.timeout(seconds):
            while True:
                for event in self.events:
                    if event.kind == kind:
                        return event
                self._arrived.clear()
                await self._arrived.wait()

    async def wait_for_more(self) -> None:
        """Until at least one more event arrives."""
        self._arrived.clear()
        await self._arrived.wait()

    def _add(self, event: LiveEvent) -> None:
        self.events.append(event)
        self._arrived.set()


@contextlib.asynccontextmanager
async def event_log(bus: EventBus, user_id: int) -> AsyncIterator[EventLog]:
    log = EventLog(user_id)
    subscription = bus.subscribe(user_id, None)

    async def collect() -> None:
        async for event in subscription:
            log._add(event)

    task = asyncio.get_running_loop().create_task(collect())
    try:
        yield log
    finally:
        subscription.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def sweep(seconds: float, low: float = 300.0, high: float = 3000.0) -> bytes:
    """A rising tone sweep: nothing like speech, easy to find again after G.711 and Opus."""
    times = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    phase = 2 * np.pi * (low * times + ((high - low) / (2 * seconds)) * times**2)
    return (6000 * np.sin(phase)).astype("<i2").tobytes()


def frames_of(pcm: bytes) -> list[bytes]:
    return [pcm[offset : offset + FRAME_BYTES] for offset in range(0, len(pcm), FRAME_BYTES)]


async def push_bursty(bridge: CallAudioBridge, pcm: bytes, burst: int = 4) -> None:
    """Push frames the way a WebSocket delivers a microphone: ``burst`` at once, then a pause,
    on the microphone's steady clock (bursts are due every ``burst`` x 20 ms, no drift)."""
    frames = frames_of(pcm)
    loop = asyncio.get_running_loop()
    started = loop.time()
    for number, start in enumerate(range(0, len(frames), burst)):
        for frame in frames[start : start + burst]:
            bridge.push_operator_frame(frame)
        await asyncio.sleep(max(0.0, started + (number + 1) * 0.020 * burst - loop.time()))


async def collect_frames(bridge: CallAudioBridge, into: bytearray) -> None:
    async for frame in bridge.far_end_frames():
        into.extend(frame)


async def recordings_of(
    session_factory: async_sessionmaker[AsyncSession], call_id: int
) -> list[Recording]:
    async with session_factory() as session:
        return list(
            (await session.scalars(select(Recording).where(Recording.call_id == call_id))).all()
        )


async def call_row(session_factory: async_sessionmaker[AsyncSession], call_id: int) -> Call:
    async with session_factory() as session:
        call = await session.get(Call, call_id)
        assert call is not None
        return call


def stereo_channels(path: Path) -> tuple[npt.NDArray[np.int16], npt.NDArray[np.int16]]:
    """Left and right channels of a (compressed) recording, decoded at 8 kHz by ffmpeg."""
    decoded = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "s16le", "-ar", str(SAMPLE_RATE), "-"],
        capture_output=True,
        check=True,
    ).stdout
    samples = np.frombuffer(decoded, dtype="<i2").reshape(-1, 2)
    return samples[:, 0].copy(), samples[:, 1].copy()


def _spectrogram(
    samples: npt.NDArray[np.int16], window: int = 256, hop: int = 80
) -> npt.NDArray[np.float64]:
    values = samples.astype(np.float64)
    count = (values.size - window) // hop + 1
    if count <= 0:
        return np.zeros((0, window // 2 + 1))
    indices = np.arange(window)[None, :] + hop * np.arange(count)[:, None]
    spectrum: npt.NDArray[np.float64] = np.abs(
        np.fft.rfft(values[indices] * np.hanning(window), axis=1)
    )
    return spectrum


def spectral_correlation(
    reference: npt.NDArray[np.int16], received: npt.NDArray[np.int16]
) -> float:
    """The best normalised correlation of ``reference``'s magnitude spectrogram with a stretch
    of ``received``'s (over every lag). Unlike a waveform correlation it survives codecs that
    do not keep the phase (Opus): a recording "contains" a sound when this is high."""
    wanted = _spectrogram(reference)
    found = _spectrogram(received)
    if wanted.shape[0] == 0 or found.shape[0] < wanted.shape[0]:
        return 0.0
    centred = wanted - wanted.mean()
    best = 0.0
    for lag in range(found.shape[0] - wanted.shape[0] + 1):
        stretch = found[lag : lag + wanted.shape[0]]
        other = stretch - stretch.mean()
        energy = float(np.sqrt((centred * centred).sum() * (other * other).sum()))
        if energy > 0:
            best = max(best, float((centred * other).sum()) / energy)
    return best
