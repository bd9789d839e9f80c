"""Exceptions raised by the ``recordings`` package.

Hierarchy::

    RecordingError
    ├── RecorderError                    the live stereo recorder
    │   ├── InvalidFrameError            wrong frame size or unknown direction
    │   ├── RecorderClosedError          a frame arrived after close()
    │   └── RecorderFailedError          the background writer could not write the file
    ├── RepairError                      an unfinished file could not be made playable
    ├── CompressionError                 ffmpeg failed, or its output did not verify
    ├── UnsafeNameError                  a call id or path that would leave the storage root
    └── TranscriptionError
        └── ModelNotFoundError           no Vosk model at the configured path
"""

from __future__ import annotations


class RecordingError(Exception):
    """Base class of every error raised by the ``recordings`` package."""


class RecorderError(RecordingError):
    """A problem with a live :class:`recordings.wav_writer.StereoRecorder`."""


class InvalidFrameError(RecorderError, ValueError):
    """A frame is not a whole number of 20 ms PCM frames, or its direction is unknown."""


class RecorderClosedError(RecorderError):
    """A frame was written to a recorder that is already closed."""


class RecorderFailedError(RecorderError):
    """The background writer failed (disk full, permission denied...); ``__cause__`` tells why."""


class RepairError(RecordingError):
    """An unfinished recording could not be repaired."""


class CompressionError(RecordingError):
    """Compressing a recording failed, or the compressed file did not decode as expected."""


class UnsafeNameError(RecordingError, ValueError):
    """A name or relative path that is empty or would escape the storage root."""


class TranscriptionError(RecordingError):
    """Transcribing a recording failed."""


class ModelNotFoundError(TranscriptionError):
    """The configured Vosk model directory does not exist or is not a model."""
