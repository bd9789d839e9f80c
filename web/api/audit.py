"""``/api/audit``: the audit log (admins: all; supervisors: their team's users) and its check."""

from __future__ import annotations

from dialer.audit import AuditQuery, list_audit_events, verify_audit_chain
from web.api.representations import audit_event_json, page_json
from web.permissions import ADMIN_ONLY, SUPERVISOR_OR_ADMIN
from web.routing import Call, Endpoint
from web.validation import (
    INTEGER_COLUMN_MAXIMUM,
    QuerySchema,
    pagination_parameters,
    query_datetime,
    query_integer,
    query_text,
)

DEFAULT_PAGE_SIZE = 100

LIST_QUERY = QuerySchema(
    {
        "action": query_text("dotted action, e.g. user.login_failed", max_length=60),
        "actor_user_id": query_integer(
            "the acting user", minimum=1, maximum=INTEGER_COLUMN_MAXIMUM
        ),
        "target": query_text("e.g. contact:42", max_length=200),
        "from": query_datetime("events at or after this time"),
        "to": query_datetime("events before this time"),
        **pagination_parameters(DEFAULT_PAGE_SIZE),
    }
)


async def audit_events(call: Call) -> object:
    query = call.query
    page = await list_audit_events(
        call.database,
        call.require_actor(),
        AuditQuery(
            action=query.optional_text("action"),
            actor_user_id=query.optional_integer("actor_user_id"),
            target=query.optional_text("target"),
            since=query.optional_datetime("from"),
            until=query.optional_datetime("to"),
            limit=query.optional_integer("limit") or DEFAULT_PAGE_SIZE,
            offset=query.optional_integer("offset") or 0,
        ),
    )
    return page_json(page, audit_event_json)


async def verify(call: Call) -> object:
    problems = await verify_audit_chain(call.database)
    return {
        "intact": not problems,
        "problems": [
            {
                "audit_event_id": problem.audit_event_id,
                "kind": problem.kind,
                "detail": problem.detail,
            }
            for problem in problems
        ],
    }


ENDPOINTS = (
    Endpoint(
        "GET",
        "/api/audit",
        audit_events,
        SUPERVISOR_OR_ADMIN,
        "Audit events, newest first (supervisors see their team's users)",
        "audit",
        query=LIST_QUERY,
        read_only=True,
    ),
    Endpoint(
        "GET",
        "/api/audit/verify",
        verify,
        ADMIN_ONLY,
        "Check the audit hash chain; lists edited, inserted and deleted rows",
        "audit",
        read_only=True,
    ),
)
