"""Start-up recovery after a crash or a kill: nothing is left half-done.

1. Every unfinished recording (``*.wav.part``) is repaired by :mod:`recordings.repair`.
2. Every call still live in the database (created, dialing, ringing, answered) becomes
   ``interrupted`` (:func:`dialer.calls.mark_unfinished_calls_interrupted`), committed.
3. Every finished ``call-<id>.wav`` under the recordings root (the repaired ones, and any whose
   compression was cut short) is compressed and attached to its call, unless that call already
   has a recording.
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
from dialer.telephony.recording import RecordingStore, call_id_of_recording
from recordings.repair import repair_unfinished

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecoveryReport:
    """What start-up recovery did."""

    repaired_files: tuple[Path, ...] = ()
    interrupted_call_ids: tuple[int, ...] = ()
    attached: dict[int, int] = field(default_factory=dict)  # call id -> recording id
    orphan_files: tuple[Path, ...] = ()  # WAVs whose call does not exist


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
    waiting = await loop.run_in_executor(None, _finished_wavs, store.root)
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
    return RecoveryReport(
        repaired_files=tuple(item.path for item in repaired),
        interrupted_call_ids=tuple(interrupted),
        attached=attached,
        orphan_files=tuple(orphans),
    )


def _finished_wavs(root: Path) -> list[Path]:
    if not root.exists():
        return []
    return sorted(path for path in root.rglob("call-*.wav") if path.is_file())
