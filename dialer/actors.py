"""Who is acting: the role model and the actor every use case takes.

Visibility rules applied by the use cases:

- ``operator``: own contacts plus shared ones; own calls.
- ``supervisor``: contacts and calls of their team (plus shared contacts).
- ``admin``: everything, plus user management and purging.

Where a use case accepts ``Actor | None``, ``None`` means the system itself (the ``dialer`` CLI run
on the server, or background jobs): full rights, audited as "system".
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class Role(StrEnum):
    OPERATOR = "operator"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


class _UserLike(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def role(self) -> str: ...
    @property
    def team_id(self) -> int | None: ...


@dataclass(frozen=True)
class Actor:
    """The authenticated user on whose behalf a use case runs."""

    user_id: int
    role: Role
    team_id: int | None
    source_ip: str | None = None

    @classmethod
    def for_user(cls, user: _UserLike, source_ip: str | None = None) -> Actor:
        """The actor for a ``dialer.models.User`` row (e.g. after ``resume_session``)."""
        return cls(user_id=user.id, role=Role(user.role), team_id=user.team_id, source_ip=source_ip)

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    @property
    def is_supervisor(self) -> bool:
        return self.role is Role.SUPERVISOR
