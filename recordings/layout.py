"""Where recordings live: ``ROOT/YYYY/MM/DD/<safe name>.<extension>``.

Names come from call ids or other outside input, so they are reduced to letters, digits,
``.``, ``_`` and ``-`` and can never climb out of the root. Paths stored in the database are
relative to the root (``2026/01/31/call-42.ogg``); :meth:`RecordingLayout.resolve` turns them
back into absolute paths and refuses any that would leave the root.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from recordings.errors import UnsafeNameError

_UNSAFE_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")
_EXTENSION = re.compile(r"[A-Za-z0-9]{1,10}")
MAX_NAME_LENGTH = 120


def safe_name(name: str) -> str:
    """``name`` with every run of other characters replaced by ``_``, no leading dots.

    Raises :class:`UnsafeNameError` if nothing usable is left.
    """
    cleaned = _UNSAFE_CHARACTERS.sub("_", name).lstrip(".")[:MAX_NAME_LENGTH]
    if not cleaned.strip("_-"):
        raise UnsafeNameError(f"{name!r} gives no usable file name")
    return cleaned


@dataclass(frozen=True, slots=True)
class RecordingLayout:
    """The storage root and the date-based layout under it."""

    root: Path

    def path_for(self, name: str, started_at: datetime, extension: str = "wav") -> Path:
        """Absolute path for a recording started at ``started_at`` (timezone-aware; UTC date)."""
        if started_at.tzinfo is None:
            raise ValueError("started_at must be timezone-aware")
        if not _EXTENSION.fullmatch(extension):
            raise UnsafeNameError(f"bad extension {extension!r}")
        day = started_at.astimezone(UTC)
        return (
            self.root
            / f"{day.year:04d}"
            / f"{day.month:02d}"
            / f"{day.day:02d}"
            / f"{safe_name(name)}.{extension}"
        )

    def relative(self, path: Path) -> str:
        """``path`` relative to the root, with ``/`` separators, for storing in the database."""
        try:
            relative = path.resolve().relative_to(self.root.resolve())
        except ValueError as error:
            raise UnsafeNameError(f"{path} is outside {self.root}") from error
        return relative.as_posix()

    def resolve(self, relative_path: str) -> Path:
        """Absolute path of a stored relative path; refuses absolute paths and ``..``."""
        pure = PurePosixPath(relative_path)
        if not relative_path or pure.is_absolute() or ".." in pure.parts or "\\" in relative_path:
            raise UnsafeNameError(f"{relative_path!r} is not a path inside the storage root")
        candidate = (self.root / Path(*pure.parts)).resolve()
        root = self.root.resolve()
        if candidate != root and root not in candidate.parents:
            raise UnsafeNameError(f"{relative_path!r} leads outside the storage root")
        return candidate
