"""Crash a recording process with SIGKILL, repair what it left, and play it back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from pydub import AudioSegment

from recordings.repair import find_unfinished, repair_file, repair_unfinished
from recordings.wav_format import wav_header
from tests.recordings.frames import frame_for, frame_values, read_stereo

REPOSITORY = Path(__file__).resolve().parents[2]


def expected(slot: int, direction: str) -> int:
    return int.from_bytes(frame_for(slot, direction)[:2], "little", signed=True)


def test_killed_recorder_leaves_a_file_that_repairs_to_all_but_the_last_second(
    tmp_path: Path,
) -> None:
    wav_path = tmp_path / "2026" / "01" / "02" / "call-1.wav"
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.recordings.crash_child", str(wav_path)],
        cwd=REPOSITORY,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        passed = 0
        # Kill mid-way between two half-second flushes, after 3.3 s of audio.
        while passed < 165:
            line = child.stdout.readline()
            assert line, "the recording child died on its own"
            passed = int(line)
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL

    assert not wav_path.exists()
    assert find_unfinished(tmp_path) == [wav_path.with_name("call-1.wav.part")]
    repaired = repair_unfinished(tmp_path)

    assert [item.path for item in repaired] == [wav_path]
    assert wav_path.exists()
    assert find_unfinished(tmp_path) == []
    passed_seconds = passed * 0.020
    duration = repaired[0].duration_seconds
    assert passed_seconds - 1.0 <= duration
    left, right = read_stereo(wav_path)
    assert len(left) / 8000 == pytest.approx(duration)
    slots = len(frame_values(left))
    assert frame_values(left) == [expected(slot, "sent") for slot in range(slots)]
    assert frame_values(right) == [expected(slot, "received") for slot in range(slots)]
    segment = AudioSegment.from_file(wav_path)
    assert segment.channels == 2
    assert segment.frame_rate == 8000
    assert abs(len(segment) / 1000 - duration) < 0.01


def test_repair_fixes_stale_header_and_torn_sample(tmp_path: Path) -> None:
    part = tmp_path / "torn.wav.part"
    audio = frame_for(5, "sent") * 10  # 3200 bytes = 800 stereo samples
    part.write_bytes(wav_header(0) + audio + b"\x01\x02\x03")  # header says empty, 3 torn bytes
    repaired = repair_file(part)
    assert repaired.bytes_dropped == 3
    assert repaired.duration_seconds == pytest.approx(0.1)
    left, right = read_stereo(tmp_path / "torn.wav")
    assert len(left) == 800
    assert set(left.tolist()) | set(right.tolist()) == {6}


def test_repair_of_a_file_killed_before_its_header_reached_disk(tmp_path: Path) -> None:
    part = tmp_path / "empty.wav.part"
    part.write_bytes(b"")
    repaired = repair_unfinished(tmp_path)
    assert [item.duration_seconds for item in repaired] == [0]
    assert os.path.getsize(tmp_path / "empty.wav") == 44
    left, _ = read_stereo(tmp_path / "empty.wav")
    assert len(left) == 0


def test_finished_recordings_are_left_alone(tmp_path: Path) -> None:
    finished = tmp_path / "done.wav"
    finished.write_bytes(wav_header(4) + b"\x00\x00\x00\x00")
    assert repair_unfinished(tmp_path) == []
    assert repair_unfinished(tmp_path / "missing") == []
