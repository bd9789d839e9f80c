"""SIP messages (RFC 3261 §7): headers, requests, responses, parsing and stream framing.

Sans-I/O: :func:`parse_message` takes one datagram, :class:`StreamFramer` takes the bytes of a
TCP/TLS connection in pieces of any size. Both raise :class:`sip.errors.MessageParseError` (and
nothing else) on bad input, and both enforce size limits before doing work proportional to the
input.

Header bytes that are not UTF-8 are decoded with ``surrogateescape`` so that serialising gives
the original bytes back.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from sip.errors import LocalProtocolError, MessageParseError
from sip.uri import NameAddress, Via, parse_name_address, parse_via, split_quoted

MAX_DATAGRAM_SIZE = 65536
"""Largest message accepted from one datagram (and largest message on a stream)."""
MAX_HEADER_COUNT = 200
"""Most header fields accepted in one message."""
MAX_HEADER_LINE = 8192
"""Longest header field accepted (after unfolding) and longest start line."""

_COMPACT_FORMS = {
    "v": "Via",
    "f": "From",
    "t": "To",
    "i": "Call-ID",
    "m": "Contact",
    "l": "Content-Length",
    "c": "Content-Type",
    "k": "Supported",
    "s": "Subject",
    "e": "Content-Encoding",
    "o": "Event",
    "u": "Allow-Events",
    "r": "Refer-To",
    "b": "Referred-By",
    "x": "Session-Expires",
    "a": "Accept-Contact",
    "j": "Reject-Contact",
    "d": "Request-Disposition",
    "y": "Identity",
}

_KNOWN_NAMES = (
    "Accept",
    "Accept-Contact",
    "Accept-Encoding",
    "Accept-Language",
    "Alert-Info",
    "Allow",
    "Allow-Events",
    "Authentication-Info",
    "Authorization",
    "Call-ID",
    "Call-Info",
    "Contact",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Content-Length",
    "Content-Type",
    "CSeq",
    "Date",
    "Diversion",
    "Error-Info",
    "Event",
    "Expires",
    "From",
    "History-Info",
    "Identity",
    "In-Reply-To",
    "Max-Forwards",
    "Min-Expires",
    "Min-SE",
    "MIME-Version",
    "Organization",
    "P-Asserted-Identity",
    "P-Preferred-Identity",
    "Path",
    "Priority",
    "Privacy",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Proxy-Require",
    "RAck",
    "Reason",
    "Record-Route",
    "Refer-To",
    "Referred-By",
    "Reject-Contact",
    "Remote-Party-ID",
    "Reply-To",
    "Request-Disposition",
    "Require",
    "Retry-After",
    "Route",
    "RSeq",
    "Security-Client",
    "Security-Server",
    "Security-Verify",
    "Server",
    "Service-Route",
    "Session-Expires",
    "SIP-ETag",
    "SIP-If-Match",
    "Subject",
    "Subscription-State",
    "Supported",
    "Timestamp",
    "To",
    "Unsupported",
    "User-Agent",
    "Via",
    "Warning",
    "WWW-Authenticate",
)
_CANONICAL_NAMES = {name.lower(): name for name in _KNOWN_NAMES}

_LIST_HEADERS = frozenset(
    name.lower()
    for name in (
        "Accept",
        "Accept-Contact",
        "Accept-Encoding",
        "Accept-Language",
        "Alert-Info",
        "Allow",
        "Allow-Events",
        "Call-Info",
        "Contact",
        "Content-Encoding",
        "Content-Language",
        "Diversion",
        "Error-Info",
        "History-Info",
        "In-Reply-To",
        "P-Asserted-Identity",
        "P-Preferred-Identity",
        "Path",
        "Proxy-Require",
        "Reason",
        "Record-Route",
        "Reject-Contact",
        "Require",
        "Route",
        "Security-Client",
        "Security-Server",
        "Security-Verify",
        "Service-Route",
        "Supported",
        "Unsupported",
        "Via",
        "Warning",
    )
)
"""Headers whose values are comma-separated lists (RFC 3261 §7.3.1)."""

_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_NEWLINE = re.compile(rb"\r?\n")
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_URI_SHAPE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:\S+")

REASON_PHRASES: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    421: "Extension Required",
    423: "Interval Too Brief",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    493: "Undecipherable",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}
"""Default reason phrases of RFC 3261 §21 (and a few extensions)."""


def canonical_name(name: str) -> str:
    """The canonical spelling of a header name (compact forms expanded)."""
    stripped = name.strip()
    lowered = stripped.lower()
    expanded = _COMPACT_FORMS.get(lowered)
    if expanded is not None:
        return expanded
    return _CANONICAL_NAMES.get(lowered, stripped)


def split_list_value(value: str) -> list[str]:
    """Split a comma-separated header value at top level (outside quotes and ``<...>``)."""
    return [part.strip() for part in split_quoted(value, ",", angle_brackets=True) if part.strip()]


class Headers:
    """Ordered, case-insensitive multimap of header fields.

    Names are stored canonically (``i`` becomes ``Call-ID``, ``call-id`` becomes ``Call-ID``).
    Each :meth:`add` is one header line on the wire; :meth:`get_all` splits comma-separated
    list headers (Via, Route, Contact...) but never the authentication headers.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = []
        for name, value in items:
            self.add(name, value)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return self._items == other._items

    __hash__ = None  # type: ignore[assignment]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(list(self._items))

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        wanted = canonical_name(name).lower()
        return any(key.lower() == wanted for key, _ in self._items)

    def get(self, name: str) -> str | None:
        """The first value of ``name``, or ``None``.

        For list headers this is the first element (``get("Via")`` is the top Via even when
        a line holds several); other headers give their first line whole.
        """
        wanted = canonical_name(name).lower()
        for key, value in self._items:
            if key.lower() == wanted:
                if wanted in _LIST_HEADERS:
                    elements = split_list_value(value)
                    if not elements:
                        continue
                    return elements[0]
                return value
        return None

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name`` in order; list headers are split at top-level commas."""
        wanted = canonical_name(name).lower()
        values = [value for key, value in self._items if key.lower() == wanted]
        if wanted not in _LIST_HEADERS:
            return values
        result: list[str] = []
        for value in values:
            result.extend(split_list_value(value))
        return result

    def add(self, name: str, value: str) -> None:
        """Append one header line."""
        canonical = canonical_name(name)
        if not _TOKEN.fullmatch(canonical):
            raise LocalProtocolError(f"invalid header name {name!r}")
        text = str(value).strip()
        if "\r" in text or "\n" in text:
            raise LocalProtocolError(f"line break in value of header {canonical}")
        self._items.append((canonical, text))

    def set(self, name: str, value: str) -> None:
        """Replace every ``name`` line by one line with ``value`` (at the first one's place)."""
        canonical = canonical_name(name)
        wanted = canonical.lower()
        index = next(
            (i for i, (key, _) in enumerate(self._items) if key.lower() == wanted),
            len(self._items),
        )
        self.remove(name)
        self.add(name, value)
        self._items.insert(index, self._items.pop())

    def remove(self, name: str) -> None:
        """Remove every ``name`` line (no error if there is none)."""
        wanted = canonical_name(name).lower()
        self._items = [(key, value) for key, value in self._items if key.lower() != wanted]

    def items(self) -> list[tuple[str, str]]:
        """Every ``(name, value)`` line in order."""
        return list(self._items)

    def copy(self) -> Headers:
        """An independent copy."""
        copied = Headers()
        copied._items = list(self._items)
        return copied


def _serialise(start_line: str, headers: Headers, body: bytes) -> bytes:
    lines = [start_line]
    length_written = False
    for name, value in headers.items():
        if name == "Content-Length":
            if length_written:
                continue
            value = str(len(body))
            length_written = True
        lines.append(f"{name}: {value}")
    if not length_written:
        lines.append(f"Content-Length: {len(body)}")
    head = "\r\n".join(lines) + "\r\n\r\n"
    return head.encode("utf-8", "surrogateescape") + body


@dataclass
class Request:
    """A SIP request. ``uri`` is the Request-URI as text (parse it with ``sip.uri.parse_uri``)."""

    method: str
    uri: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    def __bytes__(self) -> bytes:
        """Wire form; Content-Length is set from the body."""
        return _serialise(f"{self.method} {self.uri} SIP/2.0", self.headers, self.body)


@dataclass
class Response:
    """A SIP response."""

    status_code: int
    reason: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    def __bytes__(self) -> bytes:
        """Wire form; Content-Length is set from the body."""
        return _serialise(f"SIP/2.0 {self.status_code} {self.reason}", self.headers, self.body)


Message = Request | Response


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _parse_start_line(line: str) -> tuple[str, str, str] | tuple[int, str]:
    if len(line) > MAX_HEADER_LINE:
        raise MessageParseError("start line too long", status_code=414)
    if "\r" in line or "\x00" in line:
        raise MessageParseError("control character in start line")
    if line[:4].upper() == "SIP/":
        parts = line.split(None, 2)
        if len(parts) < 2 or parts[0].upper() != "SIP/2.0":
            raise MessageParseError(f"invalid status line {line[:80]!r}")
        code_text = parts[1]
        if len(code_text) != 3 or not code_text.isascii() or not code_text.isdigit():
            raise MessageParseError(f"invalid status code in {line[:80]!r}")
        code = int(code_text)
        if not 100 <= code <= 699:
            raise MessageParseError(f"status code out of range in {line[:80]!r}")
        reason = parts[2].strip() if len(parts) == 3 else ""
        return code, reason
    parts = line.split()
    if len(parts) != 3:
        raise MessageParseError(f"invalid request line {line[:80]!r}")
    method, uri, version = parts
    if not _TOKEN.fullmatch(method):
        raise MessageParseError(f"invalid method in {line[:80]!r}")
    if version.upper() != "SIP/2.0":
        raise MessageParseError(f"unsupported version in {line[:80]!r}", status_code=505)
    if not _URI_SHAPE.fullmatch(uri):
        raise MessageParseError(f"invalid Request-URI in {line[:80]!r}")
    return method, uri, version


def _parse_header_lines(lines: list[str]) -> Headers:
    unfolded: list[str] = []
    for line in lines:
        if line[:1] in (" ", "\t"):
            if not unfolded:
                raise MessageParseError("continuation line before any header")
            unfolded[-1] = unfolded[-1].rstrip() + " " + line.strip()
        else:
            unfolded.append(line)
        if len(unfolded[-1]) > MAX_HEADER_LINE:
            raise MessageParseError("header line too long")
        if len(unfolded) > MAX_HEADER_COUNT:
            raise MessageParseError("too many header lines")
    headers = Headers()
    for line in unfolded:
        name, colon, value = line.partition(":")
        name = name.strip()
        if not colon or not _TOKEN.fullmatch(name):
            raise MessageParseError(f"invalid header line {line[:80]!r}")
        if "\x00" in value or "\r" in value:
            raise MessageParseError(f"invalid character in header {name}")
        headers.add(name, value)
    return headers


def _content_length(headers: Headers) -> int | None:
    values = headers.get_all("Content-Length")
    if not values:
        return None
    lengths = set()
    for value in values:
        text = value.strip()
        if not text.isascii() or not text.isdigit() or len(text) > 10:
            raise MessageParseError(f"invalid Content-Length {value[:40]!r}")
        lengths.add(int(text))
    if len(lengths) > 1:
        raise MessageParseError("conflicting Content-Length headers")
    return lengths.pop()


def _split_head(head: bytes) -> tuple[str, list[str]]:
    lines = _NEWLINE.split(head)
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise MessageParseError("empty message")
    if len(lines) > MAX_HEADER_COUNT * 4:
        raise MessageParseError("too many header lines")
    for line in lines:
        if len(line) > MAX_HEADER_LINE:
            raise MessageParseError("header line too long")
    return _decode(lines[0]), [_decode(line) for line in lines[1:]]


def _build(head: bytes, body: bytes, *, validate: bool) -> Message:
    start_line, header_lines = _split_head(head)
    start = _parse_start_line(start_line)
    headers = _parse_header_lines(header_lines)
    message: Message
    if len(start) == 3:
        message = Request(start[0], start[1], headers, body)
    else:
        message = Response(start[0], start[1], headers, body)
    if validate:
        validate_message(message)
    return message


def _strip_leading_newlines(data: bytes) -> bytes:
    index = 0
    while index < len(data) and data[index] in b"\r\n":
        index += 1
    return data[index:]


def is_keepalive(data: bytes) -> bool:
    """Whether a datagram is only CR/LF keep-alive bytes (RFC 5626 ping/pong), not a message."""
    return bool(data) and not data.strip(b"\r\n")


def parse_message(data: bytes, *, validate: bool = True) -> Message:
    """Parse one datagram.

    Leading blank lines are skipped; CRLF or bare LF line ends; folded header lines are joined.
    Without Content-Length the body is the rest of the datagram; with it, a shorter body is an
    error and extra bytes are ignored (RFC 3261 §18.3).

    With ``validate`` (the default) the headers every message needs (Via, From, To, Call-ID,
    CSeq with a method matching the request) must be present and well formed.
    """
    if len(data) > MAX_DATAGRAM_SIZE:
        raise MessageParseError("message too large", status_code=513)
    data = _strip_leading_newlines(data)
    if not data:
        raise MessageParseError("empty message")
    match = _HEAD_END.search(data)
    if match is None:
        head, body = data, b""
    else:
        head, body = data[: match.start()], data[match.end() :]
    message = _build(head, b"", validate=validate)
    length = _content_length(message.headers)
    if length is not None:
        if length > len(body):
            raise MessageParseError("body shorter than Content-Length")
        body = body[:length]
    message.body = body
    return message


def validate_message(message: Message) -> None:
    """Check the mandatory headers of RFC 3261 §8.1.1 are present and parse; raise otherwise."""
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        if name not in message.headers:
            raise MessageParseError(f"missing {name} header")
    if not (call_id(message)):
        raise MessageParseError("empty Call-ID")
    _, method = cseq(message)
    if isinstance(message, Request) and method != message.method:
        raise MessageParseError("CSeq method does not match the request method")
    top_via(message)
    from_header(message)
    to_header(message)


class StreamFramer:
    """Cut a TCP/TLS byte stream into messages (RFC 3261 §18.3).

    ``feed`` returns the complete messages so far. CRLF keep-alives between messages are
    ignored (and counted in ``keepalives``). Content-Length is mandatory. After a
    :class:`MessageParseError` the stream cannot be resynchronised: close the connection.
    """

    def __init__(self, *, max_message_size: int = MAX_DATAGRAM_SIZE, validate: bool = True) -> None:
        self._buffer = bytearray()
        self._scanned = 0
        self._head_end: int | None = None
        self._body_length = 0
        self._pending: Message | None = None
        self._failed: MessageParseError | None = None
        self._max_message_size = max_message_size
        self._validate = validate
        self.keepalives = 0

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a returned message."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Message]:
        """Add bytes from the connection; return the messages they complete."""
        if self._failed is not None:
            raise self._failed
        self._buffer += data
        messages: list[Message] = []
        try:
            while True:
                message = self._next_message()
                if message is None:
                    break
                messages.append(message)
        except MessageParseError as error:
            self._failed = error
            raise
        return messages

    def end_of_stream(self) -> None:
        """The peer closed the connection: raise if it left a partial message behind.

        A Content-Length larger than what arrived is only detectable here on a stream.
        """
        if self._failed is not None:
            raise self._failed
        self._skip_keepalives()
        if self._buffer:
            self._failed = MessageParseError(
                f"connection closed inside a message ({len(self._buffer)} bytes pending)"
            )
            raise self._failed

    def _next_message(self) -> Message | None:
        if self._head_end is None:
            self._skip_keepalives()
            match = _HEAD_END.search(self._buffer, max(0, self._scanned - 3))
            if match is None:
                self._scanned = len(self._buffer)
                if len(self._buffer) > self._max_message_size:
                    raise MessageParseError("header section too large", status_code=513)
                return None
            head = bytes(self._buffer[: match.start()])
            self._head_end = match.end()
            if self._head_end > self._max_message_size:
                raise MessageParseError("header section too large", status_code=513)
            message = _build(head, b"", validate=self._validate)
            length = _content_length(message.headers)
            if length is None:
                raise MessageParseError("missing Content-Length on a stream transport")
            if self._head_end + length > self._max_message_size:
                raise MessageParseError("message too large", status_code=513)
            self._pending = message
            self._body_length = length
        end = self._head_end + self._body_length
        if len(self._buffer) < end:
            return None
        result = self._pending
        assert result is not None
        result.body = bytes(self._buffer[self._head_end : end])
        del self._buffer[:end]
        self._head_end = None
        self._scanned = 0
        self._pending = None
        return result

    def _skip_keepalives(self) -> None:
        index = 0
        while index < len(self._buffer) and self._buffer[index] in b"\r\n":
            index += 1
        if index:
            self.keepalives += self._buffer[:index].count(b"\n")
            del self._buffer[:index]
            self._scanned = 0


def call_id(message: Message) -> str:
    """The Call-ID value; raises :class:`MessageParseError` when missing."""
    value = message.headers.get("Call-ID")
    if value is None or not value:
        raise MessageParseError("missing Call-ID header")
    return value


def cseq(message: Message) -> tuple[int, str]:
    """``(sequence number, method)`` from CSeq; raises :class:`MessageParseError` if invalid."""
    value = message.headers.get("CSeq")
    if value is None:
        raise MessageParseError("missing CSeq header")
    parts = value.split()
    if len(parts) != 2 or not parts[0].isascii() or not parts[0].isdigit():
        raise MessageParseError(f"invalid CSeq {value[:40]!r}")
    number = int(parts[0]) if len(parts[0]) <= 10 else 2**32
    if number >= 2**31:
        raise MessageParseError(f"CSeq number out of range in {value[:40]!r}")
    if not _TOKEN.fullmatch(parts[1]):
        raise MessageParseError(f"invalid CSeq method in {value[:40]!r}")
    return number, parts[1]


def top_via(message: Message) -> Via:
    """The first Via value; raises :class:`MessageParseError` when missing or invalid."""
    values = message.headers.get_all("Via")
    if not values:
        raise MessageParseError("missing Via header")
    return parse_via(values[0])


def from_header(message: Message) -> NameAddress:
    """The From header as a :class:`NameAddress`."""
    value = message.headers.get("From")
    if value is None:
        raise MessageParseError("missing From header")
    return parse_name_address(value)


def to_header(message: Message) -> NameAddress:
    """The To header as a :class:`NameAddress`."""
    value = message.headers.get("To")
    if value is None:
        raise MessageParseError("missing To header")
    return parse_name_address(value)


def build_response(
    request: Request,
    status_code: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> Response:
    """A response to ``request`` per RFC 3261 §8.2.6.

    Via (all values), From, To, Call-ID and CSeq are copied; ``to_tag`` is added to To when
    given and To has no tag yet (never for 100 Trying); ``headers`` are appended.
    """
    response_headers = Headers()
    for name, value in request.headers.items():
        if name in ("Via", "From", "Call-ID", "CSeq"):
            response_headers.add(name, value)
        elif name == "To":
            if to_tag is not None and status_code != 100:
                address = parse_name_address(value)
                if address.tag is None:
                    value = f"{value};tag={to_tag}"
            response_headers.add(name, value)
        elif (name == "Record-Route" and 100 < status_code < 300) or (
            name == "Timestamp" and status_code == 100
        ):
            response_headers.add(name, value)
    for name, value in headers:
        response_headers.add(name, value)
    phrase = reason if reason is not None else REASON_PHRASES.get(status_code, "Unknown")
    return Response(status_code, phrase, response_headers, body)
