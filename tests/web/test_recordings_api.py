"""``GET /api/calls/{id}/recording`` on real recording files (Opus, MP3 and WAV made by the
recordings package with ffmpeg): byte ranges, content types, who may play, and the audit log."""

from __future__ import annotations

import asyncio
import subprocess
import wave
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from dialer.audit import verify_audit_chain
from dialer.calls import attach_recording, create_call, record_call_transition
from dialer.models import AuditEvent, CallState
from dialer.settings import Settings
from recordings.compression import compress_recording
from tests.conftest import People, Person
from tests.dialer.test_audit_appender import database_refusing
from tests.web.conftest import BASE_URL, CLIENT_ADDRESS, client_of, log_in, make_client
from web.api.recordings import ByteRange, RangeNotSatisfiable, parse_range

SAMPLE_RATE = 8000
SECONDS = 3.0


def _write_stereo_wav(path: Path) -> None:
    """Left: a 440 Hz tone (the operator); right: a 1 kHz tone (the far end)."""
    times = np.arange(int(SECONDS * SAMPLE_RATE)) / SAMPLE_RATE
    left = 6000 * np.sin(2 * np.pi * 440 * times)
    right = 6000 * np.sin(2 * np.pi * 1000 * times)
    samples = np.column_stack([left, right]).astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(2)
        writer.setsampwidth(2)
        writer.setframerate(SAMPLE_RATE)
        writer.writeframes(samples.tobytes())


async def _recorded_call(
    session_factory: async_sessionmaker[AsyncSession],
    settings: Settings,
    operator: Person,
    codec: str,
) -> tuple[int, Path]:
    """An ended call of ``operator`` with a recording file of ``codec`` (opus, mp3, wav)."""
    async with session_factory() as session:
        call = await create_call(session, operator.actor, "+79165550011")
        for state in (CallState.DIALING, CallState.ANSWERED, CallState.ENDED):
            await record_call_transition(session, call.id, state)
        await session.commit()
        call_id = call.id
    wav = settings.recordings_dir / "2026" / "01" / "02" / f"call-{call_id}.wav"
    _write_stereo_wav(wav)
    if codec == "wav":
        path, stored_codec = wav, "pcm_s16le"
    else:
        compressed = compress_recording(wav, codec="opus" if codec == "opus" else "mp3")
        path, stored_codec = compressed.path, compressed.codec
    async with session_factory() as session:
        await attach_recording(
            session,
            call_id,
            path=str(path.relative_to(settings.recordings_dir)),
            codec=stored_codec,
            size_bytes=path.stat().st_size,
            duration_seconds=SECONDS,
        )
        await session.commit()
    return call_id, path


async def _audit_actions(
    session_factory: async_sessionmaker[AsyncSession], call_id: int
) -> list[tuple[str, int | None]]:
    async with session_factory() as session:
        rows = await session.scalars(
            select(AuditEvent)
            .where(AuditEvent.target == f"call:{call_id}", AuditEvent.action.like("recording.%"))
            .order_by(AuditEvent.id)
        )
        return [(row.action, row.actor_user_id) for row in rows]


def _decoded_seconds(data: bytes) -> float:
    """Seconds of stereo audio ffmpeg decodes from ``data`` (fails if it does not decode)."""
    decoded = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", "pipe:0", "-f", "s16le", "-ac", "2", "-ar", "8000", "-"],
        input=data,
        capture_output=True,
        check=True,
    ).stdout
    return len(decoded) / (2 * 2 * SAMPLE_RATE)


async def test_ranges_of_a_real_opus_recording_and_every_play_audited(
    app: Starlette,
    people: People,
    session_factory: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    anna = people.north_operator
    call_id, path = await _recorded_call(session_factory, settings, anna, "opus")
    content = path.read_bytes()
    size = len(content)
    url = f"/api/calls/{call_id}/recording"
    async with client_of(app, anna) as client:
        listed = (await client.get(f"/api/calls/{call_id}")).json()
        assert listed["recording_url"] == url

        whole = await client.get(url)
        assert whole.status_code == 200
        assert whole.headers["content-type"] == "audio/ogg"
        assert whole.headers["accept-ranges"] == "bytes"
        assert int(whole.headers["content-length"]) == size
        assert whole.content == content
        assert "content-disposition" not in whole.headers
        assert _decoded_seconds(whole.content) == pytest.approx(SECONDS, abs=0.1)

        first = await client.get(url, headers={"Range": "bytes=0-99"})
        assert first.status_code == 206
        assert first.headers["content-range"] == f"bytes 0-99/{size}"
        assert first.content == content[:100]
        rest = await client.get(url, headers={"Range": "bytes=100-"})
        assert rest.status_code == 206
        assert rest.headers["content-range"] == f"bytes 100-{size - 1}/{size}"
        assert first.content + rest.content == content
        tail = await client.get(url, headers={"Range": "bytes=-50"})
        assert tail.status_code == 206
        assert tail.content == content[-50:]
        beyond = await client.get(url, headers={"Range": f"bytes=0-{size + 1000}"})
        assert beyond.status_code == 206
        assert beyond.content == content

        for bad in (f"bytes={size}-", "bytes=50-10", "bytes=abc", "bytes=-0"):
            refused = await client.get(url, headers={"Range": bad})
            assert refused.status_code == 416, bad
            assert refused.headers["content-range"] == f"bytes */{size}"

        download = await client.get(url, params={"download": "1"})
        assert download.status_code == 200
        assert download.headers["content-disposition"] == (
            f'attachment; filename="call-{call_id}.ogg"'
        )
        assert download.content == content

    # Plays: the whole file, the range from 0 and the overlong range from 0; the ranges that
    # continue a play and the refused ones are not new plays.
    actions = await _audit_actions(session_factory, call_id)
    assert actions == [
        ("recording.play", anna.user.id),
        ("recording.play", anna.user.id),
        ("recording.play", anna.user.id),
        ("recording.download", anna.user.id),
    ]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("codec", "content_type", "suffix"),
    [("mp3", "audio/mpeg", ".mp3"), ("wav", "audio/wav", ".wav")],
)
async def test_content_type_follows_the_format(
    app: Starlette,
    people: People,
    session_factory: async_sessionmaker[AsyncSession],
    settings: Settings,
    codec: str,
    content_type: str,
    suffix: str,
) -> None:
    call_id, path = await _recorded_call(session_factory, settings, people.north_operator, codec)
    assert path.suffix == suffix
    async with client_of(app, people.north_operator) as client:
        response = await client.get(f"/api/calls/{call_id}/recording")
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert _decoded_seconds(response.content) == pytest.approx(SECONDS, abs=0.1)


async def test_only_those_who_may_see_the_call_may_play_it(
    app: Starlette,
    people: People,
    session_factory: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    anna = people.north_operator
    call_id, path = await _recorded_call(session_factory, settings, anna, "opus")
    url = f"/api/calls/{call_id}/recording"
    for allowed in (people.north_supervisor, people.admin):
        async with client_of(app, allowed) as client:
            response = await client.get(url)
            assert response.status_code == 200, allowed.login
            assert response.content == path.read_bytes()
    for refused in (people.north_operator_2, people.south_supervisor, people.south_operator):
        async with client_of(app, refused) as client:
            response = await client.get(url)
            assert response.status_code == 404, refused.login
            assert response.headers["content-type"].startswith("application/json")
            assert (await client.get(f"/api/calls/{call_id}")).json().get("recording_url") is None
    async with make_client(app) as anonymous:
        assert (await anonymous.get(url)).status_code == 401

    # Only the allowed plays are in the audit log, with who played.
    assert await _audit_actions(session_factory, call_id) == [
        ("recording.play", people.north_supervisor.user.id),
        ("recording.play", people.admin.user.id),
    ]


async def test_a_call_without_a_recording_or_file(
    app: Starlette,
    people: People,
    session_factory: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    anna = people.north_operator
    async with session_factory() as session:
        bare = await create_call(session, anna.actor, "+79165550011")
        await session.commit()
        bare_id = bare.id
    call_id, path = await _recorded_call(session_factory, settings, anna, "opus")
    path.unlink()
    client: httpx.AsyncClient
    async with client_of(app, anna) as client:
        no_recording = await client.get(f"/api/calls/{bare_id}/recording")
        assert no_recording.status_code == 404
        assert "no recording" in no_recording.json()["error"]["message"]
        assert (await client.get(f"/api/calls/{bare_id}")).json()["recording_url"] is None
        gone = await client.get(f"/api/calls/{call_id}/recording")
        assert gone.status_code == 404
        assert "missing" in gone.json()["error"]["message"]
        unknown = await client.get("/api/calls/999999/recording")
        assert unknown.status_code == 404
    assert await _audit_actions(session_factory, call_id) == []


async def test_concurrent_plays_are_each_audited_in_one_intact_chain(
    app: Starlette,
    people: People,
    session_factory: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    anna = people.north_operator
    call_id, path = await _recorded_call(session_factory, settings, anna, "opus")
    content = path.read_bytes()
    url = f"/api/calls/{call_id}/recording"
    listeners = (anna, people.north_supervisor, people.admin)
    async with (
        client_of(app, listeners[0]) as first,
        client_of(app, listeners[1]) as second,
        client_of(app, listeners[2]) as third,
    ):
        responses = await asyncio.gather(
            *(client.get(url) for _ in range(5) for client in (first, second, third))
        )
    assert [response.status_code for response in responses] == [200] * 15
    assert all(response.content == content for response in responses)
    actions = await _audit_actions(session_factory, call_id)
    assert sorted(actions) == sorted(
        ("recording.play", person.user.id) for person in listeners for _ in range(5)
    )
    async with session_factory() as session:
        assert await verify_audit_chain(session) == []


async def test_a_play_that_cannot_be_audited_serves_no_audio(
    app: Starlette,
    engine: AsyncEngine,
    people: People,
    session_factory: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    anna = people.north_operator
    call_id, path = await _recorded_call(session_factory, settings, anna, "opus")
    url = f"/api/calls/{call_id}/recording"
    # Answer server errors as a server would, instead of raising them into the test.
    transport = httpx.ASGITransport(
        app=app, raise_app_exceptions=False, client=(CLIENT_ADDRESS, 40000)
    )
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        await log_in(client, anna.login, anna.password)
        async with database_refusing(engine, "recording.play"):
            refused = await client.get(url)
            assert refused.status_code == 500
            assert not refused.headers["content-type"].startswith("audio/")
            assert await _audit_actions(session_factory, call_id) == []
        played = await client.get(url)
        assert played.status_code == 200
        assert played.content == path.read_bytes()
    assert await _audit_actions(session_factory, call_id) == [("recording.play", anna.user.id)]


def test_range_parsing() -> None:
    assert parse_range(None, 1000) is None
    assert parse_range("items=0-5", 1000) is None
    assert parse_range("bytes=0-1,5-9", 1000) is None
    assert parse_range("bytes=0-", 1000) == ByteRange(0, 999, 1000)
    assert parse_range("bytes=10-19", 1000) == ByteRange(10, 19, 1000)
    assert parse_range("bytes=-2000", 1000) == ByteRange(0, 999, 1000)
    assert parse_range("bytes=990-5000", 1000) == ByteRange(990, 999, 1000)
    for bad in ("bytes=1000-", "bytes=-", "bytes=9-3", "bytes=x-1", "bytes=-0"):
        with pytest.raises(RangeNotSatisfiable):
            parse_range(bad, 1000)
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=-5", 0)
