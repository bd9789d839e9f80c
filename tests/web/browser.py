"""Real servers and a real browser for the UI and socket tests.

- ``serve(app)``: the application under uvicorn on 127.0.0.1 and a free port (bound to port 0
  first), in the test's own event loop, so a test can publish on ``app.state.event_bus`` directly.
  Yields the base URL ``http://127.0.0.1:PORT``.
- ``chromium(tmp_path, fake_audio=None)``: Debian's Chromium (``/usr/bin/chromium``) driven by
  Playwright in a fresh profile, fake microphone (optionally a WAV file played once), window
  1366x768. Never ``playwright install``.
- ``log_in_over_http(base_url, login, password)``: a session cookie and CSRF token from the real
  server, for socket tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from playwright.async_api import BrowserContext, ConsoleMessage, Page, async_playwright
from starlette.applications import Starlette

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGUMENTS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
)
VIEWPORT = {"width": 1366, "height": 768}


@contextlib.asynccontextmanager
async def serve(app: Starlette, **uvicorn_settings: Any) -> AsyncIterator[str]:
    """Run ``app`` on a free loopback port until the block ends; yields its base URL.

    ``uvicorn_settings`` go to ``uvicorn.Config`` (e.g. the WebSocket protocol)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=2,
        server_header=False,
        **uvicorn_settings,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        listener.close()


@dataclass(frozen=True)
class HttpSession:
    cookie_header: str
    csrf_token: str


async def log_in_over_http(base_url: str, login: str, password: str) -> HttpSession:
    async with httpx.AsyncClient(base_url=base_url, trust_env=False) as client:
        response = await client.post("/api/session", json={"login": login, "password": password})
        assert response.status_code == 200, response.text
        cookies = "; ".join(f"{name}={value}" for name, value in client.cookies.items())
        return HttpSession(cookie_header=cookies, csrf_token=response.json()["csrf_token"])


@contextlib.asynccontextmanager
async def chromium(tmp_path: Path, fake_audio: Path | None = None) -> AsyncIterator[BrowserContext]:
    """A fresh Chromium profile; ``fake_audio`` is played once as the microphone."""
    arguments = list(CHROMIUM_ARGUMENTS)
    if fake_audio is not None:
        arguments.append(f"--use-file-for-fake-audio-capture={fake_audio}%noloop")
    profile = tmp_path / "chromium-profile"
    profile.mkdir(exist_ok=True)
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=arguments,
            viewport=VIEWPORT,  # type: ignore[arg-type]
            locale="en-US",
        )
        try:
            yield context
        finally:
            await context.close()


async def sign_in(page: Page, base_url: str, login: str, password: str) -> None:
    """Log in through the login page and wait for the contact list."""
    await page.goto(f"{base_url}/")
    await page.fill("#login-name", login)
    await page.fill("#login-password", password)
    await page.press("#login-password", "Enter")
    await page.wait_for_selector("#contact-search")


def collect_console_errors(page: Page) -> list[str]:
    """Console errors and uncaught exceptions of ``page`` (CSP violations show up here).

    The 401 of the page asking "am I signed in?" before logging in is expected and left out.
    """
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        if "status of 401" in message.text and message.location.get("url", "").endswith(
            "/api/session"
        ):
            return
        errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors
