"""Check stored recordings against their recorded SHA-256: which are missing, which corrupt.

Used by ``dialer recordings verify``. Hashing streams each file, so memory stays flat however
big the recordings are; it is blocking disk I/O, to be run in a worker thread.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from recordings.entries import RecordingEntry
from recordings.hashing import sha256_of_file

logger = logging.getLogger(__name__)

Problem = Literal["missing", "corrupt", "unreadable"]


@dataclass(frozen=True, slots=True)
class VerificationFailure:
    """One recording that did not verify, and why."""

    entry: RecordingEntry
    problem: Problem
    detail: str


@dataclass(slots=True)
class VerificationReport:
    """The outcome of :func:`verify_recordings`."""

    checked: int = 0
    verified: list[RecordingEntry] = field(default_factory=list)
    failures: list[VerificationFailure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def missing(self) -> list[RecordingEntry]:
        return [failure.entry for failure in self.failures if failure.problem == "missing"]

    @property
    def corrupt(self) -> list[RecordingEntry]:
        return [failure.entry for failure in self.failures if failure.problem == "corrupt"]


def verify_recording(entry: RecordingEntry) -> VerificationFailure | None:
    """``None`` if the file exists and matches its size and hash, else what is wrong."""
    path = entry.path
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return VerificationFailure(entry, "missing", f"{path} does not exist")
    except OSError as error:
        return VerificationFailure(entry, "unreadable", str(error))
    if entry.size_bytes is not None and size != entry.size_bytes:
        return VerificationFailure(
            entry, "corrupt", f"size {size} bytes, expected {entry.size_bytes}"
        )
    try:
        actual = sha256_of_file(path)
    except OSError as error:
        return VerificationFailure(entry, "unreadable", str(error))
    if actual != entry.sha256.lower():
        return VerificationFailure(entry, "corrupt", f"sha256 {actual}, expected {entry.sha256}")
    return None


def verify_recordings(entries: Iterable[RecordingEntry]) -> VerificationReport:
    """Verify every entry; the report lists the good ones and each failure."""
    report = VerificationReport()
    for entry in entries:
        report.checked += 1
        failure = verify_recording(entry)
        if failure is None:
            report.verified.append(entry)
        else:
            logger.warning(
                "recording %s %s: %s", entry.recording_id, failure.problem, failure.detail
            )
            report.failures.append(failure)
    return report
