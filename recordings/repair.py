"""Make recordings left unfinished by a crash playable again.

A recorder writes ``NAME.wav.part`` and renames it to ``NAME.wav`` when the call ends, so any
``.part`` file found at start-up belongs to a call that was cut short. Repair truncates it to
whole stereo samples, rewrites the 44-byte header from the real length (the sizes in it may lag
the data, or the header may never have reached the disk), fsyncs it and renames it to
``NAME.wav``. The caller gets the list back to mark those calls interrupted.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from recordings.errors import RepairError
from recordings.wav_format import (
    BYTES_PER_STEREO_SAMPLE,
    HEADER_BYTES,
    seconds_of,
    wav_header,
)
from recordings.wav_writer import PART_SUFFIX

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RepairedRecording:
    """One unfinished recording made playable."""

    path: Path  # the repaired ``.wav``
    unfinished_path: Path  # the ``.wav.part`` it was
    duration_seconds: float
    bytes_dropped: int  # a torn stereo sample at the end, if any


def find_unfinished(root: Path) -> list[Path]:
    """Every ``*.wav.part`` file under ``root``, sorted."""
    if not root.exists():
        return []
    return sorted(path for path in root.rglob(f"*.wav{PART_SUFFIX}") if path.is_file())


def repair_file(unfinished_path: Path) -> RepairedRecording:
    """Repair one ``.wav.part`` file and rename it to ``.wav``; raises :class:`RepairError`."""
    if not unfinished_path.name.endswith(PART_SUFFIX):
        raise RepairError(f"{unfinished_path} is not an unfinished recording")
    final_path = unfinished_path.with_name(unfinished_path.name[: -len(PART_SUFFIX)])
    try:
        with unfinished_path.open("r+b") as file:
            size = os.fstat(file.fileno()).st_size
            audio_bytes = max(0, size - HEADER_BYTES)
            data_bytes = audio_bytes - audio_bytes % BYTES_PER_STEREO_SAMPLE
            dropped = audio_bytes - data_bytes
            file.truncate(HEADER_BYTES + data_bytes)
            file.seek(0)
            file.write(wav_header(data_bytes))
            file.flush()
            os.fsync(file.fileno())
        os.replace(unfinished_path, final_path)
        descriptor = os.open(final_path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    except (OSError, ValueError) as error:
        raise RepairError(f"could not repair {unfinished_path}: {error}") from error
    repaired = RepairedRecording(
        path=final_path,
        unfinished_path=unfinished_path,
        duration_seconds=seconds_of(data_bytes),
        bytes_dropped=dropped,
    )
    logger.info("repaired %s: %.2f s of audio", final_path, repaired.duration_seconds)
    return repaired


def repair_unfinished(root: Path) -> list[RepairedRecording]:
    """Repair every unfinished recording under ``root``.

    A file that cannot be repaired is logged and skipped, so one bad file does not stop
    start-up; it stays as ``.part`` for a person to look at.
    """
    repaired: list[RepairedRecording] = []
    for path in find_unfinished(root):
        try:
            repaired.append(repair_file(path))
        except RepairError as error:
            logger.error("%s", error)
    return repaired
