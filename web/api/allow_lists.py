"""``/api/allow-lists``: the networks each role may use the application from (admins).

An empty list lets a role in from anywhere. Per-user lists are part of ``PATCH /api/users/{id}``.
An admin cannot save an admin list that leaves out the address they are using right now.
"""

from __future__ import annotations

from dialer.actors import Role
from dialer.allowlists import address_in_networks, parse_networks, role_networks
from dialer.allowlists import set_role_allow_list as save_role_allow_list
from dialer.errors import ValidationFailed
from web.errors import ConflictingState, RequestInvalid, ResourceNotFound
from web.permissions import ADMIN_ONLY
from web.routing import Call, Endpoint
from web.validation import ListOf, ObjectSchema, Text

SET_BODY = ObjectSchema(
    {"networks": ListOf(Text(min_length=1, max_length=64), max_items=200)},
    required=frozenset({"networks"}),
)


async def allow_lists(call: Call) -> object:
    return {role.value: await role_networks(call.database, role) for role in Role}


async def set_role_allow_list(call: Call) -> object:
    name = call.request.path_params["role"]
    try:
        role = Role(name)
    except ValueError:
        raise ResourceNotFound(f"no role {name!r}") from None
    actor = call.require_actor()
    try:
        networks = parse_networks(call.body.text_list("networks"))
    except ValidationFailed as error:
        raise RequestInvalid("networks", error.problem) from None
    if role is actor.role and not address_in_networks(call.source_ip, networks):
        raise ConflictingState(
            f"this list would lock you out: your address {call.source_ip} is not in it",
            code="would_lock_out",
        )
    saved = await save_role_allow_list(call.database, actor, role, networks)
    return {"role": role.value, "networks": saved}


ENDPOINTS = (
    Endpoint(
        "GET",
        "/api/allow-lists",
        allow_lists,
        ADMIN_ONLY,
        "The allow-list of every role (empty: any address)",
        "allow-lists",
        read_only=True,
    ),
    Endpoint(
        "PUT",
        "/api/allow-lists/{role}",
        set_role_allow_list,
        ADMIN_ONLY,
        "Replace a role's allow-list (CIDRs or addresses)",
        "allow-lists",
        body=SET_BODY,
        errors=(404, 409),
    ),
)
