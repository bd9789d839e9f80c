"""Session descriptions (RFC 4566) and the offer/answer rules (RFC 3264) phones and trunks use.

Only what a G.711 telephony endpoint needs is modelled: origin, connection, timing, audio media
with rtpmap/fmtp/ptime and the direction attributes. Every other line is kept as written so
that :func:`parse_sdp` followed by ``bytes()`` gives the same description back.

Errors raise :class:`sip.errors.SdpError` (answered with 488 Not Acceptable Here).
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from sip.errors import LocalProtocolError, SdpError

Direction = Literal["sendrecv", "sendonly", "recvonly", "inactive"]
DIRECTIONS: tuple[Direction, ...] = ("sendrecv", "sendonly", "recvonly", "inactive")

MAX_SDP_SIZE = 65536
MAX_SDP_LINES = 1000
TELEPHONE_EVENT = "telephone-event"
DEFAULT_TELEPHONE_EVENT_PAYLOAD = 101
DEFAULT_PTIME = 20

STATIC_PAYLOAD_TYPES: dict[int, tuple[str, int]] = {
    0: ("PCMU", 8000),
    3: ("GSM", 8000),
    4: ("G723", 8000),
    8: ("PCMA", 8000),
    9: ("G722", 8000),
    18: ("G729", 8000),
}
"""Static audio payload types of RFC 3551 we may meet: number -> (encoding name, clock rate)."""

_STATIC_BY_NAME = {name: number for number, (name, _) in STATIC_PAYLOAD_TYPES.items()}
_SESSION_ORDER = "vosiuepcbtrzka"
_MEDIA_ORDER = "icbka"


@dataclass(frozen=True)
class Origin:
    """The ``o=`` line."""

    username: str
    session_id: int
    session_version: int
    network_type: str = "IN"
    address_type: str = "IP4"
    address: str = "0.0.0.0"

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.session_version} "
            f"{self.network_type} {self.address_type} {self.address}"
        )


@dataclass(frozen=True)
class Connection:
    """The ``c=`` line; ``address`` may carry a ``/ttl`` suffix for multicast."""

    address: str
    network_type: str = "IN"
    address_type: str = "IP4"

    def __str__(self) -> str:
        return f"{self.network_type} {self.address_type} {self.address}"

    @property
    def host(self) -> str:
        """The address without any ``/ttl`` or ``/count`` suffix."""
        return self.address.split("/", 1)[0]

    @property
    def is_null(self) -> bool:
        """Whether this is the RFC 2543 hold address ``0.0.0.0`` (or ``::``)."""
        return self.host in ("0.0.0.0", "::")


@dataclass(frozen=True)
class RtpMap:
    """One ``a=rtpmap`` (or the implied mapping of a static payload type)."""

    payload_type: int
    encoding_name: str
    clock_rate: int
    channels: int | None = None

    def __str__(self) -> str:
        text = f"{self.payload_type} {self.encoding_name}/{self.clock_rate}"
        return text if self.channels is None else f"{text}/{self.channels}"


Attribute = tuple[str, str | None]
"""``a=name:value`` as ``(name, value)``; a property attribute (``a=sendrecv``) has ``None``."""


def _find_attribute(attributes: Sequence[Attribute], name: str) -> tuple[bool, str | None]:
    for key, value in attributes:
        if key == name:
            return True, value
    return False, None


def _direction_of(attributes: Sequence[Attribute]) -> Direction | None:
    for key, value in attributes:
        if value is None and key in DIRECTIONS:
            return key
    return None


@dataclass(frozen=True)
class MediaDescription:
    """One ``m=`` section with its own lines."""

    media: str
    port: int
    protocol: str
    formats: tuple[str, ...]
    port_count: int | None = None
    connection: Connection | None = None
    attributes: tuple[Attribute, ...] = ()
    other_lines: tuple[tuple[str, str], ...] = ()
    """Lines of other types (``i``, ``b``, ``k``) as ``(type, value)``."""

    def attribute(self, name: str) -> str | None:
        """The value of the first ``a=name:value`` (``None`` if absent or a property)."""
        return _find_attribute(self.attributes, name)[1]

    def has_attribute(self, name: str) -> bool:
        """Whether ``a=name`` is present."""
        return _find_attribute(self.attributes, name)[0]

    @property
    def payload_types(self) -> list[int]:
        """The formats as numbers (RTP media); non-numeric formats are skipped."""
        return [int(f) for f in self.formats if f.isascii() and f.isdigit()]

    def rtpmap(self, payload_type: int) -> RtpMap | None:
        """The mapping of ``payload_type``: its ``a=rtpmap`` or the static RFC 3551 one."""
        for key, value in self.attributes:
            if key != "rtpmap" or value is None:
                continue
            mapping = _parse_rtpmap(value)
            if mapping is not None and mapping.payload_type == payload_type:
                return mapping
        static = STATIC_PAYLOAD_TYPES.get(payload_type)
        if static is not None:
            return RtpMap(payload_type, static[0], static[1])
        return None

    def fmtp(self, payload_type: int) -> str | None:
        """The ``a=fmtp`` parameters of ``payload_type``."""
        prefix = str(payload_type)
        for key, value in self.attributes:
            if key == "fmtp" and value is not None:
                number, _, parameters = value.partition(" ")
                if number == prefix:
                    return parameters.strip()
        return None

    @property
    def ptime(self) -> int | None:
        """``a=ptime`` in milliseconds."""
        value = self.attribute("ptime")
        if value is None:
            return None
        try:
            return int(float(value))
        except ValueError:
            return None

    @property
    def direction(self) -> Direction | None:
        """The media-level direction attribute, if any."""
        return _direction_of(self.attributes)

    def __str__(self) -> str:
        port = str(self.port) if self.port_count is None else f"{self.port}/{self.port_count}"
        lines = [f"m={self.media} {port} {self.protocol} {' '.join(self.formats)}".rstrip()]
        for line_type in _MEDIA_ORDER:
            if line_type == "c" and self.connection is not None:
                lines.append(f"c={self.connection}")
            lines.extend(f"{key}={value}" for key, value in self.other_lines if key == line_type)
            if line_type == "a":
                lines.extend(_format_attribute(a) for a in self.attributes)
        lines.extend(f"{key}={value}" for key, value in self.other_lines if key not in _MEDIA_ORDER)
        return "\r\n".join(lines)


def _format_attribute(attribute: Attribute) -> str:
    name, value = attribute
    return f"a={name}" if value is None else f"a={name}:{value}"


def _parse_rtpmap(value: str) -> RtpMap | None:
    number, _, encoding = value.strip().partition(" ")
    pieces = encoding.strip().split("/")
    if not number.isascii() or not number.isdigit() or len(pieces) < 2:
        return None
    try:
        clock_rate = int(pieces[1])
        channels = int(pieces[2]) if len(pieces) > 2 and pieces[2] else None
    except ValueError:
        return None
    return RtpMap(int(number), pieces[0], clock_rate, channels)


@dataclass(frozen=True)
class SessionDescription:
    """A parsed session description."""

    origin: Origin
    session_name: str = "-"
    connection: Connection | None = None
    timing: str = "0 0"
    attributes: tuple[Attribute, ...] = ()
    media: tuple[MediaDescription, ...] = ()
    version: int = 0
    other_lines: tuple[tuple[str, str], ...] = ()
    """Session-level lines of other types (``i u e p b r z k``) as ``(type, value)``."""

    def __bytes__(self) -> bytes:
        lines: list[str] = []
        for line_type in _SESSION_ORDER:
            if line_type == "v":
                lines.append(f"v={self.version}")
            elif line_type == "o":
                lines.append(f"o={self.origin}")
            elif line_type == "s":
                lines.append(f"s={self.session_name}")
            elif line_type == "c" and self.connection is not None:
                lines.append(f"c={self.connection}")
            elif line_type == "t":
                lines.append(f"t={self.timing}")
            elif line_type == "a":
                lines.extend(_format_attribute(a) for a in self.attributes)
            lines.extend(f"{key}={value}" for key, value in self.other_lines if key == line_type)
        lines.extend(
            f"{key}={value}" for key, value in self.other_lines if key not in _SESSION_ORDER
        )
        lines.extend(str(media) for media in self.media)
        return ("\r\n".join(lines) + "\r\n").encode("utf-8", "surrogateescape")

    def attribute(self, name: str) -> str | None:
        """The value of the first session-level ``a=name:value``."""
        return _find_attribute(self.attributes, name)[1]

    @property
    def direction(self) -> Direction | None:
        """The session-level direction attribute, if any."""
        return _direction_of(self.attributes)

    def connection_for(self, media: MediaDescription) -> Connection | None:
        """The media-level ``c=`` if present, else the session-level one."""
        return media.connection or self.connection

    def direction_for(self, media: MediaDescription) -> Direction:
        """Media-level direction, else session-level, else ``sendrecv`` (RFC 3264 §5.1)."""
        return media.direction or self.direction or "sendrecv"

    def first_audio(self) -> MediaDescription | None:
        """The first ``m=audio`` section with a non-zero port."""
        for media in self.media:
            if media.media == "audio" and media.port != 0:
                return media
        return None


def _parse_origin(value: str) -> Origin:
    parts = value.split()
    if len(parts) != 6:
        raise SdpError(f"invalid o= line {value[:80]!r}")
    try:
        session_id, session_version = int(parts[1]), int(parts[2])
    except ValueError:
        raise SdpError(f"invalid session id or version in o= {value[:80]!r}") from None
    if session_id < 0 or session_version < 0:
        raise SdpError(f"negative session id or version in o= {value[:80]!r}")
    return Origin(parts[0], session_id, session_version, parts[3], parts[4], parts[5])


def _parse_connection(value: str) -> Connection:
    parts = value.split()
    if len(parts) != 3:
        raise SdpError(f"invalid c= line {value[:80]!r}")
    connection = Connection(parts[2], parts[0], parts[1])
    if connection.network_type == "IN" and connection.address_type in ("IP4", "IP6"):
        try:
            ipaddress.ip_address(connection.host)
        except ValueError:
            # A host name is allowed by the grammar; anything with odd characters is not.
            if not all(c.isalnum() or c in "-." for c in connection.host):
                raise SdpError(f"invalid connection address {value[:80]!r}") from None
    return connection


def _parse_media_line(value: str) -> MediaDescription:
    parts = value.split()
    if len(parts) < 3:
        raise SdpError(f"invalid m= line {value[:80]!r}")
    port_text, _, count_text = parts[1].partition("/")
    try:
        port = int(port_text)
        port_count = int(count_text) if count_text else None
    except ValueError:
        raise SdpError(f"invalid port in m= line {value[:80]!r}") from None
    if not 0 <= port <= 65535 or (port_count is not None and port_count < 1):
        raise SdpError(f"port out of range in m= line {value[:80]!r}")
    return MediaDescription(parts[0], port, parts[2], tuple(parts[3:]), port_count)


def _parse_attribute(value: str) -> Attribute:
    name, colon, attribute_value = value.partition(":")
    if not name or " " in name:
        raise SdpError(f"invalid a= line {value[:80]!r}")
    return (name, attribute_value if colon else None)


def parse_sdp(data: bytes | str) -> SessionDescription:
    """Parse a session description (CRLF or LF line ends, blank lines ignored)."""
    if isinstance(data, bytes):
        if len(data) > MAX_SDP_SIZE:
            raise SdpError("session description too large")
        text = data.decode("utf-8", "surrogateescape")
    else:
        text = data
    lines = [line.strip() for line in text.replace("\r\n", "\n").split("\n")]
    lines = [line for line in lines if line]
    if len(lines) > MAX_SDP_LINES:
        raise SdpError("too many lines in session description")
    if any("\r" in line or "\x00" in line for line in lines):
        raise SdpError("control character in session description")
    if not lines or not lines[0].startswith("v="):
        raise SdpError("session description must start with v=")
    version_text = lines[0][2:].strip()
    if version_text != "0":
        raise SdpError(f"unsupported SDP version {version_text[:20]!r}")
    origin: Origin | None = None
    session_name: str | None = None
    connection: Connection | None = None
    timing: str | None = None
    attributes: list[Attribute] = []
    others: list[tuple[str, str]] = []
    media: list[MediaDescription] = []
    media_attributes: list[Attribute] = []
    media_others: list[tuple[str, str]] = []

    def finish_media() -> None:
        if media:
            media[-1] = replace(
                media[-1], attributes=tuple(media_attributes), other_lines=tuple(media_others)
            )
        media_attributes.clear()
        media_others.clear()

    for line in lines[1:]:
        if len(line) < 2 or line[1] != "=" or not line[0].isalpha():
            raise SdpError(f"invalid SDP line {line[:80]!r}")
        line_type, value = line[0], line[2:].strip()
        if line_type == "m":
            finish_media()
            media.append(_parse_media_line(value))
        elif media:
            if line_type == "c":
                if media[-1].connection is not None:
                    raise SdpError("two c= lines in one media section")
                media[-1] = replace(media[-1], connection=_parse_connection(value))
            elif line_type == "a":
                media_attributes.append(_parse_attribute(value))
            else:
                media_others.append((line_type, value))
        elif (
            (line_type == "o" and origin is not None)
            or (line_type == "s" and session_name is not None)
            or (line_type == "c" and connection is not None)
        ):
            raise SdpError(f"repeated {line_type}= line")
        elif line_type == "o":
            origin = _parse_origin(value)
        elif line_type == "s":
            session_name = value
        elif line_type == "c":
            connection = _parse_connection(value)
        elif line_type == "t" and timing is None:
            timing = value
        elif line_type == "a":
            attributes.append(_parse_attribute(value))
        elif line_type == "v":
            raise SdpError("duplicate v= line")
        else:
            others.append((line_type, value))
    finish_media()
    if origin is None:
        raise SdpError("missing o= line")
    return SessionDescription(
        origin=origin,
        session_name=session_name if session_name is not None else "-",
        connection=connection,
        timing=timing if timing is not None else "0 0",
        attributes=tuple(attributes),
        media=tuple(media),
        other_lines=tuple(others),
    )


def _address_type(address: str) -> str:
    try:
        return "IP6" if ipaddress.ip_address(address).version == 6 else "IP4"
    except ValueError:
        return "IP4"


def _codec_entries(
    codecs: Iterable[str], telephone_event: int | None
) -> tuple[list[str], list[Attribute]]:
    formats: list[str] = []
    attributes: list[Attribute] = []
    for codec in codecs:
        name, _, rate_text = codec.partition("/")
        number = _STATIC_BY_NAME.get(name.upper())
        if number is None:
            raise LocalProtocolError(f"unknown codec {codec!r}; use a static payload type name")
        rate = int(rate_text) if rate_text else STATIC_PAYLOAD_TYPES[number][1]
        formats.append(str(number))
        attributes.append(("rtpmap", f"{number} {STATIC_PAYLOAD_TYPES[number][0]}/{rate}"))
    if telephone_event is not None:
        formats.append(str(telephone_event))
        attributes.append(("rtpmap", f"{telephone_event} {TELEPHONE_EVENT}/8000"))
        attributes.append(("fmtp", f"{telephone_event} 0-16"))
    return formats, attributes


def build_offer(
    address: str,
    port: int,
    codecs: Sequence[str] = ("PCMU", "PCMA"),
    telephone_event: bool = True,
    session_id: int | None = None,
    version: int = 0,
    direction: Direction = "sendrecv",
    *,
    ptime: int = DEFAULT_PTIME,
    username: str = "-",
    session_name: str = "-",
) -> bytes:
    """An audio offer: ``codecs`` in preference order (PCMU 0, PCMA 8...), telephone-event 101.

    ``session_id`` defaults to a random number; increment ``version`` for each new offer in
    the same session (re-INVITE for hold, new address...).
    """
    if direction not in DIRECTIONS:
        raise LocalProtocolError(f"invalid direction {direction!r}")
    formats, attributes = _codec_entries(
        codecs, DEFAULT_TELEPHONE_EVENT_PAYLOAD if telephone_event else None
    )
    attributes.append(("ptime", str(ptime)))
    attributes.append((direction, None))
    address_type = _address_type(address)
    description = SessionDescription(
        origin=Origin(
            username,
            session_id if session_id is not None else secrets.randbelow(2**31),
            version,
            "IN",
            address_type,
            address,
        ),
        session_name=session_name,
        connection=Connection(address, "IN", address_type),
        media=(
            MediaDescription(
                "audio", port, "RTP/AVP", tuple(formats), attributes=tuple(attributes)
            ),
        ),
    )
    return bytes(description)


_ANSWER_DIRECTION: dict[tuple[Direction, Direction], Direction] = {}
for _offered in DIRECTIONS:
    for _wanted in DIRECTIONS:
        _remote_sends = _offered in ("sendrecv", "sendonly")
        _remote_receives = _offered in ("sendrecv", "recvonly")
        _we_send = _wanted in ("sendrecv", "sendonly") and _remote_receives
        _we_receive = _wanted in ("sendrecv", "recvonly") and _remote_sends
        _ANSWER_DIRECTION[(_offered, _wanted)] = (
            "sendrecv"
            if _we_send and _we_receive
            else "sendonly"
            if _we_send
            else "recvonly"
            if _we_receive
            else "inactive"
        )


def answer_direction(offered: Direction, wanted: Direction) -> Direction:
    """The direction to answer ``offered`` with when we want ``wanted`` (RFC 3264 §6.1)."""
    return _ANSWER_DIRECTION[(offered, wanted)]


def _supported_payload(
    media: MediaDescription, supported_codecs: Sequence[str]
) -> tuple[int, RtpMap] | None:
    wanted = {codec.partition("/")[0].upper() for codec in supported_codecs}
    for payload_type in media.payload_types:
        mapping = media.rtpmap(payload_type)
        if mapping is None or mapping.encoding_name.upper() not in wanted:
            continue
        if mapping.channels not in (None, 1):
            continue
        return payload_type, mapping
    return None


def _telephone_event_payload(media: MediaDescription) -> int | None:
    for payload_type in media.payload_types:
        mapping = media.rtpmap(payload_type)
        if (
            mapping is not None
            and mapping.encoding_name.lower() == TELEPHONE_EVENT
            and mapping.clock_rate == 8000
        ):
            return payload_type
    return None


def build_answer(
    offer: bytes | SessionDescription,
    address: str,
    port: int,
    supported_codecs: Sequence[str] = ("PCMU", "PCMA"),
    direction: Direction = "sendrecv",
    *,
    session_id: int | None = None,
    version: int = 0,
    ptime: int = DEFAULT_PTIME,
    username: str = "-",
    session_name: str = "-",
) -> bytes:
    """Answer ``offer``: the first offered codec we support, telephone-event if offered.

    The first usable audio stream is accepted; every other ``m=`` line is rejected with port 0
    (RFC 3264 §6). Raises :class:`SdpError` (488) when no audio stream has a codec we support.
    """
    description = offer if isinstance(offer, SessionDescription) else parse_sdp(offer)
    address_type = _address_type(address)
    chosen: MediaDescription | None = None
    answered: list[MediaDescription] = []
    for media in description.media:
        payload = None
        if chosen is None and media.media == "audio" and media.port != 0:
            payload = _supported_payload(media, supported_codecs)
        if payload is None:
            answered.append(
                MediaDescription(media.media, 0, media.protocol, media.formats[:1] or ("0",))
            )
            continue
        chosen = media
        payload_type, mapping = payload
        formats = [str(payload_type)]
        attributes: list[Attribute] = [("rtpmap", str(mapping))]
        fmtp = media.fmtp(payload_type)
        if fmtp is not None:
            attributes.append(("fmtp", f"{payload_type} {fmtp}"))
        event_payload = _telephone_event_payload(media)
        if event_payload is not None:
            formats.append(str(event_payload))
            attributes.append(("rtpmap", f"{event_payload} {TELEPHONE_EVENT}/8000"))
            attributes.append(("fmtp", f"{event_payload} {media.fmtp(event_payload) or '0-16'}"))
        attributes.append(("ptime", str(media.ptime or ptime)))
        offered = description.direction_for(media)
        connection = description.connection_for(media)
        if connection is not None and connection.is_null and offered == "sendrecv":
            offered = "sendonly"  # RFC 2543 style hold: the offerer does not want media
        attributes.append((answer_direction(offered, direction), None))
        answered.append(
            MediaDescription(
                "audio", port, media.protocol, tuple(formats), attributes=tuple(attributes)
            )
        )
    if chosen is None:
        raise SdpError("no audio stream with a supported codec")
    answer = SessionDescription(
        origin=Origin(
            username,
            session_id if session_id is not None else secrets.randbelow(2**31),
            version,
            "IN",
            address_type,
            address,
        ),
        session_name=session_name,
        connection=Connection(address, "IN", address_type),
        timing=description.timing,
        media=tuple(answered),
    )
    return bytes(answer)


@dataclass(frozen=True)
class NegotiatedMedia:
    """Where and how to send audio, from the remote description of an offer/answer exchange.

    ``direction`` is the remote side's direction (``sendonly`` means the remote holds us).
    """

    address: str
    port: int
    payload_type: int
    codec_name: str
    clock_rate: int
    telephone_event_payload: int | None
    direction: Direction
    ptime: int = DEFAULT_PTIME
    fmtp: str | None = field(default=None, compare=False)

    @property
    def on_hold(self) -> bool:
        """Whether the remote put the call on hold (sendonly, inactive or c=0.0.0.0)."""
        return self.direction in ("sendonly", "inactive") or self.address in ("0.0.0.0", "::")

    @property
    def we_send(self) -> bool:
        """Whether we should send RTP (the remote receives and gave a usable address)."""
        return self.direction in ("sendrecv", "recvonly") and self.address not in (
            "0.0.0.0",
            "::",
        )

    @property
    def we_receive(self) -> bool:
        """Whether the remote will send us RTP."""
        return self.direction in ("sendrecv", "sendonly")


def negotiate(
    remote_sdp: bytes | SessionDescription, supported_codecs: Sequence[str] = ("PCMU", "PCMA")
) -> NegotiatedMedia:
    """What to do with the remote description: its first audio codec that we support.

    Use it on an answer to our offer, or on an offer we answered with :func:`build_answer`
    (both pick the same codec). Raises :class:`SdpError` when nothing is usable.
    """
    description = (
        remote_sdp if isinstance(remote_sdp, SessionDescription) else parse_sdp(remote_sdp)
    )
    for media in description.media:
        if media.media != "audio" or media.port == 0:
            continue
        payload = _supported_payload(media, supported_codecs)
        if payload is None:
            continue
        connection = description.connection_for(media)
        if connection is None:
            raise SdpError("audio stream without a connection address")
        payload_type, mapping = payload
        return NegotiatedMedia(
            address=connection.host,
            port=media.port,
            payload_type=payload_type,
            codec_name=mapping.encoding_name.upper(),
            clock_rate=mapping.clock_rate,
            telephone_event_payload=_telephone_event_payload(media),
            direction=description.direction_for(media),
            ptime=media.ptime or DEFAULT_PTIME,
            fmtp=media.fmtp(payload_type),
        )
    raise SdpError("no audio stream with a supported codec")


def is_hold(remote_sdp: bytes | SessionDescription) -> bool:
    """Whether a remote description puts us on hold (sendonly/inactive audio or c=0.0.0.0)."""
    description = (
        remote_sdp if isinstance(remote_sdp, SessionDescription) else parse_sdp(remote_sdp)
    )
    media = description.first_audio()
    if media is None:
        return True
    connection = description.connection_for(media)
    if connection is not None and connection.is_null:
        return True
    return description.direction_for(media) in ("sendonly", "inactive")
