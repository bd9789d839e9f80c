"""The hours in which a callee may be called, in the callee's own local time.

Telemarketing rules put the hours in the callee's time zone, and often by day of the week
(VICIdial's default 9:00-21:00; US law 8:00-21:00; Russian debt collection 8:00-22:00 on
weekdays and 9:00-20:00 at weekends). The pure part:

- ``CallingWindow``: one span of the day, "HH:MM-HH:MM" (it may run past midnight,
  "22:00-06:00"), says whether a wall-clock time falls inside;
- ``CallingHours``: a window per day of the week, written as rules separated by ";", each an
  optional day or day range (``mon``..``sun``, "mon-fri", "sat,sun") and a window:
  "09:00-21:00" (every day), "mon-fri 08:00-22:00; sat-sun 09:00-20:00", "mon-fri 09:00-18:00"
  (no calls at weekends). A rule without days covers the days no other rule names. Each day is
  read on its own clock: 01:00 on a Saturday is inside Saturday's window or not at all.

``check_calling_window`` applies the hours to a number whose time zone is known and raises
``OutsideCallingWindow``; a number whose zone is unknown (a mobile range spanning the country,
with no zone on its contact) cannot be checked and is allowed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dialer.errors import OutsideCallingWindow, ValidationFailed

_WINDOW_PATTERN = re.compile(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*")
_RULE_PATTERN = re.compile(r"\s*(?:([a-z,\s-]+?)\s+)?(\d{1,2}:\d{2}\s*-\s*\d{1,2}:\d{2})\s*")
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


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


@dataclass(frozen=True)
class CallingHours:
    """A window per day of the week (Monday first); None: no calls that day."""

    days: tuple[CallingWindow | None, ...]

    @classmethod
    def parse(cls, text: str) -> CallingHours:
        """Rules as in the module docstring; ValidationFailed("calling_window", ...) otherwise."""
        named: dict[int, CallingWindow] = {}
        every_other_day: CallingWindow | None = None
        rules = [rule for rule in text.lower().split(";") if rule.strip()]
        if not rules:
            raise ValidationFailed("calling_window", "no hours given")
        for rule in rules:
            match = _RULE_PATTERN.fullmatch(rule)
            if match is None:
                raise ValidationFailed(
                    "calling_window", f"expected [days] HH:MM-HH:MM, got {rule.strip()!r}"
                )
            days_text, window_text = match.groups()
            window = CallingWindow.parse(window_text)
            if days_text is None:
                if every_other_day is not None:
                    raise ValidationFailed("calling_window", "two rules without days")
                every_other_day = window
                continue
            for day in _days(days_text):
                if day in named:
                    raise ValidationFailed(
                        "calling_window", f"{DAY_NAMES[day]} is given two windows"
                    )
                named[day] = window
        return cls(tuple(named.get(day, every_other_day) for day in range(7)))

    def allows(self, local: datetime) -> bool:
        """Whether ``local`` (the callee's wall-clock date and time) is inside that day's hours."""
        window = self.days[local.weekday()]
        return window is not None and window.allows(local.time())

    def describe(self, day: int) -> str:
        """Day ``day``'s hours in words: "09:00-21:00", or "no calls"."""
        window = self.days[day]
        return str(window) if window is not None else "no calls"


def _days(text: str) -> list[int]:
    """ "mon-fri" -> [0..4], "sat,sun" -> [5, 6], "fri-mon" -> [4, 5, 6, 0]."""
    days: list[int] = []
    for part in text.replace(" ", "").split(","):
        first, _, last = part.partition("-")
        if first not in DAY_NAMES or (last and last not in DAY_NAMES):
            raise ValidationFailed(
                "calling_window", f"unknown day {part!r} (use {', '.join(DAY_NAMES)})"
            )
        start = DAY_NAMES.index(first)
        stop = DAY_NAMES.index(last) if last else start
        days.extend((start + offset) % 7 for offset in range((stop - start) % 7 + 1))
    return days


def check_calling_window(
    hours: CallingHours, timezone_name: str | None, now: datetime, e164: str
) -> None:
    """Raise ``OutsideCallingWindow`` when it is outside ``hours`` in ``timezone_name`` at
    ``now`` (an aware datetime); nothing when the zone is unknown (None or not a zone name)."""
    if not timezone_name:
        return
    try:
        zone = ZoneInfo(timezone_name)
    except (ZoneInfoNotFoundError, ValueError):
        return
    local = now.astimezone(zone)
    if not hours.allows(local):
        day = local.weekday()
        window = hours.days[day]
        raise OutsideCallingWindow(
            e164, timezone_name, day, f"{local:%H:%M}", None if window is None else str(window)
        )
