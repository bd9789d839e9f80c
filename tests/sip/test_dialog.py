"""Dialog identity, route sets (loose and strict), remote target and CSeq rules."""

from __future__ import annotations

from sip.dialog import Dialog, dialog_key_of_request, dialog_key_of_response
from sip.message import Request, Response, build_response, parse_message

VIA = "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKnew"


def invite(extra: str = "") -> Request:
    data = (
        "INVITE sip:bob@example.test SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKinv\r\n"
        "Max-Forwards: 70\r\n"
        'From: "Alice" <sip:alice@example.test>;tag=local1\r\n'
        "To: <sip:bob@example.test>\r\n"
        "Call-ID: dialog-call\r\n"
        "CSeq: 7 INVITE\r\n"
        "Contact: <sip:alice@192.0.2.10:5060>\r\n"
        f"{extra}"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


def ok_for(request: Request, record_route: str | None) -> Response:
    headers = [("Contact", "<sip:bob@198.51.100.7:5080;transport=udp>")]
    if record_route is not None:
        headers.append(("Record-Route", record_route))
    return build_response(request, 200, to_tag="remote1", headers=headers)


def test_client_dialog_reverses_record_route_and_targets_contact() -> None:
    request = invite()
    dialog = Dialog.as_client(request, ok_for(request, "<sip:p2.test;lr>, <sip:p1.test;lr>"))
    assert dialog.key == ("dialog-call", "local1", "remote1")
    assert dialog.key == dialog_key_of_response(ok_for(request, None))
    assert [str(route.uri) for route in dialog.route_set] == ["sip:p1.test;lr", "sip:p2.test;lr"]
    bye = dialog.create_request("BYE", via=VIA)
    assert bye.uri == "sip:bob@198.51.100.7:5080;transport=udp"
    assert bye.headers.get_all("Route") == ["<sip:p1.test;lr>", "<sip:p2.test;lr>"]
    assert bye.headers.get("CSeq") == "8 BYE"
    assert bye.headers.get("From") == '"Alice" <sip:alice@example.test>;tag=local1'
    assert bye.headers.get("To") == "<sip:bob@example.test>;tag=remote1"
    assert str(dialog.next_hop()) == "sip:p1.test;lr"
    ack = dialog.create_request("ACK", via=VIA, sequence=7)
    assert ack.headers.get("CSeq") == "7 ACK"
    assert dialog.create_request("INFO", via=VIA).headers.get("CSeq") == "9 INFO"


def test_strict_first_route_becomes_request_uri() -> None:
    request = invite()
    dialog = Dialog.as_client(request, ok_for(request, "<sip:loose.test;lr>, <sip:strict.test>"))
    bye = dialog.create_request("BYE", via=VIA)
    assert bye.uri == "sip:strict.test"
    assert bye.headers.get_all("Route") == [
        "<sip:loose.test;lr>",
        "<sip:bob@198.51.100.7:5080;transport=udp>",
    ]
    assert str(dialog.next_hop()) == "sip:strict.test"


def test_no_route_set_sends_to_the_remote_target() -> None:
    request = invite()
    dialog = Dialog.as_client(request, ok_for(request, None))
    bye = dialog.create_request("BYE", via=VIA)
    assert "Route" not in bye.headers
    assert dialog.next_hop().host == "198.51.100.7"


def test_server_dialog_keeps_record_route_order_and_checks_remote_cseq() -> None:
    request = invite("Record-Route: <sip:p1.test;lr>, <sip:p2.test;lr>\r\n")
    dialog = Dialog.as_server(request, "ours")
    assert dialog.key == ("dialog-call", "ours", "local1")
    assert [str(route.uri) for route in dialog.route_set] == ["sip:p1.test;lr", "sip:p2.test;lr"]
    assert dialog.remote_target.host == "192.0.2.10"
    bye = dialog.create_request("BYE", via=VIA)
    assert bye.headers.get("From") == "<sip:bob@example.test>;tag=ours"
    assert bye.headers.get("To") == '"Alice" <sip:alice@example.test>;tag=local1'
    assert bye.headers.get("CSeq") == "1 BYE"
    later = invite().headers.copy()
    later.set("CSeq", "8 INVITE")
    later.set("To", "<sip:bob@example.test>;tag=ours")
    reinvite = Request("INVITE", "sip:bob@example.test", later)
    assert dialog_key_of_request(reinvite) == dialog.key
    assert dialog.accept_remote_sequence(reinvite)
    assert not dialog.accept_remote_sequence(reinvite)


def test_target_refresh_moves_the_remote_target() -> None:
    request = invite()
    dialog = Dialog.as_client(request, ok_for(request, None))
    headers = request.headers.copy()
    headers.set("Contact", "<sip:bob@203.0.113.1:6000>")
    dialog.update_remote_target(Request("INVITE", "sip:x@example.test", headers))
    assert dialog.create_request("BYE", via=VIA).uri == "sip:bob@203.0.113.1:6000"


def test_request_without_to_tag_is_not_in_a_dialog() -> None:
    assert dialog_key_of_request(invite()) is None
