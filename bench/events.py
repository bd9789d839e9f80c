"""Live-event latency: from a call transition published on the bus to its arrival on every
connected events socket of a real uvicorn server.

The server (the real application on a fresh SQLite database, uvicorn on 127.0.0.1) runs in this
process; the sockets live in a child process (``--client``) so the two do not share an event
loop. ``--users`` users each open ``--sockets / --users`` sockets (tabs). Then ``--rounds``
``call.answered`` events are published to all of them, one every ``--interval`` seconds; each
carries its publication time, and the client notes the arrival time on every socket (same
machine, same clock).

Prints JSON lines: ``{"sockets": N, "event_latency_p99_ms": ...}`` (one delivery = one event on
one socket), and the p50 / max of the same, and ``all_sockets_p99_ms`` (per event, the time
until the LAST socket had it).

    .venv/bin/python bench/events.py [--sockets 500] [--users 50] [--rounds 40]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

THIS_SCRIPT = Path(__file__).resolve()
REPOSITORY = THIS_SCRIPT.parents[1]
sys.path.insert(0, str(REPOSITORY))

PASSWORD = "bench password 123"  # noqa: S105 (users of a throw-away database)


# -- the client process ---------------------------------------------------------------------------


async def _client(config: dict[str, object]) -> dict[str, object]:
    from websockets.asyncio.client import ClientConnection, connect

    url = str(config["url"])
    cookies = [str(cookie) for cookie in config["cookies"]]  # type: ignore[attr-defined]
    per_user = int(config["per_user"])  # type: ignore[call-overload]
    rounds = int(config["rounds"])  # type: ignore[call-overload]
    latencies: list[float] = []
    last_arrival: dict[int, float] = {}
    sockets: list[ClientConnection] = []
    for cookie in cookies:
        for _ in range(per_user):
            connection = await connect(url, additional_headers={"Cookie": cookie}, max_queue=None)
            hello = json.loads(await connection.recv())
            assert hello["type"] == "hello", hello
            sockets.append(connection)
    print(json.dumps({"ready": len(sockets)}), flush=True)

    async def read(connection: ClientConnection) -> None:
        received = 0
        while received < rounds:
            message = json.loads(await connection.recv())
            if message.get("type") == "ping":
                await connection.send(json.dumps({"type": "pong"}))
                continue
            if message.get("type") != "event":
                continue
            arrived = time.time()
            payload = message["payload"]
            latencies.append(arrived - float(payload["sent_at"]))
            number = int(payload["round"])
            last_arrival[number] = max(last_arrival.get(number, 0.0), arrived - payload["sent_at"])
            received += 1

    await asyncio.wait_for(asyncio.gather(*(read(item) for item in sockets)), 120)
    for connection in sockets:
        await connection.close()
    return {"latencies": latencies, "all_sockets": list(last_arrival.values())}


def client_main() -> None:
    config = json.loads(sys.stdin.readline())
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    result = asyncio.run(_client(config))
    print(json.dumps(result), flush=True)


# -- the server side ------------------------------------------------------------------------------


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


async def _run(arguments: argparse.Namespace) -> None:
    import httpx
    import uvicorn

    from dialer.actors import Role
    from dialer.settings import Settings
    from dialer.storage import upgrade_database
    from dialer.users import create_user
    from web.app import create_app
    from web.settings import WebSettings

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
                ws_per_message_deflate=arguments.deflate,
            )
        )
        serving = asyncio.create_task(server.serve(sockets=[listener]))
        while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
            await asyncio.sleep(0.01)
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

        child = await asyncio.create_subprocess_exec(
            sys.executable,
            str(THIS_SCRIPT),
            "--client",
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            limit=1 << 26,
        )
        assert child.stdin is not None
        assert child.stdout is not None
        config = {
            "url": f"ws://127.0.0.1:{port}/ws/events",
            "cookies": cookies,
            "per_user": arguments.sockets // arguments.users,
            "rounds": arguments.rounds,
        }
        child.stdin.write((json.dumps(config) + "\n").encode())
        await child.stdin.drain()
        ready = json.loads(await asyncio.wait_for(child.stdout.readline(), 300))
        sockets = int(ready["ready"])
        await asyncio.sleep(1.0)  # let the connections settle

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
        result = json.loads(await asyncio.wait_for(child.stdout.readline(), 300))
        await child.wait()
        server.should_exit = True
        await serving

    latencies = [value * 1000 for value in result["latencies"]]
    all_sockets = [value * 1000 for value in result["all_sockets"]]
    expected = sockets * arguments.rounds
    print(
        json.dumps(
            {
                "sockets": sockets,
                "deliveries": len(latencies),
                "expected": expected,
                "permessage_deflate": arguments.deflate,
            }
        )
    )
    print(
        json.dumps(
            {"sockets": sockets, "event_latency_p99_ms": round(_percentile(latencies, 0.99), 2)}
        )
    )
    print(
        json.dumps(
            {"sockets": sockets, "event_latency_p50_ms": round(_percentile(latencies, 0.50), 2)}
        )
    )
    print(json.dumps({"sockets": sockets, "event_latency_max_ms": round(max(latencies), 2)}))
    print(
        json.dumps(
            {"sockets": sockets, "all_sockets_p99_ms": round(_percentile(all_sockets, 0.99), 2)}
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sockets", type=int, default=500)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between events")
    parser.add_argument(
        "--no-deflate",
        dest="deflate",
        action="store_false",
        help="turn off permessage-deflate (on by default, as in dialer serve)",
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
