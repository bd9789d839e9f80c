"""The address a request comes from, and whether it arrived over HTTPS.

By default only the connection counts. When the operator lists trusted reverse proxies, a request
arriving *from* one of them may name its client in ``X-Forwarded-For`` (walked right to left,
skipping trusted hops) and its scheme in ``X-Forwarded-Proto``. A header from anyone else is
ignored, so a client cannot choose its own address to slip past an allow-list or a throttle.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    """Comma- or space-separated addresses/CIDRs; raises ``ValueError`` on a bad entry."""
    entries = [entry for entry in text.replace(",", " ").split() if entry]
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def _is_trusted(address: str, trusted: Sequence[IPNetwork]) -> bool:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(parsed in network for network in trusted)


def _valid_address(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None


def client_address(
    peer: str | None, forwarded_for: str | None, trusted: Sequence[IPNetwork]
) -> str | None:
    """The client's address: ``peer`` unless ``peer`` is a trusted proxy that forwarded one."""
    if peer is None or not trusted or not forwarded_for or not _is_trusted(peer, trusted):
        return peer
    nearest = peer
    for hop in reversed(forwarded_for.split(",")):
        address = _valid_address(hop)
        if address is None:
            return nearest
        if not _is_trusted(address, trusted):
            return address
        nearest = address
    return nearest


def arrived_over_https(
    scheme: str, peer: str | None, forwarded_proto: str | None, trusted: Sequence[IPNetwork]
) -> bool:
    """Whether the client used HTTPS (directly, or to a trusted proxy that says so)."""
    if scheme in ("https", "wss"):
        return True
    if peer is not None and forwarded_proto and _is_trusted(peer, trusted):
        return forwarded_proto.split(",")[0].strip().lower() == "https"
    return False
