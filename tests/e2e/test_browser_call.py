"""A whole call in Chromium against ``dialer serve``: log in, open a demo contact, click to
call (the built-in SIP test line answers, speaks its prompt, then echoes), speak from the
fake microphone, hang up, pick the outcome with the keyboard, then play the recording.

The fake microphone plays a WAV once: silence, a 1 kHz tone, then a spoken phrase (espeak-ng),
then silence; all of it while the test line still plays its prompt, so none of it is echoed
back over itself. Checks: the call on
the contact has answered/ended times and the outcome; the page got the call's live events in
order; the recording plays in the page; its left channel holds what the browser spoke (1 kHz
at 1 kHz, the phrase), its right channel the test line's prompt.

Correlations are normalised waveform cross-correlations, each 250 ms chunk of the reference at
its own best lag (a jitter buffer may slip the timeline by a frame during a call); the median
chunk must reach 0.8. Whole-signal waveform and spectrogram correlations are in the failure
messages. The page must ask for the microphone without echo cancellation: Chromium's canceller
rewrites the operator's voice while the far end talks (measured here: chunk correlations fall
from about 0.9 to about 0.7 with it on).
"""

from __future__ import annotations

import asyncio
import subprocess
import wave
from pathlib import Path

import httpx
import numpy as np
import numpy.typing as npt
import pytest
from playwright.async_api import Page, expect

from sip.testline import load_prompt
from tests.audio import SAMPLE_RATE, decode_stereo, spectral_correlation
from tests.e2e.audio import band_energy_fraction, peak_frequency, waveform_correlation
from tests.e2e.server import first_start_credentials, signed_in, start_server
from tests.web.browser import chromium, collect_console_errors, sign_in

pytestmark = pytest.mark.browser

CAPTURE_RATE = 48000
TONE_START, TONE_SECONDS = 1.0, 0.4
SPEECH_START = 1.6
WAV_SECONDS = 4.5
PHRASE = "Good morning, this is a test call."
OPERATOR_LOGIN = "olga"
OPERATOR_PASSWORD = "a long enough password"

# Keeps every live event the page receives on ``window.liveEvents`` (in arrival order), and
# what the page asked of the microphone on ``window.microphoneConstraints`` (observed only).
RECORD_LIVE_EVENTS = """
(() => {
  const asked = [];
  window.microphoneConstraints = asked;
  const devices = navigator.mediaDevices;
  const getUserMedia = devices.getUserMedia.bind(devices);
  devices.getUserMedia = (constraints) => {
    asked.push(constraints);
    return getUserMedia(constraints);
  };
  const received = [];
  window.liveEvents = received;
  const NativeWebSocket = window.WebSocket;
  window.WebSocket = class extends NativeWebSocket {
    constructor(url, protocols) {
      super(url, protocols);
      if (String(url).includes("/ws/events")) {
        this.addEventListener("message", (message) => {
          try {
            const data = JSON.parse(message.data);
            if (data.type === "event") received.push(data);
          } catch (error) {
            // not JSON: not an event
          }
        });
      }
    }
  };
})();
"""


def _spoken_phrase(directory: Path) -> tuple[Path, npt.NDArray[np.int16]]:
    """A phrase from espeak-ng: the file at 48 kHz for the microphone, and 8 kHz samples."""
    spoken = directory / "spoken.wav"
    wide = directory / "spoken-48k.wav"
    narrow = directory / "spoken-8k.wav"
    subprocess.run(["espeak-ng", "-v", "en", "-s", "190", "-w", str(spoken), PHRASE], check=True)
    for target, rate in ((wide, CAPTURE_RATE), (narrow, SAMPLE_RATE)):
        subprocess.run(
            ["sox", str(spoken), "-r", str(rate), "-c", "1", "-b", "16", str(target)], check=True
        )
    return wide, _read_mono(narrow)


def _read_mono(path: Path) -> npt.NDArray[np.int16]:
    with wave.open(str(path), "rb") as reader:
        return np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2").copy()


def _write_microphone(path: Path, phrase: Path) -> None:
    """The fake microphone's WAV at 48 kHz mono (see the module docstring)."""
    samples = np.zeros(int(WAV_SECONDS * CAPTURE_RATE))
    start = int(TONE_START * CAPTURE_RATE)
    times = np.arange(int(TONE_SECONDS * CAPTURE_RATE)) / CAPTURE_RATE
    samples[start : start + times.size] = 9000 * np.sin(2 * np.pi * 1000.0 * times)
    start = int(SPEECH_START * CAPTURE_RATE)
    words = _read_mono(phrase).astype(np.float64)
    samples[start : start + words.size] = words
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(CAPTURE_RATE)
        writer.writeframes(np.clip(samples, -32767, 32767).astype("<i2").tobytes())


async def _recording_url(client: httpx.AsyncClient, call_id: int) -> str:
    async with asyncio.timeout(30):
        while True:
            row = (await client.get(f"/api/calls/{call_id}")).json()
            if row["recording_url"]:
                url = row["recording_url"]
                assert isinstance(url, str)
                return url
            await asyncio.sleep(0.1)


async def _call_events(page: Page, call_id: int) -> list[tuple[int, str]]:
    events = await page.evaluate("() => window.liveEvents")
    return [
        (event["sequence"], event["kind"])
        for event in events
        if event["kind"].startswith("call.") and event["payload"].get("call_id") == call_id
    ]


async def test_a_call_from_the_browser_to_the_test_line(tmp_path: Path) -> None:
    phrase, spoken = _spoken_phrase(tmp_path)
    microphone = tmp_path / "microphone.wav"
    _write_microphone(microphone, phrase)
    server = await start_server(tmp_path / "data", tmp_path / "server.log")
    try:
        login, password = first_start_credentials(server.console())
        async with signed_in(server.base_url, login, password) as admin:
            made = await admin.post(
                "/api/users",
                json={"login": OPERATOR_LOGIN, "password": OPERATOR_PASSWORD, "role": "operator"},
            )
            assert made.status_code == 201, made.text
            contact = (await admin.get("/api/contacts")).json()["items"][0]

        async with chromium(tmp_path, fake_audio=microphone) as browser:
            await browser.add_init_script(RECORD_LIVE_EVENTS)
            page = await browser.new_page()
            errors = collect_console_errors(page)
            await sign_in(page, server.base_url, OPERATOR_LOGIN, OPERATOR_PASSWORD)
            await page.goto(f"{server.base_url}/contacts/{contact['id']}")
            await expect(page.locator("#card-name")).to_have_text(contact["name"])
            await expect(page.locator("#live-status")).to_have_text("Live")

            async with page.expect_response("**/api/calls") as placing:
                await page.click(".call-button")
            placed = await (await placing.value).json()
            call_id = placed["call_id"]
            await expect(page.locator("#call-state")).to_have_attribute(
                "data-state", "answered", timeout=10_000
            )
            await page.wait_for_timeout(int(WAV_SECONDS * 1000))  # the microphone speaks
            await page.keyboard.press("e")  # hang up
            await expect(page.locator("#after-call-form")).to_be_visible(timeout=10_000)
            await page.keyboard.press("7")  # the 7th outcome: Sale
            await expect(page.locator("#outcome-sale")).to_be_checked()
            async with page.expect_response(f"**/api/calls/{call_id}/outcome") as saving:
                await page.keyboard.press("Enter")
            assert (await saving.value).status == 200

            async with signed_in(server.base_url, OPERATOR_LOGIN, OPERATOR_PASSWORD) as olga:
                url = await _recording_url(olga, call_id)
                row = (await olga.get(f"/api/calls/{call_id}")).json()
                recording = await olga.get(url)
            assert recording.status_code == 200
            await page.wait_for_function(
                "(id) => window.liveEvents.some((event) =>"
                " event.kind === 'call.recording' && event.payload.call_id === id)",
                arg=call_id,
            )
            kinds = await _call_events(page, call_id)
            constraints = await page.evaluate("() => window.microphoneConstraints")

            # The recording plays in the page, from the contact card's history.
            await page.goto(f"{server.base_url}/contacts/{contact['id']}")
            player = page.locator(f"#call-history tr[data-call-id='{call_id}'] audio")
            await expect(player).to_have_attribute("src", url)
            await player.evaluate("(audio) => { audio.muted = true; return audio.play(); }")
            await page.wait_for_function(
                "(audio) => audio.readyState >= 2 && audio.currentTime > 0",
                arg=await player.element_handle(),
            )
            assert errors == []
    finally:
        await server.stop()

    # The call, on the contact, with its times and outcome.
    assert row["contact_id"] == contact["id"]
    assert row["state"] == "ended"
    assert row["hangup_by"] == "operator"
    assert row["answered_at"] is not None
    assert row["ended_at"] is not None
    assert row["answered_at"] < row["ended_at"]
    assert row["outcome"] == "sale"

    # The page got the call's events, in order (ringing is optional: the line answers at once).
    sequences = [sequence for sequence, _kind in kinds]
    assert sequences == sorted(sequences)
    assert [kind for _sequence, kind in kinds if kind != "call.ringing"] == [
        "call.created",
        "call.dialing",
        "call.answered",
        "call.ended",
        "call.recording",
    ]

    left, right = decode_stereo(recording.content)
    # The 1 kHz tone of the microphone is a 1 kHz tone on the left.
    window = SAMPLE_RATE // 2
    tone_windows = [
        left[start : start + window]
        for start in range(0, left.size - window, SAMPLE_RATE // 10)
        if band_energy_fraction(left[start : start + window], 1000.0, 50.0) > 0.9
    ]
    assert tone_windows, "no 1 kHz tone on the operator's channel"
    assert abs(peak_frequency(tone_windows[len(tone_windows) // 2]) - 1000.0) <= 10.0

    prompt = np.frombuffer(load_prompt(), dtype="<i2")
    prompt_chunks = aligned_chunk_correlations(prompt, right)
    assert float(np.median(prompt_chunks)) >= 0.8, (prompt_chunks, whole(prompt, right))
    # And not the other way round: the operator never said the prompt.
    assert spectral_correlation(prompt, left) < 0.5

    # What the browser spoke is on the left. Chromium's echo canceller rewrites the microphone
    # while the far end talks, so the call leg must turn it off (as noise suppression and
    # automatic gain), or what the customer hears is not what the operator said.
    assert constraints, "the page never asked for the microphone"
    audio = constraints[0]["audio"]
    assert audio.get("echoCancellation") is False, f"microphone constraints: {audio}"
    spoken_chunks = aligned_chunk_correlations(spoken, left)
    assert float(np.median(spoken_chunks)) >= 0.8, (spoken_chunks, whole(spoken, left))


def aligned_chunk_correlations(
    reference: npt.NDArray[np.int16], received: npt.NDArray[np.int16], seconds: float = 0.25
) -> list[float]:
    """The waveform correlation of each non-silent ``seconds`` chunk of ``reference`` at its
    own best lag in ``received``: a jitter buffer may shift the timeline by a frame or two
    during a call, which one lag for the whole signal would count as a mismatch."""
    size = int(seconds * SAMPLE_RATE)
    scores: list[float] = []
    for start in range(0, reference.size - size + 1, size):
        chunk = reference[start : start + size]
        if float(np.abs(chunk.astype(np.float64)).mean()) < 200:
            continue
        scores.append(round(waveform_correlation(chunk, received)[0], 3))
    return scores


def whole(reference: npt.NDArray[np.int16], received: npt.NDArray[np.int16]) -> dict[str, float]:
    """Whole-signal correlations, for failure messages."""
    return {
        "waveform": round(waveform_correlation(reference, received)[0], 3),
        "spectral": round(spectral_correlation(reference, received), 3),
    }
