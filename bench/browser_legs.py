"""Benchmark: N browser audio legs through the call service, driven in-process.

The web layer's audio WebSocket (engineer H) is not wired yet, so the "browsers" here are tasks
in this process that use ``CallService.attach_browser_audio`` directly: each pushes 20 ms frames
in bursts of two (every 40 ms, on a drift-free schedule, as a WebSocket delivers a microphone)
and reads ``far_end_frames()``. The calls go to the built-in test line running in a CHILD
process (so the far end's 2N streams do not share our core); the service runs on uvloop with a
temporary SQLite database and recording off (``--record`` turns it on).

Measured in-process with ``time.perf_counter`` (uvloop's ``loop.time()`` has 1 ms steps):

- send latency: a frame's push to the moment its RTP packet is handed to the socket (the
  stream's "sent" tap, matched by a frame number written into the frame);
- receive latency: an RTP packet's arrival at our socket to the frame being handed to the
  browser side (FIFO matching per leg; this includes the SIP stream's own jitter buffer,
  2 frames by default);
- frame interval: time between consecutive RTP packets sent on a leg.

Prints one JSON line per run: legs, cpu_cores, frame_interval_p99_ms, added_latency_p99_ms
(send p99 + receive p99), and the parts.

    .venv/bin/python bench/browser_legs.py --legs 100
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import struct
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dialer.actors import Actor, Role
from dialer.call_control import CallRequest
from dialer.live_events import InProcessEventBus
from dialer.settings import Settings
from dialer.storage import create_engine, create_session_factory, upgrade_database
from dialer.telephony import AccountChoice, CallAudioBridge, CallService
from dialer.users import create_user
from sip.account import Account
from sip.phone import PhoneConfig
from sip.testline import TestLine

FRAME_BYTES = 320
BURST = 2


@dataclass
class Leg:
    call_id: int
    bridge: CallAudioBridge
    pushed_at: dict[int, float] = field(default_factory=dict)
    arrivals: collections.deque[float] = field(default_factory=collections.deque)
    send_latencies: list[float] = field(default_factory=list)
    receive_latencies: list[float] = field(default_factory=list)
    send_intervals: list[float] = field(default_factory=list)
    last_sent: float | None = None
    measuring: bool = False


def tone_frame(number: int) -> bytes:
    """A 440 Hz frame whose first 4 bytes carry ``number``."""
    times = (np.arange(160) + number * 160) / 8000
    pcm = (3000 * np.sin(2 * np.pi * 440 * times)).astype("<i2").tobytes()
    return struct.pack("<I", number) + pcm[4:]


async def serve_test_line() -> None:
    line = await TestLine.start(host="127.0.0.1", port=0, rtp_port_range=(40000, 49999))
    print(line.port, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await line.aclose()


async def make_operators(settings: Settings, count: int) -> list[Actor]:
    await upgrade_database(settings.database_url)
    engine = create_engine(settings.database_url)
    actors = []
    async with create_session_factory(engine)() as session:
        for index in range(count):
            user = await create_user(
                session,
                None,
                settings,
                login=f"bench-{index}",
                password="bench password",  # noqa: S106 (throw-away users)
                display_name=f"Bench {index}",
                role=Role.OPERATOR,
            )
            actors.append(Actor.for_user(user))
        await session.commit()
    await engine.dispose()
    return actors


def progress(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def percentile(values: list[float], share: float) -> float:
    return float(np.percentile(np.array(values), share)) * 1000 if values else float("nan")


async def run(legs_wanted: int, seconds: float, record: bool) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--serve-test-line",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    assert child.stdin is not None
    port = int((await child.stdout.readline()).decode().strip())
    account = Account(
        name="testline", host="127.0.0.1", port=port, username="bench", register=False
    )
    with tempfile.TemporaryDirectory() as directory:
        data = Path(directory)
        settings = Settings(
            data_dir=data,
            database_url=f"sqlite+aiosqlite:///{data / 'bench.db'}",
            recordings_dir=data / "recordings",
            argon2_time_cost=1,
            argon2_memory_kib=1024,
            argon2_parallelism=1,
        )
        actors = await make_operators(settings, legs_wanted)
        progress(f"{len(actors)} operators made")
        engine = create_engine(settings.database_url)
        service = await CallService.start(
            settings,
            create_session_factory(engine),
            InProcessEventBus(),
            phone_config=PhoneConfig(bind_host="127.0.0.1", rtp_port_range=(20000, 29999)),
            accounts=AccountChoice.single(account, record_calls=record),
            browser_grace_seconds=60.0,
        )
        legs: list[Leg] = []
        for index, actor in enumerate(actors):
            live = await service.place_call(actor, CallRequest(number=f"+7916{index:07d}"))
            bridge = await service.attach_browser_audio(actor, live.call_id)
            legs.append(Leg(live.call_id, bridge))
            if index % 50 == 49:
                await asyncio.sleep(0.5)  # a realistic call setup rate
        progress(f"{len(legs)} calls placed")
        # Wait for every call to be answered, then hook the measurements on.
        deadline = loop.time() + 60
        while loop.time() < deadline:
            calls = [service._live_by_id.get(leg.call_id) for leg in legs]  # bench-only access
            if all(c is not None and c.state.value == "answered" for c in calls):
                break
            await asyncio.sleep(0.2)
        for leg in legs:
            live_call = service._live_by_id[leg.call_id]
            assert live_call.sip_call is not None
            instrument(leg, live_call.sip_call.audio, loop)
        progress("all answered, measuring")
        stop = asyncio.Event()
        tasks = [loop.create_task(browser(leg, stop, loop)) for leg in legs]
        await asyncio.sleep(2.0)  # settle
        cpu_before, wall_before = time.process_time(), time.monotonic()
        for leg in legs:
            leg.measuring = True
        await asyncio.sleep(seconds)
        for leg in legs:
            leg.measuring = False
        cpu_used = (time.process_time() - cpu_before) / (time.monotonic() - wall_before)
        stop.set()
        await asyncio.gather(*tasks)
        await service.close()
        await engine.dispose()
    child.stdin.close()
    await child.wait()
    send = [value for leg in legs for value in leg.send_latencies]
    receive = [value for leg in legs for value in leg.receive_latencies]
    intervals = [value for leg in legs for value in leg.send_intervals]
    return {
        "legs": len(legs),
        "cpu_cores": os.cpu_count(),
        "frame_interval_p99_ms": round(percentile(intervals, 99), 2),
        "added_latency_p99_ms": round(percentile(send, 99) + percentile(receive, 99), 2),
        "send_latency_p50_ms": round(percentile(send, 50), 2),
        "send_latency_p99_ms": round(percentile(send, 99), 2),
        "receive_latency_p50_ms": round(percentile(receive, 50), 2),
        "receive_latency_p99_ms": round(percentile(receive, 99), 2),
        "frames_sent_measured": len(send),
        "frames_received_measured": len(receive),
        "service_process_cpu_share": round(cpu_used, 3),
        "recording": record,
        "driver": "in-process BrowserAudioBridge (no WebSocket)",
        "event_loop": "asyncio" if os.environ.get("BENCH_NO_UVLOOP") else "uvloop",
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def instrument(leg: Leg, stream: Any, loop: asyncio.AbstractEventLoop) -> None:
    """Bench-only: the "sent" tap for send latency, the socket's protocol for arrivals."""

    def tap(direction: str, frame: bytes, _: int) -> None:
        if direction != "sent":
            return
        now = time.perf_counter()
        if leg.measuring and leg.last_sent is not None:
            leg.send_intervals.append(now - leg.last_sent)
        leg.last_sent = now
        (number,) = struct.unpack_from("<I", frame)
        pushed = leg.pushed_at.pop(number, None)
        if pushed is not None and leg.measuring:
            leg.send_latencies.append(now - pushed)

    stream.add_tap(tap)
    protocol = stream._transport.get_protocol()
    original = protocol.datagram_received

    def arrived(data: bytes, address: Any) -> None:
        leg.arrivals.append(time.perf_counter())
        original(data, address)

    protocol.datagram_received = arrived


async def browser(leg: Leg, stop: asyncio.Event, loop: asyncio.AbstractEventLoop) -> None:
    async def read() -> None:
        async for _ in leg.bridge.far_end_frames():
            now = time.perf_counter()
            if leg.arrivals:
                arrived = leg.arrivals.popleft()
                if leg.measuring:
                    leg.receive_latencies.append(now - arrived)

    reader = loop.create_task(read())
    leg.arrivals.clear()
    number = 1
    started = loop.time()
    burst = 0
    while not stop.is_set():
        for _ in range(BURST):
            leg.pushed_at[number] = time.perf_counter()
            leg.bridge.push_operator_frame(tone_frame(number))
            number += 1
        burst += 1
        await asyncio.sleep(max(0.0, started + burst * BURST * 0.020 - loop.time()))
    leg.bridge.detach()
    await reader


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--legs", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--record", action="store_true", help="record every call (default off)")
    parser.add_argument("--serve-test-line", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    try:
        import uvloop

        if not os.environ.get("BENCH_NO_UVLOOP"):
            uvloop.install()
    except ImportError:
        pass
    if arguments.serve_test_line:
        asyncio.run(serve_test_line())
        return
    result = asyncio.run(run(arguments.legs, arguments.seconds, arguments.record))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
