"""``dialer recordings verify`` and ``dialer recordings purge --older-than DAYS``.

``verify`` checks every stored recording file against the size and SHA-256 kept with its call
and prints one line per problem (missing, corrupt, unreadable); exit status 1 when any.
``purge`` deletes recording files older than DAYS days (retention), marks their rows deleted
and appends one ``recording.purge`` audit event naming them; the system is the actor.
Settings come from the DIALER_* environment (``dialer.settings.load_settings``).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from dialer.commands.running import EXIT_OK, EXIT_PROBLEMS, Subparsers, refuse
from dialer.settings import Settings, load_settings
from recordings.entries import RecordingEntry
from recordings.errors import UnsafeNameError
from recordings.layout import RecordingLayout

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession


def register(subparsers: Subparsers) -> None:
    recordings = subparsers.add_parser("recordings", help="stored call recordings")
    actions = recordings.add_subparsers(dest="recordings_command", required=True, metavar="ACTION")
    verify = actions.add_parser("verify", help="check every file against its SHA-256; exit 1")
    verify.set_defaults(handler=_verify_command)
    purge = actions.add_parser("purge", help="delete recordings older than DAYS (audited)")
    purge.add_argument("--older-than", type=int, required=True, metavar="DAYS")
    purge.set_defaults(handler=_purge_command)


async def _entries(
    session: AsyncSession, layout: RecordingLayout
) -> tuple[list[RecordingEntry], list[str]]:
    """Entries of the live recordings with a checksum, and problems with the other rows."""
    from sqlalchemy import select

    from dialer.models import Recording

    rows: Sequence[Recording] = (
        await session.scalars(
            select(Recording).where(Recording.deleted_at.is_(None)).order_by(Recording.id)
        )
    ).all()
    entries: list[RecordingEntry] = []
    problems: list[str] = []
    for row in rows:
        try:
            path = layout.resolve(row.path)
        except UnsafeNameError as error:
            problems.append(f"recording {row.id}: unsafe path: {error}")
            continue
        if not row.sha256:
            problems.append(f"recording {row.id}: no checksum stored ({row.path})")
            continue
        entries.append(
            RecordingEntry(
                recording_id=str(row.id),
                path=path,
                sha256=row.sha256,
                created_at=row.created_at,
                size_bytes=row.size_bytes,
            )
        )
    return entries, problems


async def verify(settings: Settings) -> int:
    """Verify every recording; prints the problems; returns the exit status."""
    from dialer.storage import create_engine, create_session_factory
    from recordings.verification import verify_recordings

    layout = RecordingLayout(settings.recordings_dir)
    engine = create_engine(settings.database_url)
    try:
        async with create_session_factory(engine)() as session:
            entries, problems = await _entries(session, layout)
    finally:
        await engine.dispose()
    report = await asyncio.get_running_loop().run_in_executor(None, verify_recordings, entries)
    for failure in report.failures:
        problems.append(
            f"recording {failure.entry.recording_id}: {failure.problem}: {failure.detail}"
        )
    for problem in problems:
        print(problem)
    print(f"{report.checked} checked, {len(report.verified)} verified, {len(problems)} problems")
    return EXIT_PROBLEMS if problems else EXIT_OK


async def purge(settings: Settings, older_than_days: int, now: datetime | None = None) -> int:
    """Delete expired recordings, mark their rows and audit it; returns the exit status."""
    from dialer.audit import append_audit_event
    from dialer.models import Recording, utc_now
    from dialer.storage import create_engine, create_session_factory
    from recordings.retention import delete_expired

    now = now if now is not None else utc_now()
    layout = RecordingLayout(settings.recordings_dir)
    engine = create_engine(settings.database_url)
    try:
        async with create_session_factory(engine)() as session:
            entries, _ = await _entries(session, layout)
            deleted = await asyncio.get_running_loop().run_in_executor(
                None,
                lambda: delete_expired(
                    entries, older_than_days=older_than_days, now=now, root=layout.root
                ),
            )
            ids = [int(item.entry.recording_id) for item in deleted]
            for recording_id in ids:
                row = await session.get(Recording, recording_id)
                if row is not None:
                    row.deleted_at = now
            freed = sum(item.bytes_freed for item in deleted)
            missing = [int(item.entry.recording_id) for item in deleted if not item.file_existed]
            if ids:
                await append_audit_event(
                    session,
                    None,
                    "recording.purge",
                    None,
                    {
                        "older_than_days": older_than_days,
                        "recording_ids": ids,
                        "bytes_freed": freed,
                        "already_missing": missing,
                    },
                    now=now,
                )
            await session.commit()
    finally:
        await engine.dispose()
    print(f"{len(ids)} recordings older than {older_than_days} days deleted, {freed} bytes freed")
    return EXIT_OK


def _verify_command(arguments: argparse.Namespace) -> int:
    from dialer.storage import upgrade_database

    settings = load_settings()
    asyncio.run(upgrade_database(settings.database_url))
    return asyncio.run(verify(settings))


def _purge_command(arguments: argparse.Namespace) -> int:
    if arguments.older_than < 0:
        return refuse("--older-than must not be negative")
    from dialer.storage import upgrade_database

    settings = load_settings()
    asyncio.run(upgrade_database(settings.database_url))
    return asyncio.run(purge(settings, arguments.older_than))
