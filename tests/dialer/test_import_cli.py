"""``dialer import`` and ``dialer export`` from the shell, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import openpyxl
import pytest

from tests.conftest import People
from web.cli import main

SHEET = (
    "Клиенты;;;\r\n"
    "ФИО;Тел.;Компания;Перезвонить\r\n"
    "Иванов Иван;8 (916) 123-45-67;Ромашка;25.12.2026 14:30\r\n"
    ";нет;;\r\n"
    "Иванов И.;89161234567;;\r\n"
    "Петрова Анна;+7 916 765 43 21;;завтра\r\n"
)


@pytest.fixture
def environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str, people: People
) -> People:
    monkeypatch.setenv("DIALER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DIALER_DATABASE_URL", database_url)
    return people


def write_sheet(tmp_path: Path) -> Path:
    path = tmp_path / "клиенты.csv"
    path.write_bytes(SHEET.encode("cp1251"))
    return path


def test_import_prints_a_summary_and_writes_the_report(
    environment: People, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report_path = tmp_path / "report.csv"
    code = main(
        [
            "import",
            str(write_sheet(tmp_path)),
            "--owner",
            "anna",
            "--timezone",
            "Europe/Moscow",
            "--report",
            str(report_path),
        ]
    )
    output = capsys.readouterr().out
    assert code == 0
    assert "column titles in row 2" in output
    assert "B 'Тел.' -> phone" in output
    assert "4 rows: 2 created, 1 merged, 1 skipped" in output

    text = report_path.read_bytes().decode("utf-8-sig")
    lines = list(csv.reader(io.StringIO(text)))
    assert lines[0] == ["Row", "Result", "Contact ID", "Name", "Phones", "Reason", "Warnings"]
    assert [(line[0], line[1]) for line in lines[1:]] == [
        ("3", "created"),
        ("4", "skipped"),
        ("5", "merged"),
        ("6", "created"),
    ]
    assert lines[2][5] == "no name and no valid phone"
    assert "not a date: 'завтра'" in lines[4][6]

    export_path = tmp_path / "out.xlsx"
    assert main(["export", "contacts", "--output", str(export_path)]) == 0
    assert "2 contacts written" in capsys.readouterr().out
    workbook = openpyxl.load_workbook(export_path, read_only=True)
    rows = list(workbook.active.iter_rows(values_only=True))
    header = list(rows[0])
    by_name = {row[header.index("Name")]: row for row in rows[1:]}
    assert set(by_name) == {"Иванов Иван", "Петрова Анна"}
    ivanov = by_name["Иванов Иван"]
    assert ivanov[header.index("Owner")] == "anna"
    assert ivanov[header.index("Company")] == "Ромашка"
    assert by_name["Петрова Анна"][header.index("Перезвонить")] == "завтра"


def test_dry_run_writes_nothing(
    environment: People, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sheet = write_sheet(tmp_path)
    assert main(["import", str(sheet), "--dry-run"]) == 0
    assert "dry run, nothing written: 4 rows: 2 created" in capsys.readouterr().out
    export_path = tmp_path / "out.csv"
    assert main(["export", "contacts", "--output", str(export_path), "--delimiter", ";"]) == 0
    assert "0 contacts written" in capsys.readouterr().out


def test_export_calls_csv(
    environment: People, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export_path = tmp_path / "calls.csv"
    assert main(["export", "calls", "--format", "csv", "--output", str(export_path)]) == 0
    assert "0 calls written" in capsys.readouterr().out
    assert export_path.read_bytes().startswith(b"\xef\xbb\xbfID,Started,")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["import", "missing.csv"], "cannot read"),
        (["import", "{sheet}", "--owner", "nobody"], "no user 'nobody'"),
        (["import", "{sheet}", "--mapping", "Нет такой=name"], "no column 'Нет такой'"),
        (["import", "{sheet}", "--mapping", "name"], "expected COLUMN=FIELD"),
        (["import", "{sheet}", "--timezone", "Mars/Olympus"], "unknown time zone"),
        (["import", "{sheet}", "--region", "XX"], "unknown region"),
        (["export", "contacts", "--output", "{out}", "--delimiter", "|"], "delimiter"),
    ],
)
def test_refusals_exit_with_2_and_say_why(
    environment: People,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    arguments: list[str],
    message: str,
) -> None:
    sheet = write_sheet(tmp_path)
    filled = [argument.format(sheet=sheet, out=tmp_path / "out.csv") for argument in arguments]
    assert main(filled) == 2
    assert message in capsys.readouterr().err
