"""IP allow-lists: CIDRs per user and per role. An empty list allows every address."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from dialer.actors import Actor, Role
from dialer.audit import append_audit_event
from dialer.errors import NotFound, PermissionDenied, ValidationFailed
from dialer.models import RoleAllowList, User, utc_now

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(cidrs: Iterable[str]) -> list[str]:
    """Validate and normalise CIDR strings ("10.0.0.1/8" -> "10.0.0.0/8"; a bare address is /32
    or /128). Raises ValidationFailed("allowed_networks", ...)."""
    networks: list[str] = []
    for cidr in cidrs:
        text = cidr.strip()
        if not text:
            continue
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError as error:
            raise ValidationFailed("allowed_networks", f"not a network: {cidr!r}") from error
        if str(network) not in networks:
            networks.append(str(network))
    return networks


def address_in_networks(source_ip: str | None, cidrs: Sequence[str]) -> bool:
    """True if ``cidrs`` is empty or ``source_ip`` lies in one of them (unknown IP = outside)."""
    if not cidrs:
        return True
    if source_ip is None:
        return False
    try:
        address = ipaddress.ip_address(source_ip)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


async def role_networks(session: AsyncSession, role: Role | str) -> list[str]:
    rows = await session.scalars(
        select(RoleAllowList.network).where(RoleAllowList.role == str(role))
    )
    return list(rows)


async def source_allowed(session: AsyncSession, user: User, source_ip: str | None) -> bool:
    """True when ``source_ip`` passes both the user's and the user's role's allow-lists."""
    if not address_in_networks(source_ip, user.allowed_networks or []):
        return False
    return address_in_networks(source_ip, await role_networks(session, user.role))


async def set_role_allow_list(
    session: AsyncSession, actor: Actor | None, role: Role, cidrs: Iterable[str]
) -> list[str]:
    """Replace a role's allow-list (admin or system); returns the normalised list."""
    if actor is not None and not actor.is_admin:
        raise PermissionDenied("only admins change allow-lists")
    networks = parse_networks(cidrs)
    await session.execute(delete(RoleAllowList).where(RoleAllowList.role == role.value))
    now = utc_now()
    session.add_all(RoleAllowList(role=role.value, network=n, created_at=now) for n in networks)
    await append_audit_event(
        session, actor, "allowlist.role_set", f"role:{role.value}", {"networks": networks}
    )
    return networks


async def set_user_allow_list(
    session: AsyncSession, actor: Actor | None, user_id: int, cidrs: Iterable[str]
) -> list[str]:
    """Replace one user's allow-list (admin or system); returns the normalised list."""
    if actor is not None and not actor.is_admin:
        raise PermissionDenied("only admins change allow-lists")
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id}")
    networks = parse_networks(cidrs)
    user.allowed_networks = networks
    user.updated_at = utc_now()
    await append_audit_event(
        session, actor, "allowlist.user_set", f"user:{user_id}", {"networks": networks}
    )
    return networks
