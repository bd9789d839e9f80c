"""Storage layout, verification against stored hashes, and retention."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from recordings.entries import RecordingEntry
from recordings.errors import UnsafeNameError
from recordings.layout import RecordingLayout, safe_name
from recordings.retention import delete_expired, find_expired
from recordings.verification import verify_recordings

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)


def stored(
    layout: RecordingLayout, name: str, created_at: datetime, content: bytes
) -> RecordingEntry:
    path = layout.path_for(name, created_at, "ogg")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return RecordingEntry(
        recording_id=name,
        path=path,
        sha256=hashlib.sha256(content).hexdigest(),
        created_at=created_at,
        size_bytes=len(content),
    )


def test_files_are_laid_out_by_utc_date(tmp_path: Path) -> None:
    layout = RecordingLayout(tmp_path)
    moscow = timezone(timedelta(hours=3))
    started = datetime(2026, 1, 1, 1, 30, tzinfo=moscow)  # still 31 December in UTC
    path = layout.path_for("call-42", started)
    assert path == tmp_path / "2025" / "12" / "31" / "call-42.wav"
    assert layout.relative(path) == "2025/12/31/call-42.wav"
    assert layout.resolve("2025/12/31/call-42.wav") == path.resolve()


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ("../../etc/passwd", "_.._etc_passwd"),
        ("call 42/../x", "call_42_.._x"),
        (".hidden", "hidden"),
        ("a\\b:c", "a_b_c"),
        ("звонок-7", "_-7"),
    ],
)
def test_names_cannot_escape_the_root(tmp_path: Path, raw: str, cleaned: str) -> None:
    layout = RecordingLayout(tmp_path)
    assert safe_name(raw) == cleaned
    path = layout.path_for(raw, NOW)
    assert path.parent == tmp_path / "2026" / "03" / "15"


@pytest.mark.parametrize("raw", ["", "..", "///", "..."])
def test_names_with_nothing_usable_are_refused(raw: str) -> None:
    with pytest.raises(UnsafeNameError):
        safe_name(raw)


@pytest.mark.parametrize("stored_path", ["../outside.ogg", "/etc/passwd", "2026/../../x", ""])
def test_stored_paths_outside_the_root_are_refused(tmp_path: Path, stored_path: str) -> None:
    with pytest.raises(UnsafeNameError):
        RecordingLayout(tmp_path / "root").resolve(stored_path)


def test_naive_dates_and_odd_extensions_are_refused(tmp_path: Path) -> None:
    layout = RecordingLayout(tmp_path)
    with pytest.raises(ValueError, match="timezone"):
        layout.path_for("x", datetime(2026, 1, 1))
    with pytest.raises(UnsafeNameError):
        layout.path_for("x", NOW, "../wav")


def test_verify_reports_missing_and_corrupt_files(tmp_path: Path) -> None:
    layout = RecordingLayout(tmp_path)
    good = stored(layout, "good", NOW, b"good audio" * 1000)
    flipped = stored(layout, "flipped", NOW, b"flipped audio" * 1000)
    gone = stored(layout, "gone", NOW, b"gone")
    truncated = stored(layout, "truncated", NOW, b"truncated" * 100)
    content = bytearray(flipped.path.read_bytes())
    content[500] ^= 0x01
    flipped.path.write_bytes(bytes(content))
    gone.path.unlink()
    truncated.path.write_bytes(b"truncated")

    report = verify_recordings([good, flipped, gone, truncated])

    assert report.checked == 4
    assert not report.ok
    assert report.verified == [good]
    assert report.missing == [gone]
    assert report.corrupt == [flipped, truncated]


def test_verify_all_good(tmp_path: Path) -> None:
    layout = RecordingLayout(tmp_path)
    entries = [stored(layout, f"call-{index}", NOW, bytes([index]) * 3000) for index in range(3)]
    report = verify_recordings(entries)
    assert report.ok
    assert report.verified == entries


def test_retention_deletes_only_old_files_and_prunes_empty_days(tmp_path: Path) -> None:
    layout = RecordingLayout(tmp_path)
    old = stored(layout, "old", NOW - timedelta(days=100), b"o" * 10)
    old_same_day = stored(layout, "old-2", NOW - timedelta(days=100), b"p" * 20)
    borderline = stored(layout, "borderline", NOW - timedelta(days=89, hours=23), b"b")
    fresh = stored(layout, "fresh", NOW - timedelta(days=1), b"f")
    already_gone = stored(layout, "gone", NOW - timedelta(days=200), b"g")
    already_gone.path.unlink()
    entries = [old, old_same_day, borderline, fresh, already_gone]

    assert find_expired(entries, older_than_days=90, now=NOW) == [old, old_same_day, already_gone]
    deleted = delete_expired(entries, older_than_days=90, now=NOW, root=tmp_path)

    assert [(item.entry, item.file_existed, item.bytes_freed) for item in deleted] == [
        (old, True, 10),
        (old_same_day, True, 20),
        (already_gone, False, 0),
    ]
    assert not old.path.exists()
    assert not old.path.parent.exists()  # the emptied day folder went too
    assert borderline.path.exists()
    assert fresh.path.exists()
    assert tmp_path.exists()
