"""Benchmark: N full-duplex G.711 audio streams paired on loopback, paced by one MediaClock.

Streams are opened in pairs that talk to each other (stream 2k <-> stream 2k+1), every stream
is fed one 20 ms frame of a tone per tick (so each packet is really encoded) and decodes what
it receives through its jitter buffer. Prints one JSON line per stream count:

    streams, cpu_cores, cpu_ms_per_stream_second, send_interval_p50_ms,
    send_interval_p99_ms, received_ratio (+ a few extra counters)

Usage: .venv/bin/python bench/media_streams.py --streams 100 1000 --seconds 15
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import struct
import time
from collections.abc import Callable

from sip.media.clock import MediaClock
from sip.media.stream import AudioStream, Direction

SAMPLED_STREAMS = 64
WARM_UP_SECONDS = 2.0
DRAIN_SECONDS = 0.5


def tone_frames(count: int) -> list[bytes]:
    """``count`` consecutive 20 ms frames of a 440 Hz tone."""
    frames = []
    for index in range(count):
        samples = [
            int(8000 * math.sin(2 * math.pi * 440 * (index * 160 + n) / 8000)) for n in range(160)
        ]
        frames.append(struct.pack("<160h", *samples))
    return frames


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    rank = max(0, math.ceil(fraction * len(ordered)) - 1)
    return ordered[rank]


def interval_recorder(times: list[float]) -> Callable[[Direction, bytes, int], None]:
    """A tap that records the wall time of every frame sent."""

    def tap(direction: Direction, frame: bytes, media_timestamp: int) -> None:
        if direction == "sent":
            times.append(time.perf_counter())

    return tap


async def run(stream_count: int, seconds: float) -> dict[str, object]:
    """Run ``stream_count`` streams for ``seconds`` and return the figures."""
    clock = MediaClock()
    frames = tone_frames(50)
    streams: list[AudioStream] = []
    position = [0]

    def feed(tick: int) -> None:
        frame = frames[position[0] % len(frames)]
        position[0] += 1
        for stream in streams:
            stream.send(frame)

    feeder = clock.subscribe(feed)  # subscribed first: runs before the streams each tick
    for _ in range(stream_count):
        streams.append(await AudioStream.open(clock, "127.0.0.1"))
    for index in range(0, stream_count - 1, 2):
        left, right = streams[index], streams[index + 1]
        left.set_remote("127.0.0.1", right.local_port, 0, 101)
        right.set_remote("127.0.0.1", left.local_port, 0, 101)

    opened_at = time.perf_counter()
    await asyncio.sleep(WARM_UP_SECONDS)
    step = max(1, stream_count // SAMPLED_STREAMS)
    send_times: list[list[float]] = []
    for stream in streams[::step]:
        times: list[float] = []
        send_times.append(times)
        stream.add_tap(interval_recorder(times))
    cpu_start = time.process_time()
    wall_start = time.perf_counter()
    await asyncio.sleep(seconds)
    cpu_used = time.process_time() - cpu_start
    wall_used = time.perf_counter() - wall_start
    for stream in streams:
        stream.set_hold(True)
    elapsed = time.perf_counter() - opened_at
    await asyncio.sleep(DRAIN_SECONDS)

    intervals = [
        (later - earlier) * 1000
        for times in send_times
        for earlier, later in itertools.pairwise(times)
    ]
    statistics = [stream.statistics for stream in streams]
    sent = sum(item.packets_sent for item in statistics)
    received = sum(item.packets_received for item in statistics)
    lost = sum(item.packets_lost for item in statistics)
    skipped = clock.statistics.skipped_ticks
    for stream in streams:
        stream.close()
    feeder.cancel()
    clock.close()
    return {
        "streams": stream_count,
        "seconds": round(wall_used, 2),
        "cpu_cores": os.cpu_count(),
        "cpu_ms_per_stream_second": round(cpu_used * 1000 / (stream_count * wall_used), 4),
        "cpu_percent_of_one_core": round(100 * cpu_used / wall_used, 1),
        "send_interval_p50_ms": round(percentile(intervals, 0.50), 3),
        "send_interval_p99_ms": round(percentile(intervals, 0.99), 3),
        "send_interval_max_ms": round(max(intervals), 3),
        "received_ratio": round(received / sent, 6) if sent else 0.0,
        "packets_sent": sent,
        "packets_per_stream_second": round(sent / (stream_count * elapsed), 2),
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        "packets_lost": lost,
        "clock_skipped_ticks": skipped,
    }


def main() -> None:
    """Parse arguments, run each stream count on a fresh (uv)loop, print JSON lines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--streams", type=int, nargs="+", default=[100, 500, 1000])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--asyncio", action="store_true", help="plain asyncio instead of uvloop")
    arguments = parser.parse_args()
    for stream_count in arguments.streams:
        if stream_count < 2 or stream_count % 2:
            parser.error("--streams needs even counts of at least 2 (streams are paired)")
        if arguments.asyncio:
            figures = asyncio.run(run(stream_count, arguments.seconds))
            figures["loop"] = "asyncio"
        else:
            import uvloop

            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                figures = runner.run(run(stream_count, arguments.seconds))
            figures["loop"] = "uvloop"
        print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
