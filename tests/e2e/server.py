# ruff: noqa: ASYNC240  (small log files read after the fact; blocking is fine here)
"""``dialer serve`` as a child process, the way a user starts it, for the end-to-end tests.

- :func:`start_server` runs ``python -m web.cli serve`` on 127.0.0.1 and a free port with
  ``DIALER_DATA_DIR`` (and any other variables) given, waits until it answers HTTP, and returns a
  :class:`ServerProcess` (stopped by its own PID: SIGTERM with :meth:`ServerProcess.stop`,
  SIGKILL with :meth:`ServerProcess.kill`).
- :func:`first_start_credentials` reads the admin login and password the first start printed.
- :func:`signed_in` is an HTTP client logged in on that server (cookie + CSRF header);
  :func:`call_first_contact` places a browser call to the first demo contact with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

REPOSITORY = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 60.0
_CREDENTIALS = re.compile(r"login:\s+(\S+)\s*\n\s*password:\s+(\S+)")


class ServerError(RuntimeError):
    """The server did not start, or stopped unexpectedly."""


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        port: int = listener.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    process: asyncio.subprocess.Process
    port: int
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def console(self) -> str:
        """Everything the server wrote to its standard error (its console and log)."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    async def stop(self, seconds: float = 20.0) -> int:
        """SIGTERM, as a service manager would; the exit code (uvicorn re-raises the signal
        after its shutdown, so a clean stop is -15)."""
        if self.process.returncode is None:
            self.process.terminate()
        try:
            return await asyncio.wait_for(self.process.wait(), seconds)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            raise ServerError(f"the server ignored SIGTERM for {seconds} s") from None

    async def kill(self) -> None:
        """SIGKILL (``kill -9``): no shutdown code runs."""
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()


async def start_server(
    data_dir: Path,
    log_path: Path,
    environ: Mapping[str, str] | None = None,
    arguments: Sequence[str] = (),
) -> ServerProcess:
    """``dialer serve`` on a free port with ``data_dir`` (and ``arguments`` after the port);
    returns once HTTP answers."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("DIALER_") and key not in ("http_proxy", "https_proxy")
    }
    environment["DIALER_DATA_DIR"] = str(data_dir)
    environment["PYTHONUNBUFFERED"] = "1"
    environment.update(environ or {})
    for _ in range(3):
        port = free_tcp_port()
        with log_path.open("ab") as log, log_path.with_suffix(".stdout").open("ab") as output:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "web.cli",
                "serve",
                "--port",
                str(port),
                *arguments,
                cwd=REPOSITORY,
                env=environment,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=output,
                stderr=log,
            )
        server = ServerProcess(process, port, log_path)
        if await _wait_until_serving(server):
            return server
        await server.kill()
        if "address already in use" not in server.console().lower():
            break
    raise ServerError(f"dialer serve did not start:\n{log_path.read_text(errors='replace')}")


async def _wait_until_serving(server: ServerProcess) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STARTUP_SECONDS
    async with httpx.AsyncClient(base_url=server.base_url, trust_env=False) as client:
        while loop.time() < deadline:
            if server.process.returncode is not None:
                return False
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/api/openapi.json", timeout=2.0)).status_code == 200:
                    return True
            await asyncio.sleep(0.1)
    return False


def first_start_credentials(console: str) -> tuple[str, str]:
    """The (login, password) the first start showed; fails unless shown exactly once."""
    found = _CREDENTIALS.findall(console)
    if len(found) != 1:
        raise AssertionError(f"expected the credentials once on the console, found {len(found)}")
    login, password = found[0]
    return str(login), str(password)


@contextlib.asynccontextmanager
async def signed_in(base_url: str, login: str, password: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the server, logged in (cookie and X-CSRF-Token)."""
    async with httpx.AsyncClient(base_url=base_url, trust_env=False, timeout=10.0) as client:
        response = await client.post("/api/session", json={"login": login, "password": password})
        assert response.status_code == 200, response.text
        client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
        yield client


async def call_first_contact(client: httpx.AsyncClient) -> int:
    """Place a call with a browser audio leg to the first contact of the list; its id."""
    contact = (await client.get("/api/contacts")).json()["items"][0]
    placed = await client.post(
        "/api/calls", json={"contact_id": contact["id"], "audio_leg": "browser"}
    )
    assert placed.status_code == 201, placed.text
    call_id = placed.json()["call_id"]
    assert isinstance(call_id, int)
    return call_id


def cookie_header(client: httpx.AsyncClient) -> str:
    return "; ".join(f"{name}={value}" for name, value in client.cookies.items())


async def wait_for_call(
    client: httpx.AsyncClient, call_id: int, *, states: tuple[str, ...], seconds: float = 15.0
) -> dict[str, object]:
    """Poll ``GET /api/calls/{id}`` until the call is in one of ``states``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        row = (await client.get(f"/api/calls/{call_id}")).json()
        assert isinstance(row, dict)
        if row["state"] in states:
            return row
        if loop.time() > deadline:
            raise AssertionError(f"call {call_id} still {row['state']}, wanted {states}")
        await asyncio.sleep(0.05)
