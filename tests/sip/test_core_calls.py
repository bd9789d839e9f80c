"""Outbound call flows of the user agent core against a scripted far end (fake clock)."""

from __future__ import annotations

import dataclasses

import pytest

from sip.causes import CallCause
from sip.core import UserAgentCore
from sip.digest import Challenge, verify_authorization
from sip.errors import LocalProtocolError
from sip.events import CallAnswered, CallEnded, CallMediaChanged, CallProgress, DtmfInfoReceived
from sip.message import Request
from sip.sdp import build_offer, parse_sdp
from sip.uri import parse_name_address, parse_via
from tests.sip.far_end import FAR_SDP, LOCAL, OUR_SDP, TRUNK, FarEnd

TARGET = "sip:+4930123456@sip.example.test"


def start_call(far: FarEnd) -> tuple[str, Request]:
    key = far.core.place_call(TRUNK, TARGET, OUR_SDP, far.now)
    invite = far.sent_one("INVITE")
    assert invite.destination == ("sip.example.test", 5060)
    return key, invite.request


def connect(far: FarEnd) -> tuple[str, Request]:
    key, invite = start_call(far)
    far.reply(invite, 180)
    far.reply(invite, 200, body=FAR_SDP)
    far.sent_one("ACK")
    far.events()
    return key, invite


@pytest.fixture
def far() -> FarEnd:
    return FarEnd(UserAgentCore(LOCAL))


def test_invite_carries_offer_contact_allow_and_fresh_identifiers(far: FarEnd) -> None:
    key, invite = start_call(far)
    assert invite.uri == TARGET
    assert invite.body == OUR_SDP
    assert invite.headers.get("Content-Type") == "application/sdp"
    branch = parse_via(invite.headers.get_all("Via")[0]).branch
    assert branch is not None
    assert branch.startswith("z9hG4bK")
    assert parse_name_address(invite.headers.get("Contact") or "").uri.host == "192.0.2.10"
    assert "BYE" in invite.headers.get_all("Allow")
    assert "Supported" in invite.headers
    assert parse_name_address(invite.headers.get("From") or "").tag
    assert parse_name_address(invite.headers.get("To") or "").tag is None
    assert invite.headers.get("Call-ID") == key
    second, other = start_call(far)
    assert second != key
    assert other.headers.get("From") != invite.headers.get("From")


def test_answered_call_acks_with_new_branch_and_route_set_then_hangs_up(far: FarEnd) -> None:
    key, invite = start_call(far)
    far.reply(invite, 100)
    assert far.events() == []
    far.reply(invite, 180)
    assert far.events() == [CallProgress(key, 180, "Ringing", None)]
    record_route = [("Record-Route", "<sip:p2.example.test;lr>, <sip:p1.example.test;lr>")]
    far.reply(invite, 200, body=FAR_SDP, headers=record_route)
    ack = far.sent_one("ACK")
    assert far.events() == [CallAnswered(key, FAR_SDP)]
    assert ack.request.uri == "sip:bob@198.51.100.7:5060"
    assert ack.request.headers.get_all("Route") == [
        "<sip:p1.example.test;lr>",
        "<sip:p2.example.test;lr>",
    ]
    assert ack.destination == ("p1.example.test", 5060)
    assert ack.request.headers.get("CSeq") == "1 ACK"
    invite_branch = parse_via(invite.headers.get_all("Via")[0]).branch
    assert parse_via(ack.request.headers.get_all("Via")[0]).branch != invite_branch
    assert parse_name_address(ack.request.headers.get("To") or "").tag == "far-tag"

    far.core.hangup(key, far.now)
    bye = far.sent_one("BYE")
    assert bye.request.headers.get("CSeq") == "2 BYE"
    assert bye.request.headers.get("Call-ID") == key
    assert far.events() == [CallEnded(key, CallCause.local_hangup, 0, "", "local")]
    far.reply(bye.request, 200)
    assert far.events() == []


def test_every_retransmitted_200_is_acked_again(far: FarEnd) -> None:
    _key, invite = start_call(far)
    ok = far.reply(invite, 200, body=FAR_SDP)
    first_ack = far.sent_one("ACK")
    far.events()
    for _ in range(3):
        far.advance(1.0)
        far.deliver(ok)
        assert far.sent_one("ACK").data == first_ack.data
    assert far.events() == []


def test_ack_for_2xx_is_kept_for_64_t1_even_after_hangup(far: FarEnd) -> None:
    key, invite = start_call(far)
    ok = far.reply(invite, 200, body=FAR_SDP)
    far.sent()
    far.core.hangup(key, far.now)
    far.sent()
    far.advance(20.0)
    far.sent()  # BYE retransmissions
    far.deliver(ok)
    assert [s.request.method for s in far.sent()] == ["ACK"]


@pytest.mark.parametrize(
    ("status", "reason", "cause"),
    [
        (486, "Busy Here", CallCause.busy),
        (600, "Busy Everywhere", CallCause.busy),
        (603, "Decline", CallCause.declined),
        (404, "Not Found", CallCause.invalid_number),
        (484, "Address Incomplete", CallCause.invalid_number),
        (503, "Service Unavailable", CallCause.congestion),
        (480, "Temporarily Unavailable", CallCause.unavailable),
        (408, "Request Timeout", CallCause.no_answer),
        (403, "Forbidden", CallCause.rejected),
    ],
)
def test_final_failures_end_the_call_with_mapped_cause(
    far: FarEnd, status: int, reason: str, cause: CallCause
) -> None:
    key, invite = start_call(far)
    far.reply(invite, status, reason=reason)
    ack = far.sent_one("ACK")
    assert ack.request.headers.get_all("Via") == invite.headers.get_all("Via")[:1]
    assert far.events() == [CallEnded(key, cause, status, reason, "remote")]
    assert far.core.call_keys() == []


def test_480_after_ringing_means_no_answer(far: FarEnd) -> None:
    key, invite = start_call(far)
    far.reply(invite, 180)
    far.reply(invite, 480)
    assert far.events()[-1] == CallEnded(
        key, CallCause.no_answer, 480, "Temporarily Unavailable", "remote"
    )


def test_180_then_183_with_sdp_then_200(far: FarEnd) -> None:
    key, invite = start_call(far)
    far.reply(invite, 180)
    far.reply(invite, 183, body=FAR_SDP)
    far.reply(invite, 200, body=FAR_SDP)
    assert far.events() == [
        CallProgress(key, 180, "Ringing", None),
        CallProgress(key, 183, "Session Progress", FAR_SDP),
        CallAnswered(key, FAR_SDP),
    ]


def test_ring_timeout_cancels_and_ends_with_no_answer_after_487(far: FarEnd) -> None:
    account = dataclasses.replace(TRUNK, ring_timeout=25.0)
    key = far.core.place_call(account, TARGET, OUR_SDP, far.now)
    invite = far.sent_one("INVITE").request
    far.reply(invite, 180)
    far.events()
    far.advance(24.9)
    assert far.sent() == []
    far.advance(0.2)
    cancel = far.sent_one("CANCEL")
    assert cancel.request.uri == invite.uri
    assert cancel.request.headers.get_all("Via") == invite.headers.get_all("Via")[:1]
    assert cancel.request.headers.get("CSeq") == "1 CANCEL"
    assert cancel.request.headers.get("To") == invite.headers.get("To")
    assert far.events() == []
    far.reply(cancel.request, 200)
    far.reply(invite, 487)
    far.sent_one("ACK")
    assert far.events() == [CallEnded(key, CallCause.no_answer, 487, "Request Terminated", "local")]


def test_hangup_before_any_provisional_waits_for_one_before_cancel(far: FarEnd) -> None:
    key, invite = start_call(far)
    far.core.hangup(key, far.now)
    assert far.sent() == []
    far.advance(0.5)
    far.sent_one("INVITE")  # timer A retransmission, still no CANCEL
    far.reply(invite, 100)
    far.sent_one("CANCEL")
    far.reply(invite, 487)
    far.sent_one("ACK")
    assert far.events() == [CallEnded(key, CallCause.cancelled, 487, "Request Terminated", "local")]


def test_hangup_before_any_response_ends_when_timer_b_fires(far: FarEnd) -> None:
    key, _ = start_call(far)
    far.core.hangup(key, far.now)
    far.advance(31.9)
    assert far.events() == []
    far.advance(0.2)
    [ended] = far.events()
    assert isinstance(ended, CallEnded)
    assert ended.cause is CallCause.cancelled


def test_200_cancel_race_acks_and_byes(far: FarEnd) -> None:
    key, invite = start_call(far)
    far.reply(invite, 180)
    far.events()
    far.core.hangup(key, far.now)
    cancel = far.sent_one("CANCEL")
    far.reply(cancel.request, 200)
    far.reply(invite, 200, body=FAR_SDP)
    ack, bye = far.sent()
    assert ack.request.method == "ACK"
    assert bye.request.method == "BYE"
    assert far.events() == [
        CallEnded(key, CallCause.cancelled, 0, "Answered after CANCEL", "local")
    ]


def test_timer_b_without_any_answer_is_a_timeout(far: FarEnd) -> None:
    key, _ = start_call(far)
    far.advance(40.0)
    assert far.events() == [CallEnded(key, CallCause.timeout, 0, "Request Timeout", "system")]


def test_transport_error_is_a_network_error(far: FarEnd) -> None:
    key, _ = start_call(far)
    far.core.transport_error(("sip.example.test", 5060), "udp", far.now)
    assert far.events() == [CallEnded(key, CallCause.network_error, 0, "Transport Error", "system")]
    assert far.core.next_timer() is None


def test_remote_bye_is_answered_and_ends_the_call(far: FarEnd) -> None:
    key, invite = connect(far)
    far.deliver(far.request_in_dialog(invite, "BYE", 1))
    ok = far.sent_one(200)
    assert ok.response.headers.get("CSeq") == "1 BYE"
    assert ok.destination == ("198.51.100.7", 5060)
    assert far.events() == [CallEnded(key, CallCause.remote_hangup, 0, "BYE", "remote")]
    far.deliver(far.request_in_dialog(invite, "BYE", 1))  # retransmission: same answer
    assert far.sent_one(200).data == ok.data


def media_of(sdp: bytes) -> tuple[str | None, int]:
    description = parse_sdp(sdp)
    audio = description.first_audio()
    assert audio is not None
    return description.direction_for(audio), description.origin.session_version


def test_reinvite_hold_unhold_and_new_address(far: FarEnd) -> None:
    key, invite = connect(far)
    hold = build_offer("198.51.100.7", 50000, session_id=2222, version=2, direction="sendonly")
    far.deliver(far.request_in_dialog(invite, "INVITE", 10, body=hold))
    sent = far.sent()
    ok = sent[-1].response
    assert ok.status_code == 200
    assert media_of(ok.body) == ("recvonly", 2)
    assert far.events() == [CallMediaChanged(key, hold, ok.body)]
    # Our 2xx is retransmitted until the ACK comes.
    far.advance(0.5)
    assert far.sent_one(200).response.body == ok.body
    far.deliver(far.request_in_dialog(invite, "ACK", 10, branch="z9hG4bKack10"))
    far.advance(5.0)
    assert far.sent() == []

    unhold = build_offer("198.51.100.7", 50000, session_id=2222, version=3)
    far.deliver(far.request_in_dialog(invite, "INVITE", 11, body=unhold))
    assert media_of(far.sent()[-1].response.body) == ("sendrecv", 3)
    far.deliver(far.request_in_dialog(invite, "ACK", 11, branch="z9hG4bKack11"))
    inactive = build_offer("198.51.100.7", 50000, session_id=2222, version=4, direction="inactive")
    far.deliver(far.request_in_dialog(invite, "INVITE", 12, body=inactive))
    assert media_of(far.sent()[-1].response.body) == ("inactive", 4)
    far.deliver(far.request_in_dialog(invite, "ACK", 12, branch="z9hG4bKack12"))
    moved = build_offer("203.0.113.9", 52000, session_id=2222, version=5)
    far.deliver(far.request_in_dialog(invite, "INVITE", 13, body=moved))
    far.sent()
    events = far.events()
    assert [type(e) for e in events] == [CallMediaChanged] * 3
    last = events[-1]
    assert isinstance(last, CallMediaChanged)
    assert last.remote_sdp == moved


def test_update_is_answered_with_our_sdp(far: FarEnd) -> None:
    key, invite = connect(far)
    hold = build_offer("198.51.100.7", 50000, session_id=2222, version=2, direction="sendonly")
    far.deliver(far.request_in_dialog(invite, "UPDATE", 5, body=hold))
    ok = far.sent_one(200)
    assert media_of(ok.response.body) == ("recvonly", 2)
    assert far.events() == [CallMediaChanged(key, hold, ok.response.body)]


def test_out_of_order_in_dialog_request_gets_500(far: FarEnd) -> None:
    _, invite = connect(far)
    far.deliver(far.request_in_dialog(invite, "UPDATE", 5, body=FAR_SDP))
    far.sent()
    far.deliver(far.request_in_dialog(invite, "UPDATE", 4, body=FAR_SDP, branch="z9hG4bKold"))
    assert far.sent_one(500)


def test_redirect_is_followed_once_then_redirect_loop(far: FarEnd) -> None:
    key, invite = start_call(far)
    far.reply(invite, 302, headers=[("Contact", "<sip:+4930999@other.example.test>")])
    ack, second = far.sent()
    assert ack.request.method == "ACK"
    assert second.request.method == "INVITE"
    assert second.request.uri == "sip:+4930999@other.example.test"
    assert second.destination == ("other.example.test", 5060)
    assert second.request.headers.get("Call-ID") == key
    assert second.request.headers.get("CSeq") == "2 INVITE"
    assert second.request.headers.get("From") == invite.headers.get("From")
    assert far.events() == []
    far.reply(second.request, 302, headers=[("Contact", "<sip:+4930777@third.example.test>")])
    far.sent_one("ACK")
    assert far.events() == [
        CallEnded(key, CallCause.redirect_loop, 302, "Moved Temporarily", "remote")
    ]


def test_strict_router_gets_the_request_uri_and_target_goes_last(far: FarEnd) -> None:
    _key, invite = start_call(far)
    far.reply(invite, 200, body=FAR_SDP, headers=[("Record-Route", "<sip:strict.example.test>")])
    ack = far.sent_one("ACK")
    assert ack.request.uri == "sip:strict.example.test"
    assert ack.request.headers.get_all("Route") == ["<sip:bob@198.51.100.7:5060>"]
    assert ack.destination == ("strict.example.test", 5060)


def test_outbound_proxy_receives_every_request(far: FarEnd) -> None:
    account = dataclasses.replace(TRUNK, outbound_proxy="proxy.example.test:5070")
    key = far.core.place_call(account, TARGET, OUR_SDP, far.now)
    invite = far.sent_one("INVITE")
    assert invite.destination == ("proxy.example.test", 5070)
    assert invite.request.uri == TARGET
    far.reply(invite.request, 200, body=FAR_SDP)
    assert far.sent_one("ACK").destination == ("proxy.example.test", 5070)
    far.core.hangup(key, far.now)
    assert far.sent_one("BYE").destination == ("proxy.example.test", 5070)


def test_tel_target_is_refused_locally(far: FarEnd) -> None:
    with pytest.raises(LocalProtocolError):
        far.core.place_call(TRUNK, "tel:+4930123", OUR_SDP, far.now)


def test_info_dtmf_and_in_dialog_options_are_answered(far: FarEnd) -> None:
    key, invite = connect(far)
    relay = b"Signal=5\r\nDuration=160\r\n"
    info = far.request_in_dialog(invite, "INFO", 3, body=relay).replace(
        b"Content-Type: application/sdp", b"Content-Type: application/dtmf-relay"
    )
    far.deliver(info)
    far.sent_one(200)
    assert far.events() == [DtmfInfoReceived(key, "5", 160)]
    far.deliver(far.request_in_dialog(invite, "OPTIONS", 4))
    assert "INVITE" in far.sent_one(200).response.headers.get_all("Allow")


def test_over_tcp_nothing_is_retransmitted() -> None:
    far = FarEnd(UserAgentCore(LOCAL))
    account = dataclasses.replace(TRUNK, transport="tcp")
    key = far.core.place_call(account, TARGET, OUR_SDP, far.now)
    invite = far.sent_one("INVITE")
    assert "SIP/2.0/TCP" in (invite.request.headers.get("Via") or "")
    far.advance(31.9)
    assert far.sent() == []
    far.advance(0.2)
    assert far.events() == [CallEnded(key, CallCause.timeout, 0, "Request Timeout", "system")]


def test_2xx_from_a_second_fork_is_acked_and_released(far: FarEnd) -> None:
    key, invite = connect(far)
    far.reply(invite, 200, body=FAR_SDP, to_tag="other-fork")
    ack, bye = far.sent()
    assert ack.request.method == "ACK"
    assert bye.request.method == "BYE"
    assert "other-fork" in (bye.request.headers.get("To") or "")
    assert far.events() == []
    assert far.core.call_keys() == [key]


def test_challenged_bye_is_repeated_once_with_credentials(far: FarEnd) -> None:
    key, _ = connect(far)
    far.core.hangup(key, far.now)
    bye = far.sent_one("BYE").request
    challenge = str(Challenge(realm="sip.example.test", nonce="b1", qop=("auth",)))
    far.reply(bye, 407, headers=[("Proxy-Authenticate", challenge)])
    second = far.sent_one("BYE").request
    assert second.headers.get("CSeq") == "3 BYE"
    assert verify_authorization(
        second.headers.get("Proxy-Authorization") or "",
        method="BYE",
        password="secret",
        realm="sip.example.test",
    )
    far.reply(second, 407, headers=[("Proxy-Authenticate", challenge)])
    assert far.sent() == []
