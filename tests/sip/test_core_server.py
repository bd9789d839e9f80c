"""What the core answers to requests it did not ask for: OPTIONS, unknown methods and dialogs,
garbage, floods, unsolicited INVITEs; and inbound calls for the test line."""

from __future__ import annotations

import pytest

from sip.causes import CallCause
from sip.core import UserAgentCore
from sip.events import CallAnswered, CallEnded, IncomingCall
from sip.message import Request
from sip.ratelimit import RateLimit
from tests.sip.far_end import FAR_SDP, LOCAL, OUR_SDP, FarEnd, far_request


@pytest.fixture
def far() -> FarEnd:
    return FarEnd(UserAgentCore(LOCAL))


@pytest.fixture
def line() -> FarEnd:
    """A core that accepts calls (the test line)."""
    return FarEnd(UserAgentCore(LOCAL, accept_calls=True))


def test_options_is_answered_200_with_allow_and_accept(far: FarEnd) -> None:
    far.deliver(far_request("OPTIONS"))
    ok = far.sent_one(200)
    allow = set(ok.response.headers.get_all("Allow"))
    assert {"INVITE", "ACK", "CANCEL", "BYE", "OPTIONS"} <= allow
    assert ok.response.headers.get("Accept") == "application/sdp"
    assert ok.destination == ("198.51.100.7", 5060)


def test_unknown_method_is_405_with_allow(far: FarEnd) -> None:
    far.deliver(far_request("SUBSCRIBE"))
    answer = far.sent_one(405)
    assert "INVITE" in answer.response.headers.get_all("Allow")
    assert far.core.statistics.method_not_allowed == 1


def test_request_for_unknown_dialog_is_481(far: FarEnd) -> None:
    far.deliver(far_request("BYE", to_tag="nobody"))
    far.sent_one(481)
    far.deliver(far_request("INVITE", to_tag="nobody", branch="z9hG4bKx2", body=FAR_SDP))
    sent = far.sent()
    assert [s.response.status_code for s in sent] == [100, 481]
    assert far.core.statistics.unknown_dialog == 2
    assert far.events() == []


def test_garbage_is_counted_and_dropped(far: FarEnd) -> None:
    for garbage in (b"\x00\xff" * 40, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"INVITE\r\n\r\n"):
        far.deliver(garbage)
    assert far.sent() == []
    assert far.core.statistics.malformed == 3
    assert far.core.next_timer() is None


def test_malformed_request_with_readable_via_gets_400(far: FarEnd) -> None:
    bad_cseq = far_request("OPTIONS").replace(b"CSeq: 1 OPTIONS", b"CSeq: one OPTIONS")
    far.deliver(bad_cseq)
    answer = far.sent_one(400)
    assert answer.response.headers.get("Call-ID") == "far-call-1"
    assert far.core.statistics.malformed == 1
    assert far.core.statistics.bad_requests_answered == 1


def test_rate_limit_drops_excess_per_source() -> None:
    far = FarEnd(UserAgentCore(LOCAL, rate_limit=RateLimit(messages_per_second=1, burst=5)))
    for index in range(10):
        far.deliver(far_request("OPTIONS", branch=f"z9hG4bKflood{index}"))
    assert len(far.sent()) == 5
    assert far.core.statistics.rate_limited == 5
    far.deliver(far_request("OPTIONS", branch="z9hG4bKother"), source=("203.0.113.5", 5060))
    assert len(far.sent()) == 1
    far.advance(2.0)
    for index in range(3):
        far.deliver(far_request("OPTIONS", branch=f"z9hG4bKlater{index}"))
    assert len(far.sent()) == 2


def test_unsolicited_invite_gets_the_same_answer_for_any_user(far: FarEnd) -> None:
    answers = []
    for index, user in enumerate(("alice", "nobody-here", "100")):
        far.deliver(far_request("INVITE", user=user, branch=f"z9hG4bKscan{index}", body=FAR_SDP))
        trying, final = far.sent()
        assert trying.response.status_code == 100
        answers.append((final.response.status_code, final.response.reason, final.response.body))
    assert answers == [(403, "Forbidden", b"")] * 3
    assert far.events() == []
    assert far.core.statistics.unsolicited_rejected == 3
    # The ACK of the 403 is absorbed; without it the 403 is retransmitted (timer G).
    far.deliver(far_request("ACK", user="alice", branch="z9hG4bKscan0"))
    far.advance(0.5)
    assert [s.response.status_code for s in far.sent()] == [403, 403]


def incoming(line: FarEnd, body: bytes = FAR_SDP) -> tuple[str, Request]:
    invite = far_request("INVITE", body=body)
    line.deliver(invite)
    line.sent_one(100)
    [event] = line.events()
    assert isinstance(event, IncomingCall)
    assert event.remote_sdp == (body or None)
    return event.call_key, event.request


def test_incoming_call_rings_is_answered_and_connected_on_ack(line: FarEnd) -> None:
    key, _ = incoming(line)
    line.core.ring(key, line.now)
    ringing = line.sent_one(180).response
    local_tag = ringing.headers.get("To") or ""
    assert ";tag=" in local_tag
    line.core.answer(key, OUR_SDP, line.now)
    ok = line.sent_one(200).response
    assert ok.body == OUR_SDP
    assert ok.headers.get("To") == local_tag
    assert "Contact" in ok.headers
    line.advance(0.5)
    assert line.sent_one(200).data == bytes(ok)
    line.advance(1.0)
    line.sent_one(200)
    tag = local_tag.split("tag=")[1]
    line.deliver(far_request("ACK", to_tag=tag, branch="z9hG4bKack"))
    assert line.events() == [CallAnswered(key, FAR_SDP)]
    line.advance(10.0)
    assert line.sent() == []
    line.deliver(far_request("BYE", to_tag=tag, cseq=2, branch="z9hG4bKbye"))
    line.sent_one(200)
    assert line.events() == [CallEnded(key, CallCause.remote_hangup, 0, "BYE", "remote")]


def test_incoming_call_cancelled_by_caller(line: FarEnd) -> None:
    key, _ = incoming(line)
    line.deliver(far_request("CANCEL"))
    ok, terminated = line.sent()
    assert ok.response.status_code == 200
    assert ok.response.headers.get("CSeq") == "1 CANCEL"
    assert terminated.response.status_code == 487
    assert line.events() == [
        CallEnded(key, CallCause.cancelled, 487, "Request Terminated", "remote")
    ]


def test_cancel_for_unknown_transaction_is_481(line: FarEnd) -> None:
    line.deliver(far_request("CANCEL"))
    line.sent_one(481)


def test_incoming_call_rejected_busy(line: FarEnd) -> None:
    key, _ = incoming(line)
    line.core.reject(key, 486, line.now)
    line.sent_one(486)
    assert line.events() == [CallEnded(key, CallCause.busy, 486, "", "local")]


def test_answer_never_acked_is_given_up_with_bye(line: FarEnd) -> None:
    key, _ = incoming(line)
    line.core.answer(key, OUR_SDP, line.now)
    line.sent()
    line.advance(31.9)
    assert all(s.response.status_code == 200 for s in line.sent())
    line.advance(0.2)
    line.sent_one("BYE")
    assert line.events() == [CallEnded(key, CallCause.timeout, 0, "No ACK", "system")]


def test_late_offer_answer_comes_in_the_ack(line: FarEnd) -> None:
    key, _ = incoming(line, body=b"")
    line.core.answer(key, OUR_SDP, line.now)
    ok = line.sent_one(200).response
    tag = (ok.headers.get("To") or "").split("tag=")[1]
    line.deliver(far_request("ACK", to_tag=tag, branch="z9hG4bKack", body=FAR_SDP))
    assert line.events() == [CallAnswered(key, FAR_SDP)]


def test_callee_hangup_before_answer_sends_480(line: FarEnd) -> None:
    key, _ = incoming(line)
    line.core.hangup(key, line.now)
    line.sent_one(480)
    assert line.events() == [
        CallEnded(key, CallCause.local_hangup, 480, "Temporarily Unavailable", "local")
    ]


def test_invite_with_unusable_contact_gets_400_through_its_transaction(line: FarEnd) -> None:
    bad = far_request("INVITE", body=FAR_SDP).replace(
        b"Contact: <sip:caller@198.51.100.7:5060>", b"Contact: <not a uri>"
    )
    line.deliver(bad)
    assert [s.response.status_code for s in line.sent()] == [100, 400]
    assert line.events() == []
    line.advance(0.5)
    line.sent_one(400)  # timer G: it is a real final response of the INVITE transaction


def test_stray_responses_are_counted(far: FarEnd) -> None:
    stray = (
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKunknown\r\n"
        b"From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>;tag=2\r\nCall-ID: nothing\r\n"
        b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    far.deliver(stray)
    assert far.sent() == []
    assert far.core.statistics.stray_responses == 1
