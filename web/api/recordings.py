"""``GET /api/calls/{id}/recording``: play or download a call's recording.

Only users who may see the call (``dialer.calls.get_call``: operators their own calls,
supervisors their team's, admins all) get the file; anyone else gets the same 404 as for a call
that does not exist. The answer carries the file's type (``audio/ogg`` for Opus, ``audio/mpeg``
for MP3, ``audio/wav`` for WAV) and honours one HTTP byte range (``Range: bytes=a-b``, ``a-``,
``-n``) with 206 and ``Content-Range``; a range past the end of the file is a 416. Several
ranges in one request are answered with the whole file (allowed by RFC 9110).

Every play and every download is written to the audit log (``recording.play`` /
``recording.download``, target ``call:<id>``) before any byte is served, through the
application's ``AuditAppender`` (``app.state.audit_appender``), which commits the plays of
concurrent requests together. A player fetches one play as many ranges, so only a request
without ``Range`` or with a range starting at byte 0 counts as a new play.
``?download=1`` adds ``Content-Disposition: attachment`` and is audited as a download.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from dialer.audit_appender import AuditAppender
from dialer.calls import get_call
from dialer.models import Recording
from web.errors import ApiError, ResourceNotFound
from web.permissions import SIGNED_IN
from web.routing import Call, Endpoint
from web.validation import QuerySchema, query_boolean

CHUNK_BYTES = 64 * 1024
CONTENT_TYPES: dict[str, str] = {
    ".ogg": "audio/ogg",
    ".opus": "audio/ogg",
    ".mp3": "audio/mpeg",
    ".wav": "audio/wav",
}
CODEC_CONTENT_TYPES: dict[str, str] = {
    "opus": "audio/ogg",
    "vorbis": "audio/ogg",
    "mp3": "audio/mpeg",
    "pcm_s16le": "audio/wav",
    "pcm_mulaw": "audio/wav",
    "pcm_alaw": "audio/wav",
}
_BYTE_RANGE = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")

RECORDING_QUERY = QuerySchema(
    {"download": query_boolean("answer as an attachment (audited as a download)")}
)


class RangeNotSatisfiable(ApiError):  # noqa: N818 (HTTP status names read better)
    status = 416
    code = "range_not_satisfiable"


@dataclass(frozen=True)
class ByteRange:
    """Bytes ``first`` to ``last`` inclusive of a file of ``size`` bytes."""

    first: int
    last: int
    size: int

    @property
    def length(self) -> int:
        return self.last - self.first + 1

    def content_range(self) -> str:
        return f"bytes {self.first}-{self.last}/{self.size}"


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one byte range asked for, or None for the whole file (no header, another unit, or
    several ranges). Raises ``RangeNotSatisfiable`` for a malformed or unsatisfiable range."""
    if header is None:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes":
        return None
    if "," in spec:
        return None
    match = _BYTE_RANGE.match(spec)
    if match is None:
        raise RangeNotSatisfiable(f"malformed range {header!r}")
    first_text, last_text = match.groups()
    if first_text == "" and last_text == "":
        raise RangeNotSatisfiable(f"malformed range {header!r}")
    if first_text == "":
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(f"range {header!r} asks for nothing")
        return ByteRange(max(0, size - suffix), size - 1, size)
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if last < first:
        raise RangeNotSatisfiable(f"malformed range {header!r}")
    if first >= size:
        raise RangeNotSatisfiable(f"range {header!r} starts past the end ({size} bytes)")
    return ByteRange(first, min(last, size - 1), size)


def content_type_of(recording: Recording, path: Path) -> str:
    return CONTENT_TYPES.get(path.suffix.lower()) or CODEC_CONTENT_TYPES.get(
        recording.codec, "application/octet-stream"
    )


def _newest_recording(recordings: list[Recording]) -> Recording | None:
    kept = [recording for recording in recordings if recording.deleted_at is None]
    return max(kept, key=lambda recording: recording.id) if kept else None


def _recording_file(root: Path, relative: str) -> Path | None:
    """The recording's file under the recordings root, if it exists there."""
    try:
        resolved_root = root.resolve()
        path = (resolved_root / relative).resolve(strict=True)
    except (FileNotFoundError, NotADirectoryError, RuntimeError):
        return None
    if not path.is_relative_to(resolved_root) or not path.is_file():
        return None
    return path


def _file_size(path: Path) -> int:
    return path.stat().st_size


def _read_chunk(path: Path, offset: int, length: int) -> bytes:
    with path.open("rb") as file:
        file.seek(offset)
        return file.read(length)


async def _file_chunks(path: Path, first: int, length: int) -> AsyncIterator[bytes]:
    offset = first
    remaining = length
    while remaining > 0:
        chunk = await run_in_threadpool(_read_chunk, path, offset, min(CHUNK_BYTES, remaining))
        if not chunk:
            return
        offset += len(chunk)
        remaining -= len(chunk)
        yield chunk


def _audit_appender(call: Call) -> AuditAppender:
    appender = call.request.app.state.audit_appender
    if not isinstance(appender, AuditAppender):
        raise TypeError("app.state.audit_appender is not an AuditAppender")
    return appender


async def recording(call: Call) -> object:
    actor = call.require_actor()
    call_id = call.path_id()
    row = await get_call(call.database, actor, call_id)
    chosen = _newest_recording(list(row.recordings))
    # Only reads so far: end the transaction before the file work, and before the audit
    # appender's batch, which needs the write lock a SQLite transaction holds.
    await call.database.commit()
    if chosen is None:
        raise ResourceNotFound(f"call {call_id} has no recording")
    path = await run_in_threadpool(_recording_file, call.settings.core.recordings_dir, chosen.path)
    if path is None:
        raise ResourceNotFound(f"the recording file of call {call_id} is missing")
    size = await run_in_threadpool(_file_size, path)
    range_header = call.request.headers.get("range")
    try:
        byte_range = parse_range(range_header, size)
    except RangeNotSatisfiable:
        call.headers["Content-Range"] = f"bytes */{size}"
        raise
    download = call.query.boolean("download")
    head_only = call.request.method == "HEAD"
    if not head_only and (byte_range is None or byte_range.first == 0):
        await _audit_appender(call).append(
            actor,
            "recording.download" if download else "recording.play",
            f"call:{call_id}",
            {"recording_id": chosen.id, "codec": chosen.codec},
            call.source_ip,
            now=call.now,
        )
    headers = {
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, no-store",
        "X-Content-Type-Options": "nosniff",
    }
    if download:
        headers["Content-Disposition"] = f'attachment; filename="call-{call_id}{path.suffix}"'
    first, length, status = 0, size, 200
    if byte_range is not None:
        first, length, status = byte_range.first, byte_range.length, 206
        headers["Content-Range"] = byte_range.content_range()
    headers["Content-Length"] = str(length)
    media_type = content_type_of(chosen, path)
    if head_only:
        return Response(status_code=status, headers=headers, media_type=media_type)
    return StreamingResponse(
        _file_chunks(path, first, length),
        status_code=status,
        headers=headers,
        media_type=media_type,
    )


ENDPOINTS = (
    Endpoint(
        "GET",
        "/api/calls/{id:int}/recording",
        recording,
        SIGNED_IN,
        "The call's recording (byte ranges supported); every play and download is audited",
        "calls",
        query=RECORDING_QUERY,
    ),
)
