"""A SIP account (a registrar or a trunk) as one immutable value."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Transport = Literal["udp", "tcp", "tls"]


@dataclass(frozen=True)
class Account:
    """Where and as whom we place calls and register.

    ``register=False`` describes an IP-authenticated trunk: no REGISTER is ever sent, but digest
    challenges on INVITE are still answered when a password is set. ``auth_username`` defaults to
    ``username``; ``realm`` (when set) restricts which challenges our credentials answer.
    ``caller_id`` replaces ``username`` as the user part of From. ``outbound_proxy`` is
    ``"host[:port]"``: every request of this account goes there first. ``ring_timeout`` is how
    long an outbound call may stay unanswered before we CANCEL it (cause ``no_answer``).
    ``media_timeout`` is read by the media adapter (B), not by the signalling core.
    """

    name: str
    host: str
    port: int = 5060
    transport: Transport = "udp"
    username: str = ""
    auth_username: str | None = None
    password: str = ""
    realm: str | None = None
    caller_id: str | None = None
    display_name: str | None = None
    outbound_proxy: str | None = None
    register: bool = True
    register_expires: int = 3600
    dial_plan: str = ""
    codecs: tuple[str, ...] = ("PCMU", "PCMA")
    ring_timeout: float = 60.0
    media_timeout: float = 30.0
    tls_verify: bool = True
    ca_file: str | None = None

    @property
    def credentials_username(self) -> str:
        """The user name that digest authentication uses."""
        return self.auth_username or self.username

    @property
    def uri_scheme(self) -> str:
        """``sips`` over TLS, ``sip`` otherwise."""
        return "sips" if self.transport == "tls" else "sip"

    @property
    def address_of_record(self) -> str:
        """The account's public URI (To and From of REGISTER), e.g. ``sip:alice@example.com``."""
        host = _host_with_port(self.host, self.port, self.transport)
        user = f"{self.username}@" if self.username else ""
        return f"{self.uri_scheme}:{user}{host}"


def _host_with_port(host: str, port: int, transport: str) -> str:
    default_port = 5061 if transport == "tls" else 5060
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return host if port == default_port else f"{host}:{port}"
