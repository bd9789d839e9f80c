"""Load benchmark: N concurrent recorded calls from our SIP stack to SIPp callees echoing RTP.

Every call is set up through SIP on loopback, held for ``--seconds`` while both directions are
recorded to disk (``recordings.wav_writer.StereoRecorder`` fed from the audio stream's duplex
tap, both directions of a tick in one call, with the product's default flush and sync
intervals), then hung up. One SIPp process per
``CALLS_PER_SIPP`` calls (SIPp echoes on one socket and thread per process; the packets of all
calls leave in one burst per 20 ms tick and a default socket buffer holds about 256 of them,
so each SIPp gets few enough to hold two ticks' worth even if it did not run meanwhile).

``--processes P`` shards the calls over P worker processes, as a deployment would use its cores:
each worker has its own ``Phone`` (own SIP port, media clock and RTP port range) and its own
``RecordingWriter``; call ``i`` goes to worker ``i % P`` and to SIPp ``i % S``. The workers set up
their calls, wait until every worker is ready, then hold together. Their figures are merged:
CPU and packet counts are summed, send intervals are merged as histograms (0.01 ms bins), not
averaged. The dialer always runs in worker processes (one with the default ``--processes 1``).
One JSON line per run::

    {"impl": "dialer", "calls": 1000, "cpu_cores": 2, "cpu_ms_per_call_second": ...,
     "send_interval_p50_ms": ..., "send_interval_p99_ms": ..., "received_ratio": ...,
     "setup_rate_cps": ..., "rss_mb": ..., "processes": 2, ...}

* cpu_ms_per_call_second: CPU time of the worker processes (all threads, recording writers
  included) during the hold, per call and per second of call;
* send_interval_p50/p99_ms: intervals between consecutive RTP packets of each call, each packet
  timed (``time.perf_counter``) right after it was handed to its socket (``sendto`` returned),
  every call, the whole hold: the same definition as for pyVoIP, whose RTP socket's ``sendto``
  is wrapped. Each worker's media clock tells a :class:`SendTimer` of each datagram of its send
  phase right after the socket took it (``MediaClock.observe_sends``), which reads the clock,
  looks the socket up and appends (a call, a clock read, a dictionary lookup and a list append
  per packet, between the sends of a tick: the product's send phase without them is faster);
* tap_interval_p50/p99_ms: the same intervals taken in the audio tap that sees the frame sent
  (the definition of this bench before the send interval was timed at the socket), which runs
  in the tick's after-send phase, i.e. after the whole tick's send *and* receive phases: it
  adds how long the receive phase and the taps of the calls before took to the moment;
* received_ratio: packets received back from the echo / packets sent, during the hold;
* setup_rate_cps: calls / seconds from the first INVITE to the last answer (each worker places
  INVITEs in batches of ``SETUP_BATCH``);
* rss_mb: peak resident memory, summed over the worker processes;
* extra keys: send_interval_p95_ms and _p999_ms, send_intervals_over_22_ms and _over_40_ms (the
  share of intervals longer than that: a whole tick late shows in both, a packet a little late
  in its tick only in the first); processes; media_phases (``staggered``: worker i of P ticks
  i/P of 20 ms after worker 0, ``PhoneConfig.media_phase``, so their send bursts do not
  coincide; ``unset`` with ``--unstaggered``: each clock's grid starts with its first call);
  worker_niceness (``--worker-nice``: the workers' niceness, e.g. -10 to run ahead of the SIPp
  echoes that share their cores, as a media server runs ahead of other work on its machine);
  worker_realtime_priority (``--worker-realtime N``: the workers run under SCHED_FIFO at
  priority N, :mod:`sip.media.priority`, as ``dialer serve --realtime-priority`` runs the
  server; 0: the normal scheduler); far_end_receive_buffer_bytes (``--far-end-receive-buffer``:
  the receive buffer the SIPp echoes' RTP sockets got; 0: the kernel's default, 208 KiB, about
  256 packets, which an echo sharing the cores with real-time workers can overrun: the packets
  it drops show as received_ratio below 1; a far end on a machine of its own would not share);
  dialer_cpu_cores (worker CPU / hold); sipp_processes and sipp_cpu_cores (CPU the SIPp echoes
  used during the hold, from /proc: they share the same cores, so read the dialer figures with
  it); packets_per_call_second (50 when on time); cpu_us_per_packet_sent (worker CPU per packet
  sent, which stays comparable when an overloaded machine makes the clock skip ticks and
  cpu_ms_per_call_second drops with the packets); clock_skipped_ticks;
  load_average_1min_at_start / _at_end (other work on the machine);
  gc_tracked_objects_per_process and gc_full_collection_ms (the largest of the workers, taken
  after setup: what a full collection of the garbage collector would walk and pause the ticks
  for; the bench then freezes those objects, ``gc.freeze()``, the product does not).

``--reference-pyvoip`` also runs pyVoIP 1.6.8 (thread-per-call RTP) at ``--pyvoip-calls``
(default 100) against the same kind of callee, with the same keys and ``"impl": "pyvoip"``,
run first so the peak RSS it reports is its own. pyVoIP registers before calling, so its callee
scenario also answers REGISTER; its packets are counted and timed by wrapping its RTP sockets;
one thread records every call (pyVoIP's 8-bit audio widened to 16 bits).

Run: ``.venv/bin/python -m bench.sip_load --calls 100 --calls 1000 --seconds 30 --processes 2``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import multiprocessing
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from recordings.wav_writer import RecordingWriter, StereoRecorder  # noqa: E402
from sip.account import Account  # noqa: E402
from sip.media.clock import TICK_INTERVAL  # noqa: E402
from sip.media.priority import use_realtime_scheduling  # noqa: E402
from sip.phone import Call, Phone, PhoneConfig  # noqa: E402
from sip.ratelimit import RateLimit  # noqa: E402
from tests.sip import peers  # noqa: E402

SAMPLE_RATE = 8000
CALLS_PER_SIPP = 100
SETUP_BATCH = 100  # INVITEs placed together (one gather) before yielding to the media
RTP_PORTS = (32768, 60999)
INTERVAL_BIN_MS = 0.01
INTERVAL_BINS = 200_000  # 0..2000 ms; longer intervals land in the last bin


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    """Peak resident memory of this process image (VmHWM: ru_maxrss would carry the peak of
    the parent a spawned worker was forked from across the exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def percentiles(intervals: list[np.ndarray[Any, Any]]) -> tuple[float, float]:
    if not intervals:
        return 0.0, 0.0
    joined = np.concatenate(intervals) * 1000
    if joined.size == 0:
        return 0.0, 0.0
    return float(np.percentile(joined, 50)), float(np.percentile(joined, 99))


def interval_histogram(intervals_ms: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Counts of send intervals in ``INTERVAL_BIN_MS`` bins (mergeable across processes)."""
    bins = np.minimum((intervals_ms / INTERVAL_BIN_MS).astype(np.int64), INTERVAL_BINS - 1)
    return np.bincount(bins, minlength=INTERVAL_BINS)


def histogram_percentile(counts: np.ndarray[Any, Any], fraction: float) -> float:
    """The value (bin centre, ms) at ``fraction`` of a merged interval histogram."""
    total = int(counts.sum())
    if total == 0:
        return 0.0
    rank = max(1, math.ceil(fraction * total))
    index = int(np.searchsorted(np.cumsum(counts), rank))
    return (index + 0.5) * INTERVAL_BIN_MS


def fraction_over(counts: np.ndarray[Any, Any], limit_ms: float) -> float:
    """The share of a merged interval histogram's intervals longer than ``limit_ms``."""
    total = int(counts.sum())
    if total == 0:
        return 0.0
    return float(counts[round(limit_ms / INTERVAL_BIN_MS) :].sum()) / total


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (Linux /proc), 0.0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class SendTimer:
    """Times every datagram of the media clock's send phase once its socket took it
    (``MediaClock.observe_sends``).

    ``measuring`` maps a socket's local port to the list its packets' send times go to (a
    stream's datagrams carry its socket's bound ``sendto``/``send``); sockets of other ports
    are not timed.
    """

    def __init__(self) -> None:
        self.measuring: dict[int, list[float]] = {}
        self._times_of: dict[Any, list[float] | None] = {}  # a socket -> its list, or None

    def start_measuring(self, sent_at: dict[int, list[float]]) -> None:
        self._times_of = {}
        self.measuring = sent_at

    def stop_measuring(self) -> None:
        self._times_of = {}
        self.measuring = {}

    def observe(self, send: Any) -> None:
        """The clock's send observer: called right after ``send`` handed a datagram over."""
        if not self.measuring:
            return
        sent_at = time.perf_counter()
        owner = getattr(send, "__self__", None)
        times_of = self._times_of
        if owner not in times_of:
            times_of[owner] = self._times_for(owner)
        times = times_of[owner]
        if times is not None:
            times.append(sent_at)

    def _times_for(self, owner: Any) -> list[float] | None:
        try:
            port = int(owner.getsockname()[1])
        except (AttributeError, OSError):
            return None
        return self.measuring.get(port)


class CallProbe:
    """Per call: the recorder, and the times of every packet sent during the hold (taken at
    the socket by the clock, and in the tap)."""

    def __init__(self, call: Call, recorder: StereoRecorder):
        self.call = call
        self.recorder = recorder
        self.measuring = False
        self.sent_at: list[float] = []  # filled by the SendTimer
        self.tapped_at: list[float] = []
        # both directions of a tick in one call, as the product's recorder takes them
        self._write_both = recorder.write_frames
        call.audio.add_duplex_tap(self.duplex_tap)

    def duplex_tap(self, sent: bytes | None, received: bytes | None, media_timestamp: int) -> None:
        if self.measuring and sent is not None:
            self.tapped_at.append(time.perf_counter())
        self._write_both(sent, received, media_timestamp)

    def intervals_ms(self) -> np.ndarray[Any, Any]:
        return np.diff(np.asarray(self.sent_at)) * 1000

    def tap_intervals_ms(self) -> np.ndarray[Any, Any]:
        return np.diff(np.asarray(self.tapped_at)) * 1000


@dataclass
class ShareSpec:
    """What one worker process runs."""

    worker: int
    call_indices: list[int]
    callee_ports: list[int]
    seconds: float
    directory: Path
    rtp_ports: tuple[int, int]
    media_phase: float | None = None
    niceness: int = 0
    realtime_priority: int = 0


@dataclass
class ShareReady:
    """A worker's calls are up (monotonic times are comparable across processes)."""

    first_invite: float
    last_answer: float


@dataclass
class ShareResult:
    """A worker's measurements of the hold."""

    calls: int
    cpu_seconds: float
    hold_seconds: float
    sent: int
    received: int
    skipped_ticks: int
    peak_rss_mb: float
    histogram: np.ndarray[Any, Any] = field(repr=False)
    tap_histogram: np.ndarray[Any, Any] = field(repr=False)
    gc_tracked_objects: int = 0
    gc_full_collection_ms: float = 0.0


async def run_share(spec: ShareSpec, connection: Connection) -> None:
    """One worker: place its calls, report ready, hold on "go", report the measurements."""
    loop = asyncio.get_running_loop()
    phone = await Phone.start(
        PhoneConfig(
            bind_host="127.0.0.1",
            rtp_port_range=spec.rtp_ports,
            rate_limit=RateLimit(messages_per_second=1e6, burst=1e6),
            media_phase=spec.media_phase,
        )
    )
    timer = SendTimer()
    phone.clock.observe_sends(timer.observe)
    writer = RecordingWriter(threads=2)
    accounts = [
        Account(name=f"bench{port}", host="127.0.0.1", port=port, username="b", register=False)
        for port in spec.callee_ports
    ]
    recordings = spec.directory / f"recordings{spec.worker}"
    recordings.mkdir(parents=True, exist_ok=True)
    probes: list[CallProbe] = []
    try:
        first_invite = time.monotonic()
        indices = spec.call_indices
        for first in range(0, len(indices), SETUP_BATCH):
            batch = indices[first : first + SETUP_BATCH]
            placed = await asyncio.gather(
                *(phone.call(accounts[i % len(accounts)], f"echo{i}") for i in batch)
            )
            for index, call in zip(batch, placed, strict=True):
                recorder = StereoRecorder(recordings / f"call{index:05d}.wav", writer)
                probes.append(CallProbe(call, recorder))
        answered = await asyncio.gather(*(probe.call.wait_answered() for probe in probes))
        last_answer = time.monotonic()
        if not all(answered):
            failed = [p.call.cause for p in probes if p.call.answered_at is None]
            raise RuntimeError(f"{len(failed)} calls not answered: {failed[:5]}")
        connection.send(("ready", ShareReady(first_invite, last_answer)))
        go = await loop.run_in_executor(None, connection.recv)
        if go != "go":
            return
        # Everything set up so far lives as long as the calls: out of the collector's sight, so
        # a collection during the hold never walks a thousand calls' objects.
        gc.collect()
        # what the product (which does not freeze) would pause for in a full collection now
        tracked_objects = len(gc.get_objects())
        collect_started = time.perf_counter()
        gc.collect()
        full_collection_ms = (time.perf_counter() - collect_started) * 1000
        gc.freeze()
        skipped_before = phone.clock.statistics.skipped_ticks
        sent_before = sum(p.call.statistics.packets_sent for p in probes)
        received_before = sum(p.call.statistics.packets_received for p in probes)
        timer.start_measuring({probe.call.audio.local_port: probe.sent_at for probe in probes})
        for probe in probes:
            probe.measuring = True
        cpu_before = cpu_seconds()
        hold_started = time.perf_counter()
        await asyncio.sleep(spec.seconds)
        hold = time.perf_counter() - hold_started
        cpu = cpu_seconds() - cpu_before
        timer.stop_measuring()
        for probe in probes:
            probe.measuring = False
        sent = sum(p.call.statistics.packets_sent for p in probes) - sent_before
        received = sum(p.call.statistics.packets_received for p in probes) - received_before
        skipped = phone.clock.statistics.skipped_ticks - skipped_before
        histogram = np.zeros(INTERVAL_BINS, dtype=np.int64)
        tap_histogram = np.zeros(INTERVAL_BINS, dtype=np.int64)
        for probe in probes:
            histogram += interval_histogram(probe.intervals_ms())
            tap_histogram += interval_histogram(probe.tap_intervals_ms())
        for probe in probes:
            probe.call.hangup()
        await asyncio.wait_for(asyncio.gather(*(probe.call.wait_ended() for probe in probes)), 60)
        for probe in probes:
            probe.recorder.close()
        result = ShareResult(
            len(probes),
            cpu,
            hold,
            sent,
            received,
            skipped,
            peak_rss_mb(),
            histogram,
            tap_histogram,
            tracked_objects,
            full_collection_ms,
        )
        connection.send(("result", result))
    except Exception as error:
        connection.send(("error", f"worker {spec.worker}: {error!r}"))
        raise
    finally:
        await phone.aclose(grace=5.0)
        writer.close()


def share_main(spec: ShareSpec, connection: Connection) -> None:
    """Entry point of a worker process."""
    if spec.niceness:
        os.nice(spec.niceness)
    if spec.realtime_priority:
        use_realtime_scheduling(spec.realtime_priority)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(run_share(spec, connection))


RECEIVE_BUFFER_DEFAULT = Path("/proc/sys/net/core/rmem_default")


@contextlib.contextmanager
def default_receive_buffer(size: int) -> Iterator[None]:
    """Sockets created inside get ``size`` bytes of receive buffer (``net.core.rmem_default``,
    restored on the way out); 0 leaves the kernel's default."""
    if not size:
        yield
        return
    previous = RECEIVE_BUFFER_DEFAULT.read_text().strip()
    RECEIVE_BUFFER_DEFAULT.write_text(str(size))
    try:
        yield
    finally:
        RECEIVE_BUFFER_DEFAULT.write_text(previous)


async def receive(connection: Connection, expected: str) -> Any:
    """The next message from a worker, which must be of kind ``expected``."""
    kind, payload = await asyncio.to_thread(connection.recv)
    if kind != expected:
        raise RuntimeError(str(payload))
    return payload


async def run_dialer(
    calls: int,
    seconds: float,
    directory: Path,
    processes: int = 1,
    *,
    staggered: bool = True,
    worker_niceness: int = 0,
    worker_realtime_priority: int = 0,
    far_end_receive_buffer: int = 0,
) -> dict[str, Any]:
    load_at_start = os.getloadavg()[0]
    # SIPp echoes all the RTP of one process on one socket in one thread: spread the calls so
    # the echo, not our stack, is never the bottleneck.
    callee_count = max(1, math.ceil(calls / CALLS_PER_SIPP))
    with default_receive_buffer(far_end_receive_buffer):
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
    processes = max(1, min(processes, calls))
    low, high = RTP_PORTS
    width = (high - low + 1) // processes
    context = multiprocessing.get_context("spawn")
    workers = []
    connections = []
    try:
        for worker in range(processes):
            parent_end, child_end = context.Pipe()
            spec = ShareSpec(
                worker=worker,
                call_indices=list(range(worker, calls, processes)),
                callee_ports=[sipp.sip_port for sipp in callees],
                seconds=seconds,
                directory=directory,
                rtp_ports=(low + worker * width, low + (worker + 1) * width - 1),
                media_phase=worker * TICK_INTERVAL / processes if staggered else None,
                niceness=worker_niceness,
                realtime_priority=worker_realtime_priority,
            )
            process = context.Process(target=share_main, args=(spec, child_end), daemon=True)
            process.start()
            workers.append(process)
            connections.append(parent_end)
        readies: list[ShareReady] = [
            await receive(connection, "ready") for connection in connections
        ]
        setup_seconds = max(r.last_answer for r in readies) - min(r.first_invite for r in readies)
        await asyncio.sleep(1.0)  # let the echo start flowing everywhere
        sipp_cpu_before = sum(process_cpu_seconds(sipp.process.pid) for sipp in callees)
        hold_started = time.perf_counter()
        for connection in connections:
            connection.send("go")
        # read the SIPps' CPU when the workers' hold ends (they exit once their calls end)
        await asyncio.sleep(seconds)
        hold_wall = time.perf_counter() - hold_started
        sipp_cpu = sum(process_cpu_seconds(sipp.process.pid) for sipp in callees) - sipp_cpu_before
        results: list[ShareResult] = [
            await receive(connection, "result") for connection in connections
        ]
        for process in workers:
            await asyncio.to_thread(process.join, 60)
    finally:
        for process in workers:
            if process.is_alive():
                process.kill()
        for sipp in callees:
            await sipp.stop()
    cpu = sum(result.cpu_seconds for result in results)
    hold = max(result.hold_seconds for result in results)
    sent = sum(result.sent for result in results)
    received = sum(result.received for result in results)
    histogram = np.sum([result.histogram for result in results], axis=0)
    tap_histogram = np.sum([result.tap_histogram for result in results], axis=0)
    return {
        "impl": "dialer",
        "calls": calls,
        "cpu_cores": os.cpu_count(),
        "cpu_ms_per_call_second": round(cpu * 1000 / (calls * hold), 3),
        "send_interval_p50_ms": round(histogram_percentile(histogram, 0.50), 2),
        "send_interval_p99_ms": round(histogram_percentile(histogram, 0.99), 2),
        "received_ratio": round(received / sent, 5) if sent else 0.0,
        "setup_rate_cps": round(calls / setup_seconds, 1),
        "rss_mb": round(sum(result.peak_rss_mb for result in results), 1),
        "processes": processes,
        "media_phases": "staggered" if staggered else "unset",
        "worker_niceness": worker_niceness,
        "worker_realtime_priority": worker_realtime_priority,
        "far_end_receive_buffer_bytes": far_end_receive_buffer,
        "dialer_cpu_cores": round(cpu / hold, 3),
        "sipp_processes": len(callees),
        "sipp_cpu_cores": round(sipp_cpu / hold_wall, 3),
        "packets_per_call_second": round(sent / (calls * hold), 2),
        "cpu_us_per_packet_sent": round(cpu * 1e6 / sent, 2) if sent else 0.0,
        "clock_skipped_ticks": sum(result.skipped_ticks for result in results),
        "tap_interval_p50_ms": round(histogram_percentile(tap_histogram, 0.50), 2),
        "tap_interval_p99_ms": round(histogram_percentile(tap_histogram, 0.99), 2),
        "send_interval_p95_ms": round(histogram_percentile(histogram, 0.95), 2),
        "send_interval_p999_ms": round(histogram_percentile(histogram, 0.999), 2),
        "send_intervals_over_22_ms": round(fraction_over(histogram, 22.0), 5),
        "send_intervals_over_40_ms": round(fraction_over(histogram, 40.0), 5),
        "gc_tracked_objects_per_process": max(result.gc_tracked_objects for result in results),
        "gc_full_collection_ms": round(max(r.gc_full_collection_ms for r in results), 1),
        "load_average_1min_at_start": round(load_at_start, 2),
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
    }


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
    load_at_start = os.getloadavg()[0]
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
        result = await asyncio.to_thread(_pyvoip_calls, calls, seconds, directory, sipp.sip_port)
        result["load_average_1min_at_start"] = round(load_at_start, 2)
        result["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
        return result
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
    parser.add_argument(
        "--processes", type=int, default=1, help="worker processes sharing the calls (default 1)"
    )
    parser.add_argument(
        "--unstaggered",
        action="store_true",
        help="leave the workers' media clock phases unset (default: worker i of P ticks "
        "i * 20 ms / P after worker 0)",
    )
    parser.add_argument(
        "--worker-nice",
        type=int,
        default=0,
        help="niceness of the dialer's worker processes (e.g. -10: ahead of the SIPp echoes "
        "that share their cores, as a media server would run ahead of other work; needs root)",
    )
    parser.add_argument(
        "--worker-realtime",
        type=int,
        default=0,
        metavar="PRIORITY",
        help="run the dialer's worker processes under SCHED_FIFO at this priority (1-99), as "
        "media servers run (sip.media.priority, dialer serve --realtime-priority); 0: the "
        "normal scheduler; needs root, CAP_SYS_NICE or ulimit -r",
    )
    parser.add_argument(
        "--far-end-receive-buffer",
        type=int,
        default=0,
        metavar="BYTES",
        help="start the SIPp echoes with this receive buffer on their RTP echo sockets (SIPp "
        "has no option for it: the kernel's net.core.rmem_default is set while they start, "
        "then restored; needs root). The default 208 KiB holds about 256 packets: an echo "
        "sharing the cores with real-time workers can fall that far behind; a far end on a "
        "machine of its own would not. 0: the kernel's default",
    )
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
            result = asyncio.run(
                run_dialer(
                    calls,
                    arguments.seconds,
                    directory,
                    arguments.processes,
                    staggered=not arguments.unstaggered,
                    worker_niceness=arguments.worker_nice,
                    worker_realtime_priority=arguments.worker_realtime,
                    far_end_receive_buffer=arguments.far_end_receive_buffer,
                )
            )
            print(json.dumps(result), flush=True)
        finally:
            if not arguments.keep:
                shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
