"""Who may call an endpoint: the one place roles are enforced.

Every endpoint in the route table (``web.routing.Endpoint``) declares an ``Access``; the
dispatcher calls ``authorise`` before the handler runs, and there is no other path from a URL to a
handler. ``tests/web/test_permissions.py`` walks the table and calls each endpoint as each role.

Access decides *whether* a role may call an endpoint at all. *Which rows* it sees is the domain
core's job (use cases scope by ``Actor``), tested separately.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from dialer.actors import Actor, Role
from web.errors import Forbidden, NotAuthenticated


@dataclass(frozen=True)
class Access:
    """The roles allowed to call an endpoint; ``public`` endpoints need no session."""

    roles: frozenset[Role]
    public: bool = False

    def allows(self, role: Role | None) -> bool:
        if self.public:
            return True
        return role is not None and role in self.roles

    def describe(self) -> str:
        if self.public:
            return "anyone, no session needed"
        return ", ".join(role.value for role in Role if role in self.roles)


def roles(members: Iterable[Role]) -> Access:
    return Access(frozenset(members))


PUBLIC = Access(frozenset(), public=True)
SIGNED_IN = roles(Role)
SUPERVISOR_OR_ADMIN = roles((Role.SUPERVISOR, Role.ADMIN))
ADMIN_ONLY = roles((Role.ADMIN,))


def authorise(access: Access, actor: Actor | None) -> None:
    """Raise ``NotAuthenticated`` (no session) or ``Forbidden`` (wrong role) unless allowed."""
    if access.public:
        return
    if actor is None:
        raise NotAuthenticated("log in first")
    if not access.allows(actor.role):
        raise Forbidden(f"not allowed for the {actor.role.value} role", code="role_forbidden")
