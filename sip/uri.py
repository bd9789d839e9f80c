"""SIP/SIPS/tel URIs, name-addresses (From, To, Contact, Route...) and Via values.

All parsers raise :class:`sip.errors.MessageParseError` on malformed input.

Conventions:

- ``host`` never carries IPv6 brackets (``"::1"``); ``__str__`` adds them back.
- The user and password of a URI are stored unescaped (``%40`` becomes ``@``) and escaped again
  by ``__str__``; parameter and header values are stored exactly as written (quoted values keep
  their quotes).
- Parameter names keep their spelling; lookups by name are case-insensitive.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace

from sip.errors import MessageParseError

Parameters = tuple[tuple[str, str | None], ...]
"""``;name=value`` pairs in order; a flag parameter such as ``lr`` has the value ``None``."""

_SCHEMES = ("sip", "sips", "tel")
_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9\-_]*[A-Za-z0-9_])?"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")
_UNRESERVED = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()")
_USER_SAFE = _UNRESERVED | frozenset("&=+$,;?/")
_PASSWORD_SAFE = _UNRESERVED | frozenset("&=+$,")
_TEL_SAFE = _UNRESERVED | frozenset("&=+$,?/:[]")
_MAX_LENGTH = 8192
_NOT_IN_TOKEN_VALUE = frozenset(' \t\r\n\x00,;"')


def unescape(text: str) -> str:
    """Decode ``%XX`` escapes (UTF-8, undecodable bytes kept as surrogates)."""
    if "%" not in text:
        return text
    raw = bytearray()
    index = 0
    encoded = text.encode("utf-8", "surrogateescape")
    while index < len(encoded):
        byte = encoded[index]
        if byte == 0x25:  # '%'
            pair = encoded[index + 1 : index + 3]
            if len(pair) != 2 or not all(c in b"0123456789abcdefABCDEF" for c in pair):
                raise MessageParseError(f"invalid escape in {text!r}")
            raw.append(int(pair, 16))
            index += 3
        else:
            raw.append(byte)
            index += 1
    return raw.decode("utf-8", "surrogateescape")


def escape(text: str, safe: frozenset[str]) -> str:
    """Percent-escape every character of ``text`` not in ``safe``."""
    if all(character in safe for character in text):
        return text
    pieces: list[str] = []
    for character in text:
        if character in safe:
            pieces.append(character)
        else:
            pieces.extend(f"%{byte:02X}" for byte in character.encode("utf-8", "surrogateescape"))
    return "".join(pieces)


def split_quoted(text: str, separator: str, *, angle_brackets: bool = False) -> list[str]:
    """Split ``text`` at ``separator`` outside quoted strings (and ``<...>`` if asked)."""
    parts: list[str] = []
    start = 0
    in_quotes = False
    in_angle = False
    index = 0
    while index < len(text):
        character = text[index]
        if in_quotes:
            if character == "\\":
                index += 1
            elif character == '"':
                in_quotes = False
        elif character == '"':
            in_quotes = True
        elif angle_brackets and character == "<":
            in_angle = True
        elif angle_brackets and character == ">":
            in_angle = False
        elif character == separator and not in_angle:
            parts.append(text[start:index])
            start = index + 1
        index += 1
    if in_quotes:
        raise MessageParseError(f"unterminated quoted string in {text!r}")
    parts.append(text[start:])
    return parts


def parse_parameters(text: str) -> Parameters:
    """Parse ``;a=1;b;c="x;y"`` (the leading ``;`` optional) into pairs."""
    if not text.strip():
        return ()
    pieces = split_quoted(text, ";")
    if not pieces[0].strip():
        pieces = pieces[1:]
    parameters: list[tuple[str, str | None]] = []
    for piece in pieces:
        name, equals, value = piece.partition("=")
        name = name.strip()
        if not _TOKEN.fullmatch(name):
            raise MessageParseError(f"invalid parameter name {name!r}")
        if equals:
            value = value.strip()
            if not value:
                raise MessageParseError(f"empty value for parameter {name!r}")
            if value.startswith('"'):
                if len(value) < 2 or not value.endswith('"') or "\r" in value or "\n" in value:
                    raise MessageParseError(f"invalid quoted value for parameter {name!r}")
            elif any(character in _NOT_IN_TOKEN_VALUE for character in value):
                raise MessageParseError(f"invalid value for parameter {name!r}")
            parameters.append((name, value))
        else:
            parameters.append((name, None))
    return tuple(parameters)


def format_parameters(parameters: Parameters) -> str:
    """The inverse of :func:`parse_parameters`, with a leading ``;`` per parameter."""
    return "".join(
        f";{name}" if value is None else f";{name}={value}" for name, value in parameters
    )


def find_parameter(parameters: Parameters, name: str) -> tuple[bool, str | None]:
    """Return ``(present, value)`` for the first parameter called ``name`` (case-insensitive)."""
    wanted = name.lower()
    for key, value in parameters:
        if key.lower() == wanted:
            return True, value
    return False, None


def set_parameter(parameters: Parameters, name: str, value: str | None) -> Parameters:
    """Replace (in place of the first occurrence) or append parameter ``name``."""
    wanted = name.lower()
    result: list[tuple[str, str | None]] = []
    replaced = False
    for key, old_value in parameters:
        if key.lower() == wanted:
            if not replaced:
                result.append((key, value))
                replaced = True
        else:
            result.append((key, old_value))
    if not replaced:
        result.append((name, value))
    return tuple(result)


def remove_parameter(parameters: Parameters, name: str) -> Parameters:
    """Drop every parameter called ``name`` (case-insensitive)."""
    wanted = name.lower()
    return tuple((key, value) for key, value in parameters if key.lower() != wanted)


def unquote(value: str) -> str:
    """Strip the quotes of a quoted-string and resolve its backslash escapes."""
    value = value.strip()
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1], flags=re.DOTALL)
    return value


def quote(value: str) -> str:
    """Make a quoted-string of ``value`` (escaping ``"`` and ``\\``)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _parse_host_port(text: str, context: str) -> tuple[str, int | None]:
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise MessageParseError(f"unterminated IPv6 reference in {context!r}")
        host = text[1:end]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise MessageParseError(f"invalid IPv6 address in {context!r}") from None
        rest = text[end + 1 :].strip()
        if rest and not rest.startswith(":"):
            raise MessageParseError(f"junk after IPv6 reference in {context!r}")
        port_text = rest[1:].strip() if rest else None
    else:
        host, colon, port_text_raw = text.partition(":")
        host = host.strip()
        port_text = port_text_raw.strip() if colon else None
        if not host or not _HOSTNAME.fullmatch(host):
            raise MessageParseError(f"invalid host in {context!r}")
    if port_text is None:
        return host, None
    if not port_text.isascii() or not port_text.isdigit() or len(port_text) > 5:
        raise MessageParseError(f"invalid port in {context!r}")
    port = int(port_text)
    if port > 65535:
        raise MessageParseError(f"port out of range in {context!r}")
    return host, port


def format_host(host: str) -> str:
    """Put an IPv6 address in brackets, leave other hosts alone."""
    return f"[{host}]" if ":" in host else host


def format_host_port(host: str, port: int | None) -> str:
    """``host`` or ``host:port`` with IPv6 brackets."""
    return format_host(host) if port is None else f"{format_host(host)}:{port}"


@dataclass(frozen=True)
class SipUri:
    """A ``sip:``, ``sips:`` or ``tel:`` URI.

    For ``tel:`` URIs the telephone number is in ``user`` and ``host`` is empty.
    ``headers`` holds the ``?name=value&...`` part, values as written (escaped).
    """

    scheme: str = "sip"
    user: str | None = None
    password: str | None = None
    host: str = ""
    port: int | None = None
    parameters: Parameters = ()
    headers: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        if self.scheme == "tel":
            return f"tel:{escape(self.user or '', _TEL_SAFE)}{format_parameters(self.parameters)}"
        text = f"{self.scheme}:"
        if self.user is not None:
            text += escape(self.user, _USER_SAFE)
            if self.password is not None:
                text += ":" + escape(self.password, _PASSWORD_SAFE)
            text += "@"
        text += format_host_port(self.host, self.port)
        text += format_parameters(self.parameters)
        if self.headers:
            text += "?" + "&".join(f"{name}={value}" for name, value in self.headers)
        return text

    def parameter(self, name: str) -> str | None:
        """Value of URI parameter ``name`` (``None`` if absent or a flag)."""
        return find_parameter(self.parameters, name)[1]

    def has_parameter(self, name: str) -> bool:
        """Whether URI parameter ``name`` is present (with or without a value)."""
        return find_parameter(self.parameters, name)[0]

    def with_parameter(self, name: str, value: str | None = None) -> SipUri:
        """A copy with parameter ``name`` set (replacing an existing one)."""
        return replace(self, parameters=set_parameter(self.parameters, name, value))

    def without_parameter(self, name: str) -> SipUri:
        """A copy without parameter ``name``."""
        return replace(self, parameters=remove_parameter(self.parameters, name))

    @property
    def transport(self) -> str | None:
        """The ``transport`` parameter in lower case, if any."""
        value = self.parameter("transport")
        return value.lower() if value else None

    @property
    def secure(self) -> bool:
        """Whether this is a ``sips:`` URI."""
        return self.scheme == "sips"

    @property
    def loose_route(self) -> bool:
        """Whether the ``lr`` flag is present (a loose router in a Route set)."""
        return self.has_parameter("lr")

    @property
    def host_port(self) -> str:
        """``host[:port]`` with IPv6 brackets."""
        return format_host_port(self.host, self.port)


def parse_uri(text: str) -> SipUri:
    """Parse a ``sip:``, ``sips:`` or ``tel:`` URI."""
    text = text.strip()
    if len(text) > _MAX_LENGTH:
        raise MessageParseError("URI too long")
    if any(character in text for character in " \t\r\n\x00<>"):
        raise MessageParseError(f"invalid character in URI {text!r}")
    scheme, colon, rest = text.partition(":")
    scheme = scheme.lower()
    if not colon or scheme not in _SCHEMES:
        raise MessageParseError(f"unsupported URI scheme in {text!r}")
    if scheme == "tel":
        number, _, parameter_text = rest.partition(";")
        if not number:
            raise MessageParseError(f"empty telephone number in {text!r}")
        parameters = parse_parameters(parameter_text)
        return SipUri(scheme="tel", user=unescape(number), parameters=parameters)
    user: str | None = None
    password: str | None = None
    at = rest.find("@")
    if at >= 0:
        userinfo, rest = rest[:at], rest[at + 1 :]
        user_text, has_password, password_text = userinfo.partition(":")
        if not user_text:
            raise MessageParseError(f"empty user part in {text!r}")
        user = unescape(user_text)
        password = unescape(password_text) if has_password else None
    rest, question, header_text = rest.partition("?")
    host_text, _, parameter_text = rest.partition(";")
    host, port = _parse_host_port(host_text, text)
    parameters = parse_parameters(parameter_text)
    headers: list[tuple[str, str]] = []
    if question:
        for piece in header_text.split("&"):
            if not piece:
                continue
            name, equals, value = piece.partition("=")
            if not equals or not name:
                raise MessageParseError(f"invalid URI header in {text!r}")
            headers.append((name, value))
    return SipUri(
        scheme=scheme,
        user=user,
        password=password,
        host=host,
        port=port,
        parameters=parameters,
        headers=tuple(headers),
    )


@dataclass(frozen=True)
class NameAddress:
    """``"Display Name" <uri>;param=value`` as in From, To, Contact, Route, Record-Route.

    ``display_name`` is unquoted (``None`` when absent); ``parameters`` are the header
    parameters after the URI (``tag``, ``expires``, ``q``...).
    """

    display_name: str | None
    uri: SipUri
    parameters: Parameters = ()

    def __str__(self) -> str:
        text = f"<{self.uri}>"
        if self.display_name:
            text = f"{quote(self.display_name)} {text}"
        return text + format_parameters(self.parameters)

    def parameter(self, name: str) -> str | None:
        """Value of header parameter ``name`` (``None`` if absent or a flag)."""
        return find_parameter(self.parameters, name)[1]

    def has_parameter(self, name: str) -> bool:
        """Whether header parameter ``name`` is present."""
        return find_parameter(self.parameters, name)[0]

    def with_parameter(self, name: str, value: str | None = None) -> NameAddress:
        """A copy with header parameter ``name`` set."""
        return replace(self, parameters=set_parameter(self.parameters, name, value))

    def without_parameter(self, name: str) -> NameAddress:
        """A copy without header parameter ``name``."""
        return replace(self, parameters=remove_parameter(self.parameters, name))

    @property
    def tag(self) -> str | None:
        """The ``tag`` parameter (From/To)."""
        return self.parameter("tag")

    def with_tag(self, tag: str) -> NameAddress:
        """A copy with the ``tag`` parameter set to ``tag``."""
        return self.with_parameter("tag", tag)


def _parse_quoted_string(text: str, start: int) -> tuple[str, int]:
    """Parse a quoted string starting at ``text[start] == '"'``; return (value, end index)."""
    characters: list[str] = []
    index = start + 1
    while index < len(text):
        character = text[index]
        if character == "\\":
            if index + 1 >= len(text):
                break
            characters.append(text[index + 1])
            index += 2
            continue
        if character == '"':
            return "".join(characters), index + 1
        characters.append(character)
        index += 1
    raise MessageParseError(f"unterminated quoted string in {text!r}")


def parse_name_address(text: str) -> NameAddress:
    """Parse a name-addr or a bare addr-spec (then ``;params`` belong to the header)."""
    text = text.strip()
    if len(text) > _MAX_LENGTH:
        raise MessageParseError("name-address too long")
    display_name: str | None = None
    if text.startswith('"'):
        quoted, index = _parse_quoted_string(text, 0)
        display_name = quoted or None
        rest = text[index:].lstrip()
        if not rest.startswith("<"):
            raise MessageParseError(f"expected '<' after display name in {text!r}")
    else:
        angle = text.find("<")
        if angle < 0:
            uri_text, _, parameter_text = text.partition(";")
            if "?" in uri_text:
                raise MessageParseError(f"URI with headers must be in <> in {text!r}")
            return NameAddress(None, parse_uri(uri_text), parse_parameters(parameter_text))
        display_name = text[:angle].strip() or None
        if display_name is not None and any(c in display_name for c in '<>"'):
            raise MessageParseError(f"invalid display name in {text!r}")
        rest = text[angle:]
    end = rest.find(">")
    if end < 0:
        raise MessageParseError(f"missing '>' in {text!r}")
    uri = parse_uri(rest[1:end])
    trailer = rest[end + 1 :].strip()
    if trailer and not trailer.startswith(";"):
        raise MessageParseError(f"junk after '>' in {text!r}")
    return NameAddress(display_name, uri, parse_parameters(trailer))


@dataclass(frozen=True)
class Via:
    """One Via value: ``SIP/2.0/UDP host:port;branch=...;rport;received=...``."""

    protocol: str
    transport: str
    host: str
    port: int | None = None
    parameters: Parameters = ()

    def __str__(self) -> str:
        return (
            f"{self.protocol}/{self.transport} {format_host_port(self.host, self.port)}"
            f"{format_parameters(self.parameters)}"
        )

    def parameter(self, name: str) -> str | None:
        """Value of Via parameter ``name`` (``None`` if absent or a flag)."""
        return find_parameter(self.parameters, name)[1]

    def has_parameter(self, name: str) -> bool:
        """Whether Via parameter ``name`` is present."""
        return find_parameter(self.parameters, name)[0]

    def with_parameter(self, name: str, value: str | None = None) -> Via:
        """A copy with Via parameter ``name`` set."""
        return replace(self, parameters=set_parameter(self.parameters, name, value))

    @property
    def branch(self) -> str | None:
        """The ``branch`` parameter."""
        return self.parameter("branch")

    @property
    def received(self) -> str | None:
        """The ``received`` parameter (the address the server saw the request come from)."""
        return self.parameter("received")

    @property
    def maddr(self) -> str | None:
        """The ``maddr`` parameter."""
        return self.parameter("maddr")

    @property
    def rport(self) -> int | None:
        """The numeric ``rport`` value filled in by a server, ``None`` if absent or empty."""
        value = self.parameter("rport")
        if value is None or not value.isascii() or not value.isdigit():
            return None
        return int(value)

    @property
    def rport_requested(self) -> bool:
        """Whether the ``rport`` parameter is present at all (RFC 3581)."""
        return self.has_parameter("rport")

    def with_received(self, host: str, port: int) -> Via:
        """What a server stores in the Via it received a request with (RFC 3261 §18.2.1, RFC 3581).

        ``received`` is added when ``host`` differs from the sent-by host; ``rport`` gets the
        source port when the client asked for it.
        """
        via = self
        if host != self.host:
            via = via.with_parameter("received", host)
        if self.rport_requested:
            via = via.with_parameter("received", host).with_parameter("rport", str(port))
        return via

    def response_address(self, default_port: int = 5060) -> tuple[str, int]:
        """Where to send responses for this Via over UDP (RFC 3261 §18.2.2, RFC 3581)."""
        host = self.maddr or self.received or self.host
        port = self.rport or self.port or default_port
        return host, port


def parse_via(text: str) -> Via:
    """Parse one Via value (not a comma-separated list: use ``Headers.get_all("Via")``)."""
    text = text.strip()
    if len(text) > _MAX_LENGTH:
        raise MessageParseError("Via too long")
    match = re.match(
        r"([A-Za-z0-9\-.!%*_+`'~]+)\s*/\s*([A-Za-z0-9\-.!%*_+`'~]+)\s*/\s*"
        r"([A-Za-z0-9\-.!%*_+`'~]+)\s+",
        text,
    )
    if match is None:
        raise MessageParseError(f"invalid Via {text!r}")
    protocol = f"{match.group(1).upper()}/{match.group(2)}"
    transport = match.group(3).upper()
    rest = text[match.end() :]
    host_text, _, parameter_text = rest.partition(";")
    host, port = _parse_host_port(host_text, text)
    parameters = parse_parameters(parameter_text)
    for name, value in parameters:
        if name.lower() == "branch" and not value:
            raise MessageParseError(f"empty branch in Via {text!r}")
    return Via(protocol, transport, host, port, parameters)
