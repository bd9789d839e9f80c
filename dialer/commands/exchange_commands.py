"""``dialer import FILE`` and ``dialer export contacts|calls``: spreadsheets in and out.

They run as the system actor on the database of the DIALER_* environment, like the other
administration commands. Exit codes: 0 done (an import with skipped rows is done: the report
says which), 2 refused (unreadable file, bad option, unknown user).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from dialer.commands.running import EXIT_OK, Subparsers, run_in_session
from dialer.errors import NotFound, ValidationFailed
from dialer.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

ROWS_SHOWN_WITHOUT_REPORT = 20
# The values of dialer.importing.service.DuplicatePolicy and dialer.exporting.ExportFormat,
# written out so that the parser is built without importing those modules (and SQLAlchemy).
DUPLICATE_POLICIES = ("merge", "skip")
EXPORT_FORMATS = ("csv", "xlsx")


def register(subparsers: Subparsers) -> None:
    importer = subparsers.add_parser("import", help="import contacts from a CSV or XLSX file")
    importer.add_argument("file", type=Path)
    importer.add_argument(
        "--mapping",
        action="append",
        default=[],
        metavar="COLUMN=FIELD",
        help="override the detected target of a column (title or letter), e.g. 'Клиент=name',"
        " 'C=ignore', 'Источник=custom:Source'",
    )
    importer.add_argument(
        "--on-duplicate",
        choices=DUPLICATE_POLICIES,
        default="merge",
        help="a row whose phone is known: merge into that contact (default) or skip it",
    )
    importer.add_argument("--region", help="region of numbers without +code (default: settings)")
    importer.add_argument("--timezone", default="UTC", help="zone of dates in the file")
    importer.add_argument(
        "--owner",
        metavar="LOGIN",
        help="user who gets the contacts (default: nobody; only admins see unowned contacts)",
    )
    importer.add_argument("--shared", action="store_true", help="make the contacts shared")
    importer.add_argument("--report", type=Path, help="write the per-row report to this CSV")
    importer.add_argument(
        "--dry-run", action="store_true", help="read and report, but write nothing"
    )
    importer.set_defaults(handler=_import)

    exporter = subparsers.add_parser("export", help="export contacts or calls to CSV or XLSX")
    exporter.add_argument("what", choices=["contacts", "calls"])
    exporter.add_argument("--output", type=Path, required=True)
    exporter.add_argument(
        "--format",
        choices=EXPORT_FORMATS,
        help="default: from the output file's extension, else csv",
    )
    exporter.add_argument("--delimiter", default=",", help="CSV separator: ',' ';' or 'tab'")
    exporter.add_argument("--timezone", default="UTC", help="zone the times are written in")
    exporter.add_argument("--status", help="contacts: only this status code")
    exporter.add_argument("--owner", metavar="LOGIN", help="contacts: owner; calls: operator")
    exporter.set_defaults(handler=_export)


async def _user_id(session: AsyncSession, login: str | None) -> int | None:
    from dialer.users import find_user_by_login

    if login is None:
        return None
    user = await find_user_by_login(session, login)
    if user is None:
        raise NotFound(f"no user {login!r}")
    return user.id


def _mapping_overrides(pairs: list[str]) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for pair in pairs:
        column, separator, field = pair.rpartition("=")
        if not separator or not column.strip() or not field.strip():
            raise ValidationFailed("mapping", f"expected COLUMN=FIELD, got {pair!r}")
        overrides[column.strip()] = field.strip()
    return overrides


def _import(arguments: argparse.Namespace) -> int:
    async def operation(session: AsyncSession, settings: Settings) -> int:
        from dialer.importing.report import RowAction, write_report_csv
        from dialer.importing.service import DuplicatePolicy, ImportOptions, import_contacts

        options = ImportOptions(
            on_duplicate=DuplicatePolicy(arguments.on_duplicate),
            region=arguments.region or settings.default_region,
            timezone=arguments.timezone,
            owner_id=await _user_id(session, arguments.owner),
            shared=arguments.shared,
            mapping_overrides=_mapping_overrides(arguments.mapping),
            source_name=arguments.file.name,
        )
        report = await import_contacts(session, None, arguments.file, options)
        print(f"{arguments.file}: {report.file_format}; column titles in row {report.header_row}")
        for line in report.mapping:
            print(f"  {line}")
        noted = [row for row in report.rows if row.action is RowAction.SKIPPED or row.warnings]
        if arguments.report is not None:
            write_report_csv(report, arguments.report)
            print(f"report of all {len(report.rows)} rows written to {arguments.report}")
        else:
            for row in noted[:ROWS_SHOWN_WITHOUT_REPORT]:
                print(f"  {row.describe()}")
            if len(noted) > ROWS_SHOWN_WITHOUT_REPORT:
                hidden = len(noted) - ROWS_SHOWN_WITHOUT_REPORT
                print(f"  ... {hidden} more; use --report FILE for every row")
        prefix = "dry run, nothing written: " if arguments.dry_run else ""
        print(
            f"{prefix}{len(report.rows)} rows: {report.created} created, {report.merged} merged,"
            f" {report.skipped} skipped"
        )
        return EXIT_OK

    return run_in_session(operation, commit=not arguments.dry_run)


def _export(arguments: argparse.Namespace) -> int:
    from dialer.exporting import (
        CallExportFilter,
        ContactExportFilter,
        ExportFormat,
        ExportOptions,
        export_calls,
        export_contacts,
    )

    output: Path = arguments.output
    chosen = arguments.format or ("xlsx" if output.suffix.lower() == ".xlsx" else "csv")
    delimiter = "\t" if arguments.delimiter in {"tab", "\\t"} else arguments.delimiter
    options = ExportOptions(
        format=ExportFormat(chosen), delimiter=delimiter, timezone=arguments.timezone
    )

    async def operation(session: AsyncSession, settings: Settings) -> int:
        user_id = await _user_id(session, arguments.owner)
        if arguments.what == "contacts":
            contact_filter = ContactExportFilter(status=arguments.status, owner_id=user_id)
            result = await export_contacts(session, None, output, options, contact_filter)
        else:
            call_filter = CallExportFilter(operator_id=user_id)
            result = await export_calls(session, None, output, options, call_filter)
        print(f"{result.rows} {arguments.what} written to {result.path}")
        return EXIT_OK

    return run_in_session(operation)
