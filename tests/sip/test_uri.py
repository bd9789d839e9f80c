"""URIs, name-addresses and Via values (sip.uri)."""

from __future__ import annotations

import pytest

from sip.errors import MessageParseError
from sip.uri import (
    NameAddress,
    SipUri,
    Via,
    parse_name_address,
    parse_uri,
    parse_via,
)


def test_full_sip_uri() -> None:
    uri = parse_uri("sip:alice:secretword@atlanta.com:5061;transport=TCP;lr?subject=project&x=1")
    assert uri == SipUri(
        scheme="sip",
        user="alice",
        password="secretword",
        host="atlanta.com",
        port=5061,
        parameters=(("transport", "TCP"), ("lr", None)),
        headers=(("subject", "project"), ("x", "1")),
    )
    assert uri.transport == "tcp"
    assert uri.loose_route
    assert uri.parameter("TRANSPORT") == "TCP"
    assert uri.has_parameter("lr")
    assert uri.parameter("lr") is None
    assert uri.host_port == "atlanta.com:5061"
    assert str(uri) == "sip:alice:secretword@atlanta.com:5061;transport=TCP;lr?subject=project&x=1"


def test_telephone_subscriber_user_part() -> None:
    uri = parse_uri("sip:+1-212-555-1212:1234@gateway.com;user=phone")
    assert uri.user == "+1-212-555-1212"
    assert uri.password == "1234"
    assert uri.parameter("user") == "phone"


def test_sips_and_scheme_case() -> None:
    uri = parse_uri("SIPS:bob@biloxi.example.com")
    assert uri.scheme == "sips"
    assert uri.secure
    assert str(uri) == "sips:bob@biloxi.example.com"


def test_escaped_user_part_is_decoded_and_re_escaped() -> None:
    uri = parse_uri("sip:sip%3Auser%40example.com@company.com;other-param=summit")
    assert uri.user == "sip:user@example.com"
    assert str(uri) == "sip:sip%3Auser%40example.com@company.com;other-param=summit"
    assert parse_uri(str(uri)) == uri


def test_user_with_unicode_and_space_is_escaped() -> None:
    uri = SipUri(user="Иван Петров", host="example.com")
    text = str(uri)
    assert " " not in text
    assert text.isascii()
    assert parse_uri(text).user == "Иван Петров"


def test_user_part_may_contain_semicolon() -> None:
    uri = parse_uri("sip:alice;day=tuesday@atlanta.com")
    assert uri.user == "alice;day=tuesday"
    assert uri.host == "atlanta.com"
    assert uri.parameters == ()


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("sip:[2001:db8::10]", "2001:db8::10", None),
        ("sip:alice@[2001:db8::10]:5070;transport=tcp", "2001:db8::10", 5070),
        ("sip:[::1]:5060", "::1", 5060),
        ("sip:192.0.2.4", "192.0.2.4", None),
        ("sip:bob@host-name.example.com.:5080", "host-name.example.com.", 5080),
    ],
)
def test_hosts(text: str, host: str, port: int | None) -> None:
    uri = parse_uri(text)
    assert uri.host == host
    assert uri.port == port
    assert str(uri) == text


def test_tel_uri() -> None:
    uri = parse_uri("tel:+1-201-555-0123;phone-context=example.com")
    assert uri.scheme == "tel"
    assert uri.user == "+1-201-555-0123"
    assert uri.host == ""
    assert uri.parameter("phone-context") == "example.com"
    assert str(uri) == "tel:+1-201-555-0123;phone-context=example.com"


def test_with_and_without_parameter() -> None:
    uri = parse_uri("sip:bob@example.com;transport=udp")
    assert str(uri.with_parameter("transport", "tcp")) == "sip:bob@example.com;transport=tcp"
    assert str(uri.with_parameter("lr")) == "sip:bob@example.com;transport=udp;lr"
    assert str(uri.without_parameter("Transport")) == "sip:bob@example.com"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "http://example.com",
        "sip:",
        "sip:@example.com",
        "sip:bob@",
        "sip:bob@exa mple.com",
        "sip:bob@example.com:port",
        "sip:bob@example.com:70000",
        "sip:bob@[2001:db8::1",
        "sip:bob@[not-v6]",
        "sip:bob@[::1]x",
        "sip:bob@exa_mple..com",
        "sip:b%zzob@example.com",
        "sip:bob@example.com;=x",
        "sip:bob@example.com;a=",
        "sip:bob@example.com?novalue",
        "tel:",
        "sip:bob@<example.com>",
    ],
)
def test_invalid_uris(text: str) -> None:
    with pytest.raises(MessageParseError):
        parse_uri(text)


def test_name_address_with_quoted_display_name_and_escapes() -> None:
    address = parse_name_address(r'"Bob \"the\" Builder \\ Co" <sip:bob@biloxi.com>;tag=a48s')
    assert address.display_name == 'Bob "the" Builder \\ Co'
    assert address.uri.user == "bob"
    assert address.tag == "a48s"
    assert parse_name_address(str(address)) == address


def test_name_address_with_token_display_name() -> None:
    address = parse_name_address("Anonymous <sip:c8oqz84zk7z@privacy.org>;tag=hyh8")
    assert address.display_name == "Anonymous"
    assert address.tag == "hyh8"
    assert str(address) == '"Anonymous" <sip:c8oqz84zk7z@privacy.org>;tag=hyh8'


def test_bare_uri_parameters_belong_to_the_header() -> None:
    address = parse_name_address("sip:alice@atlanta.com;tag=88sja8x;transport=tcp")
    assert address.display_name is None
    assert address.uri == SipUri(user="alice", host="atlanta.com")
    assert address.parameters == (("tag", "88sja8x"), ("transport", "tcp"))
    assert address.tag == "88sja8x"
    assert str(address) == "<sip:alice@atlanta.com>;tag=88sja8x;transport=tcp"


def test_angle_bracket_uri_keeps_its_own_parameters() -> None:
    address = parse_name_address("<sip:alice@atlanta.com;transport=tcp>;tag=1")
    assert address.uri.transport == "tcp"
    assert address.parameters == (("tag", "1"),)


def test_contact_with_quoted_header_parameter() -> None:
    text = '<sip:1002@127.0.0.1:5061>;+sip.instance="<urn:uuid:0000>";expires=3600'
    address = parse_name_address(text)
    assert address.parameter("+sip.instance") == '"<urn:uuid:0000>"'
    assert address.parameter("expires") == "3600"
    assert str(address) == text


def test_sloppy_unquoted_instance_parameter_is_tolerated() -> None:
    address = parse_name_address("<sip:a@192.0.2.1>;+sip.instance=<urn:uuid:1234>;expires=60")
    assert address.parameter("+sip.instance") == "<urn:uuid:1234>"
    assert address.parameter("expires") == "60"


def test_with_tag_replaces_or_adds() -> None:
    address = parse_name_address("<sip:bob@biloxi.com>")
    tagged = address.with_tag("abc")
    assert tagged.tag == "abc"
    assert address.tag is None
    assert tagged.with_tag("def").parameters == (("tag", "def"),)
    assert NameAddress(None, SipUri(host="x.example")).with_tag("t").tag == "t"


@pytest.mark.parametrize(
    "text",
    [
        '"unterminated <sip:bob@biloxi.com>',
        '"Bob" sip:bob@biloxi.com',
        "<sip:bob@biloxi.com",
        "<sip:bob@biloxi.com> junk",
        "Bob <http://biloxi.com>",
        "sip:bob@biloxi.com?subject=x",
        "<sip:bob@biloxi.com>;tag=",
        "<sip:bob@biloxi.com>;=1",
    ],
)
def test_invalid_name_addresses(text: str) -> None:
    with pytest.raises(MessageParseError):
        parse_name_address(text)


def test_via_with_rport_received_and_branch() -> None:
    via = parse_via("SIP/2.0/UDP 192.0.2.5:5062;rport=40000;received=203.0.113.9;branch=z9hG4bKx")
    assert via.protocol == "SIP/2.0"
    assert via.transport == "UDP"
    assert via.host == "192.0.2.5"
    assert via.port == 5062
    assert via.branch == "z9hG4bKx"
    assert via.received == "203.0.113.9"
    assert via.rport == 40000
    assert via.rport_requested
    assert via.response_address() == ("203.0.113.9", 40000)


def test_via_rport_without_value() -> None:
    via = parse_via("SIP/2.0/UDP 192.0.2.5:5062;rport;branch=z9hG4bKx")
    assert via.rport is None
    assert via.rport_requested
    filled = via.with_received("203.0.113.9", 40000)
    assert str(filled) == (
        "SIP/2.0/UDP 192.0.2.5:5062;rport=40000;branch=z9hG4bKx;received=203.0.113.9"
    )
    assert filled.response_address() == ("203.0.113.9", 40000)


def test_via_without_rport_gets_received_only_when_address_differs() -> None:
    via = parse_via("SIP/2.0/UDP 192.0.2.5;branch=z9hG4bKx")
    assert via.with_received("192.0.2.5", 5060) == via
    assert via.with_received("198.51.100.1", 1234).received == "198.51.100.1"
    assert via.with_received("198.51.100.1", 1234).rport is None
    assert via.response_address() == ("192.0.2.5", 5060)


def test_via_maddr_wins_and_ipv6_and_spacing() -> None:
    via = parse_via("SIP / 2.0 / tcp   [2001:db8::9]:5070 ; maddr=224.2.0.1 ;branch=z9hG4bK1")
    assert via.transport == "TCP"
    assert via.host == "2001:db8::9"
    assert via.port == 5070
    assert via.maddr == "224.2.0.1"
    assert via.response_address() == ("224.2.0.1", 5070)
    assert str(via) == "SIP/2.0/TCP [2001:db8::9]:5070;maddr=224.2.0.1;branch=z9hG4bK1"
    assert parse_via(str(via)) == via


def test_via_round_trip_from_constructor() -> None:
    via = Via("SIP/2.0", "TLS", "::1", 5061, (("branch", "z9hG4bKabc"), ("rport", None)))
    assert str(via) == "SIP/2.0/TLS [::1]:5061;branch=z9hG4bKabc;rport"
    assert parse_via(str(via)) == via


@pytest.mark.parametrize(
    "text",
    [
        "",
        "SIP/2.0/UDP",
        "SIP/2.0 192.0.2.1",
        "SIP/2.0/UDP 192.0.2.1:abc",
        "SIP/2.0/UDP [::1",
        "SIP/2.0/UDP 192.0.2.1;branch=",
        "SIP/2.0/UDP 192.0.2.1;branch",
        "SIP/2.0/UDP bad host",
        "SIP/2.0/UDP a.example;branch=z9hG4bK1, SIP/2.0/UDP b.example;branch=z9hG4bK2",
        'SIP/2.0/UDP a.example;branch="z9hG4bK1',
        "SIP/2.0/UDP a.example;branch=z9hG4bK1;received=1.2.3.4 5",
    ],
)
def test_invalid_vias(text: str) -> None:
    with pytest.raises(MessageParseError):
        parse_via(text)
