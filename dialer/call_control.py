"""What the web layer asks of the telephony side: the call-control interface.

`CallControl` is implemented by ``dialer.telephony.CallService`` (the SIP-backed service); the web
layer (REST endpoints, the audio WebSocket, the events WebSocket) only sees this interface.

Audio travels as 20 ms frames of 8 kHz 16-bit little-endian mono PCM (`FRAME_BYTES` bytes).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from dialer.actors import Actor

FRAME_BYTES = 320
"""One 20 ms frame of 8 kHz 16-bit mono PCM."""


class AudioLeg(StrEnum):
    """How the operator hears and speaks: in the browser, or on their own phone."""

    BROWSER = "browser"
    PHONE = "phone"


@dataclass(frozen=True)
class CallRequest:
    """Call a contact (its primary phone, or ``phone_id``) or a typed number."""

    contact_id: int | None = None
    phone_id: int | None = None
    number: str | None = None
    audio_leg: AudioLeg = AudioLeg.BROWSER


@dataclass(frozen=True)
class LiveCall:
    """A call in progress as the operator's screen shows it."""

    call_id: int
    operator_id: int
    contact_id: int | None
    number: str
    state: str
    muted: bool
    held: bool


class BrowserAudioBridge(Protocol):
    """The operator's browser audio attached to a call."""

    def push_operator_frame(self, frame: bytes) -> None:
        """One frame from the microphone (bad sizes are dropped and counted)."""

    def far_end_frames(self) -> AsyncIterator[bytes]:
        """Frames to play in the browser; ends when the call ends or the bridge is detached."""

    def detach(self) -> None:
        """The socket went away: the call keeps running for the configured grace period."""


class CallControl(Protocol):
    async def place_call(self, actor: Actor, request: CallRequest) -> LiveCall:
        """Start a call; raises ``Conflict`` when the operator already has one."""

    async def hang_up(self, actor: Actor, call_id: int) -> None: ...

    async def set_muted(self, actor: Actor, call_id: int, muted: bool) -> LiveCall: ...

    async def set_held(self, actor: Actor, call_id: int, held: bool) -> LiveCall: ...

    async def send_dtmf(self, actor: Actor, call_id: int, digits: str) -> None: ...

    async def attach_browser_audio(self, actor: Actor, call_id: int) -> BrowserAudioBridge: ...

    def current_call(self, operator_id: int) -> LiveCall | None: ...

    async def finish_wrap_up(self, operator_id: int) -> None:
        """The operator saved the last call's outcome: they are idle again (published)."""
