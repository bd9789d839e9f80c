"""``/api/calls``: call history (operators: own calls; supervisors: team; admins: all) and the
operator's disposition of a call (``POST /api/calls/{id}/outcome``)."""

from __future__ import annotations

from dialer.call_control import CallControl
from dialer.calls import CallQuery, get_call, list_calls, set_call_outcome
from dialer.errors import ValidationFailed
from dialer.models import CallState
from web.api.representations import call_json, page_json
from web.errors import RequestInvalid
from web.permissions import SIGNED_IN
from web.routing import Call, Endpoint
from web.validation import (
    INTEGER_COLUMN_MAXIMUM,
    DateTime,
    ObjectSchema,
    QuerySchema,
    Text,
    pagination_parameters,
    query_choice,
    query_datetime,
    query_integer,
    query_text,
)

DEFAULT_PAGE_SIZE = 50

LIST_QUERY = QuerySchema(
    {
        "contact_id": query_integer("calls of this contact", minimum=1),
        "operator_id": query_integer(
            "calls of this operator", minimum=1, maximum=INTEGER_COLUMN_MAXIMUM
        ),
        "from": query_datetime("calls created at or after this time"),
        "to": query_datetime("calls created before this time"),
        "outcome": query_text("outcome (status code)", max_length=40),
        "state": query_choice(tuple(state.value for state in CallState), "call state"),
        **pagination_parameters(DEFAULT_PAGE_SIZE),
    }
)

OUTCOME_BODY = ObjectSchema(
    {
        "outcome": Text(min_length=1, max_length=40, description="a status code"),
        "note": Text(max_length=2000, nullable=True),
        "follow_up_at": DateTime(nullable=True),
    },
    required=frozenset({"outcome"}),
)


async def calls(call: Call) -> object:
    query = call.query
    state = query.optional_text("state")
    page = await list_calls(
        call.database,
        call.require_actor(),
        CallQuery(
            contact_id=query.optional_integer("contact_id"),
            operator_id=query.optional_integer("operator_id"),
            since=query.optional_datetime("from"),
            until=query.optional_datetime("to"),
            outcome=query.optional_text("outcome"),
            state=CallState(state) if state is not None else None,
            limit=query.optional_integer("limit") or DEFAULT_PAGE_SIZE,
            offset=query.optional_integer("offset") or 0,
        ),
    )
    return page_json(page, call_json)


async def one_call(call: Call) -> object:
    return call_json(await get_call(call.database, call.require_actor(), call.path_id()))


async def outcome(call: Call) -> object:
    body = call.body
    try:
        updated = await set_call_outcome(
            call.database,
            call.require_actor(),
            call.path_id(),
            body.text("outcome"),
            body.optional_text("note") or None,
            body.optional_datetime("follow_up_at"),
            now=call.now,
        )
    except ValidationFailed as error:
        # The core checks the outcome as a contact "status"; name the field the client sent.
        field = "outcome" if error.field == "status" else error.field
        raise RequestInvalid(field, error.problem) from None
    call_control: CallControl | None = getattr(call.request.app.state, "call_control", None)
    operator_id = updated.operator_id
    if call_control is not None and operator_id is not None:
        # The operator's wrap-up ends with the saved outcome: the floor sees them idle again.
        call.after_commit.append(lambda: call_control.finish_wrap_up(operator_id))
    return call_json(updated)


ENDPOINTS = (
    Endpoint(
        "GET",
        "/api/calls",
        calls,
        SIGNED_IN,
        "Calls visible to you, newest first, one page with the total",
        "calls",
        query=LIST_QUERY,
        read_only=True,
    ),
    Endpoint(
        "GET", "/api/calls/{id:int}", one_call, SIGNED_IN, "One call", "calls", read_only=True
    ),
    Endpoint(
        "POST",
        "/api/calls/{id:int}/outcome",
        outcome,
        SIGNED_IN,
        "Record the outcome (disposition) of a call; the contact takes it as its status",
        "calls",
        body=OUTCOME_BODY,
    ),
)
