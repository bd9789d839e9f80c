"""Why a call ended: one vocabulary for the dialer, and the mapping from SIP status codes.

Mapping choices worth knowing (RFC 3398 maps ISDN causes onto SIP statuses):

* 486 Busy Here and 600 Busy Everywhere are ``busy``.
* 408 Request Timeout is ``no_answer``: carriers send it when the callee was tried and nobody
  answered in time (Q.850 18 "no user responding").
* 480 Temporarily Unavailable is ``unavailable`` (subscriber absent, not registered, do not
  disturb: Q.850 20); but when the phone had already rung (a 180/183 was received), the same
  480 means Q.850 19 "no answer from user", so ``cause_for_status(480, alerted=True)`` is
  ``no_answer``.
* 404, 410, 416, 484, 485 and 604 are ``invalid_number``.
* 603 Decline is ``declined``; 487 Request Terminated is ``cancelled``.
* 401 and 407 only end a call once our credentials were refused: ``auth_failed``.
* 504 Server Time-out is ``timeout``; every other 5xx (500, 502, 503 ...) is ``congestion``.
* Anything else from 3xx to 6xx is ``rejected``.
"""

from __future__ import annotations

from enum import StrEnum


class CallCause(StrEnum):
    """Why a call ended (or why a registration failed)."""

    busy = "busy"
    no_answer = "no_answer"
    declined = "declined"
    invalid_number = "invalid_number"
    congestion = "congestion"
    unavailable = "unavailable"
    auth_failed = "auth_failed"
    timeout = "timeout"
    network_error = "network_error"
    cancelled = "cancelled"
    local_hangup = "local_hangup"
    remote_hangup = "remote_hangup"
    media_timeout = "media_timeout"
    redirect_loop = "redirect_loop"
    rejected = "rejected"
    interrupted = "interrupted"


_CAUSE_BY_STATUS: dict[int, CallCause] = {
    401: CallCause.auth_failed,
    404: CallCause.invalid_number,
    407: CallCause.auth_failed,
    408: CallCause.no_answer,
    410: CallCause.invalid_number,
    416: CallCause.invalid_number,
    480: CallCause.unavailable,
    484: CallCause.invalid_number,
    485: CallCause.invalid_number,
    486: CallCause.busy,
    487: CallCause.cancelled,
    504: CallCause.timeout,
    600: CallCause.busy,
    603: CallCause.declined,
    604: CallCause.invalid_number,
}


def cause_for_status(status_code: int, *, alerted: bool = False) -> CallCause:
    """The cause of a call that ended with final response ``status_code`` (300 to 699).

    ``alerted`` tells whether the callee's phone had rung (a 180 or 183 arrived first); it
    turns 480 into ``no_answer``. Raises ``ValueError`` for codes that do not end a call.
    """
    if not 300 <= status_code <= 699:
        raise ValueError(f"status {status_code} is not a failure response")
    if status_code == 480 and alerted:
        return CallCause.no_answer
    cause = _CAUSE_BY_STATUS.get(status_code)
    if cause is not None:
        return cause
    if 500 <= status_code <= 599:
        return CallCause.congestion
    return CallCause.rejected
