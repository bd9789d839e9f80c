"""SIP dialogs (RFC 3261 §12): identity, route set, remote target, CSeq numbering.

A dialog is identified by Call-ID, local tag and remote tag. The UAC builds it from its request
and the 2xx (route set = Record-Route of the response, reversed); the UAS from the request
(Record-Route in order). Requests inside it follow §12.2.1.1: with a loose-routing first hop
(``;lr``) the Request-URI is the remote target and the route set goes into Route headers; with a
strict router the Request-URI is that router and the remote target becomes the last Route.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sip.errors import MessageParseError
from sip.message import Headers, Request, Response
from sip.uri import NameAddress, SipUri, parse_name_address

DialogKey = tuple[str, str, str]
"""(Call-ID, local tag, remote tag)."""


def dialog_key_of_request(request: Request) -> DialogKey | None:
    """The key of the dialog (ours is the To tag) an incoming request belongs to, or None
    when the request carries no To tag (it is not a mid-dialog request)."""
    to_address = parse_name_address(request.headers.get("To") or "")
    from_address = parse_name_address(request.headers.get("From") or "")
    if to_address.tag is None:
        return None
    return request.headers.get("Call-ID") or "", to_address.tag, from_address.tag or ""


def dialog_key_of_response(response: Response) -> DialogKey:
    """The key of the dialog (ours is the From tag) a response to our request belongs to."""
    to_address = parse_name_address(response.headers.get("To") or "")
    from_address = parse_name_address(response.headers.get("From") or "")
    return response.headers.get("Call-ID") or "", from_address.tag or "", to_address.tag or ""


def _contact_uri(headers: Headers) -> SipUri:
    values = headers.get_all("Contact")
    if not values:
        raise MessageParseError("a dialog-creating message needs a Contact")
    return parse_name_address(values[0]).uri


@dataclass
class Dialog:
    """The state of one dialog, from our side."""

    call_id: str
    local_tag: str
    remote_tag: str
    local_address: NameAddress
    remote_address: NameAddress
    remote_target: SipUri
    route_set: list[NameAddress] = field(default_factory=list)
    local_sequence: int = 0
    remote_sequence: int | None = None

    @property
    def key(self) -> DialogKey:
        """(Call-ID, local tag, remote tag)."""
        return self.call_id, self.local_tag, self.remote_tag

    @classmethod
    def as_client(
        cls, request: Request, response: Response, default_target: SipUri | None = None
    ) -> Dialog:
        """The dialog our request (INVITE) created when ``response`` (2xx) arrived.

        ``default_target`` stands in for a missing Contact (a broken far end); without it a
        2xx without Contact raises ``MessageParseError``.
        """
        from_address = parse_name_address(request.headers.get("From") or "")
        to_address = parse_name_address(response.headers.get("To") or "")
        routes = [parse_name_address(v) for v in response.headers.get_all("Record-Route")]
        routes.reverse()
        sequence = int((request.headers.get("CSeq") or "1").split()[0])
        return cls(
            call_id=request.headers.get("Call-ID") or "",
            local_tag=from_address.tag or "",
            remote_tag=to_address.tag or "",
            local_address=from_address.without_parameter("tag"),
            remote_address=to_address.without_parameter("tag"),
            remote_target=(
                default_target
                if default_target is not None and not response.headers.get_all("Contact")
                else _contact_uri(response.headers)
            ),
            route_set=routes,
            local_sequence=sequence,
        )

    @classmethod
    def as_server(cls, request: Request, local_tag: str) -> Dialog:
        """The dialog we create by answering ``request`` with our tag ``local_tag``."""
        from_address = parse_name_address(request.headers.get("From") or "")
        to_address = parse_name_address(request.headers.get("To") or "")
        routes = [parse_name_address(v) for v in request.headers.get_all("Record-Route")]
        sequence = int((request.headers.get("CSeq") or "1").split()[0])
        return cls(
            call_id=request.headers.get("Call-ID") or "",
            local_tag=local_tag,
            remote_tag=from_address.tag or "",
            local_address=to_address.without_parameter("tag"),
            remote_address=from_address.without_parameter("tag"),
            remote_target=_contact_uri(request.headers),
            route_set=routes,
            remote_sequence=sequence,
        )

    def accept_remote_sequence(self, request: Request) -> bool:
        """Record the CSeq of a new mid-dialog request; False when it is out of order (500)."""
        number = int((request.headers.get("CSeq") or "0").split()[0])
        if self.remote_sequence is not None and number <= self.remote_sequence:
            return False
        self.remote_sequence = number
        return True

    def update_remote_target(self, message: Request | Response) -> None:
        """A target refresh (re-INVITE, UPDATE or its 2xx) may move the remote target."""
        if message.headers.get_all("Contact"):
            self.remote_target = _contact_uri(message.headers)

    def next_hop(self) -> SipUri:
        """The URI requests of this dialog are sent to (before any outbound proxy)."""
        if self.route_set:
            return self.route_set[0].uri
        return self.remote_target

    def create_request(
        self,
        method: str,
        *,
        via: str,
        sequence: int | None = None,
        headers: tuple[tuple[str, str], ...] = (),
        body: bytes = b"",
    ) -> Request:
        """A request inside this dialog (§12.2.1.1).

        ``sequence`` is the CSeq number: ACK and CANCEL reuse their INVITE's, every other request
        takes the next local number (pass None).
        """
        if sequence is None:
            self.local_sequence += 1
            sequence = self.local_sequence
        request_uri, routes = self._request_uri_and_routes()
        message_headers = Headers()
        message_headers.add("Via", via)
        message_headers.add("Max-Forwards", "70")
        for route in routes:
            message_headers.add("Route", route)
        message_headers.add("From", str(self.local_address.with_tag(self.local_tag)))
        message_headers.add("To", str(self.remote_address.with_tag(self.remote_tag)))
        message_headers.add("Call-ID", self.call_id)
        message_headers.add("CSeq", f"{sequence} {method}")
        for name, value in headers:
            message_headers.add(name, value)
        return Request(method, str(request_uri), message_headers, body)

    def _request_uri_and_routes(self) -> tuple[SipUri, list[str]]:
        if not self.route_set:
            return self.remote_target, []
        first = self.route_set[0]
        if first.uri.loose_route:
            return self.remote_target, [str(route) for route in self.route_set]
        strict_uri = first.uri.without_parameter("method")
        strict_uri = SipUri(
            scheme=strict_uri.scheme,
            user=strict_uri.user,
            password=strict_uri.password,
            host=strict_uri.host,
            port=strict_uri.port,
            parameters=strict_uri.parameters,
        )
        routes = [str(route) for route in self.route_set[1:]]
        routes.append(f"<{self.remote_target}>")
        return strict_uri, routes
