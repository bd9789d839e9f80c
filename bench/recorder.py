"""Benchmark: many concurrent stereo recorders fed in real time from one asyncio loop.

Each recorder gets one 20 ms frame per side every 20 ms (absolute deadlines; the recorders are
spread over 20 phase groups as independent RTP streams would be). A probe task measures how
late the loop runs its timers, which is how long the recorders block it. Prints one JSON line:
recorders, seconds, cpu_ms_per_recorder_second (process CPU including the writer threads),
loop_block_p99_ms, bytes_written.

    .venv/bin/python -m bench.recorder [--recorders 1000] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import tempfile
from pathlib import Path

import numpy as np

from recordings.wav_writer import RecordingWriter, StereoRecorder

FRAME_SECONDS = 0.020
PHASE_GROUPS = 20


def process_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def feed_group(
    recorders: list[StereoRecorder], phase: float, start: float, frames: int, frame: bytes
) -> None:
    loop = asyncio.get_running_loop()
    for index in range(frames):
        deadline = start + phase + index * FRAME_SECONDS
        delay = deadline - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        media_time = index * 160
        for recorder in recorders:
            recorder.write_frame("sent", frame, media_time)
            recorder.write_frame("received", frame, media_time)


async def probe(lateness: list[float], stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        expected = loop.time() + 0.005
        await asyncio.sleep(0.005)
        lateness.append(loop.time() - expected)


async def run(
    recorder_count: int, seconds: float, directory: Path, threads: int
) -> dict[str, float]:
    rng = np.random.default_rng(1)
    frame = rng.integers(-3000, 3000, 160, dtype=np.int16).astype("<i2").tobytes()
    frames = round(seconds / FRAME_SECONDS)
    loop = asyncio.get_running_loop()
    with RecordingWriter(threads=threads) as writer:
        recorders = [
            StereoRecorder(directory / f"call-{index}.wav", writer)
            for index in range(recorder_count)
        ]
        groups = [recorders[index::PHASE_GROUPS] for index in range(PHASE_GROUPS)]
        lateness: list[float] = []
        stop = asyncio.Event()
        probe_task = asyncio.create_task(probe(lateness, stop))
        cpu_before = process_cpu_seconds()
        start = loop.time() + 0.1
        await asyncio.gather(
            *(
                feed_group(group, index * FRAME_SECONDS / PHASE_GROUPS, start, frames, frame)
                for index, group in enumerate(groups)
            )
        )
        infos = await asyncio.gather(*(recorder.aclose() for recorder in recorders))
        cpu_used = process_cpu_seconds() - cpu_before
        stop.set()
        await probe_task
    bytes_written = sum(info.path.stat().st_size for info in infos)
    return {
        "recorders": recorder_count,
        "seconds": seconds,
        "cpu_ms_per_recorder_second": round(cpu_used * 1000 / (recorder_count * seconds), 4),
        "loop_block_p99_ms": round(float(np.percentile(lateness, 99)) * 1000, 2),
        "bytes_written": bytes_written,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recorders", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--writer-threads", type=int, default=2)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop")
    arguments = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="bench-recorder-"))
    try:
        coroutine = run(arguments.recorders, arguments.seconds, directory, arguments.writer_threads)
        if arguments.uvloop:
            import uvloop

            result = uvloop.run(coroutine)
        else:
            result = asyncio.run(coroutine)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
