"""Load benchmark: N concurrent recorded calls from our SIP stack to a SIPp callee echoing RTP.

Every call is set up through SIP on loopback, held for ``--seconds`` while both directions are
recorded to disk (``recordings.wav_writer.StereoRecorder`` fed from the audio tap), then hung
up. One JSON line per run::

    {"impl": "dialer", "calls": 1000, "cpu_cores": 2, "cpu_ms_per_call_second": ...,
     "send_interval_p50_ms": ..., "send_interval_p99_ms": ..., "received_ratio": ...,
     "setup_rate_cps": ..., "rss_mb": ...}

* cpu_ms_per_call_second: process CPU time (all threads, recording writers included) during
  the hold, per call and per second of call;
* send_interval_p50/p99_ms: intervals between consecutive RTP packets of each call, taken at
  the moment the packet is handed to the socket (every call, the whole hold);
* received_ratio: packets received back from the echo / packets sent, during the hold;
* setup_rate_cps: calls / seconds from the first INVITE to the last answer;
* rss_mb: peak resident memory of the process.

``--reference-pyvoip`` also runs pyVoIP 1.6.8 (thread-per-call RTP) at ``--pyvoip-calls``
(default 100) against the same kind of callee, with the same keys and ``"impl": "pyvoip"``.
pyVoIP wants to register first, so its callee scenario also answers REGISTER.

Run: ``.venv/bin/python -m bench.sip_load --calls 100 --calls 1000 --seconds 30``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
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
            "sent" if direction == "sent" else "received", frame, media_timestamp / SAMPLE_RATE
        )

    def intervals(self) -> np.ndarray[Any, Any]:
        return np.diff(np.asarray(self.sent_at))


async def run_dialer(calls: int, seconds: float, directory: Path) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    sipp = await peers.start_sipp(
        "answer_echo",
        directory / "sipp",
        rtp_echo=True,
        calls=calls,
        timeout_seconds=int(seconds) + 300,
        receive_timeout_seconds=int(seconds) + 120,
        extra_arguments=["-l", str(calls + 10), "-nr"],
    )
    phone = await Phone.start(
        PhoneConfig(
            bind_host="127.0.0.1",
            rtp_port_range=(20000, 20000 + 4 * calls + 100),
            rate_limit=RateLimit(messages_per_second=1e6, burst=1e6),
        )
    )
    writer = RecordingWriter(threads=2)
    account = Account(
        name="bench", host="127.0.0.1", port=sipp.sip_port, username="bench", register=False
    )
    recordings = directory / "recordings"
    recordings.mkdir(parents=True, exist_ok=True)
    probes: list[CallProbe] = []
    try:
        started = time.perf_counter()
        for index in range(calls):
            call = await phone.call(account, f"echo{index}")
            recorder = StereoRecorder(recordings / f"call{index:05d}.wav", writer)
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
        await asyncio.wait_for(
            asyncio.gather(*(probe.call.wait_ended() for probe in probes)), 60
        )
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
        await sipp.stop()


def run_pyvoip(calls: int, seconds: float, directory: Path) -> dict[str, Any]:
    """pyVoIP 1.6.8 as the reference: one VoIPPhone, ``calls`` calls, threads for RTP."""
    from bench import sip_load_pyvoip

    return sip_load_pyvoip.run(calls, seconds, directory)


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
    for calls in arguments.calls or [100]:
        directory = Path(tempfile.mkdtemp(prefix=f"sip_load_{calls}_"))
        try:
            result = asyncio.run(run_dialer(calls, arguments.seconds, directory))
            print(json.dumps(result), flush=True)
        finally:
            if not arguments.keep:
                shutil.rmtree(directory, ignore_errors=True)
    if arguments.reference_pyvoip:
        directory = Path(tempfile.mkdtemp(prefix="sip_load_pyvoip_"))
        try:
            print(json.dumps(run_pyvoip(arguments.pyvoip_calls, arguments.seconds, directory)))
        finally:
            shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
