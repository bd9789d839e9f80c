"""Benchmark: N browser audio legs through the real product path, driven by websockets clients.

What runs (all on loopback):

- the server: ``python -m web.cli serve`` (``dialer serve``: uvicorn, the real app, SQLite in a
  temporary data directory, recording on) with ``DIALER_SIP_ACCOUNTS`` naming one account: a
  SIPp callee (``sipp -sn uas -rtp_echo``) that answers every call and sends every RTP packet
  straight back to its sender. SIPp's echo is a copy in a C loop, so the far end adds ~0 to a
  round trip (measured here: a UDP probe to SIPp's media port, ``far_end_echo_*_ms``). The
  built-in test line is not used: it echoes through its own 40-60 ms jitter buffer, and in
  ``dialer serve`` it runs inside the server process.
- N operators, made directly in the database before the server starts (one call per operator
  at a time is a product rule); they share one password hash made with the server's own argon2
  cost, so each log-in through ``POST /api/session`` costs what a real one costs, once.
- client processes (``--client-processes``), each driving its share of the legs like a page:
  ``POST /api/calls`` (a typed number, audio in the browser), then a WebSocket client on
  ``/ws/calls/{id}/audio`` (session cookie, Origin) that sends one 20 ms frame of 8 kHz 16-bit
  PCM per message on absolute deadlines (each leg on its own random phase) and timestamps every
  frame that comes back. The client is a minimal RFC 6455 one on an asyncio protocol: the
  websockets library's per-message cost would take a core of its own at 500 legs.

Frames carry their number in their first 16 samples (a nibble each, on G.711 mu-law codes, so
they survive PCMU exactly; the rest is a 440 Hz tone), and come back bit-exact through the
server's pacer, RTP out, SIPp, RTP in, jitter buffer and WebSocket. Frames that do not decode
(silence, concealment) are only counted.

Figures, over a window of ``--seconds`` after every leg has audio flowing and a settling time:

- ``added_latency_*_ms``: (arrival of the echoed frame at the client) - (its send) - (the
  median far-end echo time): browser frame to RTP packet and back, inside the server;
- ``frame_interval_p99_ms``: p99 of the time between consecutive frames the server sends to a
  client (measured at the client);
- ``cpu_cores``: CPU seconds of the server process (all its threads) / wall seconds (and the
  same per leg: ``server_cpu_ms_per_leg_second``);
- ``frames_echoed_ratio``: frames that came back in the window / frames sent in it (1.0 while
  the server keeps up; well below when it is overloaded and drops late frames);
- ``http_probe_*_ms``: how long ``GET /api/session`` (a signed-in request reading the session,
  as every page makes) takes, one every 250 ms through the window: whether the server still
  serves pages while the legs stream (``uptime_load_average_at_start``/``_at_end``: the machine);
- the same for SIPp and the clients, the load average, and the counts. ``far_end_echo_p99_ms``
  (a UDP round trip to SIPp from an otherwise idle process) shows how much the machine itself
  delays a process that wants to run: on a shared machine read the latencies against it.

Call setup goes through SQLite, one write transaction (and fsync) at a time: the call row, each
web session's refresh, and the call's transitions (those of calls waiting together are written in
one transaction, see ``dialer.telephony.service``). On the bench machine a lone fsync takes
about 40 ms when other work writes to the disk, so setup is bound by the disk more than by the
server's CPU (``call_setup_seconds`` against ``call_setup_server_cpu_seconds``).

    .venv/bin/python bench/browser_legs.py --legs 100 --seconds 20
    .venv/bin/python bench/browser_legs.py --legs 500 --client-processes 2 --nice -10
    .venv/bin/python bench/browser_legs.py --legs 500 --database postgresql
    .venv/bin/python bench/browser_legs.py --legs 500 --database postgresql \
        --server-realtime-priority 10

``--server-realtime-priority N`` starts the server with ``dialer serve --realtime-priority N``
(SCHED_FIFO): its media ticks then run ahead of the clients and SIPp, which share its two cores
here (``server_realtime_priority`` in the output).

``--database postgresql`` runs the server on a fresh PostgreSQL database (made on
``--postgres-url``'s server, by default ``DIALER_TEST_POSTGRES_URL``'s, dropped afterwards), as a
floor of hundreds of operators would: SQLite has one writer for the whole file, and with every
transaction taking its write lock up front, hundreds of legs' page requests and call transitions
queue for it (at about 300 legs some waited past the 10 s busy timeout and were answered 500).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import http.cookiejar
import json
import os
import random
import shutil
import signal
import socket
import struct
import sys
import tempfile
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import numpy as np

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))

from bench.postgres_admin import create_database, drop_database  # noqa: E402
from sip.media.codecs import PCMU  # noqa: E402

FRAME_SAMPLES = 160
FRAME_BYTES = 320
FRAME_SECONDS = 0.020
MARKER_SAMPLES = 16  # 64 bits: frame number (32) and a check (32), a nibble per sample
MARKER_BYTES = MARKER_SAMPLES * 2
NIBBLE_CODES = bytes(range(0xA0, 0xB0))  # mu-law codes that decode and re-encode exactly
PASSWORD = "bench operator password"  # noqa: S105 (throw-away users in a temporary database)
OPERATOR_LOGIN = "bench-operator-{index}"
STARTUP_SECONDS = 120.0
ANSWER_SECONDS = 120.0
SETUP_SECONDS = 300.0
PLACE_ATTEMPTS = 5
HTTP_PROBE_SECONDS = 0.25


def progress(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} {os.getpid()}] {text}", file=sys.stderr, flush=True)


# -- frames ---------------------------------------------------------------------------------------


def _nibble_samples() -> list[bytes]:
    return [PCMU.decode(bytes([code])) for code in NIBBLE_CODES]


def _tone_body() -> bytes:
    """The frame's samples after the marker: 440 Hz, already on mu-law values."""
    times = np.arange(MARKER_SAMPLES, FRAME_SAMPLES) / 8000
    pcm = (3000 * np.sin(2 * np.pi * 440 * times)).astype("<i2").tobytes()
    return PCMU.decode(PCMU.encode(pcm))


class FrameCodec:
    """Numbered frames that survive PCMU unchanged; ``number_of`` reads a number back."""

    def __init__(self, frames: int) -> None:
        self._nibbles = _nibble_samples()
        self._body = _tone_body()
        self._numbers: dict[bytes, int] = {}
        self._markers: list[bytes] = []
        for number in range(frames):
            marker = self._marker(number)
            self._markers.append(marker)
            self._numbers[marker] = number

    def _marker(self, number: int) -> bytes:
        check = (number * 2654435761 + 0x5BD1E995) & 0xFFFFFFFF
        value = (number << 32) | check
        return b"".join(self._nibbles[(value >> shift) & 0xF] for shift in range(0, 64, 4))

    def frame(self, number: int) -> bytes:
        return self._markers[number] + self._body

    def number_of(self, frame: bytes) -> int | None:
        return self._numbers.get(frame[:MARKER_BYTES])

    @property
    def capacity(self) -> int:
        return len(self._markers)


# -- processes ------------------------------------------------------------------------------------


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def free_even_udp_port() -> int:
    while True:
        port = free_port(socket.SOCK_DGRAM)
        if port % 2 == 0 and port < 65000:
            return port


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


async def stop_process(process: asyncio.subprocess.Process, seconds: float = 60.0) -> None:
    """SIGTERM by PID, then SIGKILL if it does not stop."""
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), seconds)
    except TimeoutError:
        process.kill()
        await process.wait()


@dataclass
class FarEnd:
    process: asyncio.subprocess.Process
    sip_port: int
    media_port: int


async def start_sipp(directory: Path) -> FarEnd:
    if shutil.which("sipp") is None:
        raise SystemExit("sipp is not installed (Debian package sip-tester)")
    sip_port = free_port(socket.SOCK_DGRAM)
    media_port = free_even_udp_port()
    with (directory / "sipp.out").open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            "sipp", "-sn", "uas", "-rtp_echo",
            "-i", "127.0.0.1", "-p", str(sip_port),
            "-mi", "127.0.0.1", "-mp", str(media_port),
            "-t", "u1", "-nostdin", "-nd",
            "-trace_err", "-error_file", str(directory / "sipp-errors.log"),
            cwd=directory,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=output,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
    await asyncio.sleep(0.5)
    if process.returncode is not None:
        raise SystemExit((directory / "sipp.out").read_text(errors="replace")[-2000:])
    return FarEnd(process, sip_port, media_port)


async def prepare_database(
    data_dir: Path, operators: int, sessions: bool, database_url: str | None
) -> list[dict[str, str]]:
    """The schema and ``operators`` operators; with ``sessions``, a web session for each.

    The operators share one password hash made at the server's own argon2 cost, so that a log-in
    through ``POST /api/session`` (``--log-in-over-http``) costs what a real one costs. The
    sessions made here are what that log-in makes (``dialer.sessions.start_session``), without
    its argon2 verification (about 0.25 CPU seconds each on the bench machine).
    """
    from sqlalchemy import update

    from dialer.actors import Role
    from dialer.models import User
    from dialer.passwords import hash_password
    from dialer.sessions import start_session
    from dialer.settings import load_settings
    from dialer.storage import create_engine, create_session_factory, upgrade_database
    from dialer.users import create_user

    settings = load_settings(database_environment(data_dir, database_url))
    cheap = type(settings)(
        data_dir=settings.data_dir,
        database_url=settings.database_url,
        recordings_dir=settings.recordings_dir,
        argon2_time_cost=1,
        argon2_memory_kib=8,
        argon2_parallelism=1,
    )
    await upgrade_database(settings.database_url)
    engine = create_engine(settings.database_url)
    made: list[dict[str, str]] = []
    try:
        async with create_session_factory(engine)() as session:
            users = [
                await create_user(
                    session,
                    None,
                    cheap,
                    login=OPERATOR_LOGIN.format(index=index),
                    password=PASSWORD,
                    display_name=f"Bench operator {index}",
                    role=Role.OPERATOR,
                )
                for index in range(operators)
            ]
            await session.execute(
                update(User)
                .where(User.login.like("bench-operator-%"))
                .values(password_hash=hash_password(PASSWORD, settings))
            )
            if sessions:
                for user in users:
                    token, csrf_token = await start_session(session, user, "127.0.0.1")
                    made.append({"cookie": f"dialer_session={token}", "csrf_token": csrf_token})
            await session.commit()
    finally:
        await engine.dispose()
    return made


def database_environment(data_dir: Path, database_url: str | None) -> dict[str, str]:
    """The server's data directory and, when not its embedded SQLite, its database."""
    environment = {"DIALER_DATA_DIR": str(data_dir)}
    if database_url is not None:
        environment["DIALER_DATABASE_URL"] = database_url
    return environment


async def start_server(
    data_dir: Path,
    accounts_file: Path,
    log_path: Path,
    log_level: str,
    database_url: str | None,
    realtime_priority: int = 0,
) -> tuple[Any, int]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("DIALER_") and key not in ("http_proxy", "https_proxy")
    }
    environment.update(
        database_environment(data_dir, database_url),
        DIALER_SIP_ACCOUNTS=str(accounts_file),
        PYTHONUNBUFFERED="1",
    )
    port = free_port()
    with log_path.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "web.cli", "--log-level", log_level,
            "serve", "--port", str(port),
            *(["--realtime-priority", str(realtime_priority)] if realtime_priority else []),
            cwd=REPOSITORY,
            env=environment,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )  # fmt: skip
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STARTUP_SECONDS
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", trust_env=False) as client:
        while loop.time() < deadline:
            if process.returncode is not None:
                break
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/api/openapi.json", timeout=2.0)).status_code == 200:
                    return process, port
            await asyncio.sleep(0.2)
    await stop_process(process)
    console = log_path.read_text(errors="replace")  # noqa: ASYNC240 (the server is gone)
    raise SystemExit(f"dialer serve did not start:\n{console}")


def no_cookie_jar() -> httpx.Cookies:
    """Cookies are sent explicitly per operator: the shared client keeps none."""
    policy = http.cookiejar.DefaultCookiePolicy(allowed_domains=[])
    return httpx.Cookies(http.cookiejar.CookieJar(policy))


async def log_in_all(base_url: str, operators: int, concurrency: int) -> list[dict[str, str]]:
    """Log every operator in once through the API; their (cookie, CSRF token)."""
    sessions: list[dict[str, str]] = [{} for _ in range(operators)]
    turn = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(
        base_url=base_url, trust_env=False, timeout=120.0, cookies=no_cookie_jar()
    ) as client:

        async def log_in(index: int) -> None:
            async with turn:
                response = await client.post(
                    "/api/session",
                    json={"login": OPERATOR_LOGIN.format(index=index), "password": PASSWORD},
                )
            response.raise_for_status()
            sessions[index] = {
                "cookie": f"dialer_session={response.cookies['dialer_session']}",
                "csrf_token": response.json()["csrf_token"],
            }

        await asyncio.gather(*(log_in(index) for index in range(operators)))
    return sessions


class EchoProbe(asyncio.DatagramProtocol):
    """RTP-sized packets to SIPp's echo port every 20 ms; their round trips."""

    def __init__(self) -> None:
        self.sent: dict[int, float] = {}
        self.round_trips: list[float] = []

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        arrived = time.monotonic()
        (number,) = struct.unpack_from("!H", data, 2)
        sent = self.sent.pop(number, None)
        if sent is not None:
            self.round_trips.append(arrived - sent)


async def probe_far_end(media_port: int, until: float) -> list[float]:
    loop = asyncio.get_running_loop()
    transport, probe = await loop.create_datagram_endpoint(
        EchoProbe, local_addr=("127.0.0.1", 0), remote_addr=("127.0.0.1", media_port)
    )
    number = 0
    started = loop.time()
    try:
        while time.monotonic() < until:
            number = (number + 1) & 0xFFFF
            packet = struct.pack("!BBHII", 0x80, 0, number, number * 160, 0x0BE4C4) + bytes(160)
            probe.sent[number] = time.monotonic()
            transport.sendto(packet)
            await asyncio.sleep(max(0.0, started + number * FRAME_SECONDS - loop.time()))
    finally:
        transport.close()
    return probe.round_trips


async def probe_http(base_url: str, cookie: str, until: float) -> list[float]:
    """``GET /api/session`` (a signed-in request that reads the session from the database, as
    every page does) one after another, ``HTTP_PROBE_SECONDS`` apart, until ``until``: how long
    the server takes to answer a page's request while the legs stream."""
    times: list[float] = []
    async with httpx.AsyncClient(
        base_url=base_url, trust_env=False, timeout=60.0, cookies=no_cookie_jar()
    ) as client:
        while time.monotonic() < until:
            started = time.monotonic()
            response = await client.get("/api/session", headers={"Cookie": cookie})
            response.raise_for_status()
            times.append(time.monotonic() - started)
            await asyncio.sleep(HTTP_PROBE_SECONDS)
    return times


# -- the orchestrator -----------------------------------------------------------------------------


def percentile(values: np.ndarray[Any, Any], share: float) -> float:
    return round(float(np.percentile(values, share)) * 1000, 2) if len(values) else float("nan")


async def orchestrate(arguments: argparse.Namespace) -> dict[str, Any]:
    load_at_start = [round(load, 2) for load in os.getloadavg()]
    legs = arguments.legs
    processes = arguments.client_processes or (1 if legs <= 100 else 2)
    keep = arguments.keep
    directory = Path(tempfile.mkdtemp(prefix="browser-legs-"))
    data_dir = directory / "data"
    progress(f"working in {directory}")
    far_end = await start_sipp(directory)
    server: Any = None
    clients: list[asyncio.subprocess.Process] = []
    database_url: str | None = None
    postgres_name: str | None = None
    try:
        if arguments.database == "postgresql":
            postgres_name, database_url = await create_database(
                arguments.postgres_url, "bench_legs_"
            )
        started = time.monotonic()
        sessions = await prepare_database(
            data_dir, legs, not arguments.log_in_over_http, database_url
        )
        progress(f"{legs} operators made in {time.monotonic() - started:.1f} s")
        accounts_file = directory / "accounts.toml"
        accounts_file.write_text(
            "[accounts.far_end]\n"
            f'host = "127.0.0.1"\nport = {far_end.sip_port}\n'
            'username = "bench"\nregister = false\ncodecs = ["PCMU"]\n'
            + ("" if arguments.record else '\n[recording]\noff = ["far_end"]\n')
        )
        server, port = await start_server(
            data_dir,
            accounts_file,
            directory / "server.log",
            arguments.server_log_level,
            database_url,
            arguments.server_realtime_priority,
        )
        base_url = f"http://127.0.0.1:{port}"
        server_cpu_setup = cpu_seconds(server.pid)
        login_seconds = login_cpu = 0.0
        if arguments.log_in_over_http:
            started = time.monotonic()
            sessions = await log_in_all(base_url, legs, arguments.login_concurrency)
            login_seconds = time.monotonic() - started
            login_cpu = cpu_seconds(server.pid) - server_cpu_setup
            progress(f"{legs} log-ins in {login_seconds:.1f} s (server CPU {login_cpu:.1f} s)")
        shares = [list(range(index, legs, processes)) for index in range(processes)]
        setup_started = time.monotonic()
        setup_cpu_before = cpu_seconds(server.pid)
        for number, share in enumerate(shares):
            job = {
                "base_url": base_url,
                "legs": [{"index": index, **sessions[index]} for index in share],
                "place_concurrency": max(1, arguments.place_concurrency // processes),
                "results": str(directory / f"client-{number}"),
                # a leg streams from its own setup to the hang-up: as long as the whole setup
                # may take (the timeout below), the settling time, the window and a margin
                "max_seconds": SETUP_SECONDS + legs + arguments.settle + arguments.seconds + 120,
            }
            job_path = directory / f"client-{number}.json"
            job_path.write_text(json.dumps(job))
            os.makedirs(job["results"])
            client = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--client", str(job_path),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            clients.append(client)
        async with asyncio.timeout(SETUP_SECONDS + legs):
            for client in clients:
                assert client.stdout is not None
                line = (await client.stdout.readline()).decode().strip()
                if line != "ready":
                    raise SystemExit(f"a client failed while setting up: {line!r}")
        setup_seconds = time.monotonic() - setup_started
        setup_cpu = cpu_seconds(server.pid) - setup_cpu_before
        progress(
            f"{legs} calls placed, answered and echoing in {setup_seconds:.1f} s"
            f" (server CPU {setup_cpu:.1f} s)"
        )
        window_start = time.monotonic() + arguments.settle
        window_end = window_start + arguments.seconds
        progress(f"measuring from {window_start:.3f} to {window_end:.3f} (monotonic clock)")
        for client in clients:
            assert client.stdin is not None
            client.stdin.write(f"{window_start} {window_end}\n".encode())
            await client.stdin.drain()
        await asyncio.sleep(max(0.0, window_start - time.monotonic()))
        probe = asyncio.create_task(probe_far_end(far_end.media_port, window_end))
        http_probe = asyncio.create_task(probe_http(base_url, sessions[0]["cookie"], window_end))
        cpu_before = {
            name: cpu_seconds(process.pid)
            for name, process in (("server", server), ("sipp", far_end.process))
        }
        client_cpu_before = sum(cpu_seconds(client.pid) for client in clients)
        wall_before = time.monotonic()
        load_before = os.getloadavg()[0]
        await asyncio.sleep(max(0.0, window_end - time.monotonic()))
        wall = time.monotonic() - wall_before
        cpu_used = {
            name: (cpu_seconds(process.pid) - cpu_before[name]) / wall
            for name, process in (("server", server), ("sipp", far_end.process))
        }
        client_cpu = (sum(cpu_seconds(client.pid) for client in clients) - client_cpu_before) / wall
        load_after = os.getloadavg()[0]
        echo_times = np.array(await probe)
        http_times = np.array(await http_probe)
        progress("measured; hanging up")
        for client in clients:
            assert client.stdout is not None
            line = (await client.stdout.readline()).decode().strip()
            if line != "done":
                raise SystemExit(f"a client failed: {line!r}")
            await client.wait()
    except BaseException:
        keep = True
        raise
    finally:
        if keep:
            progress(f"kept {directory}")
        for client in clients:
            if client.returncode is None:
                client.kill()
                await client.wait()
        if server is not None:
            await stop_process(server)
        await stop_process(far_end.process)
        if postgres_name is not None and not keep:
            await drop_database(arguments.postgres_url, postgres_name)
    latencies, intervals, counts = merge_results(directory, processes)
    echo_median = float(np.median(echo_times)) if len(echo_times) else 0.0
    added = latencies - echo_median
    if not keep:
        shutil.rmtree(directory, ignore_errors=True)
    return {
        "legs": legs,
        "cpu_cores": round(cpu_used["server"], 3),
        "server_cpu_ms_per_leg_second": round(cpu_used["server"] * 1000 / legs, 2),
        "frame_interval_p99_ms": percentile(intervals, 99),
        "added_latency_p99_ms": percentile(added, 99),
        "added_latency_p50_ms": percentile(added, 50),
        "added_latency_max_ms": round(float(added.max()) * 1000, 2) if len(added) else None,
        "frame_interval_p50_ms": percentile(intervals, 50),
        "frame_interval_max_ms": round(float(intervals.max()) * 1000, 2)
        if len(intervals)
        else None,
        "far_end_echo_p50_ms": percentile(echo_times, 50),
        "far_end_echo_p99_ms": percentile(echo_times, 99),
        "http_probe_p50_ms": percentile(http_times, 50),
        "http_probe_p99_ms": percentile(http_times, 99),
        "http_probe_max_ms": round(float(http_times.max()) * 1000, 2) if len(http_times) else None,
        "http_probe_requests": len(http_times),
        **counts,
        # frames that came back in the window / frames sent in it: 1.0 when the server keeps up
        "frames_echoed_ratio": round(
            counts["frames_echoed_measured"] / counts["frames_sent_measured"], 5
        )
        if counts.get("frames_sent_measured")
        else None,
        "seconds": arguments.seconds,
        "recording": arguments.record,
        "database": arguments.database,
        "sipp_cpu_cores": round(cpu_used["sipp"], 3),
        "clients_cpu_cores": round(client_cpu, 3),
        "client_processes": processes,
        "logged_in_over_http": arguments.log_in_over_http,
        "login_seconds": round(login_seconds, 1),
        "login_server_cpu_seconds": round(login_cpu, 1),
        "call_setup_seconds": round(setup_seconds, 1),
        "call_setup_server_cpu_seconds": round(setup_cpu, 1),
        "machine_cores": os.cpu_count(),
        "niceness": os.nice(0),
        "server_realtime_priority": arguments.server_realtime_priority,
        "load_average_1min": [round(load_before, 2), round(load_after, 2)],
        "uptime_load_average_at_start": load_at_start,
        "uptime_load_average_at_end": [round(load, 2) for load in os.getloadavg()],
        "far_end": "sipp -sn uas -rtp_echo",
        "driver": "websockets clients on /ws/calls/{id}/audio, dialer serve under uvicorn",
        "kept": str(directory) if keep else None,
    }


def merge_results(
    directory: Path, processes: int
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], dict[str, int]]:
    latencies: list[np.ndarray[Any, Any]] = []
    intervals: list[np.ndarray[Any, Any]] = []
    counts: dict[str, int] = {}
    for number in range(processes):
        results = directory / f"client-{number}"
        latencies.append(np.load(results / "latencies.npy"))
        intervals.append(np.load(results / "intervals.npy"))
        for name, value in json.loads((results / "counts.json").read_text()).items():
            counts[name] = counts.get(name, 0) + int(value)
    return np.concatenate(latencies), np.concatenate(intervals), counts


# -- a client process: its share of the legs ------------------------------------------------------
#
# Each leg is a minimal RFC 6455 client on an asyncio protocol (handshake with the session
# cookie and Origin, masked binary frames out, frames parsed as they arrive, pings answered):
# at 500 legs the websockets library's per-message cost would need more CPU than this machine
# has next to the server. One sender task sends every leg's frame at its deadline (a leg's
# phase is random, deadlines are absolute: ``phase + n * 20 ms``).

OPCODE_TEXT = 0x1
OPCODE_BINARY = 0x2
OPCODE_CLOSE = 0x8
OPCODE_PING = 0x9
OPCODE_PONG = 0xA
WEBSOCKET_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame (FIN set)."""
    from websockets.speedups import apply_mask

    mask = os.urandom(4)
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    else:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    return header + mask + apply_mask(payload, mask)


class Window:
    def __init__(self) -> None:
        self.start = float("inf")
        self.end = float("inf")

    def holds(self, moment: float) -> bool:
        return self.start <= moment < self.end


@dataclass
class Leg(asyncio.Protocol):
    index: int
    cookie: str
    csrf_token: str
    codec: FrameCodec
    window: Window
    call_id: int = 0
    transport: asyncio.Transport | None = None
    buffer: bytearray = field(default_factory=bytearray)
    handshake_done: bool = False
    phase: float = 0.0
    sent_at: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    intervals: list[float] = field(default_factory=list)
    frames_received: int = 0
    frames_numbered: int = 0
    frames_measured_sent: int = 0
    last_arrival: float | None = None
    attached: asyncio.Event = field(default_factory=asyncio.Event)
    echo_started: asyncio.Event = field(default_factory=asyncio.Event)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    failure: str | None = None
    key: bytes = b""

    def __hash__(self) -> int:
        return id(self)

    # -- the protocol ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        arrived = time.monotonic()
        buffer = self.buffer
        buffer += data
        if not self.handshake_done and not self._handshake():
            return
        while len(buffer) >= 2:
            opcode = buffer[0] & 0x0F
            length = buffer[1] & 0x7F
            start = 2
            if length == 126:
                if len(buffer) < 4:
                    return
                (length,) = struct.unpack_from("!H", buffer, 2)
                start = 4
            elif length == 127:
                if len(buffer) < 10:
                    return
                (length,) = struct.unpack_from("!Q", buffer, 2)
                start = 10
            if len(buffer) < start + length:
                return
            payload = bytes(buffer[start : start + length])
            del buffer[: start + length]
            if opcode == OPCODE_BINARY:
                self._frame(payload, arrived)
            elif opcode == OPCODE_TEXT:
                self._text(payload)
            elif opcode == OPCODE_PING:
                self._write(client_frame(OPCODE_PONG, payload))
            elif opcode == OPCODE_CLOSE:
                self._write(client_frame(OPCODE_CLOSE, payload[:2]))
                if self.transport is not None:
                    self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if not self.attached.is_set():
            self.failure = self.failure or f"socket closed before attaching: {exc}"
            self.attached.set()
        self.closed.set()

    def _handshake(self) -> bool:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self.buffer[:end]).decode("latin-1")
        del self.buffer[: end + 4]
        lines = head.split("\r\n")
        digest = hashlib.sha1(self.key + WEBSOCKET_GUID, usedforsecurity=False).digest()
        expected = base64.b64encode(digest).decode()
        headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        accept = {name.lower(): value for name, value in headers.items()}.get(
            "sec-websocket-accept"
        )
        if " 101 " not in lines[0] + " " or accept != expected:
            self.failure = f"handshake refused: {lines[0]}"
            self.attached.set()
            if self.transport is not None:
                self.transport.close()
            return False
        self.handshake_done = True
        return True

    def _text(self, payload: bytes) -> None:
        message = json.loads(payload)
        if message.get("type") == "attached":
            self.attached.set()
        elif message.get("type") == "error":
            self.failure = str(message)
            self.attached.set()

    def _frame(self, payload: bytes, arrived: float) -> None:
        self.frames_received += 1
        window = self.window
        previous = self.last_arrival
        self.last_arrival = arrived
        if previous is not None and window.holds(arrived):
            self.intervals.append(arrived - previous)
        number = self.codec.number_of(payload)
        if number is None or number >= len(self.sent_at):
            return
        self.frames_numbered += 1
        if not self.echo_started.is_set():
            self.echo_started.set()
        sent = self.sent_at[number]
        if window.holds(sent):
            self.latencies.append(arrived - sent)

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    # -- used by the client -----------------------------------------------------------------------

    def reset(self) -> None:
        """Ready for another handshake (the last one was refused)."""
        self.buffer.clear()
        self.handshake_done = False
        self.failure = None
        self.attached = asyncio.Event()
        self.closed = asyncio.Event()

    def open_handshake(self, port: int) -> None:
        self.key = base64.b64encode(os.urandom(16))
        request = (
            f"GET /ws/calls/{self.call_id}/audio HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {self.key.decode()}\r\nSec-WebSocket-Version: 13\r\n"
            f"Origin: http://127.0.0.1:{port}\r\nCookie: {self.cookie}\r\n\r\n"
        )
        self._write(request.encode())

    def send_frame(self, number: int, moment: float) -> None:
        if self.transport is None or not self.attached.is_set():
            return
        self.sent_at.append(moment)
        self._write(client_frame(OPCODE_BINARY, self.codec.frame(number)))
        if self.window.holds(moment):
            self.frames_measured_sent += 1

    def close(self) -> None:
        self._write(client_frame(OPCODE_CLOSE, struct.pack("!H", 1000)))


async def send_on_deadlines(legs: Sequence[Leg], stop: asyncio.Event) -> None:
    """Every leg's next frame at ``phase + n * 20 ms`` (each leg counts from its first send)."""
    loop = asyncio.get_running_loop()
    origin = loop.time()
    for leg in legs:
        leg.phase = random.random() * FRAME_SECONDS
    order = sorted(legs, key=lambda leg: leg.phase)
    period = 0
    while not stop.is_set():
        base = origin + period * FRAME_SECONDS
        for leg in order:
            due = base + leg.phase
            wait = due - loop.time()
            if wait > 0.0005:
                await asyncio.sleep(wait)
            if leg.attached.is_set() and leg.failure is None:
                leg.send_frame(len(leg.sent_at), time.monotonic())
        period += 1


async def run_client(job_path: Path) -> None:
    job = json.loads(job_path.read_text())  # noqa: ASYNC240 (a small file, before any socket)
    base_url = job["base_url"]
    port = int(base_url.rsplit(":", 1)[1])
    codec = FrameCodec(int(job["max_seconds"] / FRAME_SECONDS) + 100)
    window = Window()
    legs = [
        Leg(spec["index"], spec["cookie"], spec["csrf_token"], codec, window)
        for spec in job["legs"]
    ]
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    sender = loop.create_task(send_on_deadlines(legs, stop))
    turn = asyncio.Semaphore(job["place_concurrency"])
    retries: list[int] = []
    async with httpx.AsyncClient(
        base_url=base_url, trust_env=False, timeout=300.0, cookies=no_cookie_jar()
    ) as client:

        async def place(leg: Leg) -> int:
            """The call's id; a server error (SQLite "database is locked" under load) is tried
            again, as a user would click again (counted in ``call_setup_retries``)."""
            headers = {"Cookie": leg.cookie, "X-CSRF-Token": leg.csrf_token}
            for attempt in range(PLACE_ATTEMPTS):
                response = await client.post(
                    "/api/calls",
                    json={"number": f"+7916{leg.index:07d}", "audio_leg": "browser"},
                    headers=headers,
                )
                if response.status_code == 201:
                    return int(response.json()["call_id"])
                if response.status_code == 409:  # placed after all: the one call it may have
                    current = (await client.get("/api/calls/current", headers=headers)).json()
                    if current["current_call"] is not None:
                        return int(current["current_call"]["call_id"])
                if response.status_code < 500 or attempt == PLACE_ATTEMPTS - 1:
                    raise RuntimeError(f"leg {leg.index}: {response.status_code} {response.text}")
                retries.append(response.status_code)
                progress(f"leg {leg.index}: {response.status_code}, placing the call again")
                await asyncio.sleep(1.0)
            raise AssertionError("unreachable")

        async def place_and_attach(leg: Leg) -> None:
            async with turn:
                leg.call_id = await place(leg)
                for attempt in range(PLACE_ATTEMPTS):
                    await loop.create_connection(lambda: leg, "127.0.0.1", port)
                    leg.open_handshake(port)
                    await leg.attached.wait()
                    if leg.failure is None:
                        return
                    if " 500 " not in leg.failure or attempt == PLACE_ATTEMPTS - 1:
                        raise RuntimeError(f"leg {leg.index}: {leg.failure}")
                    retries.append(500)
                    progress(f"leg {leg.index}: {leg.failure}, connecting again")
                    await leg.closed.wait()
                    leg.reset()
                    await asyncio.sleep(1.0)

        await asyncio.gather(*(place_and_attach(leg) for leg in legs))
        async with asyncio.timeout(ANSWER_SECONDS):
            await asyncio.gather(*(leg.echo_started.wait() for leg in legs))
        print("ready", flush=True)
        line = await loop.run_in_executor(None, sys.stdin.readline)
        window.start, window.end = (float(value) for value in line.split())
        await asyncio.sleep(max(0.0, window.end - time.monotonic() + 0.5))
        stop.set()
        await sender
        hang_ups = asyncio.Semaphore(job["place_concurrency"])

        async def hang_up(leg: Leg) -> None:
            async with hang_ups:
                for _ in range(3):  # a pooled connection the server closed meanwhile: again
                    with contextlib.suppress(httpx.TransportError):
                        await client.post(
                            f"/api/calls/{leg.call_id}/hangup",
                            headers={"Cookie": leg.cookie, "X-CSRF-Token": leg.csrf_token},
                        )
                        return

        await asyncio.gather(*(hang_up(leg) for leg in legs))
    # The server closes each socket once its call has ended; the figures are in already.
    closing = [loop.create_task(leg.closed.wait()) for leg in legs]
    _done, unfinished = await asyncio.wait(closing, timeout=60)
    for task in unfinished:
        task.cancel()
    for leg in legs:
        if leg.transport is not None:
            leg.close()
            leg.transport.close()
    counts = {
        "call_setup_retries": len(retries),
        "sockets_open_60s_after_hang_up": len(unfinished),
        "frames_sent_measured": sum(leg.frames_measured_sent for leg in legs),
        "frames_echoed_measured": sum(len(leg.latencies) for leg in legs),
        "frames_received_total": sum(leg.frames_received for leg in legs),
        "frames_numbered_total": sum(leg.frames_numbered for leg in legs),
        "frames_sent_total": sum(len(leg.sent_at) for leg in legs),
    }
    results = Path(job["results"])
    np.save(results / "latencies.npy", np.array([v for leg in legs for v in leg.latencies]))
    np.save(results / "intervals.npy", np.array([v for leg in legs for v in leg.intervals]))
    (results / "counts.json").write_text(json.dumps(counts))
    print("done", flush=True)


async def stop_on_sigterm(work: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    """Run ``work``, cancelled by SIGTERM (so that its children are stopped on the way out)."""
    task = asyncio.ensure_future(work)
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await task


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--legs", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds before the window")
    parser.add_argument(
        "--no-record", dest="record", action="store_false", help="turn recording off"
    )
    parser.add_argument("--client-processes", type=int, default=0, help="default: by legs")
    parser.add_argument(
        "--log-in-over-http",
        action="store_true",
        help="log every operator in through POST /api/session (default: sessions made in the"
        " database, as that endpoint makes them, without its argon2 verification)",
    )
    parser.add_argument("--login-concurrency", type=int, default=2)
    parser.add_argument(
        "--place-concurrency", type=int, default=4, help="calls being placed at once, in all"
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="niceness for every process of the bench (negative: ahead of other work on a shared"
        " machine; needs root)",
    )
    parser.add_argument(
        "--server-realtime-priority",
        type=int,
        default=0,
        metavar="N",
        help="start the server with dialer serve --realtime-priority N (SCHED_FIFO, ahead of "
        "the clients and SIPp on the same cores; needs root); 0: the normal scheduler",
    )
    parser.add_argument(
        "--database",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="the server's database: its embedded SQLite, or a fresh PostgreSQL database made on"
        " --postgres-url's server and dropped afterwards",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "DIALER_TEST_POSTGRES_URL", "postgresql+asyncpg://root@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the working directory (and the database)"
    )
    parser.add_argument("--server-log-level", default="WARNING", help="dialer --log-level")
    parser.add_argument("--client", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.client is not None:
        import uvloop

        uvloop.run(run_client(arguments.client))
        return
    if arguments.nice:
        os.nice(arguments.nice)  # inherited by the server, SIPp and the clients (and threads)
    result = asyncio.run(stop_on_sigterm(orchestrate(arguments)))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
