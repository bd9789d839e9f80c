"""``/api/statuses``: the configurable contact status (disposition) list."""

from __future__ import annotations

from dialer.statuses import list_statuses
from web.api.representations import status_json
from web.permissions import SIGNED_IN
from web.routing import Call, Endpoint
from web.validation import QuerySchema, query_boolean

LIST_QUERY = QuerySchema({"include_inactive": query_boolean("also list retired statuses")})


async def statuses(call: Call) -> object:
    rows = await list_statuses(
        call.database, include_inactive=call.query.boolean("include_inactive")
    )
    return {"items": [status_json(status) for status in rows]}


ENDPOINTS = (
    Endpoint(
        "GET",
        "/api/statuses",
        statuses,
        SIGNED_IN,
        "The contact status list in display order",
        "statuses",
        query=LIST_QUERY,
        read_only=True,
    ),
)
