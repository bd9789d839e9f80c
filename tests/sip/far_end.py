"""A scripted far end for the user agent core tests: a fake clock, and SIP messages built as
raw bytes from what the core sent (responses) or from a template (the far end's requests)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sip.account import Account
from sip.core import LocalAddress, Outgoing, UserAgentCore
from sip.events import Event
from sip.message import Message, Request, Response, build_response, parse_message
from sip.sdp import build_offer
from sip.uri import parse_name_address

LOCAL = LocalAddress("192.0.2.10", 5060, "udp")
FAR_SOURCE = ("198.51.100.7", 5060)
TRUNK = Account(
    name="trunk",
    host="sip.example.test",
    username="alice",
    password="secret",
    register=False,
    ring_timeout=60.0,
)
OUR_SDP = build_offer("192.0.2.10", 40000, session_id=1111, version=1)
FAR_SDP = build_offer("198.51.100.7", 50000, session_id=2222, version=1)


@dataclass
class Sent:
    """One message the core sent, parsed, with where it went."""

    message: Message
    destination: tuple[str, int]
    data: bytes

    @property
    def request(self) -> Request:
        assert isinstance(self.message, Request), self.message
        return self.message

    @property
    def response(self) -> Response:
        assert isinstance(self.message, Response), self.message
        return self.message


@dataclass
class FarEnd:
    """Drives a core on a fake clock and plays the other side of the wire."""

    core: UserAgentCore
    now: float = 0.0
    source: tuple[str, int] = FAR_SOURCE
    log: list[Event] = field(default_factory=list)

    def advance(self, seconds: float) -> None:
        """Move the clock, firing every core timer due on the way, in order."""
        end = self.now + seconds
        while (deadline := self.core.next_timer()) is not None and deadline <= end:
            self.now = max(self.now, deadline)
            self.core.handle_timers(self.now)
        self.now = end

    def sent(self) -> list[Sent]:
        """Everything the core sent since the last call."""
        items: list[Outgoing] = self.core.outgoing()
        return [
            Sent(parse_message(item.data, validate=False), item.destination, item.data)
            for item in items
        ]

    def sent_one(self, method_or_status: str | int) -> Sent:
        """The single message sent since the last call, checked to be ``method_or_status``."""
        sent = self.sent()
        assert len(sent) == 1, [s.data.split(b"\r\n")[0] for s in sent]
        message = sent[0].message
        if isinstance(method_or_status, int):
            assert isinstance(message, Response)
            assert message.status_code == method_or_status, message.status_code
        else:
            assert isinstance(message, Request)
            assert message.method == method_or_status, message.method
        return sent[0]

    def events(self) -> list[Event]:
        events = self.core.events()
        self.log.extend(events)
        return events

    def deliver(self, data: bytes | Message, source: tuple[str, int] | None = None) -> None:
        raw = data if isinstance(data, bytes) else bytes(data)
        self.core.receive(raw, source or self.source, "udp", self.now)

    def reply(
        self,
        request: Request,
        status: int,
        *,
        reason: str | None = None,
        to_tag: str = "far-tag",
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        contact: str | None = "<sip:bob@198.51.100.7:5060>",
    ) -> Response:
        """Answer ``request`` as the far end would and deliver the answer to the core."""
        extra = list(headers)
        if contact is not None and 100 < status < 300:
            extra.append(("Contact", contact))
        if body:
            extra.append(("Content-Type", "application/sdp"))
        response = build_response(request, status, reason, to_tag=to_tag, headers=extra, body=body)
        self.deliver(response)
        return response

    def request_in_dialog(
        self,
        invite: Request,
        method: str,
        cseq: int,
        *,
        to_tag: str = "far-tag",
        branch: str | None = None,
        body: bytes = b"",
        extra: str = "",
    ) -> bytes:
        """Raw bytes of a request the far end sends inside the dialog of our ``invite``."""
        our_from = invite.headers.get("From") or ""
        far = parse_name_address(invite.headers.get("To") or "").with_tag(to_tag)
        content_type = "Content-Type: application/sdp\r\n" if body else ""
        head = (
            f"{method} sip:alice@192.0.2.10:5060 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 198.51.100.7:5060;branch={branch or 'z9hG4bK' + method + str(cseq)}"
            ";rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: {far}\r\n"
            f"To: {our_from}\r\n"
            f"Call-ID: {invite.headers.get('Call-ID')}\r\n"
            f"CSeq: {cseq} {method}\r\n"
            "Contact: <sip:bob@198.51.100.7:5060>\r\n"
            f"{extra}{content_type}"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body


def far_request(
    method: str,
    *,
    user: str = "alice",
    call_id: str = "far-call-1",
    from_tag: str = "caller-tag",
    to_tag: str | None = None,
    cseq: int = 1,
    branch: str = "z9hG4bKfar1",
    body: bytes = b"",
    extra: str = "",
) -> bytes:
    """Raw bytes of a request from the far end outside (or, with ``to_tag``, inside) a dialog."""
    to_tag_text = f";tag={to_tag}" if to_tag else ""
    content_type = "Content-Type: application/sdp\r\n" if body else ""
    head = (
        f"{method} sip:{user}@192.0.2.10 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 198.51.100.7:5060;branch={branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        f'From: "Caller" <sip:caller@198.51.100.7>;tag={from_tag}\r\n'
        f"To: <sip:{user}@192.0.2.10>{to_tag_text}\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} {method}\r\n"
        "Contact: <sip:caller@198.51.100.7:5060>\r\n"
        f"{extra}{content_type}"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body
