"""Exceptions of the transcripts package::

    DialerError                       (dialer.errors)
    └── TranscriptsError
        ├── LeaseLost                 a worker's lease on a job expired and another took it
        └── RecordingUnavailableError      the job's call has no recording file to transcribe

Validation and visibility problems use the core's ``ValidationFailed`` and ``NotFound``.
"""

from __future__ import annotations

from dialer.errors import DialerError


class TranscriptsError(DialerError):
    """Base of the errors raised by :mod:`dialer.transcripts`."""


class LeaseLost(TranscriptsError):  # noqa: N818 (reads as the event it is)
    """The worker no longer holds the job: its lease expired and the job went back to the
    queue (or to another worker). Its results must be thrown away."""

    def __init__(self, job_id: int, worker_id: str) -> None:
        super().__init__(f"worker {worker_id} no longer holds transcription job {job_id}")
        self.job_id = job_id
        self.worker_id = worker_id


class RecordingUnavailableError(TranscriptsError):
    """The call of a job has no (live) recording, or its file is not under the root."""
