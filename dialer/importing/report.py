"""The import report: one line per data row saying what became of it, and the totals.

Row numbers are the ones Excel shows (the title row of a plain sheet is row 1), so the user can
find every skipped row in the original file. ``write_report_csv`` writes the report as a CSV that
Excel opens with Cyrillic intact (UTF-8 with BOM).
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any


class RowAction(StrEnum):
    CREATED = "created"
    MERGED = "merged"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class RowOutcome:
    """What happened to one data row. ``reason`` says why it was skipped or what it merged
    into; ``warnings`` list values that could not be read (kept in custom fields)."""

    row_number: int
    action: RowAction
    contact_id: int | None
    name: str
    phones: tuple[str, ...]
    reason: str = ""
    warnings: tuple[str, ...] = ()

    def describe(self) -> str:
        parts = [f"row {self.row_number}: {self.action.value}"]
        if self.contact_id is not None:
            parts.append(f"contact {self.contact_id}")
        if self.reason:
            parts.append(self.reason)
        parts.extend(self.warnings)
        return "; ".join(parts)


@dataclass(frozen=True)
class ImportReport:
    """The result of ``import_contacts``: how the file was read and every data row's outcome."""

    file_format: str
    header_row: int
    mapping: tuple[str, ...]
    rows: tuple[RowOutcome, ...]

    def count(self, action: RowAction) -> int:
        return sum(1 for row in self.rows if row.action is action)

    @property
    def created(self) -> int:
        return self.count(RowAction.CREATED)

    @property
    def merged(self) -> int:
        return self.count(RowAction.MERGED)

    @property
    def skipped(self) -> int:
        return self.count(RowAction.SKIPPED)

    @property
    def rows_with_warnings(self) -> int:
        return sum(1 for row in self.rows if row.warnings)

    def outcome_for_row(self, row_number: int) -> RowOutcome:
        for row in self.rows:
            if row.row_number == row_number:
                return row
        raise KeyError(row_number)

    def skip_reasons(self) -> dict[str, int]:
        """How many rows were skipped for each reason (reasons without row-specific detail)."""
        reasons = Counter(
            row.reason.split(" (")[0] for row in self.rows if row.action is RowAction.SKIPPED
        )
        return dict(reasons.most_common())

    def summary(self) -> dict[str, Any]:
        """Totals for the audit log and the CLI."""
        return {
            "format": self.file_format,
            "header_row": self.header_row,
            "rows": len(self.rows),
            "created": self.created,
            "merged": self.merged,
            "skipped": self.skipped,
            "rows_with_warnings": self.rows_with_warnings,
            "skip_reasons": self.skip_reasons(),
        }


REPORT_COLUMNS = ("Row", "Result", "Contact ID", "Name", "Phones", "Reason", "Warnings")


def write_report_csv(report: ImportReport, path: Path, *, delimiter: str = ",") -> None:
    """One line per data row (``REPORT_COLUMNS``), UTF-8 with BOM so Excel shows Cyrillic."""
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(REPORT_COLUMNS)
        writer.writerows(_report_line(row) for row in report.rows)


def _report_line(row: RowOutcome) -> Sequence[object]:
    return (
        row.row_number,
        row.action.value,
        "" if row.contact_id is None else row.contact_id,
        row.name,
        ", ".join(row.phones),
        row.reason,
        "; ".join(row.warnings),
    )
