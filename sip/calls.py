"""The state the user agent core keeps per call (the flows themselves live in ``sip.core``).

Also :func:`answer_remote_offer`, how the core answers a re-INVITE or UPDATE offer without
asking the adapter: our last local description, answered to the new offer with the same
address, port and session id, the direction that matches the offer, and the version incremented.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from sip.account import Account
from sip.causes import CallCause
from sip.dialog import Dialog
from sip.message import Request
from sip.sdp import build_answer, parse_sdp
from sip.timers import Deadlines
from sip.transaction import ClientKey, ServerKey
from sip.uri import SipUri


class CallState(enum.Enum):
    """Where a call is, seen from the user."""

    CALLING = "calling"  # INVITE sent / received, no final answer yet
    ANSWERING = "answering"  # inbound: our 2xx sent, waiting for the ACK
    CONNECTED = "connected"
    ENDED = "ended"  # CallEnded emitted; messages may still flow for a while


@dataclass
class RepeatedAnswer:
    """A 2xx to an INVITE that we (the UAS core) retransmit until its ACK (§13.3.1.4)."""

    data: bytes
    destination: tuple[str, int]
    sequence: int
    interval: float
    offered_in_answer: bool = False


@dataclass
class Call:
    """One call, outbound or inbound."""

    key: str
    account: Account | None
    outbound: bool
    call_id: str
    local_tag: str
    local_sdp: bytes | None
    destination: tuple[str, int]
    transport: str
    state: CallState = CallState.CALLING
    dialog: Dialog | None = None
    timers: Deadlines = field(default_factory=Deadlines)
    # outbound
    target: SipUri | None = None
    from_value: str = ""
    to_value: str = ""
    sequence: int = 0
    invite: Request | None = None
    invite_transaction: ClientKey | None = None
    provisional_received: bool = False
    alerted: bool = False
    hangup_cause: CallCause | None = None
    cancel_sent: bool = False
    challenges_answered: int = 0
    stale_retry_used: bool = False
    nonce_count: int = 0
    redirected: bool = False
    acknowledgement: bytes | None = None
    acknowledgement_destination: tuple[str, int] | None = None
    # inbound
    server_transaction: ServerKey | None = None
    remote_offer: bytes | None = None
    pending_answer: RepeatedAnswer | None = None
    remote_sdp: bytes | None = None


def answer_remote_offer(local_sdp: bytes, offer: bytes, codecs: tuple[str, ...]) -> bytes:
    """Answer a mid-call ``offer`` from our previous description ``local_sdp``.

    Keeps our connection address, port, origin user and session id; increments the session
    version (RFC 3264 §8); the direction answers the offer (sendonly -> recvonly,
    inactive -> inactive, recvonly -> sendonly, sendrecv -> sendrecv). Raises ``SdpError`` when
    the offer has no codec we support (the core answers 488).
    """
    ours = parse_sdp(local_sdp)
    media = ours.first_audio()
    connection = ours.connection_for(media) if media is not None else ours.connection
    address = connection.host if connection is not None else ours.origin.address
    port = media.port if media is not None else 0
    return build_answer(
        offer,
        address,
        port,
        codecs,
        "sendrecv",
        session_id=ours.origin.session_id,
        version=ours.origin.session_version + 1,
        username=ours.origin.username,
        session_name=ours.session_name,
    )
