"""Consistent backups and restores: SQLite via its online backup API, PostgreSQL via pg_dump.

SQLite backups are database files (``.sqlite3``); PostgreSQL backups are pg_dump custom-format
archives (``.pgdump``). Restoring replaces the whole database: stop the server first.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import make_url

from dialer.errors import BackupFailed
from dialer.storage import is_sqlite, sqlite_path

logger = logging.getLogger(__name__)


def libpq_url(url: str) -> str:
    """An SQLAlchemy PostgreSQL URL in the form pg_dump and psql accept."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def default_backup_path(url: str, backups_dir: Path, now: datetime | None = None) -> Path:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    suffix = ".sqlite3" if is_sqlite(url) else ".pgdump"
    return backups_dir / f"dialer-{stamp}{suffix}"


def backup_database(url: str, destination: Path) -> Path:
    """Write a consistent copy of the database at ``url`` to ``destination``; returns it.

    SQLite: the online backup API (safe while the server runs), then an integrity check of the
    copy. PostgreSQL: ``pg_dump --format=custom`` (a consistent snapshot).
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    if is_sqlite(url):
        try:
            _backup_sqlite(sqlite_path(url), destination)
        except sqlite3.DatabaseError as error:
            raise BackupFailed(f"backup of {url} failed: {error}") from error
    else:
        _run(
            [
                _tool("pg_dump"),
                "--format=custom",
                "--no-owner",
                f"--file={destination}",
                f"--dbname={libpq_url(url)}",
            ]
        )
    logger.info("backup written to %s", destination)
    return destination


def restore_database(url: str, source: Path) -> None:
    """Replace the database at ``url`` with the backup ``source`` (made by backup_database)."""
    if not source.is_file():
        raise BackupFailed(f"no backup file {source}")
    if is_sqlite(url):
        try:
            _restore_sqlite(source, sqlite_path(url))
        except sqlite3.DatabaseError as error:
            raise BackupFailed(f"{source} is not a usable SQLite backup: {error}") from error
    else:
        _run(
            [
                _tool("pg_restore"),
                "--clean",
                "--if-exists",
                "--no-owner",
                "--single-transaction",
                "--exit-on-error",
                f"--dbname={libpq_url(url)}",
                str(source),
            ]
        )
    logger.info("database restored from %s", source)


def _backup_sqlite(database: Path, destination: Path) -> None:
    if not database.is_file():
        raise BackupFailed(f"no database file {database}")
    partial = destination.with_name(destination.name + ".partial")
    partial.unlink(missing_ok=True)
    source_connection = sqlite3.connect(database)
    try:
        target_connection = sqlite3.connect(partial)
        try:
            source_connection.backup(target_connection)
            target_connection.execute("PRAGMA journal_mode=DELETE")
            _check_integrity(target_connection, partial)
        finally:
            target_connection.close()
    finally:
        source_connection.close()
    partial.replace(destination)


def _restore_sqlite(source: Path, database: Path) -> None:
    source_connection = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        _check_integrity(source_connection, source)
        database.parent.mkdir(parents=True, exist_ok=True)
        target_connection = sqlite3.connect(database)
        try:
            target_connection.execute("PRAGMA busy_timeout=10000")
            source_connection.backup(target_connection)
        finally:
            target_connection.close()
    finally:
        source_connection.close()


def _check_integrity(connection: sqlite3.Connection, path: Path) -> None:
    result = connection.execute("PRAGMA integrity_check").fetchone()
    if result is None or result[0] != "ok":
        raise BackupFailed(f"{path} failed the integrity check: {result}")


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupFailed(f"{name} is not installed (Debian: apt-get install postgresql-client)")
    return path


def _run(arguments: list[str]) -> None:
    completed = subprocess.run(arguments, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise BackupFailed(f"{Path(arguments[0]).name} failed: {completed.stderr.strip()}")
