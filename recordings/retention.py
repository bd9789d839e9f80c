"""Retention: find and delete recordings older than a number of days.

Returns what it deleted so the caller can audit it and update its records; the caller decides
which entries are eligible (legal holds, per-campaign rules) before passing them in.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from recordings.entries import RecordingEntry

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeletedRecording:
    """One expired recording and what happened to its file."""

    entry: RecordingEntry
    file_existed: bool  # False: the file was already gone, only the record is stale
    bytes_freed: int


def find_expired(
    entries: Iterable[RecordingEntry], *, older_than_days: int, now: datetime
) -> list[RecordingEntry]:
    """Entries created more than ``older_than_days`` days before ``now`` (both aware)."""
    if older_than_days < 0:
        raise ValueError("older_than_days must not be negative")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    cutoff = now - timedelta(days=older_than_days)
    expired = []
    for entry in entries:
        if entry.created_at.tzinfo is None:
            raise ValueError(f"created_at of {entry.recording_id} is not timezone-aware")
        if entry.created_at < cutoff:
            expired.append(entry)
    return expired


def delete_expired(
    entries: Iterable[RecordingEntry],
    *,
    older_than_days: int,
    now: datetime,
    root: Path | None = None,
) -> list[DeletedRecording]:
    """Delete the files of expired entries; with ``root``, also prune emptied date folders.

    A file that cannot be deleted (permissions) is logged and left out of the result, so the
    caller keeps its record and tries again next time.
    """
    deleted: list[DeletedRecording] = []
    for entry in find_expired(entries, older_than_days=older_than_days, now=now):
        try:
            size = entry.path.stat().st_size
            entry.path.unlink()
            deleted.append(DeletedRecording(entry, file_existed=True, bytes_freed=size))
        except FileNotFoundError:
            deleted.append(DeletedRecording(entry, file_existed=False, bytes_freed=0))
        except OSError as error:
            logger.error("could not delete recording %s: %s", entry.path, error)
            continue
        if root is not None:
            _prune_empty_parents(entry.path.parent, root)
    return deleted


def _prune_empty_parents(directory: Path, root: Path) -> None:
    root = root.resolve()
    current = directory.resolve()
    while current != root and root in current.parents:
        try:
            os.rmdir(current)
        except OSError:
            return  # not empty (or not ours to remove): stop climbing
        current = current.parent
