"""``/api/teams``: the teams users belong to (everyone reads the names; admins add teams)."""

from __future__ import annotations

from dialer.models import Team
from dialer.users import create_team, list_teams
from web.api.representations import timestamp
from web.permissions import ADMIN_ONLY, SIGNED_IN
from web.routing import Call, Endpoint
from web.validation import ObjectSchema, Text

CREATE_BODY = ObjectSchema(
    {"name": Text(min_length=1, max_length=100)}, required=frozenset({"name"})
)


def team_json(team: Team) -> dict[str, object]:
    return {"id": team.id, "name": team.name, "created_at": timestamp(team.created_at)}


async def teams(call: Call) -> object:
    return {"items": [team_json(team) for team in await list_teams(call.database)]}


async def new_team(call: Call) -> object:
    team = await create_team(call.database, call.require_actor(), call.body.text("name"))
    return team_json(team)


ENDPOINTS = (
    Endpoint("GET", "/api/teams", teams, SIGNED_IN, "All teams by name", "teams", read_only=True),
    Endpoint(
        "POST",
        "/api/teams",
        new_team,
        ADMIN_ONLY,
        "Add a team",
        "teams",
        body=CREATE_BODY,
        status=201,
        errors=(409,),
    ),
)
