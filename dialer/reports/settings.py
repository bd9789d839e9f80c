"""Settings of the reports: the time zone whose days and hours a report counts in, and how
often ``dialer serve`` folds changed calls into the report rollups.

==============================  ==========================================  ==========
variable                        meaning                                     default
==============================  ==========================================  ==========
DIALER_REPORT_TIMEZONE          IANA zone of report days (Europe/Moscow)    UTC
DIALER_REPORT_REFRESH_SECONDS   seconds between looks for changed hours     1
                                (``dialer.reports.refresher``; 0 = off,
                                reports then refresh them when read)
==============================  ==========================================  ==========

The default is UTC, not the server's local zone: servers and containers usually run in UTC
anyway, and a report must not change meaning when the same database is read from another host.
A team in Moscow sets ``DIALER_REPORT_TIMEZONE=Europe/Moscow``; every report also takes a
``timezone`` of its own.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dialer.errors import ValidationFailed
from dialer.reports.errors import ReportRangeInvalid

DEFAULT_REPORT_TIMEZONE = "UTC"
DEFAULT_REFRESH_SECONDS = 1.0
MAX_REFRESH_SECONDS = 3600.0


def resolve_timezone(name: str, field: str = "timezone") -> ZoneInfo:
    """The zone named ``name`` (an IANA key such as ``Europe/Moscow``); ValidationFailed if none."""
    if not name or len(name) > 64:
        raise ReportRangeInvalid(field, "must be an IANA time zone such as Europe/Moscow")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ReportRangeInvalid(field, f"unknown time zone {name!r}") from None


def default_report_timezone(environ: Mapping[str, str] = os.environ) -> str:
    """The configured report zone (checked), UTC when not configured."""
    name = environ.get("DIALER_REPORT_TIMEZONE", "").strip() or DEFAULT_REPORT_TIMEZONE
    resolve_timezone(name, "DIALER_REPORT_TIMEZONE")
    return name


def refresh_interval_seconds(environ: Mapping[str, str] = os.environ) -> float:
    """DIALER_REPORT_REFRESH_SECONDS (checked): 0 turns the background refresher off."""
    text = environ.get("DIALER_REPORT_REFRESH_SECONDS", "").strip()
    if not text:
        return DEFAULT_REFRESH_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= MAX_REFRESH_SECONDS:
        raise ValidationFailed(
            "DIALER_REPORT_REFRESH_SECONDS", f"must be seconds from 0 to {MAX_REFRESH_SECONDS:g}"
        )
    return seconds
