"""SIP message parsing, serialisation and stream framing (sip.message)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from sip.errors import LocalProtocolError, MessageParseError
from sip.message import (
    MAX_DATAGRAM_SIZE,
    MAX_HEADER_COUNT,
    MAX_HEADER_LINE,
    Headers,
    Message,
    Request,
    Response,
    StreamFramer,
    build_response,
    call_id,
    cseq,
    from_header,
    is_keepalive,
    parse_message,
    to_header,
    top_via,
)
from sip.uri import parse_name_address, parse_uri

CAPTURES = Path(__file__).parent / "captures"
CRLF_CAPTURES = sorted(p for p in CAPTURES.glob("*.sip") if not p.name.endswith(".lf.sip"))
ALL_CAPTURES = sorted(CAPTURES.glob("*.sip"))


def capture(name: str) -> bytes:
    return (CAPTURES / name).read_bytes()


def minimal_request(extra: str = "", body: bytes = b"", method: str = "OPTIONS") -> bytes:
    head = (
        f"{method} sip:bob@example.com SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\n"
        "From: <sip:alice@example.com>;tag=1\r\n"
        "To: <sip:bob@example.com>\r\n"
        "Call-ID: abc@192.0.2.1\r\n"
        f"CSeq: 1 {method}\r\n"
        f"{extra}"
    )
    return head.encode() + b"\r\n" + body


def test_captures_exist() -> None:
    assert len(CRLF_CAPTURES) >= 10


@pytest.mark.parametrize("path", CRLF_CAPTURES, ids=lambda p: p.name)
def test_capture_round_trips_byte_for_byte(path: Path) -> None:
    data = path.read_bytes()
    message = parse_message(data)
    assert bytes(message) == data


@pytest.mark.parametrize("path", ALL_CAPTURES, ids=lambda p: p.name)
def test_capture_parses_the_same_after_serialising(path: Path) -> None:
    message = parse_message(path.read_bytes())
    again = parse_message(bytes(message))
    assert again == message
    assert b"\r\n\r\n" in bytes(again)


@pytest.mark.parametrize("path", ALL_CAPTURES, ids=lambda p: p.name)
def test_capture_fed_byte_at_a_time_to_stream_framer(path: Path) -> None:
    data = path.read_bytes()
    framer = StreamFramer()
    messages: list[Message] = []
    for index in range(len(data)):
        messages.extend(framer.feed(data[index : index + 1]))
    assert messages == [parse_message(data)]
    assert framer.buffered == 0


def test_asterisk_invite_fields() -> None:
    message = parse_message(capture("asterisk_invite_sdp.sip"))
    assert isinstance(message, Request)
    assert message.method == "INVITE"
    assert parse_uri(message.uri).user == "+14155550123"
    assert call_id(message) == "1f0e9d8c-7b6a-5c4d-3e2f-1a0b9c8d7e6f"
    assert cseq(message) == (11211, "INVITE")
    via = top_via(message)
    assert via.transport == "UDP"
    assert via.rport_requested
    assert via.rport is None
    assert from_header(message).display_name == "Sales 204"
    assert to_header(message).tag is None
    assert "PRACK" in message.headers.get_all("Allow")
    assert len(message.headers.get_all("Allow")) == 13
    assert message.body.startswith(b"v=0\r\n")
    assert message.headers.get("content-type") == "application/sdp"


def test_401_keeps_both_challenges_whole() -> None:
    message = parse_message(capture("kamailio_401_two_challenges.sip"))
    assert isinstance(message, Response)
    assert message.status_code == 401
    assert message.reason == "Unauthorized"
    challenges = message.headers.get_all("WWW-Authenticate")
    assert len(challenges) == 2
    assert "algorithm=SHA-256" in challenges[0]
    assert "algorithm=MD5" in challenges[1]
    assert top_via(message).rport == 50600


def test_200_record_route_set_in_order() -> None:
    message = parse_message(capture("kamailio_200_record_route.sip"))
    routes = [parse_name_address(value) for value in message.headers.get_all("Record-Route")]
    assert [route.uri.host for route in routes] == ["203.0.113.1", "10.0.0.1", "203.0.113.1"]
    assert all(route.uri.loose_route for route in routes)
    assert routes[1].uri.parameter("r2") == "on"
    assert top_via(message).received == "192.0.2.5"


def test_response_with_two_vias_in_one_line() -> None:
    message = parse_message(capture("ringing_multi_via.sip"))
    vias = message.headers.get_all("Via")
    assert len(vias) == 2
    assert top_via(message).host == "203.0.113.1"
    assert top_via(message).branch == "z9hG4bK4b43c2ff8.1"


def test_ipv6_via_in_407() -> None:
    message = parse_message(capture("proxy_407_challenge.sip"))
    via = top_via(message)
    assert via.host == "2001:db8::15"
    assert via.port == 40312
    assert via.transport == "TCP"
    assert via.response_address() == ("2001:db8::15", 40312)


def test_sloppy_capture_with_compact_names_folding_and_bare_lf() -> None:
    message = parse_message(capture("compact_sloppy.lf.sip"))
    assert isinstance(message, Request)
    assert message.uri == "sip:agent@192.0.2.5"
    assert message.headers.get("Subject") == "a folded subject line"
    assert message.headers.get("Supported") == "timer"
    assert cseq(message) == (1, "INVITE")
    assert [name for name, _ in message.headers.items()][:4] == ["Via", "Via", "From", "To"]
    assert from_header(message).display_name == 'Old "Gateway"'
    assert to_header(message).uri.user == "agent"
    assert top_via(message).branch == "z9hG4bKsl0ppy1"
    assert message.body.endswith(b"a=rtpmap:8 PCMA/8000\n")
    serialised = bytes(message)
    assert serialised.startswith(b"INVITE sip:agent@192.0.2.5 SIP/2.0\r\nVia: ")
    assert b"\r\nCall-ID: sloppy-call-1@198.51.100.9\r\n" in serialised


def test_whole_message_with_bare_lf() -> None:
    data = capture("asterisk_bye.sip").replace(b"\r\n", b"\n")
    message = parse_message(data)
    assert cseq(message) == (103, "BYE")
    assert bytes(message) == capture("asterisk_bye.sip")


def test_leading_blank_lines_are_skipped() -> None:
    message = parse_message(b"\r\n\r\n" + minimal_request())
    assert isinstance(message, Request)
    assert message.method == "OPTIONS"


def test_keepalive_detection() -> None:
    assert is_keepalive(b"\r\n\r\n")
    assert is_keepalive(b"\r\n")
    assert not is_keepalive(b"")
    assert not is_keepalive(minimal_request())
    with pytest.raises(MessageParseError):
        parse_message(b"\r\n\r\n")


def test_missing_content_length_on_udp_takes_rest_of_datagram() -> None:
    message = parse_message(minimal_request(body=b"hello"))
    assert message.body == b"hello"


def test_body_longer_than_content_length_is_truncated() -> None:
    message = parse_message(minimal_request("Content-Length: 3\r\n", b"hello"))
    assert message.body == b"hel"


def test_body_shorter_than_content_length_is_an_error() -> None:
    with pytest.raises(MessageParseError):
        parse_message(minimal_request("Content-Length: 10\r\n", b"hello"))


def test_conflicting_content_lengths_are_rejected() -> None:
    with pytest.raises(MessageParseError):
        parse_message(minimal_request("Content-Length: 1\r\nl: 2\r\n", b"ab"))


@pytest.mark.parametrize("value", ["-1", "abc", "1e3", "99999999999", "", "٣"])
def test_invalid_content_length_is_rejected(value: str) -> None:
    with pytest.raises(MessageParseError):
        parse_message(minimal_request(f"Content-Length: {value}\r\n"))


def test_datagram_over_64_kib_is_rejected() -> None:
    body = b"x" * (MAX_DATAGRAM_SIZE + 1)
    with pytest.raises(MessageParseError) as raised:
        parse_message(minimal_request(body=body))
    assert raised.value.status_code == 513


def test_too_many_headers_are_rejected() -> None:
    extra = "".join(f"X-Header-{n}: {n}\r\n" for n in range(MAX_HEADER_COUNT))
    with pytest.raises(MessageParseError):
        parse_message(minimal_request(extra))
    fits = "".join(f"X-Header-{n}: {n}\r\n" for n in range(MAX_HEADER_COUNT - 6))
    assert len(parse_message(minimal_request(fits)).headers) == MAX_HEADER_COUNT - 1


def test_header_line_over_8_kib_is_rejected() -> None:
    with pytest.raises(MessageParseError):
        parse_message(minimal_request(f"X-Long: {'a' * MAX_HEADER_LINE}\r\n"))


def test_folded_header_over_8_kib_is_rejected() -> None:
    folded = "X-Long: a\r\n" + "".join(f" {'b' * 1000}\r\n" for _ in range(9))
    with pytest.raises(MessageParseError):
        parse_message(minimal_request(folded))


def test_non_utf8_header_bytes_survive_round_trip() -> None:
    data = minimal_request().replace(b"CSeq", b"Subject: caf\xe9 \xff\r\nCSeq")
    message = parse_message(data)
    subject = message.headers.get("Subject")
    assert subject is not None
    assert subject.startswith("caf")
    assert bytes(message) == data.replace(b"\r\n\r\n", b"\r\nContent-Length: 0\r\n\r\n")


def test_utf8_display_name_and_reason() -> None:
    data = (
        "SIP/2.0 486 Занято\r\n"
        "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
        'From: "Иван Петров" <sip:ivan@example.com>;tag=1\r\n'
        "To: <sip:bob@example.com>;tag=2\r\n"
        "Call-ID: x\r\nCSeq: 7 INVITE\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    message = parse_message(data)
    assert isinstance(message, Response)
    assert message.reason == "Занято"
    assert from_header(message).display_name == "Иван Петров"
    assert bytes(message) == data


def test_response_without_reason_phrase() -> None:
    data = capture("twilio_options.sip").replace(
        b"OPTIONS sip:dialer@198.51.100.77:5060 SIP/2.0", b"SIP/2.0 200"
    )
    message = parse_message(data)
    assert isinstance(message, Response)
    assert message.reason == ""


@pytest.mark.parametrize(
    "start_line",
    [
        b"INVITE sip:bob@example.com SIP/3.0",
        b"INVITE sip:bob@example.com",
        b"INV ITE sip:bob@example.com SIP/2.0",
        b"INVITE bob SIP/2.0",
        b"SIP/2.0 2000 OK",
        b"SIP/2.0 099 Too Low",
        b"SIP/2.0 OK",
        b"HTTP/1.1 200 OK",
    ],
)
def test_invalid_start_lines(start_line: bytes) -> None:
    data = minimal_request().split(b"\r\n", 1)[1]
    with pytest.raises(MessageParseError):
        parse_message(start_line + b"\r\n" + data)


def test_wrong_version_answers_505() -> None:
    data = minimal_request().replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1)
    with pytest.raises(MessageParseError) as raised:
        parse_message(data)
    assert raised.value.status_code == 505


@pytest.mark.parametrize("missing", ["Via", "From", "To", "Call-ID", "CSeq"])
def test_missing_mandatory_header_is_rejected_unless_not_validating(missing: str) -> None:
    lines = [
        line for line in minimal_request().split(b"\r\n") if not line.startswith(missing.encode())
    ]
    data = b"\r\n".join(lines)
    with pytest.raises(MessageParseError):
        parse_message(data)
    assert missing not in parse_message(data, validate=False).headers


def test_cseq_method_must_match_request_method() -> None:
    data = minimal_request().replace(b"CSeq: 1 OPTIONS", b"CSeq: 1 INVITE")
    with pytest.raises(MessageParseError):
        parse_message(data)


@pytest.mark.parametrize("value", ["abc INVITE", "1", "1 INVITE extra", "4294967296 INVITE"])
def test_invalid_cseq(value: str) -> None:
    data = minimal_request().replace(b"CSeq: 1 OPTIONS", f"CSeq: {value}".encode())
    with pytest.raises(MessageParseError):
        parse_message(data)


def test_header_line_without_colon_is_rejected() -> None:
    with pytest.raises(MessageParseError):
        parse_message(minimal_request("NoColonHere\r\n"))


def test_continuation_before_first_header_is_rejected() -> None:
    data = b"OPTIONS sip:bob@example.com SIP/2.0\r\n continued: x\r\n\r\n"
    with pytest.raises(MessageParseError):
        parse_message(data, validate=False)


def test_bytes_sets_content_length_from_body() -> None:
    message = parse_message(minimal_request("Content-Length: 0\r\n"))
    message.body = b"v=0\r\n"
    data = bytes(message)
    assert b"\r\nContent-Length: 5\r\n\r\nv=0\r\n" in data
    assert data.count(b"Content-Length") == 1
    assert message.headers.get("Content-Length") == "0"  # serialising does not mutate


def test_bytes_adds_content_length_when_missing() -> None:
    request = Request("OPTIONS", "sip:bob@example.com", Headers([("Call-ID", "x")]))
    assert bytes(request) == (
        b"OPTIONS sip:bob@example.com SIP/2.0\r\nCall-ID: x\r\nContent-Length: 0\r\n\r\n"
    )


def test_build_response_copies_dialog_headers_and_adds_to_tag() -> None:
    request = parse_message(capture("asterisk_invite_sdp.sip"))
    assert isinstance(request, Request)
    ringing = build_response(request, 180, to_tag="t1")
    assert ringing.reason == "Ringing"
    assert to_header(ringing).tag == "t1"
    assert ringing.headers.get_all("Via") == request.headers.get_all("Via")
    assert call_id(ringing) == call_id(request)
    assert cseq(ringing) == (11211, "INVITE")
    trying = build_response(request, 100, to_tag="t1")
    assert to_header(trying).tag is None
    reparsed = parse_message(bytes(build_response(request, 486, to_tag="t2")))
    assert isinstance(reparsed, Response)
    assert reparsed.status_code == 486
    assert reparsed.reason == "Busy Here"


# --- Headers -------------------------------------------------------------------------------


def test_headers_are_case_insensitive_and_expand_compact_forms() -> None:
    headers = Headers([("v", "SIP/2.0/UDP a;branch=z9hG4bK1"), ("call-id", "x"), ("X-Custom", "1")])
    assert headers.items() == [
        ("Via", "SIP/2.0/UDP a;branch=z9hG4bK1"),
        ("Call-ID", "x"),
        ("X-Custom", "1"),
    ]
    assert headers.get("i") == "x"
    assert headers.get("CALL-ID") == "x"
    assert "via" in headers
    assert "x-custom" in headers
    assert "Route" not in headers
    assert headers.get("Route") is None
    assert headers.get_all("Route") == []


def test_get_of_a_list_header_is_its_first_element() -> None:
    message = parse_message(capture("ringing_multi_via.sip"))
    top = message.headers.get("Via")
    assert top == "SIP/2.0/UDP 203.0.113.1;branch=z9hG4bK4b43c2ff8.1"
    assert message.headers.get("Allow") is None
    headers = Headers([("Route", " , "), ("Route", "<sip:r2;lr>")])
    assert headers.get("Route") == "<sip:r2;lr>"
    assert headers.get("Subject") is None
    headers.add("Subject", "a, b")
    assert headers.get("Subject") == "a, b"


def test_headers_set_replaces_in_place_and_remove() -> None:
    headers = Headers([("Via", "a"), ("Route", "<sip:r1;lr>"), ("Via", "b"), ("To", "t")])
    headers.set("via", "c")
    assert headers.items() == [("Via", "c"), ("Route", "<sip:r1;lr>"), ("To", "t")]
    headers.set("Max-Forwards", "70")
    assert headers.items()[-1] == ("Max-Forwards", "70")
    headers.remove("ROUTE")
    assert "Route" not in headers
    headers.remove("Route")  # removing twice is fine
    assert len(headers) == 3


def test_headers_copy_is_independent() -> None:
    headers = Headers([("Via", "a")])
    copied = headers.copy()
    copied.add("Via", "b")
    assert headers.get_all("Via") == ["a"]
    assert copied.get_all("Via") == ["a", "b"]


def test_headers_reject_injection() -> None:
    headers = Headers()
    with pytest.raises(LocalProtocolError):
        headers.add("Subject", "hi\r\nVia: evil")
    with pytest.raises(LocalProtocolError):
        headers.add("Bad Name", "x")


def test_get_all_splits_list_headers_respecting_quotes_and_brackets() -> None:
    headers = Headers(
        [
            ("Contact", '"Smith, John" <sip:john@a.example;x=1,2>;q=0.7, <sip:j@b.example>'),
            ("Contact", "sip:k@c.example;expires=60"),
            ("Subject", "one, two"),
            ("WWW-Authenticate", 'Digest realm="a", nonce="b", qop="auth,auth-int"'),
            ("Date", "Sat, 13 Nov 2010 23:29:00 GMT"),
        ]
    )
    assert headers.get_all("m") == [
        '"Smith, John" <sip:john@a.example;x=1,2>;q=0.7',
        "<sip:j@b.example>",
        "sip:k@c.example;expires=60",
    ]
    assert headers.get_all("Subject") == ["one, two"]
    assert headers.get_all("WWW-Authenticate") == [
        'Digest realm="a", nonce="b", qop="auth,auth-int"'
    ]
    assert headers.get_all("Date") == ["Sat, 13 Nov 2010 23:29:00 GMT"]


def test_get_all_split_matches_joined_values_property() -> None:
    """Any list of name-addresses joined with commas (and odd spacing) splits back exactly."""
    rng = random.Random(20261126)
    names = ["Alice", "Smith, John", 'Quote \\" Mark', "<not a uri>", "a,b,,c", ""]
    for _ in range(300):
        values = []
        for _ in range(rng.randint(1, 6)):
            name = rng.choice(names)
            user = rng.choice(["bob", "x;y=1", "1001"])
            display = f'"{name}" ' if name else ""
            parameters = rng.choice(["", ";tag=1", ";q=0.5;expires=60", ';x="a,b"'])
            values.append(f"{display}<sip:{user}@example.com;lr>{parameters}")
        separators = [rng.choice([",", ", ", " ,\t", " , "]) for _ in values[1:]]
        joined = values[0] + "".join(
            sep + value for sep, value in zip(separators, values[1:], strict=True)
        )
        for header in ("Route", "Record-Route", "Contact", "Path"):
            assert Headers([(header, joined)]).get_all(header) == values
        assert Headers([("Subject", joined)]).get_all("Subject") == [joined.strip()]


# --- StreamFramer --------------------------------------------------------------------------


def test_stream_framer_many_messages_with_keepalives_in_random_chunks() -> None:
    messages = [capture(name) for name in ("asterisk_invite_sdp.sip", "sipp_register.sip")]
    stream = b"\r\n\r\n" + messages[0] + b"\r\n\r\n" + messages[1] + messages[0]
    rng = random.Random(7)
    for _ in range(50):
        framer = StreamFramer()
        received: list[Message] = []
        position = 0
        while position < len(stream):
            size = rng.randint(1, 300)
            received.extend(framer.feed(stream[position : position + size]))
            position += size
        assert [bytes(m) for m in received] == [messages[0], messages[1], messages[0]]
        assert framer.keepalives == 4


def test_stream_framer_waits_for_the_whole_body() -> None:
    data = capture("asterisk_invite_sdp.sip")
    framer = StreamFramer()
    assert framer.feed(data[:-1]) == []
    assert framer.buffered == len(data) - 1
    (message,) = framer.feed(data[-1:])
    assert message.body.endswith(b"a=sendrecv\r\n")


def test_stream_closed_before_content_length_bytes_arrived_is_an_error() -> None:
    data = minimal_request("Content-Length: 10\r\n", b"hello")
    framer = StreamFramer()
    assert framer.feed(data) == []
    with pytest.raises(MessageParseError):
        framer.end_of_stream()


def test_stream_closed_between_messages_is_fine() -> None:
    framer = StreamFramer()
    assert len(framer.feed(capture("sipp_register.sip") + b"\r\n")) == 1
    framer.end_of_stream()


def test_stream_framer_requires_content_length() -> None:
    framer = StreamFramer()
    with pytest.raises(MessageParseError):
        framer.feed(minimal_request())
    with pytest.raises(MessageParseError):
        framer.feed(capture("sipp_register.sip"))  # the stream stays broken


def test_stream_framer_rejects_huge_content_length_before_buffering() -> None:
    framer = StreamFramer()
    with pytest.raises(MessageParseError):
        framer.feed(minimal_request(f"Content-Length: {MAX_DATAGRAM_SIZE}\r\n"))


def test_stream_framer_rejects_endless_header_section() -> None:
    framer = StreamFramer()
    framer.feed(b"INVITE sip:bob@example.com SIP/2.0\r\n")

    def feed_headers_forever() -> None:
        for _ in range(MAX_DATAGRAM_SIZE // 16 + 1):
            framer.feed(b"X-Filler: 12345\r\n")

    with pytest.raises(MessageParseError):
        feed_headers_forever()


def test_stream_framer_rejects_garbage() -> None:
    framer = StreamFramer()
    with pytest.raises(MessageParseError):
        framer.feed(b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
