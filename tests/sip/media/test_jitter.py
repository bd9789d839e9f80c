"""Jitter buffer: crafted packet orders in, one frame per pulled 20 ms slot out."""

from __future__ import annotations

import struct

import pytest

from sip.media.jitter import FrameKind, JitterBuffer, PushOutcome, attenuate

SSRC = 0x1234
SILENCE = bytes(320)


def frame(number: int) -> bytes:
    """A recognisable 20 ms frame: every sample equals 1000 + number."""
    return struct.pack("<160h", *([1000 + number] * 160))


def number_of(pcm: bytes) -> int | None:
    """Which ``frame(n)`` this is, or None (silence, concealment...)."""
    first = struct.unpack_from("<h", pcm)[0]
    return first - 1000 if pcm == frame(first - 1000) else None


def push(
    buffer: JitterBuffer,
    number: int,
    *,
    first_sequence: int = 100,
    first_timestamp: int = 16000,
    ssrc: int = SSRC,
) -> PushOutcome:
    """Push frame ``number`` of a stream with consistent sequence numbers and timestamps."""
    return buffer.push(
        (first_sequence + number) % 65536,
        (first_timestamp + 160 * number) % (1 << 32),
        ssrc,
        frame(number),
    )


def kind_of_last(buffer: JitterBuffer) -> FrameKind | None:
    return buffer.last_kind


def pull_numbers(buffer: JitterBuffer, count: int) -> list[int | str]:
    """Pull ``count`` slots; audio frames as their numbers, others as their kind."""
    result: list[int | str] = []
    for _ in range(count):
        pcm = buffer.pull()
        assert pcm is not None
        assert len(pcm) == 320
        number = number_of(pcm)
        if buffer.last_kind is FrameKind.AUDIO:
            assert number is not None
            result.append(number)
        else:
            assert buffer.last_kind is not None
            result.append(buffer.last_kind.value)
    return result


def test_nothing_before_the_first_packet_then_cushion_then_audio_in_order() -> None:
    buffer = JitterBuffer(depth_frames=2)
    assert buffer.pull() is None
    assert not buffer.started
    for number in range(3):
        push(buffer, number)
    assert pull_numbers(buffer, 5) == ["silence", "silence", 0, 1, 2]
    statistics = buffer.statistics
    assert (statistics.received, statistics.lost, statistics.late) == (3, 0, 0)


def test_reordered_packets_play_in_order() -> None:
    buffer = JitterBuffer(depth_frames=2)
    for number in (0, 2, 1, 4, 3, 5):
        assert push(buffer, number) is PushOutcome.ACCEPTED
    assert pull_numbers(buffer, 8) == ["silence", "silence", 0, 1, 2, 3, 4, 5]
    assert buffer.statistics.reordered == 2
    assert buffer.statistics.lost == 0


def test_duplicates_are_dropped_even_after_playout() -> None:
    buffer = JitterBuffer(depth_frames=1)
    push(buffer, 0)
    push(buffer, 1)
    assert push(buffer, 1) is PushOutcome.DUPLICATE
    assert pull_numbers(buffer, 3) == ["silence", 0, 1]
    assert push(buffer, 0) is PushOutcome.DUPLICATE  # already played
    push(buffer, 2)
    assert pull_numbers(buffer, 1) == [2]
    statistics = buffer.statistics
    assert (statistics.received, statistics.duplicate, statistics.lost) == (5, 2, 0)


def test_packets_filling_a_gap_count_once_and_their_repeats_are_duplicates() -> None:
    buffer = JitterBuffer(depth_frames=3)
    for number in (0, 1, 4, 5):  # 2 and 3 missing for now
        assert push(buffer, number) is PushOutcome.ACCEPTED
    assert buffer.statistics.lost == 2
    assert push(buffer, 3) is PushOutcome.ACCEPTED  # arrives late but before its slot
    assert push(buffer, 3) is PushOutcome.DUPLICATE
    assert push(buffer, 4) is PushOutcome.DUPLICATE  # one that came in order, repeated
    assert push(buffer, 2) is PushOutcome.ACCEPTED
    assert pull_numbers(buffer, 9) == ["silence"] * 3 + [0, 1, 2, 3, 4, 5]
    statistics = buffer.statistics
    assert (statistics.lost, statistics.duplicate, statistics.reordered) == (0, 2, 2)


def test_late_packet_is_dropped_and_counted() -> None:
    buffer = JitterBuffer(depth_frames=1)
    push(buffer, 0)
    assert pull_numbers(buffer, 3) == ["silence", 0, "concealed"]
    assert push(buffer, 1) is PushOutcome.LATE
    push(buffer, 2)
    assert pull_numbers(buffer, 1) == [2]
    statistics = buffer.statistics
    assert statistics.late == 1
    assert statistics.lost == 0  # it did arrive, only too late


def test_loss_is_concealed_by_attenuated_repeats_then_silence() -> None:
    buffer = JitterBuffer(depth_frames=1, conceal_frames=2, attenuation=0.5)
    for number in (0, 1, 5):  # 2, 3, 4 lost
        push(buffer, number)
    assert buffer.pull() == SILENCE  # cushion
    assert buffer.pull() == frame(0)
    assert buffer.pull() == frame(1)
    first_repeat = buffer.pull()
    assert buffer.last_kind is FrameKind.CONCEALED
    assert first_repeat == struct.pack("<160h", *([(1000 + 1) // 2] * 160))
    second_repeat = buffer.pull()
    assert second_repeat == struct.pack("<160h", *([(1000 + 1) // 4] * 160))
    assert buffer.pull() == SILENCE
    assert kind_of_last(buffer) is FrameKind.SILENCE
    assert buffer.pull() == frame(5)
    statistics = buffer.statistics
    assert statistics.lost == 3
    assert statistics.concealed_frames == 2


def test_sequence_numbers_wrap_without_loss_or_reordering_artifacts() -> None:
    buffer = JitterBuffer(depth_frames=2)
    for number in (0, 1, 3, 2, 4, 5):  # sequence 65534, 65535, 1, 0, 2, 3
        push(buffer, number, first_sequence=65534)
    assert pull_numbers(buffer, 8) == ["silence", "silence", 0, 1, 2, 3, 4, 5]
    statistics = buffer.statistics
    assert (statistics.lost, statistics.reordered, statistics.duplicate) == (0, 1, 0)
    assert push(buffer, 1, first_sequence=65534) is PushOutcome.DUPLICATE


def test_timestamps_wrap() -> None:
    buffer = JitterBuffer(depth_frames=1)
    start = (1 << 32) - 320
    for number in (0, 2, 1, 3):  # timestamps ..., 2**32-160, 0, 160
        push(buffer, number, first_timestamp=start)
    assert pull_numbers(buffer, 5) == ["silence", 0, 1, 2, 3]
    assert buffer.statistics.late == 0


def test_new_ssrc_resynchronises_and_a_stray_packet_does_not() -> None:
    buffer = JitterBuffer(depth_frames=1)
    push(buffer, 0)
    push(buffer, 1)
    assert pull_numbers(buffer, 2) == ["silence", 0]
    # one stray packet of another source with a far-away timeline: held, never played
    assert push(buffer, 50, first_sequence=9000, first_timestamp=999, ssrc=0x999) is (
        PushOutcome.HELD
    )
    push(buffer, 2)
    assert pull_numbers(buffer, 2) == [1, 2]
    assert buffer.statistics.resynchronized == 0
    # a real source change (B2BUA re-INVITE): two consecutive packets of the new SSRC
    new_stream = {"first_sequence": 40000, "first_timestamp": 7_000_000, "ssrc": 0xBEEF}
    assert push(buffer, 10, **new_stream) is PushOutcome.HELD
    assert push(buffer, 11, **new_stream) is PushOutcome.ACCEPTED
    push(buffer, 12, **new_stream)
    assert buffer.ssrc == 0xBEEF
    assert pull_numbers(buffer, 4) == ["silence", 10, 11, 12]
    statistics = buffer.statistics
    assert statistics.resynchronized == 1
    assert statistics.lost == 0
    assert statistics.late == 0


def test_sequence_jump_restarts_loss_accounting() -> None:
    buffer = JitterBuffer(depth_frames=1)
    push(buffer, 0)
    push(buffer, 1)
    # same SSRC and timeline, sequence numbers restart far away (sender restarted them)
    buffer.push(20000, 16000 + 2 * 160, SSRC, frame(2))
    buffer.push(20001, 16000 + 3 * 160, SSRC, frame(3))
    assert pull_numbers(buffer, 5) == ["silence", 0, 1, 2, 3]
    assert buffer.statistics.lost == 0
    assert buffer.statistics.resynchronized == 1


def test_one_very_old_straggler_does_not_restart_loss_accounting() -> None:
    buffer = JitterBuffer(depth_frames=1)
    for number in range(300):
        if number != 10:
            push(buffer, number)
        buffer.pull()
    assert push(buffer, 10) is PushOutcome.LATE  # 290 packets late: timestamp already played
    for number in range(300, 305):
        push(buffer, number)
    statistics = buffer.statistics
    assert statistics.lost == 1  # number 10 never made it in time
    assert statistics.late == 1
    assert statistics.resynchronized == 0
    assert push(buffer, 304) is PushOutcome.DUPLICATE


def test_backlog_beyond_the_cushion_is_trimmed() -> None:
    buffer = JitterBuffer(depth_frames=2)
    push(buffer, 0)
    assert pull_numbers(buffer, 3) == ["silence", "silence", 0]
    for number in range(1, 13):  # a burst after a network stall
        push(buffer, number)
    played = [item for item in pull_numbers(buffer, 12) if isinstance(item, int)]
    assert played == sorted(played)
    assert played[-1] == 12
    assert buffer.statistics.skipped_frames == 12 - len(played)
    assert buffer.statistics.skipped_frames > 0
    assert buffer.buffered_frames == 0


def test_packet_far_ahead_realigns_playout() -> None:
    buffer = JitterBuffer(depth_frames=1, capacity_frames=10)
    push(buffer, 0)
    assert pull_numbers(buffer, 2) == ["silence", 0]
    push(buffer, 1000)  # 20 s ahead: the sender's timestamp jumped
    # playout jumps: the packet plays after the cushion, not 20 s later
    assert pull_numbers(buffer, 3) == ["concealed", 1000, "concealed"]
    assert buffer.statistics.resynchronized == 1


def test_timeline_jump_back_realigns_after_a_few_late_packets() -> None:
    buffer = JitterBuffer(depth_frames=1)
    for number in range(3):
        push(buffer, number)
    assert pull_numbers(buffer, 4) == ["silence", 0, 1, 2]
    # same SSRC, sequence continues, but timestamps restart 10 s back
    outcomes = [
        buffer.push(103 + index, 16000 - 80000 + 160 * index, SSRC, frame(50 + index))
        for index in range(6)
    ]
    assert outcomes[:4] == [PushOutcome.LATE] * 4
    assert outcomes[4:] == [PushOutcome.ACCEPTED] * 2
    assert [item for item in pull_numbers(buffer, 4) if isinstance(item, int)] == [54, 55]


def test_packets_of_40_ms_fill_two_slots() -> None:
    buffer = JitterBuffer(depth_frames=1)
    buffer.push(1, 0, SSRC, frame(0) + frame(1))
    buffer.push(2, 320, SSRC, frame(2) + frame(3))
    assert pull_numbers(buffer, 5) == ["silence", 0, 1, 2, 3]


def test_packets_without_audio_are_not_counted_as_lost() -> None:
    buffer = JitterBuffer(depth_frames=1)
    push(buffer, 0)
    buffer.note_without_audio(101, SSRC)  # e.g. a telephone-event packet
    buffer.note_without_audio(102, SSRC)
    push(buffer, 3)
    assert buffer.statistics.lost == 0
    assert buffer.note_without_audio(102, SSRC) is PushOutcome.DUPLICATE


def test_configuration_is_validated() -> None:
    with pytest.raises(ValueError, match="depth"):
        JitterBuffer(depth_frames=5, capacity_frames=5)


def test_attenuate_scales_samples() -> None:
    pcm = struct.pack("<4h", 1000, -1000, 32767, -32768)
    assert struct.unpack("<4h", attenuate(pcm, 0.5)) == (500, -500, 16383, -16384)


def test_in_order_packets_keep_their_slots_across_jitter_gaps_and_a_new_grid() -> None:
    buffer = JitterBuffer(depth_frames=2)
    # sender timestamps wobbling up to half a slot around the grid still land in their slots
    for number, wobble in enumerate((0, 40, -40, 79, -80)):
        buffer.push(100 + number, 16000 + 160 * number + wobble, SSRC, frame(number))
    # next in sequence, 60 ms further on the timeline (a sender that paused in silence)
    buffer.push(105, 16000 + 160 * 8, SSRC, frame(8))
    assert pull_numbers(buffer, 11) == [
        *["silence", "silence", 0, 1, 2, 3, 4],
        *["concealed", "concealed", "silence", 8],
    ]
    # a new source whose timestamps sit half a slot off the old grid: played on its own grid
    for number in range(20, 25):
        buffer.push(500 + number, 9_000_080 + 160 * number, 0xCAFE, frame(number))
    assert pull_numbers(buffer, 7) == ["silence", "silence", 20, 21, 22, 23, 24]
    statistics = buffer.statistics
    assert (statistics.late, statistics.lost, statistics.resynchronized) == (0, 0, 1)
