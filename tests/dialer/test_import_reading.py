"""Reading messy spreadsheets: encodings, separators, Excel dates, titles and phone formats.

These tests need no database: they read the files the way the import does and look at the
rows, the detected columns and the values one data row turns into.
"""

from __future__ import annotations

import codecs
import io
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import pytest

from dialer.importing.errors import InvalidMapping, UnreadableFile
from dialer.importing.mapping import (
    Field,
    apply_overrides,
    detect_mapping,
    find_header_row,
)
from dialer.importing.reading import SourceRow, open_table
from dialer.importing.rows import (
    SKIPPED_NO_NAME_NO_PHONE,
    ParsedContact,
    RowContext,
    parse_moment,
    parse_row,
)
from dialer.models import PhoneKind

MOSCOW = ZoneInfo("Europe/Moscow")
CONTEXT = RowContext(region="RU", timezone=MOSCOW, statuses={"new": "new", "callback": "callback"})

RUSSIAN_SHEET = (
    "ФИО;Телефон;Компания;Комментарий\r\n"
    'Иванов Иван;8 (916) 123-45-67;ООО "Ромашка";"первая строка\r\nвторая строка"\r\n'
    "Петрова Анна;+7 916 7654321;ИП Петрова;\r\n"
)


def read_all(source: Path | bytes) -> list[SourceRow]:
    with open_table(source) as table:
        return list(table.rows())


def only_contact(header: list[str], cells: list[object]) -> ParsedContact:
    parsed = parse_row(SourceRow(2, tuple(cells)), detect_mapping(header), CONTEXT)  # type: ignore[arg-type]
    assert parsed.contact is not None, parsed.problems
    return parsed.contact


@pytest.mark.parametrize(
    ("encoded", "expected_encoding"),
    [
        (codecs.BOM_UTF8 + RUSSIAN_SHEET.encode("utf-8"), "utf-8-sig"),
        (RUSSIAN_SHEET.encode("utf-8"), "utf-8"),
        (RUSSIAN_SHEET.encode("cp1251"), "cp1251"),
        (RUSSIAN_SHEET.encode("utf-16"), "utf-16"),
    ],
    ids=["utf8-bom", "utf8", "cp1251", "utf16"],
)
def test_russian_text_reads_the_same_in_every_encoding(
    encoded: bytes, expected_encoding: str
) -> None:
    with open_table(encoded) as table:
        rows = list(table.rows())
        assert table.format.encoding == expected_encoding
        assert table.format.delimiter == ";"
    assert rows[0].cells == ("ФИО", "Телефон", "Компания", "Комментарий")
    assert rows[1].cells == (
        "Иванов Иван",
        "8 (916) 123-45-67",
        'ООО "Ромашка"',
        "первая строка\r\nвторая строка",
    )
    # The quoted line break does not shift the numbering: Petrova is on Excel row 3.
    assert rows[2].number == 3
    assert rows[2].cells[0] == "Петрова Анна"


def test_text_saved_through_a_wrong_encoding_twice_is_repaired() -> None:
    # UTF-8 bytes shown as cp1251 ("Р¤Р�Рћ") and saved as UTF-8 again: a classic old-CRM export.
    utf8_bytes = RUSSIAN_SHEET.encode("utf-8")
    mangled = "".join(
        "\u0098" if byte == 0x98 else bytes([byte]).decode("cp1251") for byte in utf8_bytes
    )
    with open_table(mangled.encode("utf-8")) as table:
        rows = list(table.rows())
        assert table.format.repaired_mojibake
    assert rows[0].cells[0] == "ФИО"
    assert rows[1].cells[0] == "Иванов Иван"


def test_cp1251_detected_even_when_the_first_lines_are_plain_ascii(tmp_path: Path) -> None:
    lines = ["Name,Phone"] + [f"Person {index},+7916000{index:04d}" for index in range(5000)]
    lines.append("Сидоров,+79160009999")
    path = tmp_path / "late-cyrillic.csv"
    path.write_bytes("\n".join(lines).encode("cp1251"))
    rows = read_all(path)
    assert rows[-1].cells == ("Сидоров", "+79160009999")


@pytest.mark.parametrize("separator", [",", ";", "\t"], ids=["comma", "semicolon", "tab"])
def test_separator_is_detected(separator: str) -> None:
    text = separator.join(["Name", "Phone", "Notes"]) + "\n"
    text += separator.join(['"Smith, John"', "+1 650 253 0000", '"a; b\tc"']) + "\n"
    rows = read_all(text.encode())
    assert rows[0].cells == ("Name", "Phone", "Notes")
    assert rows[1].cells == ("Smith, John", "+1 650 253 0000", "a; b\tc")


def test_blank_lines_keep_their_row_numbers() -> None:
    rows = read_all(b"Name;Phone\n\nIvan;89161234567\n;\n")
    assert [(row.number, row.is_empty) for row in rows] == [
        (1, False),
        (2, True),
        (3, False),
        (4, True),
    ]


def test_old_binary_excel_files_are_refused_with_advice() -> None:
    with pytest.raises(UnreadableFile, match="xlsx"):
        open_table(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100)


def test_random_binary_is_refused() -> None:
    with pytest.raises(UnreadableFile):
        open_table(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")


def test_a_broken_workbook_is_refused() -> None:
    with pytest.raises(UnreadableFile):
        open_table(b"PK\x03\x04 this is not really a zip")


def test_xlsx_dates_numbers_and_row_numbers() -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Клиенты"
    sheet.append(["Выгрузка из CRM от 01.02.2026"])
    sheet.append([])
    sheet.append(["Фамилия", "Имя", "Мобильный", "Дата следующего звонка"])
    sheet.append(["Иванов", "Иван", 89161234567, datetime(2026, 12, 25, 14, 30)])
    sheet.append([])
    sheet.append(["Петров", "Пётр", "8 916 765 43 21", 45321])
    buffer = io.BytesIO()
    workbook.save(buffer)

    rows = read_all(buffer.getvalue())
    header_index = find_header_row(rows)
    assert rows[header_index].number == 3
    mapping = detect_mapping(rows[header_index].cells)
    first = parse_row(rows[3], mapping, CONTEXT)
    assert first.number == 4
    assert first.contact is not None
    assert first.contact.name == "Иванов Иван"
    assert first.contact.phone_numbers() == ["+79161234567"]
    assert first.contact.phones[0].kind is PhoneKind.MOBILE
    assert first.contact.follow_up_at == datetime(2026, 12, 25, 11, 30, tzinfo=UTC)
    assert rows[4].is_empty
    second = parse_row(rows[5], mapping, CONTEXT)
    assert second.number == 6
    assert second.contact is not None
    assert second.contact.name == "Петров Пётр"
    # Excel serial 45321 is 2024-01-30, midnight in the import's zone.
    assert second.contact.follow_up_at == datetime(2024, 1, 29, 21, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected_local"),
    [
        ("25.12.2026 14:30", datetime(2026, 12, 25, 14, 30)),
        ("25.12.2026", datetime(2026, 12, 25)),
        ("25/12/26 9:05", datetime(2026, 12, 25, 9, 5)),
        ("12/25/2026", datetime(2026, 12, 25)),
        ("2026-12-25", datetime(2026, 12, 25)),
        ("2026-12-25T14:30:00", datetime(2026, 12, 25, 14, 30)),
        ("45321", datetime(2024, 1, 30)),
        ("45321,75", datetime(2024, 1, 30, 18, 0)),
        (45321.604166666664, datetime(2024, 1, 30, 14, 30)),
        (date(2026, 3, 8), datetime(2026, 3, 8)),
    ],
)
def test_dates_in_the_forms_spreadsheets_hold_them(
    value: str | float | date, expected_local: datetime
) -> None:
    assert parse_moment(value, MOSCOW) == expected_local.replace(tzinfo=MOSCOW).astimezone(UTC)


def test_a_date_with_an_offset_keeps_it() -> None:
    moment = parse_moment("2026-12-25T14:30:00+05:00", MOSCOW)
    assert moment == datetime(2026, 12, 25, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize("value", ["скоро", "31.02.2026", "123", "", "25.13.2026 10:00"])
def test_values_that_are_not_dates(value: str) -> None:
    assert parse_moment(value, MOSCOW) is None


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("8 (916) 123-45-67", ["+79161234567"]),
        ("+7 916 1234567", ["+79161234567"]),
        ("89161234567", ["+79161234567"]),
        ("9161234567", ["+79161234567"]),
        (89161234567, ["+79161234567"]),
        (89161234567.0, ["+79161234567"]),
        ("8 (495) 123-45-67 доб. 123", ["+74951234567"]),
        ("8 916 123-45-67, 8 (495) 765-43-21", ["+79161234567", "+74957654321"]),
        ("8 916 123-45-67; +7 916 123 45 67", ["+79161234567"]),
        ("+79161234567 / 8-495-765-43-21, доб. 5", ["+79161234567", "+74957654321"]),
        ("тел.: 8 916 123-45-67\n+1 (650) 253-0000", ["+79161234567", "+16502530000"]),
    ],
)
def test_russian_phone_formats(cell: object, expected: list[str]) -> None:
    contact = only_contact(["Имя", "Телефон"], ["Иван", cell])
    assert contact.phone_numbers() == expected


def test_garbage_in_a_phone_cell_is_kept_and_reported() -> None:
    parsed = parse_row(
        SourceRow(7, ("Иван", "нет, 8 916 123-45-67, 12")),
        detect_mapping(["Имя", "Тел."]),
        CONTEXT,
    )
    assert parsed.contact is not None
    assert parsed.contact.phone_numbers() == ["+79161234567"]
    assert parsed.contact.custom_fields == {"Тел.": "нет, 12"}
    assert any("not a phone number" in problem for problem in parsed.problems)


@pytest.mark.parametrize(
    "cells",
    [("", "нет телефона", "ООО Ромашка"), ("", "123", ""), ("   ", "-", "")],
)
def test_rows_without_name_and_valid_phone_are_skipped_with_the_reason(
    cells: tuple[str, ...],
) -> None:
    parsed = parse_row(SourceRow(5, cells), detect_mapping(["Имя", "Телефон", "Компания"]), CONTEXT)
    assert parsed.contact is None
    assert parsed.problems[0] == SKIPPED_NO_NAME_NO_PHONE


def test_russian_titles_are_recognised() -> None:
    mapping = detect_mapping(
        [
            "Ф.И.О.",
            "Организация",
            "Должность",
            "Тел.",
            "Мобильный",
            "Рабочий телефон",
            "E-mail",
            "Примечание",
            "Статус",
            "Перезвонить",
            "Теги",
            "Источник лида",
            "№",
        ]
    )
    assert [target.field for target in mapping.targets] == [
        Field.NAME,
        Field.COMPANY,
        Field.POSITION,
        Field.PHONE,
        Field.MOBILE_PHONE,
        Field.WORK_PHONE,
        Field.EMAIL,
        Field.NOTES,
        Field.STATUS,
        Field.FOLLOW_UP_AT,
        Field.TAGS,
        Field.CUSTOM,
        Field.IGNORE,
    ]
    assert mapping.targets[11].custom_name == "Источник лида"


def test_english_titles_are_recognised() -> None:
    mapping = detect_mapping(
        [
            "Full Name",
            "Company",
            "Job Title",
            "Phone",
            "Mobile",
            "Work phone",
            "Email",
            "Notes",
            "Status",
            "Follow-up",
            "Tags",
            "Lead source",
        ]
    )
    assert [target.field for target in mapping.targets] == [
        Field.NAME,
        Field.COMPANY,
        Field.POSITION,
        Field.PHONE,
        Field.MOBILE_PHONE,
        Field.WORK_PHONE,
        Field.EMAIL,
        Field.NOTES,
        Field.STATUS,
        Field.FOLLOW_UP_AT,
        Field.TAGS,
        Field.CUSTOM,
    ]


def test_name_parts_are_combined_in_each_language_order() -> None:
    russian = only_contact(
        ["Имя", "Фамилия", "Отчество", "Телефон"], ["Иван", "Иванов", "Петрович", "89161234567"]
    )
    assert russian.name == "Иванов Иван Петрович"
    english = only_contact(["Last name", "First name", "Phone"], ["Smith", "John", "+16502530000"])
    assert english.name == "John Smith"


def test_phone_columns_give_phone_kinds() -> None:
    contact = only_contact(
        ["Имя", "Рабочий телефон", "Домашний телефон", "Мобильный"],
        ["Иван", "89161234567", "8 495 123-45-67", "8 916 765-43-21"],
    )
    assert [(phone.e164, phone.kind) for phone in contact.phones] == [
        ("+79161234567", PhoneKind.WORK),
        ("+74951234567", PhoneKind.HOME),
        ("+79167654321", PhoneKind.MOBILE),
    ]


def test_unknown_columns_and_cells_past_the_titles_become_custom_fields() -> None:
    contact = only_contact(
        ["Имя", "Телефон", "Регион", ""],
        ["Иван", "89161234567", "Москва", "VIP", "лишняя ячейка"],
    )
    assert contact.custom_fields == {
        "Регион": "Москва",
        "Column D": "VIP",
        "Column E": "лишняя ячейка",
    }


def test_bad_values_are_kept_in_custom_fields_and_named_in_warnings() -> None:
    parsed = parse_row(
        SourceRow(3, ("Иван", "89161234567", "ivan(at)mail.ru", "когда-нибудь", "Горячий")),
        detect_mapping(["Имя", "Телефон", "Почта", "Перезвонить", "Статус"]),
        CONTEXT,
    )
    assert parsed.contact is not None
    assert parsed.contact.email is None
    assert parsed.contact.follow_up_at is None
    assert parsed.contact.status is None
    assert parsed.contact.custom_fields == {
        "Почта": "ivan(at)mail.ru",
        "Перезвонить": "когда-нибудь",
        "Статус": "Горячий",
    }
    assert len(parsed.problems) == 3


def test_tags_notes_and_status() -> None:
    contact = only_contact(
        ["Имя", "Телефон", "Теги", "Комментарий", "Примечание", "Статус"],
        ["Иван", "89161234567", "vip, #опт; vip", "звонить утром", "сын директора", "Callback"],
    )
    assert contact.tags == ["vip", "опт"]
    assert contact.notes == "звонить утром\nсын директора"
    assert contact.status == "callback"


def test_user_overrides_the_detected_mapping() -> None:
    mapping = detect_mapping(["Клиент", "Номер", "Источник", "Комментарий"])
    assert mapping.targets[0].field is Field.NAME
    changed = apply_overrides(
        mapping,
        {"Номер": "mobile_phone", "C": "custom:Source", "комментарий": "ignore"},
    )
    assert [target.field for target in changed.targets] == [
        Field.NAME,
        Field.MOBILE_PHONE,
        Field.CUSTOM,
        Field.IGNORE,
    ]
    assert changed.targets[2].custom_name == "Source"


def test_an_override_takes_a_field_from_the_detected_column() -> None:
    mapping = detect_mapping(["ФИО", "Контактное лицо", "Телефон"])
    changed = apply_overrides(mapping, {"Контактное лицо": "name"})
    assert changed.targets[1].field is Field.NAME
    assert changed.targets[0].field is Field.CUSTOM
    assert changed.targets[0].custom_name == "ФИО"


@pytest.mark.parametrize(
    "override",
    [{"Нет такой": "name"}, {"Имя": "nickname"}, {"Z": "name"}, {"Имя": "custom:"}],
)
def test_bad_overrides_are_refused(override: dict[str, str]) -> None:
    with pytest.raises(InvalidMapping):
        apply_overrides(detect_mapping(["Имя", "Телефон"]), override)
