"""Benchmark: N full-duplex G.711 audio streams paired on loopback, paced by one MediaClock.

Streams are opened in pairs that talk to each other (stream 2k <-> stream 2k+1), every stream
is fed one 20 ms frame of a tone per tick (so each packet is really encoded) and decodes what
it receives through its jitter buffer. All the streams of a process share one MediaClock;
with ``--processes P`` the streams are split over P worker processes (each with its own loop
and clock, as a deployment would shard calls over cores). Prints one JSON line per stream
count with

    streams, cpu_cores, cpu_ms_per_stream_second, send_interval_p50_ms,
    send_interval_p99_ms, received_ratio (+ a few extra counters)

``cpu_us_per_packet_round`` (CPU per packet sent, each one also received and decoded by its
peer stream) and ``projected_cores_at_50_pps`` stay meaningful when a busy machine starves
the benchmark below 50 packets/s; ``load_average_1min_at_end`` tells whether it was.

Usage (from the repository root):
    .venv/bin/python -m bench.media_streams --streams 100 1000 --seconds 15 [--processes 2]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import multiprocessing
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from sip.media.clock import MediaClock
from sip.media.stream import AudioStream, Direction

SAMPLED_STREAMS = 64
WARM_UP_SECONDS = 2.0
DRAIN_SECONDS = 0.5


@dataclass(frozen=True)
class WorkerResult:
    """Raw measurements of one process."""

    streams: int
    cpu_seconds: float
    wall_seconds: float
    elapsed_seconds: float
    sent_in_window: int
    sent: int
    received: int
    lost: int
    skipped_ticks: int
    intervals_ms: list[float]


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


async def run(stream_count: int, seconds: float, sampled_streams: int) -> WorkerResult:
    """Run ``stream_count`` streams (paired) for ``seconds`` in this process."""
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
    step = max(1, stream_count // max(1, sampled_streams))
    send_times: list[list[float]] = []
    for stream in streams[::step]:
        times: list[float] = []
        send_times.append(times)
        stream.add_tap(interval_recorder(times))
    sent_before = sum(stream.statistics.packets_sent for stream in streams)
    cpu_start = time.process_time()
    wall_start = time.perf_counter()
    await asyncio.sleep(seconds)
    cpu_used = time.process_time() - cpu_start
    wall_used = time.perf_counter() - wall_start
    sent_in_window = sum(stream.statistics.packets_sent for stream in streams) - sent_before
    for stream in streams:
        stream.set_hold(True)
    elapsed = time.perf_counter() - opened_at
    await asyncio.sleep(DRAIN_SECONDS)

    statistics = [stream.statistics for stream in streams]
    result = WorkerResult(
        streams=stream_count,
        cpu_seconds=cpu_used,
        wall_seconds=wall_used,
        elapsed_seconds=elapsed,
        sent_in_window=sent_in_window,
        sent=sum(item.packets_sent for item in statistics),
        received=sum(item.packets_received for item in statistics),
        lost=sum(item.packets_lost for item in statistics),
        skipped_ticks=clock.statistics.skipped_ticks,
        intervals_ms=[
            (later - earlier) * 1000
            for times in send_times
            for earlier, later in itertools.pairwise(times)
        ],
    )
    for stream in streams:
        stream.close()
    feeder.cancel()
    clock.close()
    return result


def run_worker(
    stream_count: int, seconds: float, sampled_streams: int, plain: bool
) -> WorkerResult:
    """Run one process's share on a fresh uvloop (or asyncio) loop."""
    if plain:
        return asyncio.run(run(stream_count, seconds, sampled_streams))
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(run(stream_count, seconds, sampled_streams))


def summarise(results: list[WorkerResult], plain: bool) -> dict[str, object]:
    """Merge the workers' measurements into the figures printed."""
    streams = sum(result.streams for result in results)
    cpu = sum(result.cpu_seconds for result in results)
    wall = max(result.wall_seconds for result in results)
    sent_in_window = sum(result.sent_in_window for result in results)
    sent = sum(result.sent for result in results)
    received = sum(result.received for result in results)
    intervals = [interval for result in results for interval in result.intervals_ms]
    elapsed = max(result.elapsed_seconds for result in results)
    return {
        "streams": streams,
        "processes": len(results),
        "seconds": round(wall, 2),
        "cpu_cores": os.cpu_count(),
        "cpu_ms_per_stream_second": round(cpu * 1000 / (streams * wall), 4),
        "cpu_percent_of_one_core": round(100 * cpu / wall, 1),
        "cpu_us_per_packet_round": round(cpu * 1e6 / sent_in_window, 2),
        "projected_cores_at_50_pps": round(cpu / sent_in_window * streams * 50, 3),
        "send_interval_p50_ms": round(percentile(intervals, 0.50), 3),
        "send_interval_p99_ms": round(percentile(intervals, 0.99), 3),
        "send_interval_max_ms": round(max(intervals), 3),
        "received_ratio": round(received / sent, 6) if sent else 0.0,
        "packets_sent": sent,
        "packets_per_stream_second": round(sent / (streams * elapsed), 2),
        "packets_lost": sum(result.lost for result in results),
        "clock_skipped_ticks": sum(result.skipped_ticks for result in results),
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        "loop": "asyncio" if plain else "uvloop",
    }


def main() -> None:
    """Parse arguments, run each stream count, print JSON lines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--streams", type=int, nargs="+", default=[100, 500, 1000])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--processes", type=int, default=1, help="worker processes")
    parser.add_argument("--asyncio", action="store_true", help="plain asyncio instead of uvloop")
    arguments = parser.parse_args()
    processes = max(1, arguments.processes)
    for stream_count in arguments.streams:
        if stream_count < 2 * processes or stream_count % (2 * processes):
            parser.error("--streams must split into pairs evenly over the processes")
        share = stream_count // processes
        sampled = SAMPLED_STREAMS // processes
        if processes == 1:
            results = [run_worker(share, arguments.seconds, sampled, arguments.asyncio)]
        else:
            context = multiprocessing.get_context("spawn")
            with context.Pool(processes) as pool:
                jobs = [
                    pool.apply_async(
                        run_worker, (share, arguments.seconds, sampled, arguments.asyncio)
                    )
                    for _ in range(processes)
                ]
                results = [job.get() for job in jobs]
        print(json.dumps(summarise(results, arguments.asyncio)), flush=True)


if __name__ == "__main__":
    main()
