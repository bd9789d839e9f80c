"""``/api/users``: user management for admins (list, create, change, unlock, reset password)."""

from __future__ import annotations

from dialer.actors import Role
from dialer.allowlists import set_user_allow_list
from dialer.users import (
    create_user,
    disable_user,
    get_user,
    list_users,
    reset_password,
    unlock_user,
    update_user,
    user_locked_until,
)
from web.api.representations import timestamp, user_json
from web.permissions import ADMIN_ONLY
from web.routing import Call, Endpoint
from web.validation import (
    INTEGER_COLUMN_MAXIMUM,
    Boolean,
    Integer,
    ListOf,
    ObjectSchema,
    QuerySchema,
    Text,
    query_boolean,
)

ROLE_NAMES = tuple(role.value for role in Role)
NETWORKS = ListOf(Text(min_length=1, max_length=64), max_items=100)

CREATE_BODY = ObjectSchema(
    {
        "login": Text(min_length=1, max_length=100, pattern=r"\S+"),
        "password": Text(min_length=1, max_length=1024, strip=False),
        "display_name": Text(max_length=200),
        "role": Text(choices=ROLE_NAMES),
        "team_id": Integer(minimum=1, maximum=INTEGER_COLUMN_MAXIMUM, nullable=True),
        "phone_extension": Text(max_length=40, nullable=True),
        "allowed_networks": NETWORKS,
    },
    required=frozenset({"login", "password", "role"}),
)

CHANGE_BODY = ObjectSchema(
    {
        "display_name": Text(min_length=1, max_length=200),
        "role": Text(choices=ROLE_NAMES),
        "team_id": Integer(minimum=1, maximum=INTEGER_COLUMN_MAXIMUM, nullable=True),
        "phone_extension": Text(max_length=40, nullable=True),
        "disabled": Boolean(),
        "allowed_networks": NETWORKS,
    },
    min_fields=1,
)

RESET_PASSWORD_BODY = ObjectSchema(
    {"password": Text(min_length=1, max_length=1024, strip=False)},
    required=frozenset({"password"}),
)

LIST_QUERY = QuerySchema({"include_disabled": query_boolean("also list disabled users")})


def _user_id(call: Call) -> int:
    return call.path_id(maximum=INTEGER_COLUMN_MAXIMUM)


async def _user_with_lock(call: Call, user_id: int) -> dict[str, object]:
    user = await get_user(call.database, call.require_actor(), user_id)
    answer = user_json(user)
    answer["locked_until"] = timestamp(await user_locked_until(call.database, user, call.now))
    return answer


async def users(call: Call) -> object:
    include_disabled = call.query.boolean("include_disabled", default=True)
    rows = await list_users(call.database, call.require_actor(), include_disabled=include_disabled)
    return {"items": [user_json(user) for user in rows], "total": len(rows)}


async def user(call: Call) -> object:
    return await _user_with_lock(call, _user_id(call))


async def new_user(call: Call) -> object:
    body = call.body
    created = await create_user(
        call.database,
        call.require_actor(),
        call.settings.core,
        login=body.text("login"),
        password=body.text("password"),
        display_name=body.optional_text("display_name") or "",
        role=Role(body.text("role")),
        team_id=body.optional_integer("team_id"),
        phone_extension=body.optional_text("phone_extension"),
        allowed_networks=body.text_list("allowed_networks"),
    )
    return user_json(created)


async def change_user(call: Call) -> object:
    actor = call.require_actor()
    body = call.body
    user_id = _user_id(call)
    role = body.optional_text("role")
    await update_user(
        call.database,
        actor,
        user_id,
        display_name=body.optional_text("display_name"),
        role=Role(role) if role is not None else None,
        team_id=body.optional_integer("team_id"),
        clear_team="team_id" in body and body.raw("team_id") is None,
        phone_extension=(
            (body.optional_text("phone_extension") or "") if "phone_extension" in body else None
        ),
    )
    if "allowed_networks" in body:
        await set_user_allow_list(call.database, actor, user_id, body.text_list("allowed_networks"))
    if "disabled" in body:
        await disable_user(call.database, actor, user_id, disabled=body.boolean("disabled"))
    return await _user_with_lock(call, user_id)


async def unlock(call: Call) -> object:
    await unlock_user(call.database, call.require_actor(), _user_id(call))
    return await _user_with_lock(call, _user_id(call))


async def new_password(call: Call) -> object:
    changed = await reset_password(
        call.database,
        call.require_actor(),
        call.settings.core,
        _user_id(call),
        call.body.text("password"),
    )
    return user_json(changed)


ENDPOINTS = (
    Endpoint(
        "GET",
        "/api/users",
        users,
        ADMIN_ONLY,
        "List users",
        "users",
        query=LIST_QUERY,
        read_only=True,
    ),
    Endpoint(
        "POST",
        "/api/users",
        new_user,
        ADMIN_ONLY,
        "Create a user",
        "users",
        body=CREATE_BODY,
        status=201,
        errors=(409,),
    ),
    Endpoint("GET", "/api/users/{id:int}", user, ADMIN_ONLY, "One user", "users", read_only=True),
    Endpoint(
        "PATCH",
        "/api/users/{id:int}",
        change_user,
        ADMIN_ONLY,
        "Change a user: name, role, team, extension, allow-list, disabled",
        "users",
        body=CHANGE_BODY,
        errors=(409,),
    ),
    Endpoint(
        "POST",
        "/api/users/{id:int}/unlock",
        unlock,
        ADMIN_ONLY,
        "Clear the failed-login lock of a user",
        "users",
    ),
    Endpoint(
        "POST",
        "/api/users/{id:int}/reset-password",
        new_password,
        ADMIN_ONLY,
        "Set a new password (ends the user's sessions)",
        "users",
        body=RESET_PASSWORD_BODY,
    ),
)
