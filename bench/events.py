"""Live-event latency: from a call transition published on the bus to its arrival on every
connected events socket of a real uvicorn server.

The server (the real application on a fresh SQLite database, uvicorn on 127.0.0.1 with the
settings of ``dialer serve``: no permessage-deflate) runs in this process; the sockets live in
``--client-processes`` child processes (``--client``) so that neither side shares an event loop
with the other. ``--users`` users each open ``--sockets / --users`` sockets (tabs). Then
``--rounds`` ``call.answered`` events are published to all of them, one every ``--interval``
seconds; each carries its publication time, and the client notes the arrival time on every
socket (same machine, same clock).

The client is kept cheap so that it measures the server rather than itself: the ``websockets``
library's sans-I/O protocol on a plain asyncio protocol (no task per socket) for the handshake
and the hello, then the server's frames read directly (unmasked, no extension: a few bytes of
header; the library's parser cost about as much per message as the server's send), the arrival
time taken when the bytes come off the socket, and only the two fields it needs read from each
event. It answers the server's heartbeats like the page does, and the server's pings.

Prints JSON lines: ``{"sockets": N, "event_latency_p99_ms": ...}`` (one delivery = one event on
one socket), the p50 / max of the same, ``all_sockets_p99_ms`` (per event, the time until the
LAST socket had it), and the CPU time each side spent per event (``server_cpu_ms_per_event``,
``client_cpu_ms_per_event``), the server's longest garbage-collector pause during the rounds, and
the load average before and after (the machine may be shared).

    .venv/bin/python bench/events.py [--sockets 500] [--users 50] [--rounds 40]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import cast

THIS_SCRIPT = Path(__file__).resolve()
REPOSITORY = THIS_SCRIPT.parents[1]
sys.path.insert(0, str(REPOSITORY))

PASSWORD = "bench password 123"  # noqa: S105 (users of a throw-away database)
# How many handshakes a client process has in flight at once while connecting.
CONNECTING_AT_ONCE = 8


# -- the client processes -------------------------------------------------------------------------

EVENT_PREFIX = b'{"type": "event"'
PING_PREFIX = b'{"type": "ping"'
ROUND = re.compile(rb'"round": (\d+)')
SENT_AT = re.compile(rb'"sent_at": ([0-9.eE+-]+)')


class _Measurements:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.slowest_by_round: dict[int, float] = {}
        self.sockets_done = 0
        self.all_done = asyncio.Event()


class _EventsSocket(asyncio.Protocol):
    """One events socket: the websockets sans-I/O client protocol on an asyncio transport."""

    def __init__(
        self, url: str, cookie: str, rounds: int, deflate: bool, measurements: _Measurements
    ) -> None:
        from websockets.client import ClientProtocol
        from websockets.extensions.permessage_deflate import enable_client_permessage_deflate
        from websockets.uri import parse_uri

        self.protocol = ClientProtocol(
            parse_uri(url),
            extensions=enable_client_permessage_deflate(None) if deflate else None,
        )
        request = self.protocol.connect()
        request.headers["Cookie"] = cookie
        self.protocol.send_request(request)
        self.rounds = rounds
        self.received = 0
        self.measurements = measurements
        self.greeted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        # Bytes not yet read as frames, once this socket reads frames itself (after hello).
        self.frames: bytearray | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._flush()

    def data_received(self, data: bytes) -> None:
        arrived = time.time()
        if self.frames is not None:
            self.frames += data
            self._read_frames(arrived)
            return
        from websockets.frames import Frame, Opcode
        from websockets.http11 import Response

        self.protocol.receive_data(data)
        for item in self.protocol.events_received():
            if isinstance(item, Response):
                if item.status_code != 101 and not self.greeted.done():
                    self.greeted.set_exception(RuntimeError(f"handshake: {item.status_code}"))
            elif isinstance(item, Frame) and item.opcode is Opcode.TEXT:
                assert item.fin, "the server sends each message in one frame"
                self._message(bytes(item.data), arrived)
        if self.greeted.done() and not self.protocol.reader.buffer:
            # Greeted, and the library's reader holds nothing: it is between two frames, and
            # from here on this socket reads frames itself (far cheaper per message).
            self.frames = bytearray()
        self._flush()

    def _read_frames(self, arrived: float) -> None:
        """The server's frames (RFC 6455 5.2: unmasked, no extension), read without the library:
        text messages are measured, pings answered, a close ends the connection."""
        frames = self.frames
        assert frames is not None
        start = 0
        while len(frames) - start >= 2:
            first, second = frames[start], frames[start + 1]
            assert not second & 0x80, "a server never masks its frames"
            length = second & 0x7F
            header = 2
            if length == 126:
                header = 4
                if len(frames) - start < header:
                    break
                (length,) = struct.unpack_from("!H", frames, start + 2)
            elif length == 127:
                header = 10
                if len(frames) - start < header:
                    break
                (length,) = struct.unpack_from("!Q", frames, start + 2)
            end = start + header + length
            if len(frames) < end:
                break
            payload = bytes(frames[start + header : end])
            start = end
            opcode = first & 0x0F
            if opcode == 0x1:
                assert first & 0x80, "the server sends each message in one frame"
                self._message(payload, arrived)
            elif opcode == 0x9:
                self.protocol.send_pong(payload)
            elif opcode == 0x8:
                assert self.transport is not None
                self.transport.close()
                return
        del frames[:start]
        self._flush()

    def _message(self, text: bytes, arrived: float) -> None:
        if text.startswith(EVENT_PREFIX):
            round_match = ROUND.search(text)
            sent_match = SENT_AT.search(text)
            assert round_match is not None, text
            assert sent_match is not None, text
            latency = arrived - float(sent_match.group(1))
            self.measurements.latencies.append(latency)
            number = int(round_match.group(1))
            slowest = self.measurements.slowest_by_round
            slowest[number] = max(slowest.get(number, 0.0), latency)
            self.received += 1
            if self.received == self.rounds:
                self.measurements.sockets_done += 1
                self.measurements.all_done.set()
        elif text.startswith(PING_PREFIX):
            self.protocol.send_text(b'{"type": "pong"}')
        elif not self.greeted.done():
            message = json.loads(text)
            if message.get("type") == "hello":
                self.greeted.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.greeted.done():
            self.greeted.set_exception(exc or ConnectionError("closed before hello"))

    def _flush(self) -> None:
        assert self.transport is not None
        for chunk in self.protocol.data_to_send():
            if chunk:
                self.transport.write(chunk)
            elif self.transport.can_write_eof():
                self.transport.write_eof()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.protocol.send_close(1000)
            self._flush()
            self.transport.close()


async def _client(config: dict[str, object]) -> dict[str, object]:
    url = str(config["url"])
    port = int(str(config["port"]))
    cookies = [str(cookie) for cookie in config["cookies"]]  # type: ignore[attr-defined]
    per_user = int(str(config["per_user"]))
    rounds = int(str(config["rounds"]))
    deflate = bool(config["deflate"])
    measurements = _Measurements()
    loop = asyncio.get_running_loop()
    limit = asyncio.Semaphore(CONNECTING_AT_ONCE)

    async def open_socket(cookie: str) -> _EventsSocket:
        async with limit:
            _transport, events_socket = await loop.create_connection(
                lambda: _EventsSocket(url, cookie, rounds, deflate, measurements),
                "127.0.0.1",
                port,
            )
            await asyncio.wait_for(events_socket.greeted, 60)
            return events_socket

    sockets = await asyncio.gather(
        *(open_socket(cookie) for cookie in cookies for _ in range(per_user))
    )
    print(json.dumps({"ready": len(sockets)}), flush=True)
    cpu_started = time.process_time()
    async with asyncio.timeout(120):
        while measurements.sockets_done < len(sockets):
            measurements.all_done.clear()
            await measurements.all_done.wait()
    cpu_seconds = time.process_time() - cpu_started
    for events_socket in sockets:
        events_socket.close()
    return {
        "latencies": measurements.latencies,
        "slowest_by_round": measurements.slowest_by_round,
        "cpu_seconds": cpu_seconds,
    }


def client_main() -> None:
    config = json.loads(sys.stdin.readline())
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    result = asyncio.run(_client(config))
    # Through a file: the measurements are large for a pipe the server reads while busy.
    Path(str(config["result_path"])).write_text(json.dumps(result))
    print(json.dumps({"done": True}), flush=True)


# -- the server side ------------------------------------------------------------------------------


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


class _CollectorPauses:
    """The garbage collector's pauses in this process (CPU time), while ``active``."""

    def __init__(self) -> None:
        self.active = False
        self.pauses: list[tuple[int, float]] = []
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if not self.active:
            return
        if phase == "start":
            self._started = time.thread_time()
        else:
            self.pauses.append((info["generation"], time.thread_time() - self._started))


async def _run(arguments: argparse.Namespace) -> None:
    import httpx
    import uvicorn

    from dialer.actors import Role
    from dialer.settings import Settings
    from dialer.storage import upgrade_database
    from dialer.users import create_user
    from web.app import create_app
    from web.live import LiveSocketOptions
    from web.settings import WebSettings

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as directory:
        data_dir = Path(directory)
        url = f"sqlite+aiosqlite:///{data_dir / 'dialer.db'}"
        await upgrade_database(url)
        settings = Settings(
            data_dir=data_dir,
            database_url=url,
            recordings_dir=data_dir / "recordings",
            argon2_time_cost=1,
            argon2_memory_kib=1024,
            argon2_parallelism=1,
        )
        app = create_app(WebSettings(core=settings))
        if arguments.heartbeat_seconds is not None:
            app.state.live_socket_options = LiveSocketOptions(
                heartbeat_seconds=arguments.heartbeat_seconds
            )
        user_ids: list[int] = []
        async with app.state.session_factory() as database:
            for number in range(arguments.users):
                user = await create_user(
                    database,
                    None,
                    settings,
                    login=f"bench-{number}",
                    password=PASSWORD,
                    display_name=f"Bench {number}",
                    role=Role.OPERATOR,
                )
                user_ids.append(user.id)
            await database.commit()

        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                log_level="warning",
                lifespan="on",
                ws=arguments.ws,
                # As ``dialer serve`` (web/commands.py) unless --deflate.
                ws_per_message_deflate=arguments.deflate,
                proxy_headers=False,
                server_header=False,
            )
        )
        serving = asyncio.create_task(server.serve(sockets=[listener]))
        while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
            await asyncio.sleep(0.01)
        if arguments.gc_freeze:
            # What a server process can do once started: the collector no longer walks the
            # objects of the start-up (modules, the application) on every full collection.
            gc.collect()
            gc.freeze()
        base = f"http://127.0.0.1:{port}"
        cookies: list[str] = []
        async with httpx.AsyncClient(base_url=base, trust_env=False) as http:
            for number in range(arguments.users):
                http.cookies.clear()
                response = await http.post(
                    "/api/session", json={"login": f"bench-{number}", "password": PASSWORD}
                )
                response.raise_for_status()
                cookies.append("; ".join(f"{k}={v}" for k, v in http.cookies.items()))

        children: list[asyncio.subprocess.Process] = []
        processes = max(1, min(arguments.client_processes, arguments.users))
        for index in range(processes):
            child = await asyncio.create_subprocess_exec(
                sys.executable,
                str(THIS_SCRIPT),
                "--client",
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                limit=1 << 26,
            )
            assert child.stdin is not None
            config = {
                "url": f"ws://127.0.0.1:{port}/ws/events",
                "port": port,
                "cookies": cookies[index::processes],
                "per_user": arguments.sockets // arguments.users,
                "rounds": arguments.rounds,
                "deflate": arguments.deflate,
                "result_path": str(data_dir / f"client-{index}.json"),
            }
            child.stdin.write((json.dumps(config) + "\n").encode())
            await child.stdin.drain()
            children.append(child)
        sockets = 0
        for child in children:
            assert child.stdout is not None
            ready = json.loads(await asyncio.wait_for(child.stdout.readline(), 300))
            sockets += int(ready["ready"])
        await asyncio.sleep(1.0)  # let the connections settle

        pauses = _CollectorPauses()
        gc.callbacks.append(pauses)
        pauses.active = True
        cpu_started = time.process_time()
        bus = app.state.event_bus
        loop = asyncio.get_running_loop()
        started = loop.time()
        for number in range(arguments.rounds):
            await asyncio.sleep(max(0.0, started + number * arguments.interval - loop.time()))
            await bus.publish(
                user_ids,
                "call.answered",
                {
                    "call_id": number + 1,
                    "state": "answered",
                    "round": number,
                    "sent_at": time.time(),
                },
            )
        results = []
        for index, child in enumerate(children):
            assert child.stdout is not None
            done = json.loads(await asyncio.wait_for(child.stdout.readline(), 300))
            assert done == {"done": True}, done
            results.append(json.loads((data_dir / f"client-{index}.json").read_text()))
        server_cpu_seconds = time.process_time() - cpu_started
        pauses.active = False
        gc.callbacks.remove(pauses)
        for child in children:
            await child.wait()
        server.should_exit = True
        await serving

    latencies = [value * 1000 for result in results for value in result["latencies"]]
    slowest_by_round: dict[str, float] = {}
    for result in results:
        for number, value in result["slowest_by_round"].items():
            slowest_by_round[number] = max(slowest_by_round.get(number, 0.0), value)
    all_sockets = [value * 1000 for value in slowest_by_round.values()]
    client_cpu_seconds = sum(float(result["cpu_seconds"]) for result in results)
    collections_by_generation = [0, 0, 0]
    longest_by_generation = [0.0, 0.0, 0.0]
    for generation, pause in pauses.pauses:
        collections_by_generation[generation] += 1
        longest_by_generation[generation] = max(longest_by_generation[generation], pause)
    figures: list[dict[str, object]] = [
        {
            "sockets": sockets,
            "deliveries": len(latencies),
            "expected": sockets * arguments.rounds,
            "permessage_deflate": arguments.deflate,
            "ws": arguments.ws,
            "client_processes": processes,
            "gc_freeze": arguments.gc_freeze,
            "cpu_cores": os.cpu_count(),
            "load_average_before": [round(value, 2) for value in load_before],
            "load_average_after": [round(value, 2) for value in os.getloadavg()],
        },
        {"sockets": sockets, "event_latency_p99_ms": round(_percentile(latencies, 0.99), 2)},
        {"sockets": sockets, "event_latency_p50_ms": round(_percentile(latencies, 0.50), 2)},
        {"sockets": sockets, "event_latency_max_ms": round(max(latencies), 2)},
        {"sockets": sockets, "all_sockets_p99_ms": round(_percentile(all_sockets, 0.99), 2)},
        {
            "sockets": sockets,
            "server_cpu_ms_per_event": round(1000 * server_cpu_seconds / arguments.rounds, 2),
        },
        {
            "sockets": sockets,
            "client_cpu_ms_per_event": round(1000 * client_cpu_seconds / arguments.rounds, 2),
        },
        {
            "sockets": sockets,
            "server_gc_pause_max_ms": round(1000 * max(longest_by_generation), 2),
            "server_gc_collections_by_generation": collections_by_generation,
            "server_gc_pause_max_ms_by_generation": [
                round(1000 * pause, 2) for pause in longest_by_generation
            ],
        },
    ]
    for figure in figures:
        print(json.dumps(figure))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sockets", type=int, default=500)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between events")
    parser.add_argument(
        "--client-processes",
        type=int,
        default=1,
        help="spread the sockets over this many client processes (by user)",
    )
    parser.add_argument(
        "--ws",
        default="websockets-sansio",
        choices=("auto", "websockets-sansio", "websockets", "wsproto"),
        help="uvicorn's WebSocket implementation (default: websockets-sansio, as dialer serve)",
    )
    parser.add_argument(
        "--deflate",
        action="store_true",
        help="turn on permessage-deflate (off in dialer serve)",
    )
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="gc.freeze() in the server once it started (dialer serve does not, yet)",
    )
    parser.add_argument(
        "--heartbeat-seconds",
        type=float,
        default=None,
        help="the events socket's heartbeat (default: the application's, 15 s)",
    )
    arguments = parser.parse_args()
    if arguments.client:
        client_main()
        return
    if arguments.sockets % arguments.users:
        parser.error("--sockets must be a multiple of --users")
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    asyncio.run(_run(arguments))


if __name__ == "__main__":
    main()
