"""The audio self-test page in Chromium with a fake microphone playing a 1 kHz tone: the frames
that reach the server's /ws/echo (seen through ``app.state.echo_taps``) carry that tone, and the
echo comes back to the page."""

from __future__ import annotations

import asyncio
import re
import wave
from pathlib import Path

import numpy as np
import pytest
from playwright.async_api import expect
from starlette.applications import Starlette

from tests.conftest import People
from tests.web.browser import chromium, collect_console_errors, serve, sign_in

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]

TONE_HZ = 1000.0
SAMPLE_RATE = 8000
FRAMES_NEEDED = 50  # one second of audio


def write_tone(path: Path, frequency: float, seconds: float, rate: int = 48000) -> None:
    times = np.arange(int(seconds * rate)) / rate
    samples = (0.5 * 32767 * np.sin(2 * np.pi * frequency * times)).astype("<i2")
    with wave.open(str(path), "wb") as output:
        output.setnchannels(1)
        output.setsampwidth(2)
        output.setframerate(rate)
        output.writeframes(samples.tobytes())


def loud(frame: bytes) -> bool:
    samples = np.frombuffer(frame, dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(samples**2))) > 1000.0


def peak_frequency(frames: list[bytes]) -> float:
    samples = np.frombuffer(b"".join(frames), dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    spectrum[0] = 0.0
    return float(np.argmax(spectrum)) * SAMPLE_RATE / len(samples)


async def test_echo_loop_carries_the_microphone_tone_to_the_server(
    app: Starlette, people: People, tmp_path: Path
) -> None:
    microphone = tmp_path / "tone.wav"
    write_tone(microphone, TONE_HZ, seconds=6.0)
    reached_server: list[bytes] = []
    loud_frames: list[bytes] = []
    enough_tone = asyncio.Event()

    def tap(frame: bytes) -> None:
        reached_server.append(frame)
        if loud(frame):
            loud_frames.append(frame)
        if len(loud_frames) >= FRAMES_NEEDED + 10:
            enough_tone.set()

    app.state.echo_taps.append(tap)
    anna = people.north_operator
    async with serve(app) as base_url, chromium(tmp_path, fake_audio=microphone) as browser:
        page = await browser.new_page()
        errors = collect_console_errors(page)
        await sign_in(page, base_url, anna.login, anna.password)
        await page.click("a[href='/self-test']")
        await page.click("#echo-button")
        await expect(page.locator("#self-test-status")).to_have_text(
            "Speak: you should hear yourself with a short delay."
        )
        async with asyncio.timeout(30):  # hang guard only
            await enough_tone.wait()
        await expect(page.locator("#self-test-counters")).to_have_text(
            re.compile(r"Frames sent \d+, received back [1-9]\d*")
        )
        await page.click("#echo-button")  # stop
        assert errors == []

    assert all(len(frame) == 320 for frame in reached_server)
    # Skip the first frames (the resampler settling), analyse one second.
    assert abs(peak_frequency(loud_frames[10 : 10 + FRAMES_NEEDED]) - TONE_HZ) <= 20.0
