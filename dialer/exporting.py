"""Exporting contacts and calls to CSV or XLSX for Excel users; every export is audited.

The actor sees in the file what they see in the application (``visible_contacts`` /
``visible_calls``). Rows are read in id order, a thousand at a time (keyset pagination), and
written as they come, so a million contacts do not sit in memory; the file appears under its
name only when complete.

CSV is UTF-8 with BOM (Excel then shows Cyrillic right) with ``,`` or ``;`` (Russian Excel's
list separator). Text that Excel would run as a formula (starting with ``=``, ``+``, ``-``,
``@``) is written with a leading apostrophe; the importer takes it off again. XLSX cells are typed,
so there text is never a formula and dates are date cells. Times are written in the export's
time zone without an offset, the way spreadsheets hold them; contact export columns are the
titles the importer recognises, so exporting and importing into an empty database gives the same
contacts back.
"""

from __future__ import annotations

import csv
import os
import re
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import IO, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import openpyxl
from openpyxl.cell import WriteOnlyCell
from sqlalchemy import ColumnElement, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from dialer.actors import Actor
from dialer.audit import append_audit_event
from dialer.calls import visible_calls
from dialer.contacts import visible_contacts
from dialer.errors import ValidationFailed
from dialer.models import Call, Contact, PhoneKind, User
from dialer.statuses import list_statuses

BATCH_SIZE = 1000
SPREADSHEET_DATETIME_FORMAT = "yyyy-mm-dd hh:mm"
CSV_DELIMITERS = frozenset({",", ";", "\t"})
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PHONE_LIST = re.compile(r"^\+\d+(, \+\d+)*$")

ExportCell = str | int | float | datetime | None

CONTACT_COLUMNS = (
    "ID",
    "Name",
    "Company",
    "Title",
    "Mobile phone",
    "Work phone",
    "Home phone",
    "Email",
    "Status",
    "Follow-up",
    "Follow-up note",
    "Tags",
    "Notes",
    "Timezone",
    "Owner",
    "Created",
    "Updated",
)
CALL_COLUMNS = (
    "ID",
    "Started",
    "Direction",
    "Phone",
    "Contact ID",
    "Contact",
    "Operator",
    "State",
    "Answered",
    "Ended",
    "Ring seconds",
    "Talk seconds",
    "Outcome",
    "Outcome note",
    "Follow-up",
    "End cause",
    "SIP code",
    "Hangup by",
)
_PHONE_COLUMNS = (PhoneKind.MOBILE, PhoneKind.WORK, PhoneKind.HOME)


class ExportFormat(StrEnum):
    CSV = "csv"
    XLSX = "xlsx"


@dataclass(frozen=True)
class ExportOptions:
    """``delimiter`` applies to CSV; ``timezone`` is the zone times are written in."""

    format: ExportFormat = ExportFormat.CSV
    delimiter: str = ","
    timezone: str = "UTC"


@dataclass(frozen=True)
class ContactExportFilter:
    status: str | None = None
    owner_id: int | None = None
    shared: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if value is not None}


@dataclass(frozen=True)
class CallExportFilter:
    operator_id: int | None = None
    contact_id: int | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            key: value.isoformat() if isinstance(value, datetime) else value
            for key, value in self.__dict__.items()
            if value is not None
        }


@dataclass(frozen=True)
class ExportResult:
    path: Path
    rows: int
    columns: tuple[str, ...]


async def export_contacts(
    session: AsyncSession,
    actor: Actor | None,
    destination: Path,
    options: ExportOptions = ExportOptions(),
    filters: ContactExportFilter = ContactExportFilter(),
) -> ExportResult:
    """Write the contacts ``actor`` sees (None = the system: all) matching ``filters``, with
    their phones and custom fields (a column per custom field), to ``destination``."""
    zone = _check_options(options)
    condition = _contact_condition(actor, filters)
    custom_keys = await _custom_field_keys(session, condition)
    custom_headers = [f"{key} (custom)" if key in CONTACT_COLUMNS else key for key in custom_keys]
    columns = (*CONTACT_COLUMNS, *custom_headers)
    labels = await _status_labels(session)
    logins = await _user_logins(session)
    count = 0
    with _SheetFile(destination, options, "Contacts") as sheet:
        sheet.write_row(columns)
        async for contact in _contacts(session, condition):
            sheet.write_row(_contact_line(contact, custom_keys, labels, logins, zone))
            count += 1
    await append_audit_event(
        session,
        actor,
        "contact.export",
        None,
        {
            "rows": count,
            "format": options.format.value,
            "file": destination.name,
            "filters": filters.as_dict(),
        },
    )
    return ExportResult(destination, count, columns)


async def export_calls(
    session: AsyncSession,
    actor: Actor | None,
    destination: Path,
    options: ExportOptions = ExportOptions(),
    filters: CallExportFilter = CallExportFilter(),
) -> ExportResult:
    """Write the calls ``actor`` sees (None = the system: all) matching ``filters``."""
    zone = _check_options(options)
    labels = await _status_labels(session)
    logins = await _user_logins(session)
    count = 0
    with _SheetFile(destination, options, "Calls") as sheet:
        sheet.write_row(CALL_COLUMNS)
        async for call in _calls(session, _call_condition(actor, filters)):
            sheet.write_row(_call_line(call, labels, logins, zone))
            count += 1
    await append_audit_event(
        session,
        actor,
        "call.export",
        None,
        {
            "rows": count,
            "format": options.format.value,
            "file": destination.name,
            "filters": filters.as_dict(),
        },
    )
    return ExportResult(destination, count, CALL_COLUMNS)


def _check_options(options: ExportOptions) -> ZoneInfo:
    if options.format is ExportFormat.CSV and options.delimiter not in CSV_DELIMITERS:
        raise ValidationFailed("delimiter", "use ',', ';' or a tab")
    try:
        return ZoneInfo(options.timezone)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValidationFailed("timezone", f"unknown time zone {options.timezone!r}") from error


# --- reading ------------------------------------------------------------------------------------


def _contact_condition(actor: Actor | None, filters: ContactExportFilter) -> ColumnElement[bool]:
    conditions: list[ColumnElement[bool]] = [Contact.deleted_at.is_(None)]
    if actor is not None:
        conditions.append(visible_contacts(actor))
    if filters.status is not None:
        conditions.append(Contact.status == filters.status)
    if filters.owner_id is not None:
        conditions.append(Contact.owner_id == filters.owner_id)
    if filters.shared is not None:
        conditions.append(Contact.shared.is_(filters.shared))
    return _all_of(conditions)


def _call_condition(actor: Actor | None, filters: CallExportFilter) -> ColumnElement[bool]:
    conditions: list[ColumnElement[bool]] = [Call.deleted_at.is_(None)]
    if actor is not None:
        conditions.append(visible_calls(actor))
    if filters.operator_id is not None:
        conditions.append(Call.operator_id == filters.operator_id)
    if filters.contact_id is not None:
        conditions.append(Call.contact_id == filters.contact_id)
    if filters.outcome is not None:
        conditions.append(Call.outcome == filters.outcome)
    if filters.since is not None:
        conditions.append(Call.created_at >= filters.since)
    if filters.until is not None:
        conditions.append(Call.created_at < filters.until)
    return _all_of(conditions)


def _all_of(conditions: Sequence[ColumnElement[bool]]) -> ColumnElement[bool]:
    combined: ColumnElement[bool] = true()
    for condition in conditions:
        combined = combined & condition
    return combined


async def _contacts(
    session: AsyncSession, condition: ColumnElement[bool]
) -> AsyncIterator[Contact]:
    after = 0
    while True:
        statement = (
            select(Contact)
            .where(condition, Contact.id > after)
            .order_by(Contact.id)
            .limit(BATCH_SIZE)
        )
        batch = (await session.scalars(statement)).all()
        if not batch:
            return
        for contact in batch:
            yield contact
            session.expunge(contact)
        after = batch[-1].id


async def _custom_field_keys(session: AsyncSession, condition: ColumnElement[bool]) -> list[str]:
    """Every custom field key of the exported contacts, in order of first appearance."""
    keys: dict[str, None] = {}
    after = 0
    while True:
        statement = (
            select(Contact.id, Contact.custom_fields)
            .where(condition, Contact.id > after)
            .order_by(Contact.id)
            .limit(BATCH_SIZE * 10)
        )
        batch = (await session.execute(statement)).all()
        if not batch:
            return list(keys)
        for _, custom_fields in batch:
            for key in custom_fields or {}:
                keys.setdefault(key, None)
        after = batch[-1].id


_CALL_FIELDS = (
    Call.id,
    Call.created_at,
    Call.direction,
    Call.phone_e164,
    Call.contact_id,
    Contact.name,
    Call.operator_id,
    Call.state,
    Call.answered_at,
    Call.ended_at,
    Call.ring_seconds,
    Call.talk_seconds,
    Call.outcome,
    Call.outcome_note,
    Call.follow_up_at,
    Call.end_cause,
    Call.sip_code,
    Call.hangup_by,
)


async def _calls(session: AsyncSession, condition: ColumnElement[bool]) -> AsyncIterator[Any]:
    after = 0
    while True:
        statement = (
            select(*_CALL_FIELDS)
            .outerjoin(Contact, Contact.id == Call.contact_id)
            .where(condition, Call.id > after)
            .order_by(Call.id)
            .limit(BATCH_SIZE)
        )
        batch = (await session.execute(statement)).all()
        if not batch:
            return
        for row in batch:
            yield row
        after = batch[-1].id


async def _status_labels(session: AsyncSession) -> dict[str, str]:
    return {
        status.code: status.label for status in await list_statuses(session, include_inactive=True)
    }


async def _user_logins(session: AsyncSession) -> dict[int, str]:
    rows = (await session.execute(select(User.id, User.login))).all()
    return {row.id: row.login for row in rows}


# --- lines --------------------------------------------------------------------------------------


def _contact_line(
    contact: Contact,
    custom_keys: Sequence[str],
    labels: dict[str, str],
    logins: dict[int, str],
    zone: ZoneInfo,
) -> list[ExportCell]:
    phones = {
        kind: ", ".join(phone.e164 for phone in contact.phones if phone.kind == kind.value)
        for kind in _PHONE_COLUMNS
    }
    custom = contact.custom_fields or {}
    return [
        contact.id,
        contact.name,
        contact.company,
        contact.position,
        phones[PhoneKind.MOBILE],
        phones[PhoneKind.WORK],
        phones[PhoneKind.HOME],
        contact.email,
        labels.get(contact.status, contact.status),
        _local(contact.follow_up_at, zone),
        contact.follow_up_note,
        ", ".join(contact.tags or []),
        contact.notes,
        contact.timezone,
        logins.get(contact.owner_id) if contact.owner_id is not None else None,
        _local(contact.created_at, zone),
        _local(contact.updated_at, zone),
        *(_custom_value(custom.get(key)) for key in custom_keys),
    ]


def _call_line(
    call: Any, labels: dict[str, str], logins: dict[int, str], zone: ZoneInfo
) -> list[ExportCell]:
    return [
        call.id,
        _local(call.created_at, zone),
        call.direction,
        call.phone_e164,
        call.contact_id,
        call.name,
        logins.get(call.operator_id) if call.operator_id is not None else None,
        call.state,
        _local(call.answered_at, zone),
        _local(call.ended_at, zone),
        call.ring_seconds,
        call.talk_seconds,
        labels.get(call.outcome, call.outcome) if call.outcome else None,
        call.outcome_note,
        _local(call.follow_up_at, zone),
        call.end_cause,
        call.sip_code,
        call.hangup_by,
    ]


def _local(moment: datetime | None, zone: ZoneInfo) -> datetime | None:
    if moment is None:
        return None
    return moment.astimezone(zone).replace(tzinfo=None)


def _custom_value(value: object) -> ExportCell:
    if value is None or isinstance(value, str | int | float):
        return value
    return str(value)


# --- writing ------------------------------------------------------------------------------------


class _SheetFile:
    """A sheet written to a temporary file beside ``destination``, renamed into place when
    complete (removed if anything fails)."""

    def __init__(self, destination: Path, options: ExportOptions, title: str) -> None:
        self.destination = destination
        self.options = options
        destination.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(
            prefix=f".{destination.name}.", dir=destination.parent
        )
        os.close(descriptor)
        self.temporary = Path(temporary)
        self._csv_handle: IO[str] | None = None
        self._csv_writer: Any = None
        self._workbook: Any = None
        self._worksheet: Any = None
        if options.format is ExportFormat.CSV:
            self._csv_handle = self.temporary.open("w", encoding="utf-8-sig", newline="")
            self._csv_writer = csv.writer(self._csv_handle, delimiter=options.delimiter)
        else:
            self._workbook = openpyxl.Workbook(write_only=True)
            self._worksheet = self._workbook.create_sheet(title)

    def write_row(self, values: Sequence[ExportCell]) -> None:
        if self._csv_writer is not None:
            self._csv_writer.writerow([_csv_text(value) for value in values])
        else:
            self._worksheet.append([self._xlsx_cell(value) for value in values])

    def _xlsx_cell(self, value: ExportCell) -> object:
        if isinstance(value, str):
            cell = WriteOnlyCell(self._worksheet, value=value)
            cell.data_type = "s"  # text, never a formula
            return cell
        if isinstance(value, datetime):
            cell = WriteOnlyCell(self._worksheet, value=value)
            cell.number_format = SPREADSHEET_DATETIME_FORMAT
            return cell
        return value

    def finish(self) -> None:
        if self._csv_handle is not None:
            self._csv_handle.close()
        else:
            self._workbook.save(self.temporary)
        self.temporary.replace(self.destination)

    def abandon(self) -> None:
        if self._csv_handle is not None:
            self._csv_handle.close()
        self.temporary.unlink(missing_ok=True)

    def __enter__(self) -> _SheetFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.finish()
        else:
            self.abandon()


def _csv_text(value: ExportCell) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M" if value.second == 0 else "%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:.1f}"
    text = str(value)
    if text.startswith(_FORMULA_STARTS) and not _PHONE_LIST.match(text):
        return "'" + text
    return text


def is_protected_text(text: str) -> bool:
    """True for a CSV cell the exporter prefixed with an apostrophe to stop Excel formulas."""
    return len(text) > 1 and text[0] == "'" and text[1:].startswith(_FORMULA_STARTS)
