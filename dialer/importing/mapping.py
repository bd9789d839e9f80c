"""Which spreadsheet column goes to which contact field.

``detect_mapping`` reads the column titles (Russian or English, any case, with or without
punctuation: "Ф.И.О.", "Тел.", "E-mail", "Work phone") and proposes a target for each column;
columns it does not recognise become custom fields named after their title, so no data is lost.
``apply_overrides`` lets the user correct the proposal ("Контакт=name", "C=ignore",
"Источник=custom:Source"). ``find_header_row`` picks the title row when a sheet starts with a
caption or blank lines above the table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from types import MappingProxyType

from openpyxl.utils import column_index_from_string, get_column_letter

from dialer.importing.errors import InvalidMapping
from dialer.importing.reading import CellValue, SourceRow


class Field(StrEnum):
    """A contact field a column can feed. ``custom`` keeps the value under the column title."""

    NAME = "name"
    FIRST_NAME = "first_name"
    LAST_NAME = "last_name"
    MIDDLE_NAME = "middle_name"
    COMPANY = "company"
    POSITION = "position"
    PHONE = "phone"
    MOBILE_PHONE = "mobile_phone"
    WORK_PHONE = "work_phone"
    HOME_PHONE = "home_phone"
    EMAIL = "email"
    NOTES = "notes"
    STATUS = "status"
    FOLLOW_UP_AT = "follow_up_at"
    FOLLOW_UP_NOTE = "follow_up_note"
    TAGS = "tags"
    TIMEZONE = "timezone"
    CUSTOM = "custom"
    IGNORE = "ignore"


PHONE_FIELDS = frozenset({Field.PHONE, Field.MOBILE_PHONE, Field.WORK_PHONE, Field.HOME_PHONE})
# Several columns may feed these; for every other field the first column wins.
MULTI_COLUMN_FIELDS = PHONE_FIELDS | {Field.NOTES, Field.TAGS, Field.CUSTOM, Field.IGNORE}

# Column titles in their normalised form (see normalise_header), Russian and English.
_SYNONYM_LISTS: dict[Field, tuple[str, ...]] = {
    Field.NAME: (
        "фио",
        "ф и о",
        "имя фамилия",
        "фамилия имя",
        "фамилия имя отчество",
        "полное имя",
        "контакт",
        "контактное лицо",
        "имя контакта",
        "клиент",
        "name",
        "full name",
        "fullname",
        "contact",
        "contact name",
        "contact person",
        "client",
        "customer",
    ),
    Field.FIRST_NAME: ("имя", "first name", "firstname", "given name", "first"),
    Field.LAST_NAME: ("фамилия", "last name", "lastname", "surname", "family name", "last"),
    Field.MIDDLE_NAME: ("отчество", "middle name", "middlename", "patronymic"),
    Field.COMPANY: (
        "компания",
        "организация",
        "название компании",
        "наименование организации",
        "наименование",
        "фирма",
        "юрлицо",
        "юр лицо",
        "юридическое лицо",
        "контрагент",
        "company",
        "company name",
        "organization",
        "organisation",
        "account",
        "account name",
        "business",
    ),
    Field.POSITION: ("должность", "позиция", "title", "job title", "position", "job", "role"),
    Field.PHONE: (
        "телефон",
        "тел",
        "телефоны",
        "номер",
        "номер телефона",
        "контактный телефон",
        "контактный номер",
        "phone",
        "phones",
        "phone number",
        "telephone",
        "tel",
        "number",
    ),
    Field.MOBILE_PHONE: (
        "мобильный",
        "мобильный телефон",
        "моб",
        "моб тел",
        "мобильный тел",
        "сотовый",
        "сотовый телефон",
        "мобильный номер",
        "номер мобильного",
        "mobile",
        "mobile phone",
        "cell",
        "cell phone",
        "cellphone",
    ),
    Field.WORK_PHONE: (
        "рабочий телефон",
        "рабочий",
        "раб тел",
        "рабочий тел",
        "служебный телефон",
        "work phone",
        "business phone",
        "office phone",
        "work",
    ),
    Field.HOME_PHONE: ("домашний телефон", "домашний", "дом тел", "home phone", "home"),
    Field.EMAIL: (
        "email",
        "e mail",
        "почта",
        "эл почта",
        "электронная почта",
        "адрес электронной почты",
        "емейл",
        "емэйл",
        "имейл",
        "mail",
        "email address",
        "e mail address",
    ),
    Field.NOTES: (
        "комментарий",
        "комментарии",
        "примечание",
        "примечания",
        "заметки",
        "заметка",
        "описание",
        "notes",
        "note",
        "comment",
        "comments",
        "description",
        "remarks",
    ),
    Field.STATUS: ("статус", "состояние", "status", "disposition", "stage"),
    Field.FOLLOW_UP_AT: (
        "дата следующего звонка",
        "следующий звонок",
        "перезвонить",
        "дата перезвона",
        "когда перезвонить",
        "дата звонка",
        "follow up",
        "followup",
        "follow up at",
        "follow up date",
        "next call",
        "next call date",
        "callback",
        "call back",
        "callback date",
    ),
    Field.FOLLOW_UP_NOTE: (
        "комментарий к звонку",
        "о чем перезвонить",
        "follow up note",
        "callback note",
    ),
    Field.TAGS: ("теги", "тэги", "метки", "теги контакта", "tags", "tag", "labels"),
    Field.TIMEZONE: ("часовой пояс", "timezone", "time zone", "tz"),
    Field.IGNORE: (
        "id",
        "ид",
        "номер п п",
        "п п",
        "nn",
        "no",
        "создан",
        "изменен",
        "дата создания",
        "дата изменения",
        "created",
        "updated",
        "created at",
        "updated at",
        "owner",
        "ответственный",
    ),
}


def _build_synonyms() -> Mapping[str, Field]:
    table: dict[str, Field] = {}
    for field, titles in _SYNONYM_LISTS.items():
        for title in titles:
            table[title.replace(" ", "")] = field
    return MappingProxyType(table)


_SYNONYMS = _build_synonyms()
_NUMBER_SIGNS = frozenset({"", "#", "№", "n"})


@dataclass(frozen=True)
class ColumnTarget:
    field: Field
    custom_name: str | None = None  # the custom field's key when field is CUSTOM

    def describe(self) -> str:
        if self.field is Field.CUSTOM:
            return f"custom field {self.custom_name!r}"
        return self.field.value


@dataclass(frozen=True)
class ColumnMapping:
    """One target per column, in column order; ``surname_first`` orders combined name parts."""

    headers: tuple[str, ...]
    targets: tuple[ColumnTarget, ...]
    surname_first: bool = True

    def describe(self) -> list[str]:
        """One line per column: "B 'Тел.' -> phone", for reports and the CLI."""
        return [
            f"{get_column_letter(index + 1)} {header!r} -> {target.describe()}"
            for index, (header, target) in enumerate(zip(self.headers, self.targets, strict=True))
        ]

    def columns_for(self, field: Field) -> list[int]:
        return [index for index, target in enumerate(self.targets) if target.field is field]

    @property
    def has_name_or_phone(self) -> bool:
        wanted = PHONE_FIELDS | {Field.NAME, Field.FIRST_NAME, Field.LAST_NAME}
        return any(target.field in wanted for target in self.targets)


def normalise_header(title: str) -> str:
    """Lower case, ё -> е, punctuation and spaces removed: "E-mail:" and "email" compare equal."""
    lowered = title.casefold().replace("ё", "е")
    return re.sub(r"[\W_]+", "", lowered)


def header_text(value: CellValue) -> str:
    if value is None:
        return ""
    return str(value).strip()


def recognise_header(title: str) -> Field | None:
    """The field a column title names, or None when the title is not one we know."""
    key = normalise_header(title)
    if key in _NUMBER_SIGNS and title.strip():
        return Field.IGNORE
    if key in _SYNONYMS:
        return _SYNONYMS[key]
    # "Телефон 2", "Phone (1)", "Email 2": the title without digits.
    without_digits = re.sub(r"\d+", "", key)
    if without_digits and without_digits in _SYNONYMS:
        return _SYNONYMS[without_digits]
    if "телефон" in key or "phone" in key:
        return Field.PHONE
    if "email" in key or "почт" in key:
        return Field.EMAIL
    return None


def detect_mapping(headers: Sequence[CellValue]) -> ColumnMapping:
    """Propose a target for every column from its title."""
    titles = tuple(header_text(value) for value in headers)
    targets: list[ColumnTarget] = []
    taken: set[Field] = set()
    for index, title in enumerate(titles):
        field = recognise_header(title) if title else None
        if field is not None and (field not in taken or field in MULTI_COLUMN_FIELDS):
            taken.add(field)
            targets.append(ColumnTarget(field))
        else:
            targets.append(ColumnTarget(Field.CUSTOM, _custom_name(title, index)))
    surname_first = _surname_first(titles, targets)
    return ColumnMapping(headers=titles, targets=tuple(targets), surname_first=surname_first)


def _custom_name(title: str, index: int) -> str:
    return title if title else f"Column {get_column_letter(index + 1)}"


def _surname_first(titles: Sequence[str], targets: Sequence[ColumnTarget]) -> bool:
    """Russian sheets write "Фамилия Имя Отчество"; English ones "First Last"."""
    for title, target in zip(titles, targets, strict=True):
        if target.field in {Field.FIRST_NAME, Field.LAST_NAME}:
            return bool(re.search(r"[а-яё]", title.casefold()))
    return True


def apply_overrides(mapping: ColumnMapping, overrides: Mapping[str, str]) -> ColumnMapping:
    """Replace targets by the user's choices: ``{"column title or letter": "field"}``.

    The field is a ``Field`` value, ``custom`` (named after the column) or ``custom:Key``.
    A column is found by its title first (compared like ``normalise_header``), then by its
    Excel letter. Anything unknown raises InvalidMapping, since a typo must not silently import
    a column into the wrong place.
    """
    targets = list(mapping.targets)
    for column_name, field_name in overrides.items():
        index = _find_column(mapping.headers, column_name)
        targets[index] = _parse_target(field_name, mapping.headers[index], index)
    single_fields = [target.field for target in targets if target.field not in MULTI_COLUMN_FIELDS]
    duplicated = sorted({field.value for field in single_fields if single_fields.count(field) > 1})
    if duplicated and overrides:
        # The override wins; the column that had the field by detection becomes custom.
        targets = _demote_duplicates(mapping, targets, overrides)
    updated = replace(mapping, targets=tuple(targets))
    return replace(updated, surname_first=_surname_first(updated.headers, updated.targets))


def _demote_duplicates(
    mapping: ColumnMapping, targets: list[ColumnTarget], overrides: Mapping[str, str]
) -> list[ColumnTarget]:
    overridden = {_find_column(mapping.headers, column_name) for column_name in overrides}
    result = list(targets)
    for index, target in enumerate(targets):
        if index in overridden or target.field in MULTI_COLUMN_FIELDS:
            continue
        if any(targets[other].field is target.field for other in overridden):
            result[index] = ColumnTarget(Field.CUSTOM, _custom_name(mapping.headers[index], index))
    return result


def _find_column(headers: Sequence[str], column_name: str) -> int:
    wanted = normalise_header(column_name)
    matches = [index for index, title in enumerate(headers) if normalise_header(title) == wanted]
    if wanted and len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise InvalidMapping(f"several columns are titled {column_name!r}; name one by its letter")
    if re.fullmatch(r"[A-Za-z]{1,3}", column_name.strip()):
        index: int = column_index_from_string(column_name.strip().upper()) - 1
        if index < len(headers):
            return index
    known = ", ".join(repr(title) for title in headers if title)
    raise InvalidMapping(f"no column {column_name!r} in the file (columns: {known})")


def _parse_target(field_name: str, title: str, index: int) -> ColumnTarget:
    text = field_name.strip()
    if text.casefold().startswith("custom:"):
        key = text.split(":", 1)[1].strip()
        if not key:
            raise InvalidMapping("custom: needs a field name after the colon")
        return ColumnTarget(Field.CUSTOM, key)
    try:
        field = Field(text.casefold())
    except ValueError:
        choices = ", ".join(field.value for field in Field)
        raise InvalidMapping(f"unknown field {field_name!r} (choose from: {choices})") from None
    if field is Field.CUSTOM:
        return ColumnTarget(Field.CUSTOM, _custom_name(title, index))
    return ColumnTarget(field)


def header_score(cells: Sequence[CellValue]) -> int:
    """How many cells of a row are column titles we recognise (ignored columns excluded)."""
    score = 0
    for value in cells:
        if isinstance(value, str) and value.strip():
            field = recognise_header(value)
            if field is not None and field is not Field.IGNORE:
                score += 1
    return score


def find_header_row(rows: Sequence[SourceRow]) -> int:
    """Index in ``rows`` of the title row: the first row with two or more known titles (one
    known title is enough for a one- or two-column sheet), else the first non-empty row.

    ``rows`` is the first few rows of the sheet. Raises ValueError when all are empty.
    """
    first_non_empty: int | None = None
    for index, row in enumerate(rows):
        if row.is_empty:
            continue
        if first_non_empty is None:
            first_non_empty = index
        filled = sum(1 for cell in row.cells if header_text(cell))
        score = header_score(row.cells)
        if score >= 2 or (score == 1 and filled <= 2):
            return index
    if first_non_empty is None:
        raise ValueError("no non-empty row")
    return first_non_empty
