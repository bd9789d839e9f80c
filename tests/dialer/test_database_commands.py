"""The administration commands, run through the real ``dialer`` entry point."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from sqlalchemy import text

from dialer.settings import load_settings
from dialer.storage import create_engine
from web.cli import main


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "data"
    monkeypatch.setenv("DIALER_DATA_DIR", str(directory))
    monkeypatch.delenv("DIALER_DATABASE_URL", raising=False)
    return directory


def _feed_stdin(monkeypatch: pytest.MonkeyPatch, content: str) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(content))


def _add_user(monkeypatch: pytest.MonkeyPatch, login: str, *options: str) -> int:
    _feed_stdin(monkeypatch, "a long password\n")
    return main(["user", "add", login, "--password-stdin", *options])


def test_first_setup_creates_users(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "upgrade"]) == 0
    assert (data_dir / "dialer.db").is_file()
    assert _add_user(monkeypatch, "Chief", "--role", "admin", "--team", "North") == 0
    assert _add_user(monkeypatch, "anna", "--team", "north", "--allow", "10.0.0.0/8") == 0
    assert _add_user(monkeypatch, "chief") == 2  # logins are case-insensitive
    assert "taken" in capsys.readouterr().err
    assert main(["user", "list"]) == 0
    listing = capsys.readouterr().out
    assert "Chief\tadmin\tactive" in listing
    assert "anna\toperator\tactive" in listing


def test_short_password_is_refused(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _feed_stdin(monkeypatch, "short\n")
    assert main(["user", "add", "anna", "--password-stdin"]) == 2
    assert "password" in capsys.readouterr().err


def test_disable_unlock_and_reset(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _add_user(monkeypatch, "anna") == 0
    assert main(["user", "disable", "anna"]) == 0
    assert main(["user", "unlock", "anna"]) == 0
    _feed_stdin(monkeypatch, "another long password\n")
    assert main(["user", "reset-password", "anna", "--password-stdin"]) == 0
    assert main(["user", "disable", "nobody"]) == 2
    assert main(["user", "list"]) == 0
    assert "anna\toperator\tdisabled" in capsys.readouterr().out
    assert main(["user", "enable", "anna"]) == 0
    assert main(["audit", "verify"]) == 0


def test_audit_verify_reports_tampering(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _add_user(monkeypatch, "anna") == 0
    assert _add_user(monkeypatch, "boris") == 0
    assert main(["audit", "verify"]) == 0
    assert "intact" in capsys.readouterr().out

    async def tamper() -> None:
        engine = create_engine(load_settings().database_url)
        try:
            async with engine.begin() as connection:
                await connection.execute(text("DROP TRIGGER audit_events_no_update"))
                await connection.execute(
                    text('UPDATE audit_events SET summary = \'{"login": "mallory"}\' WHERE id = 1')
                )
        finally:
            await engine.dispose()

    asyncio.run(tamper())
    assert main(["audit", "verify"]) == 1
    assert "audit event 1: edited" in capsys.readouterr().out


def test_backup_and_restore(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _add_user(monkeypatch, "anna") == 0
    archive = data_dir / "manual.sqlite3"
    assert main(["backup", "--output", str(archive)]) == 0
    assert archive.is_file()
    assert main(["backup"]) == 0
    assert len(list((data_dir / "backups").glob("dialer-*.sqlite3"))) == 1
    assert _add_user(monkeypatch, "boris") == 0
    assert main(["restore", str(archive)]) == 0
    capsys.readouterr()
    assert main(["user", "list"]) == 0
    listing = capsys.readouterr().out
    assert "anna" in listing
    assert "boris" not in listing
    assert main(["restore", str(data_dir / "missing.sqlite3")]) == 2
