"""Events the user agent core emits (drained with ``UserAgentCore.events()``).

All are frozen dataclasses. Call events carry the opaque ``call_key`` that ``place_call``
returned (outbound) or that ``IncomingCall`` announced (inbound). Every call ends with exactly
one ``CallEnded``; after it, the core may still exchange messages for that call for a while
(BYE retransmissions, ACKs for retransmitted 2xx) but emits nothing more about it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sip.causes import CallCause
from sip.message import Request

HungUpBy = Literal["local", "remote", "system"]


@dataclass(frozen=True)
class CallProgress:
    """A provisional response (180 Ringing, 183 Session Progress ...) to our INVITE.

    ``remote_sdp`` is set when the response carries a session description: early media, the
    adapter should start playing what the far end sends to that address.
    """

    call_key: str
    status_code: int
    reason: str
    remote_sdp: bytes | None


@dataclass(frozen=True)
class CallAnswered:
    """The call is up: a 2xx to our INVITE (ACK already queued), or the ACK to our 2xx.

    ``remote_sdp`` is the far end's session description: its answer to our offer (outbound), or
    its offer that the adapter answered (inbound).
    """

    call_key: str
    remote_sdp: bytes | None


@dataclass(frozen=True)
class CallEnded:
    """The call is over, whatever the reason. ``status_code``/``reason`` are those of the final
    response that ended it when there was one (486 "Busy Here"), else 0 and an explanation."""

    call_key: str
    cause: CallCause
    status_code: int
    reason: str
    hung_up_by: HungUpBy


@dataclass(frozen=True)
class CallMediaChanged:
    """The far end changed the session (re-INVITE or UPDATE): hold, unhold, new address or port.

    ``remote_sdp`` is its new description; ``local_sdp`` is the answer the core sent back
    (the previous local description with the direction adjusted and the version incremented).
    """

    call_key: str
    remote_sdp: bytes
    local_sdp: bytes


@dataclass(frozen=True)
class IncomingCall:
    """Someone calls us. Answer with ``UserAgentCore.answer`` or ``reject``; 100 Trying is
    already sent. ``remote_sdp`` is the caller's offer (None for a late-offer INVITE)."""

    call_key: str
    request: Request
    remote_sdp: bytes | None


@dataclass(frozen=True)
class DtmfInfoReceived:
    """A DTMF digit sent in an INFO request (application/dtmf-relay or application/dtmf)."""

    call_key: str
    digit: str
    duration_ms: int | None


@dataclass(frozen=True)
class RegistrationSucceeded:
    """The registrar accepted our binding for ``expires`` seconds (0 after an unregister)."""

    account_name: str
    expires: int


@dataclass(frozen=True)
class RegistrationFailed:
    """Registering failed; the core retries by itself at ``retry_at`` (clock of ``now``), or
    never when ``retry_at`` is None (after ``unregister``)."""

    account_name: str
    cause: CallCause
    status_code: int
    reason: str
    retry_at: float | None


Event = (
    CallProgress
    | CallAnswered
    | CallEnded
    | CallMediaChanged
    | IncomingCall
    | DtmfInfoReceived
    | RegistrationSucceeded
    | RegistrationFailed
)
