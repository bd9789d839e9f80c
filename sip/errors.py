"""Exceptions raised by the ``sip`` package.

Hierarchy::

    SipError
    ├── ProtocolError
    │   ├── RemoteProtocolError          the peer sent something bad (.status_code, default 400)
    │   │   ├── MessageParseError        bytes that are not a SIP message we accept
    │   │   ├── SdpError                 unusable session description (status 488)
    │   │   └── DigestError              unusable authentication challenge or credentials
    │   └── LocalProtocolError           we were asked to do something invalid
    ├── MediaError                       RTP media (sip.media)
    │   ├── RtpParseError                bytes that are not an RTP packet we accept
    │   ├── NoFreePortError              no even RTP port free in the configured range
    │   ├── StreamClosedError            the audio stream was used after close()
    │   └── SchedulingError              real-time scheduling unavailable or not permitted
    ├── AccountConfigError               an account setting is missing or wrong (.field, .problem)
    └── DialPlanError                    unknown dial plan rule, or a number we cannot dial

Owners of other ``sip`` modules append their own small classes at the end of this file, each
with a docstring, and extend the drawing above.
"""

from __future__ import annotations


class SipError(Exception):
    """Base class of every error raised by the ``sip`` package."""


class ProtocolError(SipError):
    """A violation of the SIP protocol, by us or by the peer."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something invalid.

    ``status_code`` is the SIP status a server should answer with when the bad input was a
    request (400 Bad Request unless a more precise code applies).
    """

    def __init__(self, message: str, *, status_code: int = 400) -> None:
        super().__init__(message)
        self.status_code = status_code


class LocalProtocolError(ProtocolError):
    """We were asked to do something the protocol does not allow."""


class MessageParseError(RemoteProtocolError):
    """Bytes that cannot be parsed as a SIP message (or a URI, Via, header field...)."""


class SdpError(RemoteProtocolError):
    """A session description we cannot parse or accept (answered with 488 Not Acceptable Here)."""

    def __init__(self, message: str, *, status_code: int = 488) -> None:
        super().__init__(message, status_code=status_code)


class DigestError(RemoteProtocolError):
    """A digest challenge or Authorization header we cannot parse or do not support."""


class MediaError(SipError):
    """Base class of the errors raised by the RTP media engine (``sip.media``)."""


class RtpParseError(MediaError):
    """Bytes that cannot be parsed as an RTP packet (RFC 3550)."""


class NoFreePortError(MediaError):
    """Every even RTP port of the configured range is taken."""


class StreamClosedError(MediaError):
    """An audio stream was asked to do something after it was closed."""


class SchedulingError(MediaError):
    """A media process could not be put under real-time scheduling (the platform has none,
    or the process lacks the privilege: the message says which)."""


class AccountConfigError(SipError):
    """An account setting is missing or invalid; ``field`` names it (``accounts.office.port``)
    and ``problem`` says what is wrong with it."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class DialPlanError(SipError):
    """A dial plan rule we do not know, or a target that cannot become a Request-URI."""
