"""The stereo recorder: channel placement, time alignment, gaps, late frames, durability."""

from __future__ import annotations

import asyncio
import random
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import pytest
from pydub import AudioSegment

from recordings.errors import InvalidFrameError, RecorderClosedError, RecorderFailedError
from recordings.wav_writer import RecordingWriter, StereoRecorder
from tests.recordings.frames import frame_for, frame_values, read_stereo


@pytest.fixture
def writer() -> Iterator[RecordingWriter]:
    with RecordingWriter(threads=2) as background:
        yield background


def expected(slot: int, direction: str) -> int:
    return int.from_bytes(frame_for(slot, direction)[:2], "little", signed=True)


def test_operator_left_far_end_right_aligned_with_early_media_and_gaps(
    tmp_path: Path, writer: RecordingWriter
) -> None:
    path = tmp_path / "call.wav"
    recorder = StereoRecorder(path, writer)
    # Far end (early media) from slot 0 to 199 with a gap at 100..124; operator from slot 50.
    base_time = 123_456
    for slot in range(200):
        media_time = base_time + slot * 160
        if not 100 <= slot < 125:
            recorder.write_frame("received", frame_for(slot, "received"), media_time)
        if slot >= 50:
            recorder.write_frame("sent", frame_for(slot, "sent"), media_time)
    info = recorder.close().result(timeout=10)

    assert info.path == path
    assert path.exists()
    assert not recorder.part_path.exists()
    assert info.duration_seconds == pytest.approx(4.0)
    left, right = read_stereo(path)
    assert frame_values(left) == [0] * 50 + [expected(slot, "sent") for slot in range(50, 200)]
    assert frame_values(right) == [
        0 if 100 <= slot < 125 else expected(slot, "received") for slot in range(200)
    ]


def test_pydub_reads_the_file_as_stereo_8k(tmp_path: Path, writer: RecordingWriter) -> None:
    path = tmp_path / "call.wav"
    recorder = StereoRecorder(path, writer)
    for slot in range(100):
        recorder.write_frame("sent", frame_for(slot, "sent"), slot * 160)
        recorder.write_frame("received", frame_for(slot, "received"), slot * 160)
    recorder.close().result(timeout=10)
    segment = AudioSegment.from_file(path)
    assert segment.channels == 2
    assert segment.frame_rate == 8000
    assert len(segment) == 2000


def test_frames_reordered_within_the_window_land_in_their_slot(
    tmp_path: Path, writer: RecordingWriter
) -> None:
    path = tmp_path / "call.wav"
    recorder = StereoRecorder(path, writer, reorder_window_seconds=0.2)
    arrivals = [(slot, direction) for slot in range(150) for direction in ("sent", "received")]
    shuffler = random.Random(7)
    # Swap neighbours a few slots apart, as a jittery network would.
    for index in range(0, len(arrivals) - 6, 6):
        window = arrivals[index : index + 6]
        shuffler.shuffle(window)
        arrivals[index : index + 6] = window
    for slot, direction in arrivals:
        recorder.write_frame(direction, frame_for(slot, direction), 1600 + slot * 160)  # type: ignore[arg-type]
    info = recorder.close().result(timeout=10)
    left, right = read_stereo(path)
    # The first arrival defines slot 0; shuffling may have put a later slot first, and
    # frames stamped before it are dropped as late.
    first_slot = arrivals[0][0]
    assert info.late_frames_dropped == sum(1 for slot, _ in arrivals if slot < first_slot)
    assert frame_values(left)[: 150 - first_slot] == [
        expected(slot, "sent") for slot in range(first_slot, 150)
    ]
    assert frame_values(right)[: 150 - first_slot] == [
        expected(slot, "received") for slot in range(first_slot, 150)
    ]


def test_frame_older_than_the_window_is_dropped_and_counted(
    tmp_path: Path, writer: RecordingWriter
) -> None:
    path = tmp_path / "call.wav"
    recorder = StereoRecorder(path, writer, flush_interval_seconds=0.1)
    for slot in range(100):
        recorder.write_frame("sent", frame_for(slot, "sent"), slot * 160)
        recorder.write_frame("received", frame_for(slot, "received"), slot * 160)
    recorder.write_frame("received", frame_for(3, "received"), 3 * 160)
    info = recorder.close().result(timeout=10)
    assert info.late_frames_dropped == 1
    _, right = read_stereo(path)
    assert frame_values(right) == [expected(slot, "received") for slot in range(100)]


def test_multi_frame_packets_are_split_into_slots(tmp_path: Path, writer: RecordingWriter) -> None:
    path = tmp_path / "call.wav"
    recorder = StereoRecorder(path, writer)
    for slot in range(0, 60, 2):  # 40 ms packets
        packet = frame_for(slot, "sent") + frame_for(slot + 1, "sent")
        recorder.write_frame("sent", packet, slot * 160)
    recorder.close().result(timeout=10)
    left, right = read_stereo(path)
    assert frame_values(left) == [expected(slot, "sent") for slot in range(60)]
    assert frame_values(right) == [0] * 60


def test_audio_is_on_disk_with_a_valid_header_before_close(
    tmp_path: Path, writer: RecordingWriter
) -> None:
    path = tmp_path / "call.wav"
    recorder = StereoRecorder(path, writer)
    for slot in range(150):
        recorder.write_frame("sent", frame_for(slot, "sent"), slot * 160)
        recorder.write_frame("received", frame_for(slot, "received"), slot * 160)
    recorder.written().result(timeout=10)
    content = recorder.part_path.read_bytes()
    riff_size, data_size = (
        struct.unpack_from("<I", content, 4)[0],
        struct.unpack_from("<I", content, 40)[0],
    )
    assert data_size == len(content) - 44
    assert riff_size == len(content) - 8
    # Everything but the last, not yet flushed, half second is already there.
    assert recorder.committed_seconds * 8000 * 4 == data_size
    assert data_size >= (150 * 0.02 - 1.0) * 8000 * 4
    left, _ = read_stereo(recorder.part_path)
    values = frame_values(left)
    assert values == [expected(slot, "sent") for slot in range(len(values))]
    recorder.close().result(timeout=10)


def test_bad_frames_and_writes_after_close_are_refused(
    tmp_path: Path, writer: RecordingWriter
) -> None:
    recorder = StereoRecorder(tmp_path / "call.wav", writer)
    with pytest.raises(InvalidFrameError):
        recorder.write_frame("sent", b"\x00" * 100, 0)
    with pytest.raises(InvalidFrameError):
        recorder.write_frame("sideways", frame_for(0, "sent"), 0)  # type: ignore[arg-type]
    info = recorder.close().result(timeout=10)
    assert info.duration_seconds == 0
    with pytest.raises(RecorderClosedError):
        recorder.write_frame("sent", frame_for(0, "sent"), 0)


def test_unwritable_directory_fails_the_recorder(tmp_path: Path, writer: RecordingWriter) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    recorder = StereoRecorder(blocker / "call.wav", writer)
    recorder.written().result(timeout=10)
    assert isinstance(recorder.error, OSError)
    recorder.write_frame("sent", frame_for(0, "sent"), 0)  # dropped: never breaks the caller
    with pytest.raises(RecorderFailedError):
        recorder.close().result(timeout=10)


async def test_many_recorders_fed_from_one_event_loop(
    tmp_path: Path, writer: RecordingWriter
) -> None:
    recorders = [StereoRecorder(tmp_path / f"call-{index}.wav", writer) for index in range(20)]

    async def feed(recorder: StereoRecorder, offset: int) -> None:
        for slot in range(100):
            recorder.write_frame("sent", frame_for(slot + offset, "sent"), slot * 160)
            recorder.write_frame("received", frame_for(slot + offset, "received"), slot * 160)
            if slot % 10 == 0:
                await asyncio.sleep(0)

    await asyncio.gather(*(feed(recorder, index) for index, recorder in enumerate(recorders)))
    infos = await asyncio.gather(*(recorder.aclose() for recorder in recorders))
    for index, info in enumerate(infos):
        left, right = read_stereo(info.path)
        assert frame_values(left) == [expected(slot + index, "sent") for slot in range(100)]
        assert frame_values(right) == [expected(slot + index, "received") for slot in range(100)]


def test_write_frame_fits_the_media_stream_tap_signature(
    tmp_path: Path, writer: RecordingWriter
) -> None:
    # sip.media taps are Callable[[Literal["sent", "received"], bytes, int], None], with the
    # timestamp in 8 kHz samples; mypy checks this assignment.
    recorder = StereoRecorder(tmp_path / "call.wav", writer)
    tap: Callable[[Literal["sent", "received"], bytes, int], None] = recorder.write_frame
    for tick in range(50):
        tap("sent", frame_for(tick, "sent"), tick * 160)
        if tick >= 10:  # the far end's first packet arrives 200 ms in
            tap("received", frame_for(tick, "received"), tick * 160)
    recorder.close().result(timeout=10)
    left, right = read_stereo(recorder.path)
    assert frame_values(left) == [expected(tick, "sent") for tick in range(50)]
    assert frame_values(right) == [0] * 10 + [expected(tick, "received") for tick in range(10, 50)]


def test_recorders_started_together_commit_on_different_ticks(
    tmp_path: Path, writer: RecordingWriter
) -> None:
    recorders = [StereoRecorder(tmp_path / f"call{index}.wav", writer) for index in range(25)]
    committed_after: list[list[float]] = [[] for _ in recorders]
    for slot in range(60):
        for recorder, committed in zip(recorders, committed_after, strict=True):
            recorder.write_frame("sent", frame_for(slot, "sent"), slot * 160)
            recorder.write_frame("received", frame_for(slot, "received"), slot * 160)
            committed.append(recorder.committed_seconds)
    # each one's first commit comes on another tick (a flush interval is 25 ticks)...
    first_commits = {
        committed.index(next(c for c in committed if c > 0)) for committed in committed_after
    }
    assert len(first_commits) == 25
    # ...and the audio is all there, in order, whatever the chunks were
    for recorder in recorders:
        recorder.close().result(timeout=10)
        left, right = read_stereo(recorder.path)
        assert frame_values(left) == [expected(slot, "sent") for slot in range(60)]
        assert frame_values(right) == [expected(slot, "received") for slot in range(60)]


def test_both_sides_of_a_tick_in_one_call_make_the_same_file(
    tmp_path: Path, writer: RecordingWriter
) -> None:
    one_by_one = StereoRecorder(tmp_path / "split.wav", writer)
    together = StereoRecorder(tmp_path / "joined.wav", writer)
    for slot in range(80):
        sent = frame_for(slot, "sent")
        # the far end starts late and misses a slot: those go the general way
        received = frame_for(slot, "received") if slot >= 5 and slot != 40 else None
        one_by_one.write_frame("sent", sent, slot * 160)
        if received is not None:
            one_by_one.write_frame("received", received, slot * 160)
        together.write_frames(sent, received, slot * 160)
    one_by_one.close().result(timeout=10)
    together.close().result(timeout=10)
    left, right = read_stereo(together.path)
    split_left, split_right = read_stereo(one_by_one.path)
    assert (left.tobytes(), right.tobytes()) == (split_left.tobytes(), split_right.tobytes())
    assert frame_values(left) == [expected(slot, "sent") for slot in range(80)]
    assert frame_values(right) == [
        expected(slot, "received") if slot >= 5 and slot != 40 else 0 for slot in range(80)
    ]
