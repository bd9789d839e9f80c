"""The operator's own phone as the audio leg: two SIP calls bridged frame by frame.

The service first calls the operator's phone or extension (``User.phone_extension``) on the
same SIP account; once it answers, it calls the customer. :class:`PhoneLegBridge` then forwards
every frame received on one leg to the other leg's stream, both ways, from the media taps (so
early media of the customer's line reaches the operator too), and records operator-received
audio on the left channel and customer-received audio on the right. Supervisors monitoring the
call are mixed in by the call's :class:`~dialer.telephony.monitor_hub.CallMonitorHub` (barge to
the customer, whisper and barge to the operator); the left channel records what the customer
heard from our side, so a barging supervisor is in it and a whisper is not.

Both streams tick on the phone's one media clock. A stream's tap timestamps count from the tick
the stream was opened on; adding that tick (times 160 samples) puts both legs on one timeline
for the recorder. The bridge subscribes a no-op callback to the clock for its whole life so the
clock never idles between the two calls (an idle clock would re-base its tick numbering).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

from dialer.telephony.monitor_hub import CallMonitorHub
from dialer.telephony.recording import CallRecording
from sip.errors import StreamClosedError
from sip.media.clock import MediaClock
from sip.media.stream import AudioStream
from sip.phone import Call

logger = logging.getLogger(__name__)

SAMPLES_PER_TICK = 160

Direction = Literal["sent", "received"]


class PhoneLegBridge:
    """Forward audio between the operator's leg and the customer's leg; record both."""

    def __init__(
        self,
        clock: MediaClock,
        recording: CallRecording | None,
        monitor_hub: CallMonitorHub | None = None,
    ) -> None:
        self._recording = recording
        self._hub = monitor_hub
        self._anchor = clock.subscribe(_keep_ticking)
        self._operator: AudioStream | None = None
        self._customer: AudioStream | None = None
        self._removers: list[Callable[[], None]] = []
        self.muted = False
        self.frames_to_customer = 0
        self.frames_to_operator = 0

    def attach_operator(self, call: Call, first_tick: int) -> None:
        """The operator's leg (opened on ``first_tick`` of the clock)."""
        self._operator = call.audio
        offset = first_tick * SAMPLES_PER_TICK
        recording = self._recording

        def tap(direction: Direction, frame: bytes, timestamp: int) -> None:
            if direction != "received":
                return
            hub = self._hub
            spoken = None if self.muted else frame
            outgoing = spoken if hub is None else hub.operator_out(spoken)
            if recording is not None:
                # The left channel is what the customer heard from our side (a barging
                # supervisor included), or the operator's line when nothing was mixed in.
                mixed = outgoing if outgoing is not None and outgoing is not spoken else frame
                recording.write("left", mixed, timestamp + offset)
            customer = self._customer
            if customer is not None and outgoing is not None and not customer.closed:
                try:
                    customer.send(outgoing)
                except StreamClosedError:
                    return
                self.frames_to_customer += 1

        self._removers.append(call.audio.add_tap(tap))

    def attach_customer(self, call: Call, first_tick: int) -> None:
        """The customer's leg (opened on ``first_tick`` of the clock)."""
        self._customer = call.audio
        offset = first_tick * SAMPLES_PER_TICK
        recording = self._recording

        def tap(direction: Direction, frame: bytes, timestamp: int) -> None:
            if direction != "received":
                return
            if recording is not None:
                recording.write("right", frame, timestamp + offset)
            operator = self._operator
            hub = self._hub
            if operator is not None and not operator.closed:
                try:
                    operator.send(frame if hub is None else hub.far_end_in(frame))
                except StreamClosedError:
                    return
                self.frames_to_operator += 1

        self._removers.append(call.audio.add_tap(tap))

    def close(self) -> None:
        """Stop forwarding and recording (idempotent)."""
        for remove in self._removers:
            remove()
        self._removers.clear()
        self._anchor.cancel()
        self._operator = None
        self._customer = None


def _keep_ticking(index: int) -> None:
    """Subscribed only to keep the media clock armed."""
