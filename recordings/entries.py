"""The metadata of a stored recording that verification and retention work from.

The caller builds these from its own records (the database); this package never reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path


@dataclass(frozen=True, slots=True)
class RecordingEntry:
    """One stored recording file as the caller knows it."""

    recording_id: str
    path: Path
    sha256: str
    created_at: datetime  # timezone-aware
    size_bytes: int | None = None
