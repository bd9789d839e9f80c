"""Settings of the reports: the time zone whose days and hours a report counts in.

=========================  ==========================================  ==========
variable                   meaning                                     default
=========================  ==========================================  ==========
DIALER_REPORT_TIMEZONE     IANA zone of report days (Europe/Moscow)    UTC
=========================  ==========================================  ==========

The default is UTC, not the server's local zone: servers and containers usually run in UTC
anyway, and a report must not change meaning when the same database is read from another host.
A team in Moscow sets ``DIALER_REPORT_TIMEZONE=Europe/Moscow``; every report also takes a
``timezone`` of its own.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dialer.reports.errors import ReportRangeInvalid

DEFAULT_REPORT_TIMEZONE = "UTC"


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
