"""The hours in which a callee may be called, in the callee's own local time.

Telemarketing rules put the window in the callee's time zone (VICIdial's default 9:00-21:00; US
law 8:00-21:00; Russian debt collection 8:00-22:00 on weekdays). ``CallingWindow`` is the pure
part: parsed from "HH:MM-HH:MM" (a window may run past midnight, "22:00-06:00"), it says
whether a local time falls inside. ``check_calling_window`` applies it to a number whose time
zone is known and raises ``OutsideCallingWindow``; a number whose zone is unknown (a mobile
range spanning the country, with no zone on its contact) cannot be checked and is allowed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dialer.errors import OutsideCallingWindow, ValidationFailed

_WINDOW_PATTERN = re.compile(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*")


@dataclass(frozen=True)
class CallingWindow:
    """From ``start`` (included) to ``end`` (excluded), local time; past midnight when
    ``end`` is not after ``start``."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> CallingWindow:
        """ "09:00-21:00" -> the window; ValidationFailed("calling_window", ...) otherwise."""
        match = _WINDOW_PATTERN.fullmatch(text)
        if match is None:
            raise ValidationFailed("calling_window", f"expected HH:MM-HH:MM, got {text!r}")
        start_hour, start_minute, end_hour, end_minute = (int(part) for part in match.groups())
        try:
            start, end = time(start_hour, start_minute), time(end_hour, end_minute)
        except ValueError as error:
            raise ValidationFailed("calling_window", f"{text!r}: {error}") from error
        if start == end:
            raise ValidationFailed("calling_window", f"{text!r} is an empty window")
        return cls(start, end)

    def allows(self, local: time) -> bool:
        """Whether ``local`` (the callee's wall-clock time) is inside the window."""
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


def check_calling_window(
    window: CallingWindow, timezone_name: str | None, now: datetime, e164: str
) -> None:
    """Raise ``OutsideCallingWindow`` when it is outside ``window`` in ``timezone_name`` at
    ``now`` (an aware datetime); nothing when the zone is unknown (None or not a zone name)."""
    if not timezone_name:
        return
    try:
        zone = ZoneInfo(timezone_name)
    except (ZoneInfoNotFoundError, ValueError):
        return
    local = now.astimezone(zone)
    if not window.allows(local.time()):
        raise OutsideCallingWindow(e164, f"{local:%H:%M}", timezone_name, str(window))
