"""Digest authentication (sip.digest) against the RFC 2617 and RFC 7616 example values."""

from __future__ import annotations

from pathlib import Path

import pytest

from sip.digest import (
    Challenge,
    build_authorization,
    choose_challenge,
    compute_response,
    format_nonce_count,
    new_nonce,
    parse_authorization,
    parse_challenge,
    verify_authorization,
)
from sip.errors import DigestError, LocalProtocolError, RemoteProtocolError
from sip.message import parse_message

CAPTURES = Path(__file__).parent / "captures"

# RFC 2617 §3.5 example.
RFC2617_CHALLENGE = (
    'Digest realm="testrealm@host.com", qop="auth,auth-int", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)
RFC2617_RESPONSE = "6629fae49393a05397450978507c4ef1"

# RFC 7616 §3.9.1 example (same inputs for MD5 and SHA-256).
RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC7616_MD5 = "8ca523f5e9506fed4657c9700eebdbec"
RFC7616_SHA256 = "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"


def rfc7616_challenge(algorithm: str) -> str:
    return (
        f'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={algorithm}, '
        f'nonce="{RFC7616_NONCE}", opaque="{RFC7616_OPAQUE}"'
    )


def test_rfc2617_example() -> None:
    challenge = parse_challenge(RFC2617_CHALLENGE)
    assert challenge.algorithm == "MD5"
    assert challenge.qop == ("auth", "auth-int")
    header = build_authorization(
        challenge,
        method="GET",
        uri="/dir/index.html",
        username="Mufasa",
        password="Circle Of Life",
        nonce_count=1,
        cnonce="0a4f113b",
    )
    credentials = parse_authorization(header)
    assert credentials.response == RFC2617_RESPONSE
    assert credentials.qop == "auth"
    assert credentials.nonce_count == "00000001"
    assert credentials.cnonce == "0a4f113b"
    assert credentials.opaque == "5ccc069c403ebaf9f0171e9517f40e41"
    assert credentials.uri == "/dir/index.html"


@pytest.mark.parametrize(
    ("algorithm", "expected"), [("MD5", RFC7616_MD5), ("SHA-256", RFC7616_SHA256)]
)
def test_rfc7616_examples(algorithm: str, expected: str) -> None:
    challenge = parse_challenge(rfc7616_challenge(algorithm))
    header = build_authorization(
        challenge,
        method="GET",
        uri="/dir/index.html",
        username="Mufasa",
        password="Circle of Life",
        nonce_count=1,
        cnonce=RFC7616_CNONCE,
    )
    credentials = parse_authorization(header)
    assert credentials.response == expected
    assert credentials.algorithm == algorithm
    assert credentials.opaque == RFC7616_OPAQUE
    assert verify_authorization(
        header, method="GET", password="Circle of Life", realm="http-auth@example.org"
    )
    assert not verify_authorization(
        header, method="GET", password="Circle Of Life", realm="http-auth@example.org"
    )


def test_two_challenges_from_kamailio_prefer_sha256() -> None:
    response = parse_message((CAPTURES / "kamailio_401_two_challenges.sip").read_bytes())
    values = response.headers.get_all("WWW-Authenticate")
    chosen = choose_challenge(values)
    assert chosen.algorithm == "SHA-256"
    assert chosen.realm == "voip.example.net"
    assert chosen.qop == ("auth",)
    assert choose_challenge(reversed(values)).algorithm == "SHA-256"
    assert choose_challenge(values[1:]).algorithm == "MD5"


def test_choose_challenge_skips_unsupported_and_malformed() -> None:
    values = [
        'Basic realm="x"',
        'Digest realm="r", nonce="n", algorithm=SHA-512-256',
        'Digest realm="r", algorithm=MD5',
        'Digest realm="r", nonce="n1", algorithm=MD5-sess, qop="auth"',
    ]
    chosen = choose_challenge(values)
    assert (chosen.algorithm, chosen.nonce) == ("MD5-sess", "n1")
    with pytest.raises(DigestError):
        choose_challenge(values[:3])
    with pytest.raises(DigestError):
        choose_challenge([])


def test_proxy_challenge_from_capture_with_stale_and_empty_opaque() -> None:
    response = parse_message((CAPTURES / "proxy_407_challenge.sip").read_bytes())
    value = response.headers.get("Proxy-Authenticate")
    assert value is not None
    challenge = parse_challenge(value)
    assert challenge.opaque == ""
    assert not challenge.stale
    assert challenge.domain == "sip:ss1.atlanta.example.com"
    header = build_authorization(
        challenge,
        method="INVITE",
        uri="sip:bob@biloxi.example.com",
        username="alice",
        password="pw",
        cnonce="abc",
    )
    assert 'opaque=""' in header  # echoed even when empty
    assert "qop=auth" in header
    assert "nc=00000001" in header


def test_stale_token_values_and_case() -> None:
    challenge = parse_challenge(
        "digest REALM=asterisk,nonce=abc123,stale=true,algorithm=md5,qop=auth"
    )
    assert challenge == Challenge("asterisk", "abc123", "MD5", ("auth",), None, True)


def test_unquoted_qop_list_is_tolerated() -> None:
    challenge = parse_challenge('Digest realm="r", nonce="n", qop=auth-int,auth')
    assert challenge.qop == ("auth-int", "auth")


def test_no_qop_uses_rfc2069_form() -> None:
    challenge = parse_challenge('Digest realm="asterisk", nonce="4cd2f6f1"')
    header = build_authorization(
        challenge, method="REGISTER", uri="sip:pbx.example.com", username="1001", password="pw"
    )
    credentials = parse_authorization(header)
    assert credentials.qop is None
    assert credentials.nonce_count is None
    assert credentials.cnonce is None
    expected = compute_response(
        algorithm="MD5",
        username="1001",
        realm="asterisk",
        password="pw",
        nonce="4cd2f6f1",
        method="REGISTER",
        uri="sip:pbx.example.com",
        qop=None,
        nonce_count="",
        cnonce="",
    )
    assert credentials.response == expected
    assert verify_authorization(header, method="REGISTER", password="pw", realm="asterisk")
    assert not verify_authorization(header, method="INVITE", password="pw", realm="asterisk")


def test_auth_int_only_hashes_the_body() -> None:
    challenge = parse_challenge('Digest realm="r", nonce="n", qop="auth-int", algorithm=SHA-256')
    header = build_authorization(
        challenge,
        method="INVITE",
        uri="sip:bob@example.com",
        username="u",
        password="p",
        body=b"v=0\r\n",
    )
    assert parse_authorization(header).qop == "auth-int"
    assert verify_authorization(header, method="INVITE", password="p", realm="r", body=b"v=0\r\n")
    assert not verify_authorization(header, method="INVITE", password="p", realm="r", body=b"")


@pytest.mark.parametrize("algorithm", ["MD5-sess", "SHA-256-sess"])
def test_session_algorithms_verify_and_depend_on_cnonce(algorithm: str) -> None:
    challenge = parse_challenge(f'Digest realm="r", nonce="n", qop="auth", algorithm={algorithm}')
    first = build_authorization(
        challenge, method="INVITE", uri="sip:x@y", username="u", password="p", cnonce="c1"
    )
    second = build_authorization(
        challenge, method="INVITE", uri="sip:x@y", username="u", password="p", cnonce="c2"
    )
    assert parse_authorization(first).response != parse_authorization(second).response
    assert verify_authorization(first, method="INVITE", password="p", realm="r")
    assert verify_authorization(second, method="INVITE", password="p", realm="r")


def test_nonce_count_formatting() -> None:
    assert format_nonce_count(1) == "00000001"
    assert format_nonce_count(255) == "000000ff"
    assert format_nonce_count(0xFFFFFFFF) == "ffffffff"
    for bad in (0, -1, 2**32):
        with pytest.raises(LocalProtocolError):
            format_nonce_count(bad)
    challenge = parse_challenge('Digest realm="r", nonce="n", qop="auth"')
    header = build_authorization(
        challenge, method="BYE", uri="sip:x@y", username="u", password="p", nonce_count=26
    )
    assert parse_authorization(header).nonce_count_value == 26
    assert "nc=0000001a" in header


def test_generated_cnonces_differ() -> None:
    assert new_nonce() != new_nonce()
    challenge = parse_challenge('Digest realm="r", nonce="n", qop="auth"')
    cnonces = {
        parse_authorization(
            build_authorization(challenge, method="BYE", uri="sip:x@y", username="u", password="p")
        ).cnonce
        for _ in range(5)
    }
    assert len(cnonces) == 5


def test_server_side_challenge_round_trip_and_checks() -> None:
    challenge = Challenge("dialer.test", new_nonce(), "SHA-256", ("auth",), opaque="o1", stale=True)
    assert parse_challenge(str(challenge)) == challenge
    header = build_authorization(
        challenge, method="REGISTER", uri="sip:dialer.test", username="agent", password="pw"
    )
    assert verify_authorization(
        header,
        method="REGISTER",
        password="pw",
        realm="dialer.test",
        nonce=challenge.nonce,
        username="agent",
    )
    assert not verify_authorization(
        header, method="REGISTER", password="pw", realm="dialer.test", nonce="other"
    )
    assert not verify_authorization(header, method="REGISTER", password="pw", realm="other.test")
    assert not verify_authorization(
        header, method="REGISTER", password="pw", realm="dialer.test", username="someone"
    )


def test_captured_authorization_verifies() -> None:
    request = parse_message((CAPTURES / "register_with_authorization.sip").read_bytes())
    value = request.headers.get("Authorization")
    assert value is not None
    credentials = parse_authorization(value)
    assert credentials.username == "1001"
    assert credentials.algorithm == "SHA-256"
    assert verify_authorization(
        credentials, method="REGISTER", password="s3cret-1001", realm="voip.example.net"
    )
    assert not verify_authorization(
        credentials, method="REGISTER", password="s3cret-1002", realm="voip.example.net"
    )


def test_username_with_quotes_is_escaped() -> None:
    challenge = parse_challenge('Digest realm="r", nonce="n", qop="auth"')
    header = build_authorization(
        challenge, method="BYE", uri="sip:x@y", username='ev"il, user', password="p"
    )
    credentials = parse_authorization(header)
    assert credentials.username == 'ev"il, user'
    assert verify_authorization(header, method="BYE", password="p", realm="r")


@pytest.mark.parametrize(
    "value",
    [
        "",
        'Basic realm="x"',
        "Digest",
        'Digest realm="r"',
        'Digest nonce="n"',
        'Digest realm="r", nonce="n", algorithm=SHA-512',
        'Digest realm="r", nonce="n", realm="again"',
        'Digest realm="r, nonce="n"',
        "Digest " + "x" * 9000,
    ],
)
def test_invalid_challenges(value: str) -> None:
    with pytest.raises(DigestError) as raised:
        parse_challenge(value)
    assert isinstance(raised.value, RemoteProtocolError)


@pytest.mark.parametrize(
    "value",
    [
        'Digest username="u", realm="r", nonce="n", uri="sip:x"',
        'Digest username="u", realm="r", nonce="n", uri="sip:x", response="a", qop=auth',
        'Digest username="u", realm="r", nonce="n", uri="sip:x", response="a", qop=auth, '
        'nc=1, cnonce="c"',
        'Digest username="u", realm="r", nonce="n", uri="sip:x", response="a", qop=auth, '
        "nc=00000001",
        'Digest username="u", realm="r", nonce="n", uri="sip:x", response="a", qop=bogus',
        'Digest username="u", realm="r", nonce="n", uri="sip:x", response="a", algorithm=X',
    ],
)
def test_invalid_authorizations(value: str) -> None:
    with pytest.raises(DigestError):
        parse_authorization(value)


def test_non_ascii_response_does_not_crash_verification() -> None:
    value = 'Digest username="u", realm="r", nonce="n", uri="sip:x", response="ü"'
    assert not verify_authorization(value, method="BYE", password="p", realm="r", nonce="ñ")
    assert not verify_authorization(value, method="BYE", password="p", realm="r")
