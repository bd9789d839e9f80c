"""``/api/calls`` in progress: place a call, hang up, mute, hold, DTMF, and "my current call".

Every endpoint talks to the ``dialer.call_control.CallControl`` in ``app.state.call_control``
(``web.bootstrap`` puts the SIP call service there when the server starts). Answers are the
``LiveCall`` JSON the events socket also sends::

    {"call_id": 12, "operator_id": 7, "contact_id": 3, "number": "+74955550101",
     "state": "created", "muted": false, "held": false}

Errors, in words: a do-not-call number is refused (403 ``do_not_call``); a second call while one
is in progress is a 409; a number that is not a phone number is a 422 on ``number``; no call
service, a SIP account that is not registered, or a service shutting down is a 503
(``call_service_unavailable`` / ``trunk_down``). A call that is not in progress but visible is a
409; one the caller may not see is a 404.
"""

from __future__ import annotations

import dataclasses

from dialer.actors import Actor
from dialer.call_control import AudioLeg, CallControl, CallRequest, LiveCall
from dialer.calls import get_call
from dialer.errors import Conflict
from dialer.telephony import CallService
from web.errors import ApiError
from web.permissions import SIGNED_IN
from web.routing import Call, Endpoint
from web.validation import BIG_INTEGER_COLUMN_MAXIMUM, Boolean, Integer, ObjectSchema, Text

SHUTTING_DOWN = "the call service is shutting down"


class CallServiceUnavailable(ApiError):  # noqa: N818 (HTTP status names read better)
    """503: no call service runs here, or it cannot place calls right now."""

    status = 503
    code = "call_service_unavailable"


PLACE_BODY = ObjectSchema(
    {
        "contact_id": Integer(minimum=1, maximum=BIG_INTEGER_COLUMN_MAXIMUM, nullable=True),
        "phone_id": Integer(minimum=1, maximum=BIG_INTEGER_COLUMN_MAXIMUM, nullable=True),
        "number": Text(min_length=1, max_length=100, nullable=True),
        "audio_leg": Text(
            choices=tuple(leg.value for leg in AudioLeg),
            description="hear and speak in the browser, or on your own phone",
        ),
    },
    required=frozenset({"audio_leg"}),
)
MUTE_BODY = ObjectSchema({"muted": Boolean()}, required=frozenset({"muted"}))
HOLD_BODY = ObjectSchema({"held": Boolean()}, required=frozenset({"held"}))
DTMF_BODY = ObjectSchema(
    {"digits": Text(min_length=1, max_length=32, pattern=r"[0-9*#A-Da-d]+")},
    required=frozenset({"digits"}),
)


def live_call_json(live: LiveCall) -> dict[str, object]:
    return dataclasses.asdict(live)


def call_control_of(call: Call) -> CallControl:
    """The running call service, or 503."""
    call_control: CallControl | None = getattr(call.request.app.state, "call_control", None)
    if call_control is None:
        raise CallServiceUnavailable("the call service is not running on this server")
    return call_control


def _trunk_problem(call_control: CallControl, actor: Actor) -> str | None:
    """Why calls cannot go out right now (an account that must register but is not)."""
    if not isinstance(call_control, CallService):
        return None
    calling = call_control.accounts.for_operator(actor.user_id)
    if not calling.account.register:
        return None
    registration = call_control.phone.registrations.get(calling.name)
    if registration is not None and registration.registered:
        return None
    reason = ""
    if registration is not None and registration.status_code:
        reason = f" ({registration.status_code} {registration.reason})".rstrip()
    return f"the SIP account {calling.name!r} is not registered{reason}: calls cannot go out"


async def _visible_call_id(call: Call) -> int:
    """The path's call id after checking the caller may see that call (404 otherwise)."""
    call_id = call.path_id()
    await get_call(call.database, call.require_actor(), call_id)
    # End this read before the call service opens its own transactions: on SQLite a transaction
    # left open here would hold the write lock the service's session waits for.
    await call.database.rollback()
    return call_id


async def place(call: Call) -> object:
    actor = call.require_actor()
    call_control = call_control_of(call)
    problem = _trunk_problem(call_control, actor)
    if problem is not None:
        raise CallServiceUnavailable(problem, code="trunk_down")
    body = call.body
    request = CallRequest(
        contact_id=body.optional_integer("contact_id"),
        phone_id=body.optional_integer("phone_id"),
        number=body.optional_text("number"),
        audio_leg=AudioLeg(body.text("audio_leg")),
    )
    try:
        live = await call_control.place_call(actor, request)
    except Conflict as error:
        if str(error) == SHUTTING_DOWN:
            raise CallServiceUnavailable(SHUTTING_DOWN) from None
        raise
    return live_call_json(live)


async def hang_up(call: Call) -> object:
    call_id = await _visible_call_id(call)
    await call_control_of(call).hang_up(call.require_actor(), call_id)
    return {"call_id": call_id, "hanging_up": True}


async def mute(call: Call) -> object:
    call_id = await _visible_call_id(call)
    live = await call_control_of(call).set_muted(
        call.require_actor(), call_id, call.body.boolean("muted")
    )
    return live_call_json(live)


async def hold(call: Call) -> object:
    call_id = await _visible_call_id(call)
    live = await call_control_of(call).set_held(
        call.require_actor(), call_id, call.body.boolean("held")
    )
    return live_call_json(live)


async def dtmf(call: Call) -> object:
    call_id = await _visible_call_id(call)
    digits = call.body.text("digits")
    await call_control_of(call).send_dtmf(call.require_actor(), call_id, digits)
    return {"call_id": call_id, "digits": digits.upper()}


async def current(call: Call) -> object:
    actor = call.require_actor()
    call_control: CallControl | None = getattr(call.request.app.state, "call_control", None)
    live = call_control.current_call(actor.user_id) if call_control is not None else None
    return {"current_call": live_call_json(live) if live is not None else None}


ENDPOINTS = (
    Endpoint(
        "POST",
        "/api/calls",
        place,
        SIGNED_IN,
        "Place a call to a contact (its primary phone or phone_id) or a typed number",
        "calls",
        body=PLACE_BODY,
        status=201,
        errors=(403, 409, 422),
    ),
    Endpoint(
        "GET",
        "/api/calls/current",
        current,
        SIGNED_IN,
        "Your call in progress, or null",
        "calls",
        read_only=True,
    ),
    Endpoint(
        "POST",
        "/api/calls/{id:int}/hangup",
        hang_up,
        SIGNED_IN,
        "Hang up a call in progress (its operator, their supervisor or an admin)",
        "calls",
        status=202,
        errors=(409,),
    ),
    Endpoint(
        "POST",
        "/api/calls/{id:int}/mute",
        mute,
        SIGNED_IN,
        "Mute or unmute your microphone on your call",
        "calls",
        body=MUTE_BODY,
        errors=(409,),
    ),
    Endpoint(
        "POST",
        "/api/calls/{id:int}/hold",
        hold,
        SIGNED_IN,
        "Hold or resume your call",
        "calls",
        body=HOLD_BODY,
        errors=(409,),
    ),
    Endpoint(
        "POST",
        "/api/calls/{id:int}/dtmf",
        dtmf,
        SIGNED_IN,
        "Send DTMF tones (0-9 * # A-D) on your call",
        "calls",
        body=DTMF_BODY,
        errors=(409,),
    ),
)
