"""The recordings library and call player in Chromium: find a call by a word of its
transcript, open the player, see both channels' waveform and the transcript beside it, click a
word to seek the audio there, score the call; no console errors (CSP violations show there)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
from playwright.async_api import expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from dialer.calls import attach_recording, create_call, record_call_transition
from dialer.models import AuditEvent, CallState
from dialer.settings import Settings
from dialer.transcripts.models import CallReview
from dialer.transcripts.store import save_transcript
from recordings.compression import compress_recording
from tests.conftest import People
from tests.dialer.transcript_samples import utterance
from tests.web.browser import chromium, collect_console_errors, serve, sign_in

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]

RATE = 8000
SECONDS = 8.0


def _write_wav(path: Path) -> None:
    """Left (operator) talks in the first half, right (customer) in the second."""
    times = np.arange(int(SECONDS * RATE)) / RATE
    left = np.where(times < 4, 8000 * np.sin(2 * np.pi * 300 * times), 0)
    right = np.where(times >= 4, 8000 * np.sin(2 * np.pi * 600 * times), 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(2)
        writer.setsampwidth(2)
        writer.setframerate(RATE)
        writer.writeframes(np.column_stack([left, right]).astype("<i2").tobytes())


async def _recorded_call(
    session_factory: async_sessionmaker[AsyncSession], settings: Settings, people: People
) -> int:
    async with session_factory() as session:
        call = await create_call(session, people.north_operator.actor, "+79161230000")
        for state in (CallState.DIALING, CallState.ANSWERED, CallState.ENDED):
            await record_call_transition(session, call.id, state)
        await session.commit()
    wav = settings.recordings_dir / "2026" / "02" / "10" / f"call-{call.id}.wav"
    _write_wav(wav)
    compressed = compress_recording(wav, codec="opus")
    async with session_factory() as session:
        recording = await attach_recording(
            session,
            call.id,
            path=str(compressed.path.relative_to(settings.recordings_dir)),
            codec=compressed.codec,
            size_bytes=compressed.size_bytes,
            duration_seconds=compressed.duration_seconds,
        )
        # Words at 0.5, 1.0, 1.5 (operator) and 5.0, 5.5, 6.0 s (customer).
        await save_transcript(
            session,
            call.id,
            [
                utterance("operator", 0.5, "Добрый день Ромашка"),
                utterance("customer", 5.0, "Оформите доставку пожалуйста"),
            ],
            recording_id=recording.id,
            model="test",
        )
        await session.commit()
    return call.id


async def test_find_a_call_play_it_seek_by_word_and_review_it(
    app: Starlette,
    session_factory: async_sessionmaker[AsyncSession],
    settings: Settings,
    people: People,
    tmp_path: Path,
) -> None:
    call_id = await _recorded_call(session_factory, settings, people)
    async with serve(app) as base_url, chromium(tmp_path) as browser:
        page = await browser.new_page()
        errors = collect_console_errors(page)
        await sign_in(page, base_url, "north-boss", people.north_supervisor.password)
        await page.click("nav a[href='/library']")
        await page.fill("#library-search", "достав")
        rows = page.locator("#library-rows tr[data-call-id]")
        await expect(rows).to_have_count(1)
        await page.click(f"#library-rows tr[data-call-id='{call_id}'] a.play-link")
        assert page.url == f"{base_url}/calls/{call_id}/player"

        # The transcript beside the player, with each side's words.
        operator_words = page.locator("#player-transcript .utterance.operator .word")
        customer_words = page.locator("#player-transcript .utterance.customer .word")
        await expect(operator_words).to_have_text(["Добрый", "день", "Ромашка"])
        await expect(customer_words).to_have_text(["Оформите", "доставку", "пожалуйста"])
        # Both channels decoded and drawn; the top lane (operator) is inked in its first half
        # only a flat line in its second, the bottom lane (customer) the other way round.
        await expect(page.locator("#player-waveform")).to_have_attribute("data-drawn", "true")
        ink = await page.evaluate(
            """() => {
              const canvas = document.getElementById("player-waveform");
              const context = canvas.getContext("2d");
              const inked = (x0, x1, y0, y1) => {
                const data = context.getImageData(x0, y0, x1 - x0, y1 - y0).data;
                let count = 0;
                for (let i = 3; i < data.length; i += 4) if (data[i] > 0) count += 1;
                return count;
              };
              const w = canvas.width, h = canvas.height;
              return [inked(0, w / 2 - 4, 0, h / 2 - 2), inked(w / 2 + 4, w, 0, h / 2 - 2),
                      inked(0, w / 2 - 4, h / 2 + 2, h), inked(w / 2 + 4, w, h / 2 + 2, h)];
            }"""
        )
        operator_first, operator_second, customer_first, customer_second = ink
        assert operator_first > 5 * operator_second
        assert customer_second > 5 * customer_first
        download = page.locator("#player-download")
        await expect(download).to_have_attribute(
            "href", f"/api/calls/{call_id}/recording?download=1"
        )

        # Clicking a word seeks the audio to it and highlights it.
        await customer_words.nth(1).click()
        position = await page.evaluate("document.getElementById('player-audio').currentTime")
        assert position == pytest.approx(5.5, abs=0.25)
        await expect(customer_words.nth(1)).to_have_class("word current")
        await operator_words.nth(0).click()
        position = await page.evaluate("document.getElementById('player-audio').currentTime")
        assert position == pytest.approx(0.5, abs=0.25)
        await expect(operator_words.nth(0)).to_have_class("word current")
        await expect(customer_words.nth(1)).to_have_class("word")

        # The supervisor scores the call.
        await page.check("#review-form input[value='4']")
        await page.fill("#review-note", "Name the delivery date")
        await page.click("#review-form button[type=submit]")
        await expect(page.locator("#review-state")).to_have_text("Saved.")
        assert errors == []
    async with session_factory() as session:
        review = await session.get(CallReview, call_id)
        plays = (
            await session.scalars(select(AuditEvent).where(AuditEvent.action == "recording.play"))
        ).all()
    assert review is not None
    assert (review.score, review.note) == (4, "Name the delivery date")
    # The player fetched the recording once: one audited play.
    assert [event.target for event in plays] == [f"call:{call_id}"]
