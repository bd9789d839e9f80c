"""Turning one spreadsheet row into contact data, or into the reason it cannot be one.

``parse_row`` never raises for bad data. A value it cannot understand (a phone "нет", a date
"скоро", an address without "@", a status not in the list) is kept under its column title in the
contact's custom fields and named in the row's warnings, so nothing the user typed disappears.
A row with neither a name nor a valid phone is skipped with a reason.

Phones: a cell may hold several numbers separated by ``,`` ``;`` ``/`` or line breaks; numbers
are read in the default region ("8 (916) 123-45-67" -> +79161234567); extensions stay in the raw
text. Dates: XLSX date cells, Excel serial numbers (45321 = 2024-01-30), "25.12.2026 14:30",
"25/12/2026", ISO 8601; times without a zone are in the import's time zone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from openpyxl.utils import get_column_letter

from dialer.errors import ValidationFailed
from dialer.exporting import is_protected_text
from dialer.importing.mapping import PHONE_FIELDS, ColumnMapping, ColumnTarget, Field
from dialer.importing.reading import CellValue, SourceRow
from dialer.models import PhoneKind
from dialer.phones import NormalisedPhone, normalise_phone

EXCEL_EPOCH = datetime(1899, 12, 30)
# Serial numbers from 1950 to 2149: a bare number outside this range is not taken for a date.
_SERIAL_DATE_RANGE = (18264.0, 90000.0)
_EXCEL_ERRORS = frozenset({"#N/A", "#REF!", "#VALUE!", "#DIV/0!", "#NAME?", "#NUM!", "#NULL!"})
_PHONE_SEPARATORS = re.compile(r"[,;/\n\r]+")
_EXTENSION_PIECE = re.compile(r"^\s*(доб|ext|вн|x)\.?\s*\d+", re.IGNORECASE)
_EMAIL_PATTERN = re.compile(r"^[^@\s,;]+@[^@\s,;]+\.[^@\s,;]+$")
_LIST_SEPARATORS = re.compile(r"[,;\n\r]+")
_DAY_FIRST_DATE = re.compile(
    r"^(\d{1,2})[./-](\d{1,2})[./-](\d{2}|\d{4})(?:[ T,]+(\d{1,2})[:.](\d{2})(?:[:.](\d{2}))?)?$"
)
_PHONE_KIND_BY_FIELD: Mapping[Field, PhoneKind | None] = {
    Field.PHONE: None,
    Field.MOBILE_PHONE: PhoneKind.MOBILE,
    Field.WORK_PHONE: PhoneKind.WORK,
    Field.HOME_PHONE: PhoneKind.HOME,
}

SKIPPED_NO_NAME_NO_PHONE = "no name and no valid phone"


@dataclass(frozen=True)
class RowContext:
    """What a row's values are read against: the region for numbers without a country code,
    the zone of dates without one, and the status list (lower-cased code or label -> code)."""

    region: str
    timezone: ZoneInfo
    statuses: Mapping[str, str]


@dataclass
class ParsedContact:
    """A contact as the row describes it (fields the row leaves blank are empty)."""

    name: str = ""
    company: str = ""
    position: str = ""
    phones: list[NormalisedPhone] = field(default_factory=list)
    email: str | None = None
    timezone: str | None = None
    status: str | None = None
    follow_up_at: datetime | None = None
    follow_up_note: str | None = None
    tags: list[str] = field(default_factory=list)
    notes: str = ""
    custom_fields: dict[str, str] = field(default_factory=dict)

    def phone_numbers(self) -> list[str]:
        return [phone.e164 for phone in self.phones]


@dataclass(frozen=True)
class ParsedRow:
    """One data row: its contact, or ``contact is None`` and the first problem is why."""

    number: int
    contact: ParsedContact | None
    problems: tuple[str, ...] = ()


def parse_row(row: SourceRow, mapping: ColumnMapping, context: RowContext) -> ParsedRow:
    """Read one data row with the column mapping; never raises for bad values."""
    if row.problem is not None:
        return ParsedRow(row.number, None, (row.problem,))
    if row.is_empty:
        return ParsedRow(row.number, None, ("empty row",))
    builder = _RowBuilder(mapping, context)
    for index, value in enumerate(row.cells):
        if index >= len(mapping.targets):
            builder.extra_cell(index, value)
            continue
        builder.add(mapping.targets[index], mapping.headers[index], index, value)
    return builder.finish(row.number)


class _RowBuilder:
    def __init__(self, mapping: ColumnMapping, context: RowContext) -> None:
        self.mapping = mapping
        self.context = context
        self.contact = ParsedContact()
        self.name_parts: dict[Field, str] = {}
        self.warnings: list[str] = []
        self.seen_phones: set[str] = set()

    def add(self, target: ColumnTarget, title: str, index: int, value: CellValue) -> None:
        if target.field is Field.IGNORE:
            return
        if target.field is Field.FOLLOW_UP_AT:
            self._add_follow_up(title, index, value)
            return
        text = cell_text(value)
        if not text:
            return
        if target.field in PHONE_FIELDS:
            self._add_phones(title, index, text, _PHONE_KIND_BY_FIELD[target.field])
        elif target.field is Field.CUSTOM:
            self._keep(target.custom_name or _column_title(title, index), text)
        else:
            self._add_text(target.field, title, index, text)

    def extra_cell(self, index: int, value: CellValue) -> None:
        text = cell_text(value)
        if text:
            self._keep(_column_title("", index), text)

    def _add_text(self, target: Field, title: str, index: int, text: str) -> None:
        contact = self.contact
        if target in {Field.FIRST_NAME, Field.LAST_NAME, Field.MIDDLE_NAME}:
            self.name_parts[target] = text
        elif target is Field.NAME:
            contact.name = _single_line(text)
        elif target is Field.COMPANY:
            contact.company = _single_line(text)
        elif target is Field.POSITION:
            contact.position = _single_line(text)
        elif target is Field.EMAIL:
            self._add_email(title, index, text)
        elif target is Field.NOTES:
            contact.notes = f"{contact.notes}\n{text}" if contact.notes else text
        elif target is Field.STATUS:
            self._add_status(title, index, text)
        elif target is Field.FOLLOW_UP_NOTE:
            contact.follow_up_note = text
        elif target is Field.TAGS:
            for tag in split_tags(text):
                if tag not in contact.tags:
                    contact.tags.append(tag)
        elif target is Field.TIMEZONE:
            self._add_timezone(title, index, text)

    def _add_phones(self, title: str, index: int, text: str, kind: PhoneKind | None) -> None:
        unreadable: list[str] = []
        for piece in split_phones(text):
            try:
                phone = normalise_phone(piece, self.context.region, kind)
            except ValidationFailed:
                unreadable.append(piece)
                continue
            if phone.e164 not in self.seen_phones:
                self.seen_phones.add(phone.e164)
                self.contact.phones.append(phone)
        if unreadable:
            shown = ", ".join(repr(piece) for piece in unreadable)
            self.warnings.append(f"not a phone number: {shown} (kept in custom field {title!r})")
            self._keep(_column_title(title, index), ", ".join(unreadable))

    def _add_email(self, title: str, index: int, text: str) -> None:
        addresses = [part.strip() for part in _LIST_SEPARATORS.split(text) if part.strip()]
        valid = [address for address in addresses if _EMAIL_PATTERN.match(address)]
        rest = [address for address in addresses if address not in valid[:1]]
        if valid and self.contact.email is None:
            self.contact.email = valid[0]
        if rest:
            invalid = [address for address in rest if address not in valid]
            if invalid:
                self.warnings.append(
                    f"not an e-mail address: {', '.join(repr(a) for a in invalid)}"
                    f" (kept in custom field {_column_title(title, index)!r})"
                )
            self._keep(_column_title(title, index), ", ".join(rest))

    def _add_status(self, title: str, index: int, text: str) -> None:
        code = self.context.statuses.get(text.casefold())
        if code is None:
            self.warnings.append(
                f"unknown status {text!r} (kept in custom field {_column_title(title, index)!r})"
            )
            self._keep(_column_title(title, index), text)
        else:
            self.contact.status = code

    def _add_timezone(self, title: str, index: int, text: str) -> None:
        try:
            ZoneInfo(text)
        except (ZoneInfoNotFoundError, ValueError):
            self.warnings.append(
                f"unknown time zone {text!r} (kept in custom field {_column_title(title, index)!r})"
            )
            self._keep(_column_title(title, index), text)
            return
        self.contact.timezone = text

    def _add_follow_up(self, title: str, index: int, value: CellValue) -> None:
        if cell_text(value) == "":
            return
        moment = parse_moment(value, self.context.timezone)
        if moment is None:
            text = cell_text(value)
            self.warnings.append(
                f"not a date: {text!r} (kept in custom field {_column_title(title, index)!r})"
            )
            self._keep(_column_title(title, index), text)
        else:
            self.contact.follow_up_at = moment

    def _keep(self, key: str, text: str) -> None:
        existing = self.contact.custom_fields.get(key)
        self.contact.custom_fields[key] = f"{existing}, {text}" if existing else text

    def finish(self, number: int) -> ParsedRow:
        contact = self.contact
        if not contact.name and self.name_parts:
            order = (
                (Field.LAST_NAME, Field.FIRST_NAME, Field.MIDDLE_NAME)
                if self.mapping.surname_first
                else (Field.FIRST_NAME, Field.MIDDLE_NAME, Field.LAST_NAME)
            )
            contact.name = " ".join(
                self.name_parts[part] for part in order if part in self.name_parts
            )
        if not any(character.isalnum() for character in contact.name):
            contact.name = ""  # "-", "?", "—": a placeholder, not a name
        if not contact.name and not contact.phones:
            return ParsedRow(number, None, (SKIPPED_NO_NAME_NO_PHONE, *self.warnings))
        return ParsedRow(number, contact, tuple(self.warnings))


def _column_title(title: str, index: int) -> str:
    if title:
        return title
    return f"Column {get_column_letter(index + 1)}"


def _single_line(text: str) -> str:
    return " ".join(text.split())


def cell_text(value: CellValue) -> str:
    """A cell as the text the user sees: numbers without ".0", dates in ISO, errors as empty,
    the apostrophe our CSV export puts before formula-like text taken off."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="minutes" if value.second == 0 else "seconds")
    if isinstance(value, date | time):
        return value.isoformat()
    text = value.replace("\x00", "").strip()
    if is_protected_text(text):
        return text[1:]
    return "" if text in _EXCEL_ERRORS else text


def split_phones(text: str) -> list[str]:
    """Pieces of a phone cell; an extension after a comma ("..., доб. 12") stays with its number."""
    pieces: list[str] = []
    for piece in _PHONE_SEPARATORS.split(text):
        stripped = piece.strip()
        if not stripped or (len(stripped) <= 1 and not stripped.isdigit()):
            continue
        if pieces and _EXTENSION_PIECE.match(stripped):
            pieces[-1] = f"{pieces[-1]} {stripped}"
        else:
            pieces.append(stripped)
    return pieces


def split_tags(text: str) -> list[str]:
    tags: list[str] = []
    for piece in _LIST_SEPARATORS.split(text):
        tag = piece.strip().lstrip("#").strip()
        if tag and tag not in tags:
            tags.append(tag)
    return tags


def parse_moment(value: CellValue, zone: ZoneInfo) -> datetime | None:
    """A cell as an aware UTC datetime, or None when it is not a date we can read."""
    local: datetime | None
    if isinstance(value, datetime):
        local = value
    elif isinstance(value, date):
        local = datetime.combine(value, time())
    elif isinstance(value, bool) or value is None or isinstance(value, time):
        return None
    elif isinstance(value, int | float):
        local = _from_serial(float(value))
    else:
        local = _from_text(value.strip())
    if local is None:
        return None
    if local.tzinfo is None:
        local = local.replace(tzinfo=zone)
    return local.astimezone(UTC)


def _from_serial(serial: float) -> datetime | None:
    low, high = _SERIAL_DATE_RANGE
    if not low <= serial <= high:
        return None
    moment = EXCEL_EPOCH + timedelta(days=serial)
    # Serial fractions are floats: round to the minute ("14:30" is 0.604166...).
    return (moment + timedelta(seconds=30)).replace(second=0, microsecond=0)


def _from_text(text: str) -> datetime | None:
    if not text:
        return None
    serial = text.replace(",", ".")
    if re.fullmatch(r"\d{5}(\.\d+)?", serial):
        return _from_serial(float(serial))
    match = _DAY_FIRST_DATE.match(text)
    if match:
        return _from_day_first(match)
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _from_day_first(match: re.Match[str]) -> datetime | None:
    first, second, year_text, hour, minute, second_of_minute = match.groups()
    year = int(year_text) + (2000 if len(year_text) == 2 else 0)
    day, month = int(first), int(second)
    if month > 12 and day <= 12:  # 12/25/2026: month first after all
        day, month = month, day
    try:
        return datetime(
            year,
            month,
            day,
            int(hour or 0),
            int(minute or 0),
            int(second_of_minute or 0),
        )
    except ValueError:
        return None
