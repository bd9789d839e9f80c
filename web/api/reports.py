"""``/api/reports/daily``: the daily call-volume report as JSON, CSV or XLSX.

Everyone signed in may call these; what the report counts follows the role
(``dialer.reports.daily``): operators their own calls, supervisors their team's, admins all
(optionally one team or one operator). Query: ``from`` and ``to`` (days, ``YYYY-MM-DD``,
inclusive; default the last 7 days up to today), ``timezone`` (IANA name; default
DIALER_REPORT_TIMEZONE, else UTC), ``operator_id``, ``team_id``.

``daily.csv`` (UTF-8 with BOM) and ``daily.xlsx`` are downloads; each one is written to the audit
log as ``report.export`` with the range, zone, filters and format.
"""

from __future__ import annotations

from datetime import date, timedelta

from starlette.responses import Response

from dialer.audit import append_audit_event
from dialer.reports import (
    DailyReport,
    DailyReportQuery,
    Metrics,
    ReportFormat,
    build_daily_report,
    default_report_timezone,
    export_file_name,
    render_report,
    resolve_timezone,
)
from dialer.reports.export import CSV_MEDIA_TYPE, XLSX_MEDIA_TYPE
from web.errors import RequestInvalid
from web.permissions import SIGNED_IN
from web.routing import Call, Endpoint
from web.validation import (
    INTEGER_COLUMN_MAXIMUM,
    QueryParameter,
    QuerySchema,
    query_integer,
    query_text,
)

DEFAULT_DAYS = 7
MEDIA_TYPES = {ReportFormat.CSV: CSV_MEDIA_TYPE, ReportFormat.XLSX: XLSX_MEDIA_TYPE}


def query_day(description: str) -> QueryParameter:
    def convert(text: str, name: str) -> object:
        try:
            return date.fromisoformat(text.strip())
        except ValueError:
            raise RequestInvalid(name, "must be a day such as 2026-03-31") from None

    return QueryParameter(convert, {"type": "string", "format": "date"}, description)


REPORT_QUERY = QuerySchema(
    {
        "from": query_day("first day (default: 6 days before to)"),
        "to": query_day("last day, inclusive (default: today in the report's zone)"),
        "timezone": query_text("IANA zone of the days, e.g. Europe/Moscow", max_length=64),
        "operator_id": query_integer(
            "only this operator's calls", minimum=1, maximum=INTEGER_COLUMN_MAXIMUM
        ),
        "team_id": query_integer(
            "only calls of this team's members", minimum=1, maximum=INTEGER_COLUMN_MAXIMUM
        ),
    }
)


def _day(call: Call, name: str) -> date | None:
    value = call.query.raw(name)
    assert value is None or isinstance(value, date)
    return value


def report_query(call: Call) -> DailyReportQuery:
    zone_name = call.query.optional_text("timezone") or default_report_timezone()
    zone = resolve_timezone(zone_name)
    last_day = _day(call, "to") or call.now.astimezone(zone).date()
    first_day = _day(call, "from") or last_day - timedelta(days=DEFAULT_DAYS - 1)
    return DailyReportQuery(
        first_day=first_day,
        last_day=last_day,
        timezone=zone_name,
        operator_id=call.query.optional_integer("operator_id"),
        team_id=call.query.optional_integer("team_id"),
    )


def _rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def metrics_json(metrics: Metrics) -> dict[str, object]:
    return {
        "calls": metrics.calls,
        "answered": metrics.answered,
        "answer_rate": _rounded(metrics.answer_rate, 4),
        "failed": metrics.failed,
        "talk_seconds_total": _rounded(metrics.talk_seconds_total),
        "talk_seconds_average": _rounded(metrics.talk_seconds_average),
        "talk_seconds_median": metrics.talk_seconds_median,
        "ring_seconds_total": _rounded(metrics.ring_seconds_total),
        "ring_seconds_average": _rounded(metrics.ring_seconds_average),
    }


def report_json(report: DailyReport) -> dict[str, object]:
    query = report.query
    return {
        "from": query.first_day.isoformat(),
        "to": query.last_day.isoformat(),
        "timezone": query.timezone,
        "operator_id": query.operator_id,
        "team_id": query.team_id,
        "total": metrics_json(report.total),
        "days": [{"day": line.label, **metrics_json(line.metrics)} for line in report.days],
        "hours": [{"hour": line.key, **metrics_json(line.metrics)} for line in report.hours],
        "operators": [
            {"operator_id": line.key, "name": line.label, **metrics_json(line.metrics)}
            for line in report.operators
        ],
        "outcomes": [
            {"outcome": line.key, "label": line.label, **metrics_json(line.metrics)}
            for line in report.outcomes
        ],
        "failure_causes": [
            {"cause": line.key, "failures": line.metrics.calls} for line in report.failure_causes
        ],
    }


async def daily(call: Call) -> object:
    report = await build_daily_report(call.database, call.require_actor(), report_query(call))
    return report_json(report)


async def _download(call: Call, report_format: ReportFormat) -> Response:
    actor = call.require_actor()
    query = report_query(call)
    report = await build_daily_report(call.database, actor, query)
    content = render_report(report, report_format)
    await append_audit_event(
        call.database,
        actor,
        "report.export",
        "report:daily",
        {
            "from": query.first_day.isoformat(),
            "to": query.last_day.isoformat(),
            "timezone": query.timezone,
            "operator_id": query.operator_id,
            "team_id": query.team_id,
            "format": report_format.value,
            "calls": report.total.calls,
        },
        call.source_ip,
        now=call.now,
    )
    name = export_file_name(report, report_format)
    return Response(
        content,
        media_type=MEDIA_TYPES[report_format],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


async def daily_csv(call: Call) -> object:
    return await _download(call, ReportFormat.CSV)


async def daily_xlsx(call: Call) -> object:
    return await _download(call, ReportFormat.XLSX)


ENDPOINTS = (
    Endpoint(
        "GET",
        "/api/reports/daily",
        daily,
        SIGNED_IN,
        "Call volume per day, hour, operator, outcome and failure cause (scoped by role)",
        "reports",
        query=REPORT_QUERY,
    ),
    Endpoint(
        "GET",
        "/api/reports/daily.csv",
        daily_csv,
        SIGNED_IN,
        "The daily report as CSV (UTF-8 with BOM); audited as report.export",
        "reports",
        query=REPORT_QUERY,
    ),
    Endpoint(
        "GET",
        "/api/reports/daily.xlsx",
        daily_xlsx,
        SIGNED_IN,
        "The daily report as an XLSX workbook; audited as report.export",
        "reports",
        query=REPORT_QUERY,
    ),
)
