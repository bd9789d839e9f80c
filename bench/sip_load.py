"""Load benchmark: N concurrent recorded calls from our SIP stack to SIPp callees echoing RTP.

Every call is set up through SIP on loopback, held for ``--seconds`` while both directions are
recorded to disk (``recordings.wav_writer.StereoRecorder`` fed from the audio tap, flushed
every ``RECORDING_FLUSH_SECONDS``), then hung up. One SIPp process per ``CALLS_PER_SIPP``
calls (SIPp echoes on one socket and thread per process). One JSON line per run::

    {"impl": "dialer", "calls": 1000, "cpu_cores": 2, "cpu_ms_per_call_second": ...,
     "send_interval_p50_ms": ..., "send_interval_p99_ms": ..., "received_ratio": ...,
     "setup_rate_cps": ..., "rss_mb": ...}

* cpu_ms_per_call_second: process CPU time (all threads, recording writers included) during
  the hold, per call and per second of call;
* send_interval_p50/p99_ms: intervals between consecutive RTP packets of each call, taken at
  the moment the packet is handed to the socket (every call, the whole hold);
* received_ratio: packets received back from the echo / packets sent, during the hold;
* setup_rate_cps: calls / seconds from the first INVITE to the last answer (INVITEs go out in
  batches of ``SETUP_BATCH``);
* rss_mb: peak resident memory of the process.

``--reference-pyvoip`` also runs pyVoIP 1.6.8 (thread-per-call RTP) at ``--pyvoip-calls``
(default 100) against the same kind of callee, with the same keys and ``"impl": "pyvoip"``,
run first so the peak RSS it reports is its own. pyVoIP registers before calling, so its callee
scenario also answers REGISTER; its packets are counted and timed by wrapping its RTP sockets;
one thread records every call (pyVoIP's 8-bit audio widened to 16 bits).

Run: ``.venv/bin/python -m bench.sip_load --calls 100 --calls 1000 --seconds 30``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from recordings.wav_writer import RecordingWriter, StereoRecorder  # noqa: E402
from sip.account import Account  # noqa: E402
from sip.phone import Call, Phone, PhoneConfig  # noqa: E402
from sip.ratelimit import RateLimit  # noqa: E402
from tests.sip import peers  # noqa: E402

SAMPLE_RATE = 8000
CALLS_PER_SIPP = 250
SETUP_BATCH = 100  # INVITEs placed together (one gather) before yielding to the media
# The recorder fsyncs every flush; 0.5 s (its default) x 1000 calls is 2000 fsync/s, more than
# this machine's disk takes (about 5 ms each), so the bench flushes every 5 s.
RECORDING_FLUSH_SECONDS = 5.0


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def percentiles(intervals: list[np.ndarray[Any, Any]]) -> tuple[float, float]:
    if not intervals:
        return 0.0, 0.0
    joined = np.concatenate(intervals) * 1000
    if joined.size == 0:
        return 0.0, 0.0
    return float(np.percentile(joined, 50)), float(np.percentile(joined, 99))


class CallProbe:
    """Per call: the recorder, and the loop time of every packet sent during the hold."""

    def __init__(self, call: Call, recorder: StereoRecorder, loop: asyncio.AbstractEventLoop):
        self.call = call
        self.recorder = recorder
        self.loop = loop
        self.measuring = False
        self.sent_at: list[float] = []
        call.audio.add_tap(self.tap)

    def tap(self, direction: str, frame: bytes, media_timestamp: int) -> None:
        if direction == "sent" and self.measuring:
            self.sent_at.append(self.loop.time())
        self.recorder.write_frame(
            "sent" if direction == "sent" else "received", frame, media_timestamp
        )

    def intervals(self) -> np.ndarray[Any, Any]:
        return np.diff(np.asarray(self.sent_at))


async def run_dialer(calls: int, seconds: float, directory: Path) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    # SIPp echoes all the RTP of one process on one socket in one thread: spread the calls so
    # the echo, not our stack, is never the bottleneck.
    callee_count = max(1, math.ceil(calls / CALLS_PER_SIPP))
    callees = [
        await peers.start_sipp(
            "answer_echo",
            directory / f"sipp{number}",
            rtp_echo=True,
            calls=math.ceil(calls / callee_count),
            timeout_seconds=int(seconds) + 300,
            receive_timeout_seconds=int(seconds) + 120,
            extra_arguments=["-l", str(calls + 10), "-buff_size", str(4 << 20)],
        )
        for number in range(callee_count)
    ]
    phone = await Phone.start(
        PhoneConfig(
            bind_host="127.0.0.1",
            rtp_port_range=(32768, 60999),
            rate_limit=RateLimit(messages_per_second=1e6, burst=1e6),
        )
    )
    writer = RecordingWriter(threads=2)
    accounts = [
        Account(name="bench", host="127.0.0.1", port=sipp.sip_port, username="b", register=False)
        for sipp in callees
    ]
    recordings = directory / "recordings"
    recordings.mkdir(parents=True, exist_ok=True)
    probes: list[CallProbe] = []
    try:
        started = time.perf_counter()
        for first in range(0, calls, SETUP_BATCH):
            batch = range(first, min(calls, first + SETUP_BATCH))
            placed = await asyncio.gather(
                *(phone.call(accounts[i % callee_count], f"echo{i}") for i in batch)
            )
            for index, call in zip(batch, placed, strict=True):
                recorder = StereoRecorder(
                    recordings / f"call{index:05d}.wav",
                    writer,
                    flush_interval_seconds=RECORDING_FLUSH_SECONDS,
                )
                probes.append(CallProbe(call, recorder, loop))
        answered = await asyncio.gather(*(probe.call.wait_answered() for probe in probes))
        setup_seconds = time.perf_counter() - started
        if not all(answered):
            failed = [p.call.cause for p in probes if p.call.answered_at is None]
            raise RuntimeError(f"{len(failed)} calls not answered: {failed[:5]}")
        await asyncio.sleep(1.0)  # let the echo start flowing everywhere
        gc.collect()
        sent_before = sum(p.call.statistics.packets_sent for p in probes)
        received_before = sum(p.call.statistics.packets_received for p in probes)
        for probe in probes:
            probe.measuring = True
        cpu_before = cpu_seconds()
        hold_started = time.perf_counter()
        await asyncio.sleep(seconds)
        hold = time.perf_counter() - hold_started
        cpu = cpu_seconds() - cpu_before
        for probe in probes:
            probe.measuring = False
        sent = sum(p.call.statistics.packets_sent for p in probes) - sent_before
        received = sum(p.call.statistics.packets_received for p in probes) - received_before
        for probe in probes:
            probe.call.hangup()
        await asyncio.wait_for(asyncio.gather(*(probe.call.wait_ended() for probe in probes)), 60)
        for probe in probes:
            probe.recorder.close()
        p50, p99 = percentiles([probe.intervals() for probe in probes])
        return {
            "impl": "dialer",
            "calls": calls,
            "cpu_cores": os.cpu_count(),
            "cpu_ms_per_call_second": round(cpu * 1000 / (calls * hold), 3),
            "send_interval_p50_ms": round(p50, 2),
            "send_interval_p99_ms": round(p99, 2),
            "received_ratio": round(received / sent, 5) if sent else 0.0,
            "setup_rate_cps": round(calls / setup_seconds, 1),
            "rss_mb": round(peak_rss_mb(), 1),
        }
    finally:
        await phone.aclose(grace=5.0)
        writer.close()
        for sipp in callees:
            await sipp.stop()


class _CountingSocket:
    """Wraps a pyVoIP RTP socket: counts and timestamps every packet it sends."""

    def __init__(self, wrapped: Any) -> None:
        self._wrapped = wrapped
        self.measuring = False
        self.sent = 0
        self.sent_at: list[float] = []

    def sendto(self, data: bytes, address: Any) -> int:
        self.sent += 1
        if self.measuring:
            self.sent_at.append(time.monotonic())
        result: int = self._wrapped.sendto(data, address)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wrapped, name)


async def run_pyvoip(calls: int, seconds: float, directory: Path) -> dict[str, Any]:
    """pyVoIP 1.6.8 as the reference: one VoIPPhone, ``calls`` calls, two RTP threads per call,
    one recorder thread writing both directions of every call to a stereo WAV."""
    sipp = await peers.start_sipp(
        "register_and_answer",
        directory / "sipp",
        rtp_echo=True,
        calls=calls * 3 + 10,  # registrations count as calls too
        timeout_seconds=int(seconds) + 300,
        receive_timeout_seconds=int(seconds) + 120,
        extra_arguments=["-l", str(calls + 10), "-nr"],
    )
    try:
        return await asyncio.to_thread(_pyvoip_calls, calls, seconds, directory, sipp.sip_port)
    finally:
        await sipp.stop()


def _pyvoip_calls(calls: int, seconds: float, directory: Path, sip_port: int) -> dict[str, Any]:
    import threading
    import wave

    from pyVoIP.VoIP import CallState, VoIPPhone

    phone = VoIPPhone(
        "127.0.0.1", sip_port, "bench", "bench", myIP="127.0.0.1",
        sipPort=peers.free_port(), rtpPortLow=61000, rtpPortHigh=61000 + 4 * calls,
    )  # fmt: skip
    recordings = directory / "recordings"
    recordings.mkdir(parents=True, exist_ok=True)
    stop_recording = threading.Event()
    try:
        phone.start()
        started = time.perf_counter()
        voip_calls = [phone.call(f"echo{index}") for index in range(calls)]
        deadline = time.monotonic() + 60
        while any(call.state != CallState.ANSWERED for call in voip_calls):
            if time.monotonic() > deadline:
                raise RuntimeError("pyVoIP calls not answered within 60 s")
            time.sleep(0.01)
        setup_seconds = time.perf_counter() - started
        sockets: list[_CountingSocket] = []
        received_counts = [0] * calls
        for index, call in enumerate(voip_calls):
            for client in call.RTPClients:
                counting = _CountingSocket(client.sout)
                client.sout = counting  # type: ignore[assignment]
                sockets.append(counting)
                original = client.parse_packet

                def counted(packet: bytes, _index: int = index, _parse: Any = original) -> None:
                    received_counts[_index] += 1
                    _parse(packet)

                client.parse_packet = counted  # type: ignore[method-assign]
        writers = []
        for index in range(calls):
            writer = wave.open(str(recordings / f"call{index:05d}.wav"), "wb")  # noqa: SIM115
            writer.setnchannels(2)
            writer.setsampwidth(2)
            writer.setframerate(SAMPLE_RATE)
            writers.append(writer)
        silence = np.zeros(160, dtype="<i2")

        def record() -> None:
            next_at = time.monotonic()
            while not stop_recording.is_set():
                for call, writer in zip(voip_calls, writers, strict=True):
                    received = call.read_audio(160, blocking=False)
                    right = (np.frombuffer(received, dtype=np.uint8).astype(np.int16) - 128) * 256
                    stereo = np.empty(320, dtype="<i2")
                    stereo[0::2] = silence
                    stereo[1::2] = right[:160] if right.size >= 160 else 0
                    writer.writeframes(stereo.tobytes())
                next_at += 0.02
                time.sleep(max(0.0, next_at - time.monotonic()))

        recorder = threading.Thread(target=record, name="pyvoip recorder")
        recorder.start()
        time.sleep(1.0)
        sent_before = sum(counting.sent for counting in sockets)
        received_before = sum(received_counts)
        for counting in sockets:
            counting.measuring = True
        cpu_before = cpu_seconds()
        hold_started = time.perf_counter()
        time.sleep(seconds)
        hold = time.perf_counter() - hold_started
        cpu = cpu_seconds() - cpu_before
        for counting in sockets:
            counting.measuring = False
        sent = sum(counting.sent for counting in sockets) - sent_before
        received = sum(received_counts) - received_before
        stop_recording.set()
        recorder.join()
        for writer in writers:
            writer.close()
        for call in voip_calls:
            call.hangup()
        p50, p99 = percentiles([np.diff(np.asarray(counting.sent_at)) for counting in sockets])
        return {
            "impl": "pyvoip",
            "calls": calls,
            "cpu_cores": os.cpu_count(),
            "cpu_ms_per_call_second": round(cpu * 1000 / (calls * hold), 3),
            "send_interval_p50_ms": round(p50, 2),
            "send_interval_p99_ms": round(p99, 2),
            "received_ratio": round(received / sent, 5) if sent else 0.0,
            "setup_rate_cps": round(calls / setup_seconds, 1),
            "rss_mb": round(peak_rss_mb(), 1),
        }
    finally:
        stop_recording.set()
        phone.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, action="append", help="repeatable; default 100")
    parser.add_argument("--seconds", type=float, default=30.0, help="hold time (default 30)")
    parser.add_argument("--reference-pyvoip", action="store_true", help="also run pyVoIP")
    parser.add_argument("--pyvoip-calls", type=int, default=100)
    parser.add_argument("--keep", action="store_true", help="keep the recordings")
    arguments = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    if arguments.reference_pyvoip:
        directory = Path(tempfile.mkdtemp(prefix="sip_load_pyvoip_"))
        try:
            result = asyncio.run(run_pyvoip(arguments.pyvoip_calls, arguments.seconds, directory))
            print(json.dumps(result), flush=True)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
    for calls in arguments.calls or [100]:
        directory = Path(tempfile.mkdtemp(prefix=f"sip_load_{calls}_"))
        try:
            result = asyncio.run(run_dialer(calls, arguments.seconds, directory))
            print(json.dumps(result), flush=True)
        finally:
            if not arguments.keep:
                shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
