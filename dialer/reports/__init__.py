"""Daily call-volume reports: queries over a pre-aggregated rollup kept exact by dirty hours.

Public API:

- ``build_daily_report(session, actor, DailyReportQuery(first_day, last_day, timezone,
  operator_id, team_id)) -> DailyReport`` (``dialer.reports.daily``);
- ``render_report(report, ReportFormat.CSV | XLSX) -> bytes`` (``dialer.reports.export``);
- ``refresh_call_volume`` / ``rebuild_call_volume(session, first_hour, end_hour)``
  (``dialer.reports.rollup``), ``mark_hours_dirty(connection, hours)``
  (``dialer.reports.tracking``);
- ``running_refresher(session_factory, RefresherOptions(...))`` (``dialer.reports.refresher``):
  the background task of ``dialer serve`` folding changed hours into the rollups soon after the
  change (reports stay exact without it: they refresh what they read);
- ``default_report_timezone()`` / ``resolve_timezone(name)`` (``dialer.reports.settings``).

Importing this package installs ``dialer.reports.tracking``: an ORM ``after_flush`` listener that
marks the hour of every inserted, updated or deleted ``Call`` dirty in the same transaction. The
web application and the ``dialer`` command import it; any other process that writes calls
through the ORM must import ``dialer.reports`` too (or run ``dialer report rebuild`` afterwards).
"""

from __future__ import annotations

from dialer.reports.daily import (
    MAX_REPORT_DAYS,
    DailyReport,
    DailyReportQuery,
    Metrics,
    ReportLine,
    build_daily_report,
)
from dialer.reports.export import ReportFormat, export_file_name, render_report
from dialer.reports.rollup import rebuild_call_volume, refresh_call_volume
from dialer.reports.settings import default_report_timezone, resolve_timezone
from dialer.reports.tracking import install_call_volume_tracking, mark_hours_dirty

install_call_volume_tracking()

__all__ = [
    "MAX_REPORT_DAYS",
    "DailyReport",
    "DailyReportQuery",
    "Metrics",
    "ReportFormat",
    "ReportLine",
    "build_daily_report",
    "default_report_timezone",
    "export_file_name",
    "install_call_volume_tracking",
    "mark_hours_dirty",
    "rebuild_call_volume",
    "refresh_call_volume",
    "render_report",
    "resolve_timezone",
]
