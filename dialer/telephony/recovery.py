"""Start-up recovery after a crash or a kill: nothing is left half-done.

1. Every unfinished recording (``*.wav.part``) is repaired by :mod:`recordings.repair`.
2. Every call still live in the database (created, dialing, ringing, answered) becomes
   ``interrupted`` (:func:`dialer.calls.mark_unfinished_calls_interrupted`), committed.
3. Every finished ``call-<id>.wav`` under the recordings root (the repaired ones, and any whose
   compression was cut short) is compressed and attached to its call, unless that call already
   has a recording.
4. Every compressed ``call-<id>.ogg`` / ``.mp3`` whose call has no recording row at all (its
   attachment was refused until the last shutdown, e.g. by a database another process kept
   locked) is attached as it is. A call with a recording row, even a deleted one, keeps it: a
   purged recording is never brought back.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.calls import mark_unfinished_calls_interrupted
from dialer.models import Call, Recording, utc_now
from dialer.telephony.recording import (
    RecordingStore,
    call_id_of_compressed_recording,
    call_id_of_recording,
)
from recordings.repair import repair_unfinished

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecoveryReport:
    """What start-up recovery did."""

    repaired_files: tuple[Path, ...] = ()
    interrupted_call_ids: tuple[int, ...] = ()
    attached: dict[int, int] = field(default_factory=dict)  # call id -> recording id
    orphan_files: tuple[Path, ...] = ()  # recordings whose call does not exist


async def recover(
    session_factory: async_sessionmaker[AsyncSession],
    store: RecordingStore,
    *,
    now: datetime | None = None,
) -> RecoveryReport:
    """Repair recordings, interrupt unfinished calls, attach the recordings (see above)."""
    now = now if now is not None else utc_now()
    loop = asyncio.get_running_loop()
    repaired = await loop.run_in_executor(None, repair_unfinished, store.root)
    async with session_factory() as session:
        interrupted = await mark_unfinished_calls_interrupted(session, now)
        await session.commit()
    if interrupted:
        logger.warning("calls interrupted by the last shutdown: %s", list(interrupted))
    waiting, compressed_files = await loop.run_in_executor(None, _recording_files, store.root)
    attached: dict[int, int] = {}
    orphans: list[Path] = []
    for path in waiting:
        call_id = call_id_of_recording(path)
        if call_id is None:
            continue
        async with session_factory() as session:
            exists = await session.get(Call, call_id) is not None
            has_recording = exists and (
                await session.scalar(
                    select(Recording.id).where(
                        Recording.call_id == call_id, Recording.deleted_at.is_(None)
                    )
                )
                is not None
            )
        if not exists:
            orphans.append(path)
            logger.error("recording %s has no call in the database; left in place", path)
            continue
        if has_recording:
            continue
        row = await store.store_file(call_id, path)
        if row is not None:
            attached[call_id] = row.id
    compressed = {call_id: path for path, call_id in compressed_files if call_id not in attached}
    known_calls, calls_with_rows = await _calls_and_recordings(session_factory, list(compressed))
    for call_id, path in compressed.items():
        if call_id not in known_calls:
            orphans.append(path)
            logger.error("recording %s has no call in the database; left in place", path)
            continue
        if call_id in calls_with_rows:
            continue  # attached already (the usual case), or purged: never brought back
        row = await store.attach_compressed(call_id, path)
        if row is not None:
            attached[call_id] = row.id
            logger.warning("recording %s attached to call %d at start-up", path, call_id)
    return RecoveryReport(
        repaired_files=tuple(item.path for item in repaired),
        interrupted_call_ids=tuple(interrupted),
        attached=attached,
        orphan_files=tuple(orphans),
    )


LOOKUP_CHUNK = 500  # call ids per query when matching files to rows


async def _calls_and_recordings(
    session_factory: async_sessionmaker[AsyncSession], call_ids: list[int]
) -> tuple[set[int], set[int]]:
    """Of ``call_ids``: those that are calls, and those that have a recording row (deleted
    ones too)."""
    known: set[int] = set()
    with_rows: set[int] = set()
    async with session_factory() as session:
        for start in range(0, len(call_ids), LOOKUP_CHUNK):
            chunk = call_ids[start : start + LOOKUP_CHUNK]
            known.update(await session.scalars(select(Call.id).where(Call.id.in_(chunk))))
            with_rows.update(
                await session.scalars(select(Recording.call_id).where(Recording.call_id.in_(chunk)))
            )
    return known, with_rows


def _recording_files(root: Path) -> tuple[list[Path], list[tuple[Path, int]]]:
    """Finished WAVs, and compressed recordings with their call ids, under ``root`` (one walk)."""
    if not root.exists():
        return [], []
    wavs: list[Path] = []
    compressed: list[tuple[Path, int]] = []
    for path in sorted(root.rglob("call-*")):
        if path.suffix == ".wav" and path.is_file():
            wavs.append(path)
        elif (call_id := call_id_of_compressed_recording(path)) is not None and path.is_file():
            compressed.append((path, call_id))
    return wavs, compressed
