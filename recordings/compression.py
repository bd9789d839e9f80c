"""Compress a finished recording with pydub + ffmpeg, verify the result, then drop the WAV.

Ogg/Opus at 24 kbit/s (``-application voip -vbr constrained``) is the default, MP3 at 32 kbit/s
the alternative. The Opus channels are coded as independent mono streams (channel mapping family
255; Chromium and Firefox play it): coupled stereo, libopus's default, lets one side leak into the
other whenever both speak at once (measured here at 24 and 32 kbit/s: a tone sweep said by the
operator came back half made of the customer's echo of it), and at 16 kbit/s it folds the two
into identical channels.

The compressed file is written under a temporary name, decoded again to check its channels and
duration (within 100 ms of the source), hashed, and only then renamed into place and the WAV
removed.

Blocking (ffmpeg runs for seconds): call it from a worker thread or process, not the loop.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydub import AudioSegment
from pydub.exceptions import CouldntDecodeError, CouldntEncodeError

from recordings.errors import CompressionError
from recordings.hashing import sha256_of_file

logger = logging.getLogger(__name__)

Codec = Literal["opus", "mp3"]

DURATION_TOLERANCE_SECONDS = 0.100


@dataclass(frozen=True, slots=True)
class _Encoding:
    container: str
    extension: str
    ffmpeg_codec: str
    default_bitrate_kbps: int
    parameters: tuple[str, ...]


_ENCODINGS: dict[str, _Encoding] = {
    "opus": _Encoding(
        "ogg",
        ".ogg",
        "libopus",
        24,
        ("-application", "voip", "-vbr", "constrained", "-mapping_family", "255"),
    ),
    "mp3": _Encoding("mp3", ".mp3", "libmp3lame", 32, ()),
}

# PCM codecs pydub must be told about: it reads G.711 WAVs as 8-bit samples otherwise.
_FORCED_DECODERS = {"pcm_mulaw", "pcm_alaw"}


@dataclass(frozen=True, slots=True)
class AudioProbe:
    """What ffprobe says about an audio file."""

    codec: str
    container: str
    duration_seconds: float
    channels: int
    sample_rate: int


@dataclass(frozen=True, slots=True)
class CompressedRecording:
    """Metadata of a compressed recording, ready to be stored with the call."""

    path: Path
    codec: str  # as ffprobe names it: "opus", "mp3"
    container: str  # "ogg", "mp3"
    size_bytes: int
    duration_seconds: float
    channels: int
    sample_rate: int  # of the decoded stream (Opus always decodes at 48000)
    sha256: str


def probe_audio(path: Path) -> AudioProbe:
    """Run ffprobe on ``path``; raises :class:`CompressionError` if it is not audio."""
    try:
        completed = subprocess.run(
            [
                "ffprobe",
                "-v",
                "error",
                "-select_streams",
                "a:0",
                "-show_entries",
                "stream=codec_name,channels,sample_rate,duration:format=format_name,duration",
                "-of",
                "json",
                str(path),
            ],
            capture_output=True,
            check=True,
            text=True,
        )
        report = json.loads(completed.stdout)
        stream = report["streams"][0]
        container = report["format"]["format_name"]
        duration = stream.get("duration") or report["format"]["duration"]
        return AudioProbe(
            codec=str(stream["codec_name"]),
            container=str(container),
            duration_seconds=float(duration),
            channels=int(stream["channels"]),
            sample_rate=int(stream["sample_rate"]),
        )
    except (subprocess.CalledProcessError, OSError) as error:
        raise CompressionError(f"ffprobe could not read {path}: {error}") from error
    except (KeyError, IndexError, ValueError) as error:
        raise CompressionError(f"ffprobe found no audio stream in {path}") from error


def load_audio(path: Path) -> AudioSegment:
    """Decode any audio file with pydub, telling it the codec of G.711 WAVs."""
    source = probe_audio(path)
    codec = source.codec if source.codec in _FORCED_DECODERS else None
    try:
        return AudioSegment.from_file(str(path), codec=codec)
    except (CouldntDecodeError, OSError) as error:
        raise CompressionError(f"could not decode {path}: {error}") from error


def compress_recording(
    wav_path: Path,
    *,
    codec: Codec = "opus",
    bitrate_kbps: int | None = None,
    output_path: Path | None = None,
    remove_source: bool = True,
) -> CompressedRecording:
    """Compress ``wav_path`` to ``output_path`` (default: same name, ``.ogg`` or ``.mp3``).

    Raises :class:`CompressionError` when ffmpeg fails or the output does not decode to the
    source's channels and duration; the WAV is then kept.
    """
    encoding = _ENCODINGS.get(codec)
    if encoding is None:
        raise CompressionError(f"unknown codec {codec!r}")
    target = output_path or wav_path.with_suffix(encoding.extension)
    if target.resolve() == wav_path.resolve():
        raise CompressionError("the compressed file would overwrite its source")
    source = probe_audio(wav_path)
    audio = load_audio(wav_path)
    bitrate = bitrate_kbps or encoding.default_bitrate_kbps
    temporary = target.with_name(target.name + ".tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        audio.export(
            str(temporary),
            format=encoding.container,
            codec=encoding.ffmpeg_codec,
            bitrate=f"{bitrate}k",
            parameters=list(encoding.parameters),
        ).close()
        compressed = _verify(temporary, encoding, source)
        with temporary.open("rb") as file:
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except (CouldntEncodeError, OSError) as error:
        temporary.unlink(missing_ok=True)
        raise CompressionError(f"could not compress {wav_path}: {error}") from error
    except CompressionError:
        temporary.unlink(missing_ok=True)
        raise
    if remove_source:
        wav_path.unlink()
    result = CompressedRecording(
        path=target,
        codec=compressed.codec,
        container=compressed.container,
        size_bytes=target.stat().st_size,
        duration_seconds=compressed.duration_seconds,
        channels=compressed.channels,
        sample_rate=compressed.sample_rate,
        sha256=sha256_of_file(target),
    )
    logger.info(
        "compressed %s to %s (%d bytes, %.2f s)",
        wav_path,
        target,
        result.size_bytes,
        result.duration_seconds,
    )
    return result


def _verify(path: Path, encoding: _Encoding, source: AudioProbe) -> AudioProbe:
    probe = probe_audio(path)
    try:
        decoded = AudioSegment.from_file(str(path), format=encoding.container)
    except CouldntDecodeError as error:
        raise CompressionError(f"compressed file {path} does not decode: {error}") from error
    decoded_seconds = len(decoded) / 1000
    if decoded.channels != source.channels or probe.channels != source.channels:
        raise CompressionError(
            f"compressed file has {decoded.channels} channels, source {source.channels}"
        )
    if abs(decoded_seconds - source.duration_seconds) > DURATION_TOLERANCE_SECONDS:
        raise CompressionError(
            f"compressed file lasts {decoded_seconds:.3f} s, source {source.duration_seconds:.3f} s"
        )
    return AudioProbe(
        codec=probe.codec,
        container=probe.container,
        duration_seconds=decoded_seconds,
        channels=decoded.channels,
        sample_rate=probe.sample_rate,
    )
