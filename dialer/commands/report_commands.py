"""``dialer report daily`` and ``dialer report rebuild``: call-volume reports from the shell.

``dialer report daily --from 2026-03-01 --to 2026-03-31 [--timezone Europe/Moscow]
[--operator LOGIN | --team NAME] [--format csv|xlsx] [--output FILE]`` runs as the system actor
(everything visible). With ``--output`` the file is written (CSV with a BOM, or XLSX; the format
defaults to the file's extension) and the export is audited (``report.export``); without it the
CSV is printed (no BOM). ``dialer report rebuild --from --to`` recomputes the rollups of those
days from the calls table (after bulk loads that bypassed the ORM). Exit codes: 0 done,
2 refused (bad dates, zone, unknown operator or team).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from dialer.commands.running import EXIT_OK, Subparsers, run_in_session
from dialer.errors import NotFound, ValidationFailed

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from dialer.reports import ReportFormat

REBUILD_DAYS_PER_TRANSACTION = 8
UTF8_BOM = "\ufeff"
# The values of dialer.reports.ReportFormat, written out so that the parser is built without
# importing the reports (and SQLAlchemy).
REPORT_FORMATS = ("csv", "xlsx")


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD, got {text!r}") from None


def register(subparsers: Subparsers) -> None:
    report = subparsers.add_parser("report", help="call-volume reports")
    commands = report.add_subparsers(dest="report_command", required=True)
    daily = commands.add_parser("daily", help="calls per day, hour, operator, outcome, cause")
    _range_arguments(daily)
    who = daily.add_mutually_exclusive_group()
    who.add_argument("--operator", metavar="LOGIN", help="only this operator's calls")
    who.add_argument("--team", metavar="NAME", help="only the calls of this team's members")
    daily.add_argument("--format", choices=REPORT_FORMATS)
    daily.add_argument("--output", type=Path, help="write the file here (default: CSV to stdout)")
    daily.set_defaults(handler=_daily)
    rebuild = commands.add_parser("rebuild", help="recompute the rollups of a range of days")
    _range_arguments(rebuild)
    rebuild.set_defaults(handler=_rebuild)


def _range_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="first_day", type=_day, required=True, metavar="DAY")
    parser.add_argument("--to", dest="last_day", type=_day, required=True, metavar="DAY")
    parser.add_argument(
        "--timezone", help="zone of the days (default: DIALER_REPORT_TIMEZONE, else UTC)"
    )


def _daily(arguments: argparse.Namespace) -> int:
    return run_in_session(
        lambda session, _settings: _write_report(session, arguments), also_refused=(OSError,)
    )


def _rebuild(arguments: argparse.Namespace) -> int:
    return run_in_session(
        lambda session, _settings: _rebuild_range(session, arguments), also_refused=(OSError,)
    )


def _chosen_format(arguments: argparse.Namespace) -> ReportFormat:
    from dialer.reports import ReportFormat

    if arguments.format:
        return ReportFormat(arguments.format)
    output: Path | None = arguments.output
    if output is not None and output.suffix.lower() == ".xlsx":
        return ReportFormat.XLSX
    return ReportFormat.CSV


async def _write_report(session: AsyncSession, arguments: argparse.Namespace) -> int:
    from dialer.audit import append_audit_event
    from dialer.reports import (
        DailyReportQuery,
        ReportFormat,
        build_daily_report,
        default_report_timezone,
        render_report,
    )
    from dialer.reports.export import report_csv
    from dialer.users import find_team, find_user_by_login

    operator_id: int | None = None
    team_id: int | None = None
    if arguments.operator:
        user = await find_user_by_login(session, arguments.operator)
        if user is None:
            raise NotFound(f"no user {arguments.operator!r}")
        operator_id = user.id
    if arguments.team:
        team = await find_team(session, arguments.team)
        if team is None:
            raise NotFound(f"no team {arguments.team!r}")
        team_id = team.id
    query = DailyReportQuery(
        first_day=arguments.first_day,
        last_day=arguments.last_day,
        timezone=arguments.timezone or default_report_timezone(),
        operator_id=operator_id,
        team_id=team_id,
    )
    report = await build_daily_report(session, None, query)
    report_format = _chosen_format(arguments)
    output: Path | None = arguments.output
    if output is None:
        if report_format is ReportFormat.XLSX:
            raise ValidationFailed("output", "an XLSX report needs --output FILE")
        text = report_csv(report).decode("utf-8-sig")
        sys.stdout.write(text.removeprefix(UTF8_BOM))
        return EXIT_OK
    await asyncio.to_thread(output.write_bytes, render_report(report, report_format))
    await append_audit_event(
        session,
        None,
        "report.export",
        "report:daily",
        {
            "from": query.first_day.isoformat(),
            "to": query.last_day.isoformat(),
            "timezone": query.timezone,
            "operator_id": operator_id,
            "team_id": team_id,
            "format": report_format.value,
            "via": "cli",
        },
    )
    print(
        f"{report.total.calls} calls, {report.total.answered} answered, "
        f"{len(report.days)} days: {report_format.value} written to {output}"
    )
    return EXIT_OK


async def _rebuild_range(session: AsyncSession, arguments: argparse.Namespace) -> int:
    from dialer.reports import default_report_timezone, rebuild_call_volume, resolve_timezone
    from dialer.reports.grid import epoch_hour

    zone = resolve_timezone(arguments.timezone or default_report_timezone())
    if arguments.last_day < arguments.first_day:
        raise ValidationFailed("to", "must not be before from")
    start = datetime.combine(arguments.first_day, time(), tzinfo=zone)
    end = datetime.combine(arguments.last_day + timedelta(days=1), time(), tzinfo=zone)
    first_hour, end_hour = epoch_hour(start), -(-int(end.timestamp()) // 3600)
    step = 24 * REBUILD_DAYS_PER_TRANSACTION
    for chunk_start in range(first_hour, end_hour, step):
        await rebuild_call_volume(session, chunk_start, min(chunk_start + step, end_hour))
        await session.commit()
    print(f"rollups of {end_hour - first_hour} hours rebuilt")
    return EXIT_OK
