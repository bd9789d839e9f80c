"""Start-up recovery after a crash, and the ``dialer recordings`` verify / purge commands."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.calls import attach_recording, create_call, record_call_transition
from dialer.commands.recordings_commands import purge, verify
from dialer.live_events import InProcessEventBus
from dialer.models import AuditEvent, Recording
from dialer.settings import Settings
from dialer.telephony import AccountChoice, CallService
from dialer.telephony.recovery import RecoveryReport
from recordings.compression import compress_recording
from recordings.hashing import sha256_of_file
from recordings.layout import RecordingLayout
from recordings.wav_format import wav_header
from sip.testline import TestLine, load_prompt
from tests.audio import decode_stereo, spectral_correlation
from tests.conftest import People
from tests.dialer.test_telephony_support import (
    call_row,
    recordings_of,
    sweep,
)
from tests.sip import peers


def stereo_pcm(left: bytes, right: bytes) -> bytes:
    samples = np.empty(len(left) // 2 * 2, dtype="<i2")
    samples[0::2] = np.frombuffer(left, dtype="<i2")
    samples[1::2] = np.frombuffer(right, dtype="<i2")
    return samples.tobytes()


async def start_and_stop(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> RecoveryReport:
    """Start a call service (which recovers what the last run left) and stop it; its report."""
    line = await TestLine.start()
    service = await CallService.start(
        settings,
        session_factory,
        InProcessEventBus(),
        accounts=AccountChoice.single(line.account()),
    )
    try:
        report = service.recovery_report
    finally:
        await service.close()
        await line.aclose()
    assert report is not None
    return report


async def test_startup_recovery_interrupts_the_call_and_attaches_its_repaired_recording(
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    people: People,
) -> None:
    anna = people.north_operator
    started = datetime.now(UTC) - timedelta(minutes=5)
    async with session_factory() as session:
        call = await create_call(session, anna.actor, "+79165550120", now=started)
        await record_call_transition(session, call.id, "dialing", started)
        await record_call_transition(session, call.id, "answered", started + timedelta(seconds=3))
        await session.commit()
    # What a kill -9 leaves: a .part whose header still says "no data", and a torn last sample.
    layout = RecordingLayout(settings.recordings_dir)
    final = layout.path_for(f"call-{call.id}", started, "wav")
    final.parent.mkdir(parents=True)
    part = final.with_name(final.name + ".part")
    operator_said = sweep(2.0)
    customer_said = load_prompt()[: len(operator_said)]
    part.write_bytes(wav_header(0) + stereo_pcm(operator_said, customer_said) + b"\x01")

    report = await start_and_stop(settings, session_factory)
    assert report.repaired_files == (final,)
    assert report.interrupted_call_ids == (call.id,)
    row = await call_row(session_factory, call.id)
    assert (row.state, row.hangup_by) == ("interrupted", "system")
    assert row.ended_at is not None
    assert row.talk_seconds is not None
    (recording,) = await recordings_of(session_factory, call.id)
    assert report.attached == {call.id: recording.id}
    path = settings.recordings_dir / recording.path
    assert recording.sha256 == sha256_of_file(path)
    assert abs(recording.duration_seconds - 2.0) < 0.1
    assert not part.exists()
    assert not final.exists()
    left, right = decode_stereo(path)
    assert spectral_correlation(peers.pcm_to_samples(operator_said), left) >= 0.5
    assert spectral_correlation(peers.pcm_to_samples(customer_said), right) >= 0.5
    assert spectral_correlation(peers.pcm_to_samples(customer_said), left) < 0.3


async def test_startup_attaches_a_compressed_recording_left_without_its_row(
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    people: People,
) -> None:
    """What a database locked until shutdown leaves: the call ended and its recording
    compressed, but no recording row. The next start attaches it as it is, never a purged one
    again, and reports a file whose call does not exist as an orphan."""
    anna = people.north_operator
    started = datetime.now(UTC) - timedelta(minutes=5)
    layout = RecordingLayout(settings.recordings_dir)
    operator_said = sweep(2.0)
    customer_said = load_prompt()[: len(operator_said)]

    def compressed_recording(call_id: int) -> Path:
        wav = layout.path_for(f"call-{call_id}", started, "wav")
        wav.parent.mkdir(parents=True, exist_ok=True)
        wav.write_bytes(
            wav_header(len(operator_said) * 2) + stereo_pcm(operator_said, customer_said)
        )
        return compress_recording(wav, codec="opus").path

    async with session_factory() as session:
        calls = [
            await create_call(session, anna.actor, f"+7916555014{index}", now=started)
            for index in range(2)
        ]
        for call in calls:
            await record_call_transition(session, call.id, "dialing", started)
            await record_call_transition(session, call.id, "answered", started)
            await record_call_transition(
                session, call.id, "ended", started + timedelta(seconds=2), end_cause="local_hangup"
            )
        await session.commit()
    unattached, purged = calls
    unattached_file = compressed_recording(unattached.id)
    purged_file = compressed_recording(purged.id)
    async with session_factory() as session:
        row = await attach_recording(
            session,
            purged.id,
            path=layout.relative(purged_file),
            codec="opus",
            size_bytes=purged_file.stat().st_size,
            duration_seconds=2.0,
            sha256=sha256_of_file(purged_file),
            channels=2,
        )
        row.deleted_at = datetime.now(UTC)  # purged, though its file is still there
        await session.commit()
    stranger_file = compressed_recording(purged.id + 1000)
    unattached_bytes = unattached_file.read_bytes()

    report = await start_and_stop(settings, session_factory)
    (recording,) = await recordings_of(session_factory, unattached.id)
    assert report.attached == {unattached.id: recording.id}
    assert report.orphan_files == (stranger_file,)
    assert recording.path == layout.relative(unattached_file)
    assert (recording.codec, recording.channels) == ("opus", 2)
    assert recording.sha256 == sha256_of_file(unattached_file)
    assert recording.size_bytes == len(unattached_bytes)
    assert abs(recording.duration_seconds - 2.0) < 0.1
    assert unattached_file.read_bytes() == unattached_bytes  # attached as it was
    async with session_factory() as session:
        purged_rows = (
            await session.scalars(select(Recording).where(Recording.call_id == purged.id))
        ).all()
    assert [row.deleted_at is not None for row in purged_rows] == [True]


async def test_verify_finds_a_corrupted_recording_and_purge_deletes_old_ones(
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    people: People,
    capsys: pytest.CaptureFixture[str],
) -> None:
    anna = people.north_operator
    layout = RecordingLayout(settings.recordings_dir)
    long_ago = datetime.now(UTC) - timedelta(days=40)
    stored = []
    async with session_factory() as session:
        for index, created in enumerate((long_ago, datetime.now(UTC))):
            call = await create_call(session, anna.actor, f"+7916555013{index}", now=created)
            path = layout.path_for(f"call-{call.id}", created, "wav")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(wav_header(3200) + bytes(range(200)) * 16)
            recording = await attach_recording(
                session,
                call.id,
                path=layout.relative(path),
                codec="pcm_s16le",
                size_bytes=path.stat().st_size,
                duration_seconds=0.1,
                sha256=sha256_of_file(path),
                now=created,
            )
            stored.append((recording.id, path))
        await session.commit()

    assert await verify(settings) == 0
    assert "2 checked, 2 verified, 0 problems" in capsys.readouterr().out

    (old_id, old_path), (new_id, new_path) = stored
    content = bytearray(new_path.read_bytes())
    content[100] ^= 0xFF  # one flipped byte, same size
    new_path.write_bytes(bytes(content))
    assert await verify(settings) == 1
    output = capsys.readouterr().out
    assert f"recording {new_id}: corrupt" in output
    assert f"recording {old_id}:" not in output

    assert await purge(settings, 30) == 0
    assert not old_path.exists()
    assert new_path.exists()
    async with session_factory() as session:
        old = await session.get(Recording, old_id)
        new = await session.get(Recording, new_id)
        assert old is not None
        assert old.deleted_at is not None
        assert new is not None
        assert new.deleted_at is None
        (event,) = (
            await session.scalars(select(AuditEvent).where(AuditEvent.action == "recording.purge"))
        ).all()
        assert event.summary["recording_ids"] == [old_id]
        assert event.actor_user_id is None
