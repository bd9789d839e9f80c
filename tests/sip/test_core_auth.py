"""Digest challenges on INVITE: answered once, refused credentials end the call."""

from __future__ import annotations

import dataclasses

import pytest

from sip.causes import CallCause
from sip.core import UserAgentCore
from sip.digest import Challenge, parse_authorization, verify_authorization
from sip.events import CallAnswered, CallEnded
from sip.message import Request
from sip.uri import parse_via
from tests.sip.far_end import FAR_SDP, LOCAL, OUR_SDP, TRUNK, FarEnd

TARGET = "sip:+4930123456@sip.example.test"
REALM = "sip.example.test"


@pytest.fixture
def far() -> FarEnd:
    return FarEnd(UserAgentCore(LOCAL))


def challenge(nonce: str, *, stale: bool = False) -> str:
    return str(Challenge(realm=REALM, nonce=nonce, qop=("auth",), opaque="op", stale=stale))


def branch_of(request: Request) -> str | None:
    return parse_via(request.headers.get_all("Via")[0]).branch


@pytest.mark.parametrize(
    ("status", "challenge_header", "answer_header"),
    [
        (401, "WWW-Authenticate", "Authorization"),
        (407, "Proxy-Authenticate", "Proxy-Authorization"),
    ],
)
def test_challenge_is_answered_with_correct_credentials(
    far: FarEnd, status: int, challenge_header: str, answer_header: str
) -> None:
    key = far.core.place_call(TRUNK, TARGET, OUR_SDP, far.now)
    invite = far.sent_one("INVITE").request
    far.reply(invite, status, headers=[(challenge_header, challenge("n1"))])
    ack, retry = far.sent()
    assert ack.request.method == "ACK"
    assert branch_of(ack.request) == branch_of(invite)
    second = retry.request
    assert second.method == "INVITE"
    assert second.headers.get("CSeq") == "2 INVITE"
    assert second.headers.get("Call-ID") == invite.headers.get("Call-ID")
    assert second.headers.get("From") == invite.headers.get("From")
    assert branch_of(second) != branch_of(invite)
    authorization = second.headers.get(answer_header)
    assert authorization is not None
    assert parse_authorization(authorization).username == "alice"
    assert verify_authorization(
        authorization, method="INVITE", password="secret", realm=REALM, nonce="n1"
    )
    assert not verify_authorization(
        authorization, method="INVITE", password="wrong", realm=REALM, nonce="n1"
    )
    assert far.events() == []
    far.reply(second, 200, body=FAR_SDP)
    far.sent_one("ACK")
    assert far.events() == [CallAnswered(key, FAR_SDP)]


def test_refused_credentials_end_the_call_without_a_retry_loop(far: FarEnd) -> None:
    account = dataclasses.replace(TRUNK, password="wrong")
    key = far.core.place_call(account, TARGET, OUR_SDP, far.now)
    invite = far.sent_one("INVITE").request
    far.reply(invite, 401, headers=[("WWW-Authenticate", challenge("n1"))])
    second = far.sent()[1].request
    authorization = second.headers.get("Authorization") or ""
    assert not verify_authorization(authorization, method="INVITE", password="secret", realm=REALM)
    far.reply(second, 401, headers=[("WWW-Authenticate", challenge("n2"))])
    assert [s.request.method for s in far.sent()] == ["ACK"]
    assert far.events() == [CallEnded(key, CallCause.auth_failed, 401, "Unauthorized", "remote")]


def test_stale_nonce_is_retried_once(far: FarEnd) -> None:
    key = far.core.place_call(TRUNK, TARGET, OUR_SDP, far.now)
    invite = far.sent_one("INVITE").request
    far.reply(invite, 407, headers=[("Proxy-Authenticate", challenge("n1"))])
    second = far.sent()[1].request
    far.reply(second, 407, headers=[("Proxy-Authenticate", challenge("n2", stale=True))])
    third = far.sent()[1].request
    assert third.headers.get("CSeq") == "3 INVITE"
    assert verify_authorization(
        third.headers.get("Proxy-Authorization") or "",
        method="INVITE",
        password="secret",
        realm=REALM,
        nonce="n2",
    )
    far.reply(third, 407, headers=[("Proxy-Authenticate", challenge("n3", stale=True))])
    assert [s.request.method for s in far.sent()] == ["ACK"]
    [ended] = far.events()
    assert isinstance(ended, CallEnded)
    assert ended.call_key == key
    assert ended.cause is CallCause.auth_failed


def test_no_password_means_a_challenge_is_auth_failed(far: FarEnd) -> None:
    account = dataclasses.replace(TRUNK, password="")
    key = far.core.place_call(account, TARGET, OUR_SDP, far.now)
    invite = far.sent_one("INVITE").request
    far.reply(invite, 401, headers=[("WWW-Authenticate", challenge("n1"))])
    assert [s.request.method for s in far.sent()] == ["ACK"]
    assert far.events() == [CallEnded(key, CallCause.auth_failed, 401, "Unauthorized", "remote")]
