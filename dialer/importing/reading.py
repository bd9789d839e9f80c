"""Reading a spreadsheet the user uploaded: CSV text in any of the usual encodings, or XLSX.

``open_table`` looks at the first bytes to tell an XLSX workbook (a zip) from CSV text. For CSV it
picks the encoding (a BOM if there is one; otherwise strict UTF-8 over the whole file, falling
back to cp1251, the encoding of Russian Excel's "CSV"), repairs UTF-8 text that was once read as
cp1251 and saved again (``"РРІР°РЅ"`` instead of ``"Иван"``), and picks the separator (``;``,
``,``, tab or ``|``). Rows come out one at a time with the number Excel would show next to them
(the first line is row 1), so a report can point the user at the right line; empty rows keep their
numbers. Nothing here knows about contacts.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from types import TracebackType
from typing import IO, Literal

import openpyxl
from openpyxl.utils.exceptions import InvalidFileException

from dialer.importing.errors import UnreadableFile

logger = logging.getLogger(__name__)

CellValue = str | int | float | bool | datetime | date | time | None

CANDIDATE_DELIMITERS = (";", ",", "\t", "|")
_SAMPLE_BYTES = 64 * 1024
_VALIDATION_BLOCK_BYTES = 1024 * 1024
_ROWS_TO_PROBE = 50

_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


@dataclass(frozen=True)
class SourceRow:
    """One row of the sheet: its number as Excel shows it and its cell values."""

    number: int
    cells: tuple[CellValue, ...]
    problem: str | None = None  # the row could not be read at all (its cells are empty)

    @property
    def is_empty(self) -> bool:
        if self.problem is not None:
            return False
        return all(
            cell is None or (isinstance(cell, str) and not cell.strip()) for cell in self.cells
        )


@dataclass(frozen=True)
class TableFormat:
    """How the file was understood, for the import report and the logs."""

    kind: Literal["csv", "xlsx"]
    encoding: str | None = None
    delimiter: str | None = None
    repaired_mojibake: bool = False
    sheet: str | None = None

    def describe(self) -> str:
        if self.kind == "xlsx":
            return f"XLSX, sheet {self.sheet!r}"
        separator = {"\t": "tab"}.get(self.delimiter or ",", self.delimiter)
        repaired = ", double-encoded text repaired" if self.repaired_mojibake else ""
        return f"CSV, {self.encoding}, separator {separator!r}{repaired}"


class Table:
    """An open spreadsheet; iterate ``rows()`` once, then ``close()`` (or use ``with``)."""

    def __init__(
        self,
        table_format: TableFormat,
        rows: Iterator[SourceRow],
        handle: IO[bytes] | IO[str] | None,
    ) -> None:
        self.format = table_format
        self._rows = rows
        self._handle = handle

    def rows(self) -> Iterator[SourceRow]:
        return self._rows

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> Table:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def open_table(source: Path | bytes) -> Table:
    """Open a CSV or XLSX file (a path, or the bytes of an upload) for reading row by row."""
    head = _read_head(source, _SAMPLE_BYTES)
    if head.startswith(_OLE_MAGIC):
        raise UnreadableFile(
            "this is an old binary Excel file (.xls); save it as .xlsx or CSV and import that"
        )
    if head.startswith(_ZIP_MAGIC):
        return _open_workbook(source)
    return _open_csv(source, head)


def _read_head(source: Path | bytes, size: int) -> bytes:
    if isinstance(source, bytes):
        return source[:size]
    try:
        with source.open("rb") as handle:
            return handle.read(size)
    except OSError as error:
        raise UnreadableFile(f"cannot read {source}: {error.strerror}") from error


# --- XLSX -------------------------------------------------------------------------------------


def _open_workbook(source: Path | bytes) -> Table:
    handle: IO[bytes] = io.BytesIO(source) if isinstance(source, bytes) else source.open("rb")
    try:
        workbook = openpyxl.load_workbook(handle, read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError) as error:
        handle.close()
        raise UnreadableFile(f"not a readable XLSX workbook: {error}") from error
    sheet = _first_sheet_with_data(workbook)
    sheet.reset_dimensions()
    table_format = TableFormat(kind="xlsx", sheet=sheet.title)
    return Table(table_format, _workbook_rows(sheet), handle)


def _first_sheet_with_data(workbook: openpyxl.Workbook) -> openpyxl.worksheet.worksheet.Worksheet:
    """The sheet Excel opens on, unless it is empty and another one is not."""
    candidates = [workbook.active, *workbook.worksheets]
    for sheet in candidates:
        if sheet is None:
            continue
        sheet.reset_dimensions()
        for values in sheet.iter_rows(max_row=_ROWS_TO_PROBE, values_only=True):
            if any(value is not None for value in values):
                return sheet
    first = workbook.active or workbook.worksheets[0]
    return first


def _workbook_rows(sheet: openpyxl.worksheet.worksheet.Worksheet) -> Iterator[SourceRow]:
    # After reset_dimensions() read-only sheets yield every row from row 1, empty ones as ().
    for index, values in enumerate(sheet.iter_rows(values_only=True), start=1):
        cells = list(values)
        while cells and cells[-1] is None:
            cells.pop()
        yield SourceRow(number=index, cells=tuple(cells))


# --- CSV --------------------------------------------------------------------------------------


def _open_csv(source: Path | bytes, head: bytes) -> Table:
    if b"\x00" in head and not head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise UnreadableFile("the file is binary, not CSV text or an XLSX workbook")
    encoding = _detect_encoding(source, head)
    sample_text = _decode_sample(head, encoding)
    repair = _looks_double_encoded(sample_text)
    if repair:
        sample_text = repair_double_encoding(sample_text)
    truncated = len(head) >= _SAMPLE_BYTES
    delimiter = detect_delimiter(sample_text, truncated=truncated)
    text_handle: IO[str]
    if isinstance(source, bytes):
        text_handle = io.TextIOWrapper(
            io.BytesIO(source), encoding=encoding, errors="replace", newline=""
        )
    else:
        text_handle = source.open("r", encoding=encoding, errors="replace", newline="")
    table_format = TableFormat(
        kind="csv", encoding=encoding, delimiter=delimiter, repaired_mojibake=repair
    )
    return Table(table_format, _csv_rows(text_handle, delimiter, repair), text_handle)


def _detect_encoding(source: Path | bytes, head: bytes) -> str:
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    return "utf-8" if _is_valid_utf8(source) else "cp1251"


def _is_valid_utf8(source: Path | bytes) -> bool:
    """Strict UTF-8 check over the whole file, streaming so a large file is not held in memory."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    try:
        if isinstance(source, bytes):
            decoder.decode(source, final=True)
            return True
        with source.open("rb") as handle:
            while block := handle.read(_VALIDATION_BLOCK_BYTES):
                decoder.decode(block)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _decode_sample(head: bytes, encoding: str) -> str:
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    return decoder.decode(head, final=False)


def _looks_double_encoded(sample: str) -> bool:
    """True when UTF-8 text was read as cp1251 and saved as UTF-8 again somewhere upstream.

    Real Russian text almost never survives ``encode("cp1251").decode("utf-8")`` (its letters
    are not valid UTF-8 byte pairs), while double-encoded text turns back into real letters.
    """
    lines = sample.splitlines()[:20]
    probe = "\n".join(lines[:-1] if len(lines) > 1 else lines)
    if probe.isascii():
        return False
    try:
        repaired = _as_cp1251_bytes(probe).decode("utf-8")
    except UnicodeError:
        return False
    return repaired != probe


def repair_double_encoding(text: str) -> str:
    """Undo one round of UTF-8-read-as-cp1251; text that does not round-trip is left alone."""
    if text.isascii():
        return text
    try:
        return _as_cp1251_bytes(text).decode("utf-8")
    except UnicodeError:
        return text


def _as_cp1251_bytes(text: str) -> bytes:
    """cp1251 bytes of ``text``; byte 0x98, which cp1251 leaves undefined, comes back from U+0098
    (what Windows makes of it), so a double-encoded "И" (UTF-8 D0 98) is recovered too."""
    return b"\x98".join(part.encode("cp1251") for part in text.split("\u0098"))


def detect_delimiter(sample: str, *, truncated: bool) -> str:
    """Pick the separator that splits the sample into the most consistent multi-column rows.

    ``csv.Sniffer`` gets the first word; its guess is kept when it scores as well as the best
    candidate, since the sniffer also knows about quoting. A one-column file gets ``,``.
    """
    scores = {
        delimiter: _delimiter_score(sample, delimiter, truncated=truncated)
        for delimiter in CANDIDATE_DELIMITERS
    }
    best_score = max(scores.values())
    if best_score[0] <= 1:
        return ","
    try:
        sniffed = csv.Sniffer().sniff(sample, delimiters="".join(CANDIDATE_DELIMITERS)).delimiter
    except csv.Error:
        sniffed = ""
    if sniffed in scores and scores[sniffed] == best_score:
        return sniffed
    return max(CANDIDATE_DELIMITERS, key=lambda delimiter: scores[delimiter])


def _delimiter_score(sample: str, delimiter: str, *, truncated: bool) -> tuple[int, int]:
    """(columns in the first non-empty row, rows with that many columns) for one separator."""
    try:
        records = [
            record for record in csv.reader(io.StringIO(sample), delimiter=delimiter) if record
        ]
    except csv.Error:
        return (0, 0)
    if truncated and len(records) > 1:
        records = records[:-1]
    if not records:
        return (0, 0)
    width = len(records[0])
    consistent = sum(1 for record in records if len(record) == width)
    return (width if width > 1 else 1, consistent if width > 1 else 0)


def _csv_rows(handle: IO[str], delimiter: str, repair: bool) -> Iterator[SourceRow]:
    reader = csv.reader(handle, delimiter=delimiter, quotechar='"', doublequote=True, strict=False)
    number = 0
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            # E.g. a field over the csv module's size limit: that row is lost, not the file.
            number += 1
            yield SourceRow(number=number, cells=(), problem=f"unreadable CSV row ({error})")
            continue
        number += 1
        if repair:
            record = [repair_double_encoding(field) for field in record]
        while record and not record[-1].strip():
            record.pop()
        yield SourceRow(number=number, cells=tuple(record))
