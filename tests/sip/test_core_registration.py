"""REGISTER: digest, refresh before expiry, backoff after failures, unregister."""

from __future__ import annotations

import dataclasses

import pytest

from sip.causes import CallCause
from sip.core import UserAgentCore
from sip.digest import Challenge, verify_authorization
from sip.events import RegistrationFailed, RegistrationSucceeded
from sip.message import Request
from sip.registration import RetryPolicy, refresh_delay
from tests.sip.far_end import LOCAL, TRUNK, FarEnd

ACCOUNT = dataclasses.replace(TRUNK, name="office", register=True, register_expires=600)
REALM = "sip.example.test"


@pytest.fixture
def far() -> FarEnd:
    return FarEnd(UserAgentCore(LOCAL))


def granted(far: FarEnd, register: Request, expires: int) -> None:
    contact = register.headers.get("Contact") or ""
    far.reply(register, 200, contact=f"{contact};expires={expires}")


def test_register_answers_the_challenge_and_refreshes_before_expiry(far: FarEnd) -> None:
    far.core.register(ACCOUNT, far.now)
    first = far.sent_one("REGISTER")
    assert first.destination == ("sip.example.test", 5060)
    assert first.request.uri == "sip:sip.example.test"
    assert first.request.headers.get("Expires") == "600"
    assert first.request.headers.get("To") == "<sip:alice@sip.example.test>"
    nonce = str(Challenge(realm=REALM, nonce="r1", qop=("auth",)))
    far.reply(first.request, 401, headers=[("WWW-Authenticate", nonce)])
    second = far.sent_one("REGISTER").request
    assert second.headers.get("CSeq") == "2 REGISTER"
    assert second.headers.get("Call-ID") == first.request.headers.get("Call-ID")
    assert verify_authorization(
        second.headers.get("Authorization") or "",
        method="REGISTER",
        password="secret",
        realm=REALM,
        nonce="r1",
    )
    granted(far, second, 120)
    assert far.events() == [RegistrationSucceeded("office", 120)]
    # 120 s binding: refreshed at half-life (60 s), same Call-ID, next CSeq, no credentials.
    far.advance(59.9)
    assert far.sent() == []
    far.advance(0.2)
    refresh = far.sent_one("REGISTER").request
    assert refresh.headers.get("Call-ID") == first.request.headers.get("Call-ID")
    assert refresh.headers.get("CSeq") == "3 REGISTER"


def test_long_bindings_are_refreshed_two_transaction_timeouts_before_expiry() -> None:
    assert refresh_delay(3600, 32.0) == 3536.0
    assert refresh_delay(120, 32.0) == 60.0
    assert refresh_delay(30, 32.0) == 15.0


def test_failures_back_off_exponentially_and_success_resets(far: FarEnd) -> None:
    far.core.register(ACCOUNT, far.now)
    far.reply(far.sent_one("REGISTER").request, 503)
    assert far.events() == [
        RegistrationFailed("office", CallCause.congestion, 503, "Service Unavailable", 30.0)
    ]
    far.advance(29.9)
    assert far.sent() == []
    far.advance(0.1)
    far.reply(far.sent_one("REGISTER").request, 503)
    assert far.events()[0] == RegistrationFailed(
        "office", CallCause.congestion, 503, "Service Unavailable", 90.0
    )
    far.advance(60.0)
    far.sent_one("REGISTER")  # no answer at all: timer F
    far.advance(32.0)
    [timeout] = far.events()
    assert timeout == RegistrationFailed(
        "office", CallCause.timeout, 0, "Request Timeout", 90.0 + 32.0 + 120.0
    )
    far.sent()  # retransmissions
    far.advance(120.0)
    granted(far, far.sent_one("REGISTER").request, 600)
    assert far.events() == [RegistrationSucceeded("office", 600)]
    far.advance(536.0)
    far.reply(far.sent_one("REGISTER").request, 503)
    failure = far.events()[0]
    assert isinstance(failure, RegistrationFailed)
    assert failure.retry_at == pytest.approx(far.now + 30.0)


def test_backoff_is_capped() -> None:
    policy = RetryPolicy(base=30.0, maximum=1800.0)
    assert [policy.delay(n) for n in (1, 2, 3, 7, 50)] == [30.0, 60.0, 120.0, 1800.0, 1800.0]


def test_wrong_password_fails_once_without_a_loop(far: FarEnd) -> None:
    far.core.register(dataclasses.replace(ACCOUNT, password="wrong"), far.now)
    first = far.sent_one("REGISTER").request
    far.reply(first, 401, headers=[("WWW-Authenticate", str(Challenge(REALM, "a")))])
    second = far.sent_one("REGISTER").request
    far.reply(second, 401, headers=[("WWW-Authenticate", str(Challenge(REALM, "b")))])
    assert far.sent() == []
    [failure] = far.events()
    assert isinstance(failure, RegistrationFailed)
    assert failure.cause is CallCause.auth_failed
    assert failure.retry_at == 30.0


def test_interval_too_brief_retries_with_min_expires(far: FarEnd) -> None:
    far.core.register(dataclasses.replace(ACCOUNT, register_expires=60), far.now)
    first = far.sent_one("REGISTER").request
    far.reply(first, 423, headers=[("Min-Expires", "300")])
    assert far.sent_one("REGISTER").request.headers.get("Expires") == "300"
    assert far.events() == []


def test_unregister_sends_expires_zero_and_stops_refreshing(far: FarEnd) -> None:
    far.core.register(ACCOUNT, far.now)
    granted(far, far.sent_one("REGISTER").request, 600)
    far.events()
    far.core.unregister(ACCOUNT, far.now)
    removal = far.sent_one("REGISTER").request
    assert removal.headers.get("Expires") == "0"
    far.reply(removal, 200)
    assert far.events() == [RegistrationSucceeded("office", 0)]
    far.advance(10_000.0)
    assert far.sent() == []


def test_ip_authenticated_trunk_never_registers(far: FarEnd) -> None:
    far.core.register(TRUNK, far.now)
    assert far.sent() == []
    assert far.core.next_timer() is None
