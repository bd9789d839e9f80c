"""The live floor for supervisors and admins: the wallboard and joining calls.

``GET /api/floor?timezone=Europe/Moscow`` answers the board (``dialer.floor.board``) as the
database has it now; the browser then keeps it current with the ``operator.state`` and
``call.*`` events of the events socket (supervisors receive those of their team, admins all)::

    {"taken_at": "...", "day_started_at": "...", "timezone": "Europe/Moscow",
     "operators": [{"operator_id": 7, "name": "Anna", "state": "talking",
                    "state_since": "...", "call_id": 12, "contact_id": 3,
                    "contact_name": "Ivan Smirnov", "calls_today": 4,
                    "talk_seconds_today": 312.5, ...}]}

``POST /api/calls/{id}/monitor`` with ``{"mode": "listen" | "whisper" | "barge"}`` joins a call
in progress (audited as ``monitor.<mode>``) and answers the monitor's id and the socket that
carries its audio (``web.monitor_socket``), which must claim it within 30 s::

    {"monitor_id": "...", "call_id": 12, "mode": "listen",
     "socket_path": "/ws/calls/12/monitor?mode=listen&monitor=..."}

A call the caller may not see is a 404, one not in progress a 409, no call service a 503.
"""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.datastructures import State

from dialer.calls import get_call
from dialer.floor.board import board_snapshot
from dialer.floor.monitoring import MonitorableCalls, MonitorDesk, check_mode
from dialer.telephony.monitor_hub import MONITOR_MODES
from web.api.telephony import CallServiceUnavailable
from web.permissions import SUPERVISOR_OR_ADMIN
from web.routing import Call, Endpoint
from web.validation import ObjectSchema, QuerySchema, Text, query_text

FLOOR_QUERY = QuerySchema(
    {"timezone": query_text("IANA time zone that decides what 'today' is (default UTC)", 64)}
)
MONITOR_BODY = ObjectSchema(
    {"mode": Text(choices=MONITOR_MODES, description="listen, whisper or barge")},
    required=frozenset({"mode"}),
)


def monitor_desk_of(state: State) -> MonitorDesk | None:
    """The desk of the running call service (made on first use), or None without one."""
    call_control = getattr(state, "call_control", None)
    if call_control is None or not isinstance(call_control, MonitorableCalls):
        return None
    desk: MonitorDesk | None = getattr(state, "monitor_desk", None)
    if desk is None or desk.calls is not call_control:
        if desk is not None:
            desk.close()
        desk = MonitorDesk(call_control)
        state.monitor_desk = desk
    return desk


def monitor_socket_path(call_id: int, mode: str, monitor_id: str | None = None) -> str:
    parameters = {"mode": mode}
    if monitor_id is not None:
        parameters["monitor"] = monitor_id
    return f"/ws/calls/{call_id}/monitor?{urlencode(parameters)}"


async def floor(call: Call) -> object:
    board = await board_snapshot(
        call.database,
        call.require_actor(),
        now=call.now,
        timezone=call.query.optional_text("timezone") or "UTC",
        session_idle_minutes=call.settings.core.session_idle_minutes,
    )
    return board.as_json()


async def monitor(call: Call) -> object:
    actor = call.require_actor()
    call_id = call.path_id()
    mode = check_mode(call.body.text("mode"))
    desk = monitor_desk_of(call.request.app.state)
    if desk is None:
        # Visibility first: a call the caller may not see is a 404 either way.
        await get_call(call.database, actor, call_id)
        raise CallServiceUnavailable("the call service is not running on this server")
    granted = await desk.grant(call.database, actor, call_id, mode)
    return {
        "monitor_id": granted.monitor_id,
        "call_id": call_id,
        "mode": mode,
        "socket_path": monitor_socket_path(call_id, mode, granted.monitor_id),
    }


ENDPOINTS = (
    Endpoint(
        "GET",
        "/api/floor",
        floor,
        SUPERVISOR_OR_ADMIN,
        "The wallboard: your team's operators (all for admins), their state and today's figures",
        "floor",
        query=FLOOR_QUERY,
        errors=(422,),
        read_only=True,
    ),
    Endpoint(
        "POST",
        "/api/calls/{id:int}/monitor",
        monitor,
        SUPERVISOR_OR_ADMIN,
        "Listen to, whisper on or barge into a call in progress (audited)",
        "floor",
        body=MONITOR_BODY,
        status=201,
        errors=(404, 409),
    ),
)
