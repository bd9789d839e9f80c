"""Exceptions raised by the domain core.

Every use case raises only these; the web layer maps them to HTTP answers::

    DialerError
    ├── NotFound                  the row does not exist or is not visible to the actor
    ├── PermissionDenied          the actor's role may not do this
    │   ├── SourceNotAllowed      the source IP is outside the user's / role's allow-list
    │   ├── DoNotCall             the number belongs to a contact marked do-not-call
    │   └── OutsideCallingWindow  it is outside the calling window in the callee's time zone
    ├── ValidationFailed          bad input: .field and .problem say which and why
    ├── Conflict                  duplicate login, status in use, stale state transition
    │   └── InvalidTransition     a call state change the call's lifecycle does not allow
    ├── AuthenticationFailed      wrong login or password: never says which one
    │   ├── SecondFactorRequired  password right, the account wants a TOTP code
    │   └── SessionExpired        unknown, ended, idle or too old web session token
    ├── AccountLocked             too many failures; .until is when attempts open again
    │   └── SourceThrottled       too many failures from this source IP; .until likewise
    └── BackupFailed              a backup or restore did not complete

Authentication failures change throttling counters and append audit events in the session before
raising: the caller must COMMIT the session even when `authenticate` raises.
"""

from __future__ import annotations

from datetime import datetime


class DialerError(Exception):
    """Base of every domain error."""


class NotFound(DialerError):  # noqa: N818 (names agreed in the data contract)
    """The row does not exist, is soft-deleted, or is not visible to the actor."""


class PermissionDenied(DialerError):  # noqa: N818 (names agreed in the data contract)
    """The actor's role does not allow the operation."""


class SourceNotAllowed(PermissionDenied):
    """The source IP address is outside the user's and the role's allow-lists."""

    def __init__(self, source_ip: str | None) -> None:
        super().__init__("access from this address is not allowed")
        self.source_ip = source_ip


_WEEKDAY_ABBREVIATIONS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


class OutsideCallingWindow(PermissionDenied):
    """It is outside the configured calling window in the callee's local time."""

    def __init__(
        self, e164: str, timezone: str, weekday: int, clock: str, hours: str | None
    ) -> None:
        """``weekday`` 0 (Monday) to 6 in the callee's zone, ``clock`` "HH:MM" there,
        ``hours`` that day's calling hours ("09:00-21:00") or None when that day has none."""
        self.e164 = e164
        self.timezone = timezone
        self.weekday = weekday
        self.clock = clock
        self.hours = hours
        self.local_time = f"{_WEEKDAY_ABBREVIATIONS[weekday]} {clock}"
        self.window = hours if hours is not None else "no calls"
        super().__init__(
            f"it is {self.local_time} ({timezone}) at {e164}; calling hours that day: {self.window}"
        )


class DoNotCall(PermissionDenied):
    """The dialled number belongs to a contact whose status forbids calling."""

    def __init__(self, e164: str, contact_id: int) -> None:
        super().__init__(f"{e164} is on the do-not-call list (contact {contact_id})")
        self.e164 = e164
        self.contact_id = contact_id


class ValidationFailed(DialerError):  # noqa: N818 (names agreed in the data contract)
    """Input that cannot be accepted; ``field`` names the input, ``problem`` explains."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class Conflict(DialerError):  # noqa: N818 (names agreed in the data contract)
    """The change clashes with existing data (duplicate login, stale state)."""


class InvalidTransition(Conflict):
    """A call cannot move from its current state to the requested one."""

    def __init__(self, call_id: int, current: str, requested: str) -> None:
        super().__init__(f"call {call_id} cannot go from {current} to {requested}")
        self.call_id = call_id
        self.current = current
        self.requested = requested


AUTHENTICATION_FAILED_MESSAGE = "invalid login or password"


class AuthenticationFailed(DialerError):  # noqa: N818 (names agreed in the data contract)
    """Login refused. The message is the same whether or not the login exists."""

    def __init__(self, message: str = AUTHENTICATION_FAILED_MESSAGE) -> None:
        super().__init__(message)


class SecondFactorRequired(AuthenticationFailed):
    """The password was right but the account needs a TOTP code (none or an empty one given)."""

    def __init__(self) -> None:
        super().__init__("a one-time code is required")


class SessionExpired(AuthenticationFailed):
    """The web session token is unknown, ended, idle too long or past its absolute lifetime."""

    def __init__(self) -> None:
        super().__init__("the session has expired; log in again")


class AccountLocked(DialerError):  # noqa: N818 (names agreed in the data contract)
    """Too many failed logins for this login name; attempts are refused until ``until``.

    Raised for unknown logins too, so it does not reveal whether a login exists.
    """

    def __init__(self, until: datetime) -> None:
        super().__init__(f"too many failed attempts; try again after {until.isoformat()}")
        self.until = until


class SourceThrottled(AccountLocked):
    """Too many failed logins from this source IP address; refused until ``until``."""


class BackupFailed(DialerError):  # noqa: N818 (names agreed in the data contract)
    """A backup or restore did not complete; the message says why."""
