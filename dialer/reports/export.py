"""The daily report as a CSV file (UTF-8 with BOM, so Excel shows Cyrillic) or an XLSX workbook.

CSV is one table in long form, one line per breakdown line::

    section,key,label,calls,answered,answer_rate,failed,talk_seconds_total,...

with ``section`` one of total, day, hour, operator, outcome, failure_cause. The workbook has a
"Summary" sheet (range, zone, totals) and one sheet per breakdown with the same columns. Text that
a spreadsheet would run as a formula (starting with ``= + - @`` or a control character) is
written with a leading apostrophe.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import date
from enum import StrEnum

import openpyxl

from dialer.reports.daily import DailyReport, Metrics, ReportLine

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

METRIC_COLUMNS = (
    "calls",
    "answered",
    "answer_rate",
    "failed",
    "talk_seconds_total",
    "talk_seconds_average",
    "talk_seconds_median",
    "ring_seconds_total",
    "ring_seconds_average",
)
CSV_COLUMNS = ("section", "key", "label", *METRIC_COLUMNS)
SHEET_TITLES = {
    "day": "Days",
    "hour": "Hours",
    "operator": "Operators",
    "outcome": "Outcomes",
    "failure_cause": "Failures",
}
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")

Cell = str | int | float | None


class ReportFormat(StrEnum):
    CSV = "csv"
    XLSX = "xlsx"


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def metric_values(metrics: Metrics) -> list[Cell]:
    return [
        metrics.calls,
        metrics.answered,
        _rounded(metrics.answer_rate, 4),
        metrics.failed,
        _rounded(metrics.talk_seconds_total, 3),
        _rounded(metrics.talk_seconds_average, 3),
        metrics.talk_seconds_median,
        _rounded(metrics.ring_seconds_total, 3),
        _rounded(metrics.ring_seconds_average, 3),
    ]


def _safe_text(text: str) -> str:
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _key_text(key: date | int | str | None) -> Cell:
    if key is None:
        return ""
    if isinstance(key, date):
        return key.isoformat()
    if isinstance(key, int):
        return key
    return _safe_text(key)


def _line_cells(line: ReportLine) -> list[Cell]:
    return [_key_text(line.key), _safe_text(line.label), *metric_values(line.metrics)]


def _csv_cell(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if value != int(value) else str(int(value))
    return str(value)


def report_csv(report: DailyReport) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for section, lines in report.sections():
        for line in lines:
            writer.writerow([section, *(_csv_cell(cell) for cell in _line_cells(line))])
    return buffer.getvalue().encode("utf-8-sig")


def _write_sheet(sheet: object, rows: Sequence[Sequence[Cell]]) -> None:
    for row in rows:
        sheet.append(list(row))  # type: ignore[attr-defined]


def report_xlsx(report: DailyReport) -> bytes:
    workbook = openpyxl.Workbook(write_only=True)
    query = report.query
    summary = workbook.create_sheet("Summary")
    _write_sheet(
        summary,
        [
            ["from", query.first_day.isoformat()],
            ["to", query.last_day.isoformat()],
            ["timezone", query.timezone],
            ["operator_id", query.operator_id],
            ["team_id", query.team_id],
            [],
            list(METRIC_COLUMNS),
            metric_values(report.total),
        ],
    )
    for section, lines in report.sections()[1:]:
        sheet = workbook.create_sheet(SHEET_TITLES[section])
        _write_sheet(sheet, [["key", "label", *METRIC_COLUMNS], *map(_line_cells, lines)])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def render_report(report: DailyReport, report_format: ReportFormat) -> bytes:
    if report_format is ReportFormat.XLSX:
        return report_xlsx(report)
    return report_csv(report)


def export_file_name(report: DailyReport, report_format: ReportFormat) -> str:
    query = report.query
    return f"calls-{query.first_day.isoformat()}-{query.last_day.isoformat()}.{report_format}"
