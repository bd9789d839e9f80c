"""Helpers shared by the telephony and floor tests (no tests here): event capture, a test
sweep, reading back calls and recordings. Audio in general: ``tests.audio``; the fixtures
``test_line``, ``bus`` and ``service``: ``tests/conftest.py`` and ``tests/dialer/conftest.py``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.call_control import CallRequest, LiveCall
from dialer.live_events import EventBus, LiveEvent
from dialer.models import Call, Recording
from dialer.telephony import CallService
from dialer.telephony.bridge import CallAudioBridge
from tests.audio import SAMPLE_RATE
from tests.conftest import Person


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


async def answered_browser_call(
    service: CallService, log: EventLog, operator: Person, request: CallRequest
) -> tuple[LiveCall, CallAudioBridge]:
    """Place ``request`` as ``operator``, attach the browser audio and wait until ``log`` (the
    operator's) shows the call answered."""
    live = await service.place_call(operator.actor, request)
    bridge = await service.attach_browser_audio(operator.actor, live.call_id)
    await log.wait_for("call.answered")
    return live, bridge


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


async def wait_for_recording(
    session_factory: async_sessionmaker[AsyncSession], call_id: int, seconds: float = 10.0
) -> Recording:
    """The call's one recording once it is stored (looked for every 100 ms for ``seconds``)."""
    for _ in range(round(seconds / 0.1)):
        found = await recordings_of(session_factory, call_id)
        if found:
            (recording,) = found
            return recording
        await asyncio.sleep(0.1)
    raise AssertionError(f"no recording of call {call_id} after {seconds} s")
