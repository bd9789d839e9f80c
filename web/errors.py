"""Errors the HTTP layer answers with, each carrying its status code and a stable ``code``.

Every error response has the body ``{"error": {"code": ..., "message": ..., "field": ...}}``
(``field`` only when one field of the request is to blame; ``details``, an object, only where
the page words the error itself, e.g. the callee's local time for ``outside_calling_window``)::

    ApiError                      any error answered as JSON
     ├── MalformedRequest          400 the body is not JSON, or not a JSON object
     ├── NotAuthenticated          401 no session, an expired one, or wrong credentials
     ├── Forbidden                 403 role, CSRF token, Origin or source address refused
     ├── ResourceNotFound          404
     ├── MethodNotAllowed          405
     ├── ConflictingState          409
     ├── BodyTooLarge              413
     ├── UnsupportedMediaType      415 a body that is not ``application/json``
     ├── RequestInvalid            422 one field is missing, unknown or has a bad value
     ├── Locked                    423 the account is locked until a given time
     └── Throttled                 429 too many attempts from this source

``api_error_from_dialer`` translates the domain core's ``DialerError`` family into these.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from dialer import errors as core


class ApiError(Exception):
    """An error answered to the client as ``{"error": {...}}`` with ``status``."""

    status = 500
    code = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        code: str | None = None,
        details: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = dict(details) if details is not None else None
        if code is not None:
            self.code = code

    def as_json(self) -> dict[str, object]:
        body: dict[str, object] = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        if self.details is not None:
            body["details"] = self.details
        return {"error": body}


class MalformedRequest(ApiError):  # noqa: N818 (HTTP status names read better)
    status = 400
    code = "malformed_request"


class NotAuthenticated(ApiError):  # noqa: N818 (HTTP status names read better)
    status = 401
    code = "not_authenticated"


class Forbidden(ApiError):  # noqa: N818 (HTTP status names read better)
    status = 403
    code = "forbidden"


class ResourceNotFound(ApiError):  # noqa: N818 (HTTP status names read better)
    status = 404
    code = "not_found"


class MethodNotAllowed(ApiError):  # noqa: N818 (HTTP status names read better)
    status = 405
    code = "method_not_allowed"


class ConflictingState(ApiError):  # noqa: N818 (HTTP status names read better)
    status = 409
    code = "conflict"


class BodyTooLarge(ApiError):  # noqa: N818 (HTTP status names read better)
    status = 413
    code = "body_too_large"


class UnsupportedMediaType(ApiError):  # noqa: N818 (HTTP status names read better)
    status = 415
    code = "unsupported_media_type"


class RequestInvalid(ApiError):  # noqa: N818 (HTTP status names read better)
    """One field of the request is wrong; ``field`` names it (dotted path, ``[i]`` for items)."""

    status = 422
    code = "invalid"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(problem, field=field)
        self.problem = problem


class Locked(ApiError):  # noqa: N818 (HTTP status names read better)
    status = 423
    code = "account_locked"

    def __init__(self, until: datetime) -> None:
        super().__init__(f"account locked until {until.isoformat(timespec='seconds')}")
        self.until = until


class Throttled(ApiError):  # noqa: N818 (HTTP status names read better)
    status = 429
    code = "throttled"


def api_error_from_dialer(error: core.DialerError) -> ApiError:
    """The HTTP answer for an error raised by a use case of the domain core."""
    if isinstance(error, core.ValidationFailed):
        return RequestInvalid(error.field, error.problem)
    if isinstance(error, core.SourceThrottled):
        return Throttled(
            "too many failed logins from this address; try again after "
            + error.until.isoformat(timespec="seconds")
        )
    if isinstance(error, core.AccountLocked):
        return Locked(error.until)
    if isinstance(error, core.SecondFactorRequired):
        return NotAuthenticated(str(error), code="one_time_code_required")
    if isinstance(error, core.SessionExpired):
        return NotAuthenticated(str(error), code="session_expired")
    if isinstance(error, core.AuthenticationFailed):
        return NotAuthenticated(str(error), code="wrong_credentials")
    if isinstance(error, core.SourceNotAllowed):
        return Forbidden(str(error), code="source_not_allowed")
    if isinstance(error, core.DoNotCall):
        return Forbidden(str(error), code="do_not_call")
    if isinstance(error, core.OutsideCallingWindow):
        return Forbidden(
            str(error),
            code="outside_calling_window",
            details={
                "number": error.e164,
                "timezone": error.timezone,
                "weekday": error.weekday,
                "local_time": error.clock,
                "hours": error.hours,
            },
        )
    if isinstance(error, core.PermissionDenied):
        return Forbidden(str(error) or "not allowed for this role")
    if isinstance(error, core.NotFound):
        return ResourceNotFound(str(error) or "not found")
    if isinstance(error, core.InvalidTransition):
        return ConflictingState(str(error), code="invalid_transition")
    if isinstance(error, core.Conflict):
        return ConflictingState(str(error) or "conflict")
    return ApiError(str(error) or "internal error")
