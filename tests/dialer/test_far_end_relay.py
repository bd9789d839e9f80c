"""What the operator's browser is handed of the far end: packets as they arrive, and the tick's
frames (concealment, silence, a whisper mixed in) only while the far end sends nothing."""

from __future__ import annotations

import pytest

from dialer.telephony.bridge import FarEndRelay


def frame(number: int) -> bytes:
    return bytes([number]) * 320


def test_arrivals_go_straight_through_and_ticks_only_fill_a_silent_far_end() -> None:
    handed: list[bytes] = []
    relay = FarEndRelay(handed.append, quiet_ticks=3)

    # The far end talks: one packet per tick, the tick's own playout is not handed over too.
    for number in range(1, 6):
        relay.arrived(frame(number))
        relay.played(frame(100 + number))
    assert handed == [frame(number) for number in range(1, 6)]

    # It goes quiet (hold, silence suppression): after 3 ticks without a packet the ticks'
    # frames keep the operator's stream going.
    handed.clear()
    for number in range(6):
        relay.played(frame(200 + number))
    assert handed == [frame(203), frame(204), frame(205)]

    # Its next packet takes over again at once.
    handed.clear()
    relay.arrived(frame(9))
    relay.played(frame(209))
    assert handed == [frame(9)]
    assert (relay.frames_arrived, relay.frames_from_ticks) == (6, 3)


def test_the_quiet_threshold_must_be_a_tick_or_more() -> None:
    with pytest.raises(ValueError, match="quiet_ticks"):
        FarEndRelay(lambda frame: None, quiet_ticks=0)
