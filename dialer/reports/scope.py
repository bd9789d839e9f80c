"""Whose calls a report counts, from the actor's role and the report's filters.

Like the calls list (``dialer.calls.visible_calls``): an operator counts their own calls whatever
the filters say, a supervisor their team's (a team or operator filter outside it gives an empty
scope), an admin or the system (``actor`` None) every call, optionally narrowed to one team or
one operator. Team membership is the current one.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dialer.actors import Actor
from dialer.models import User
from dialer.reports.models import ALL_OPERATORS, team_key


async def _team_members(session: AsyncSession, team_id: int) -> list[int]:
    return list((await session.scalars(select(User.id).where(User.team_id == team_id))).all())


@dataclass(frozen=True)
class ReportScope:
    """Whose calls a report counts: everyone's (with or without an operator), a team's current
    members', or the listed operators'."""

    everyone: bool = False
    team_id: int | None = None
    operators: tuple[int, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.everyone and self.team_id is None and not self.operators

    def summed_keys(self) -> list[int]:
        """Rollup keys whose rows add up to the scope's figures."""
        if self.everyone:
            return [ALL_OPERATORS]
        if self.team_id is not None:
            return [team_key(self.team_id)]
        return list(self.operators)


async def report_scope(
    session: AsyncSession, actor: Actor | None, operator_id: int | None, team_id: int | None
) -> ReportScope:
    """What ``actor`` may count, narrowed by the filters (a filter outside what the actor may
    see gives an empty scope, like the calls list)."""
    if actor is None or actor.is_admin:
        if team_id is None:
            return (
                ReportScope(everyone=True)
                if operator_id is None
                else ReportScope(operators=(operator_id,))
            )
        allowed_team = team_id
    elif actor.is_supervisor and actor.team_id is not None:
        if team_id is not None and team_id != actor.team_id:
            return ReportScope()
        allowed_team = actor.team_id
    else:
        if (team_id is not None and team_id != actor.team_id) or operator_id not in (
            None,
            actor.user_id,
        ):
            return ReportScope()
        return ReportScope(operators=(actor.user_id,))
    members = tuple(sorted(await _team_members(session, allowed_team)))
    if operator_id is not None:
        return ReportScope(operators=(operator_id,)) if operator_id in members else ReportScope()
    return ReportScope(team_id=allowed_team, operators=members)
