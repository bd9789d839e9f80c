"""Run ``dialer worker`` processes with jemalloc when the system has it.

Vosk (Kaldi) allocates and frees many small blocks while it decodes (tokens, lattice arcs, the
graph cache); measured on the transcription bench (``bench/transcribe.py``), the same calls cost
less CPU with Debian's ``libjemalloc2`` preloaded than with glibc's malloc: 6-12 % in a quiet
run, about 30 % on a loaded machine (warm 22.6x against 16.6x real time per core). The words are
the same on the bench call; on a few other calls 1-4 words in about 85 differed (redrawing the
line noise alone changes 20-35 %). An allocator is chosen when a process starts, so the worker
command re-executes itself (same process id, same arguments) with ``LD_PRELOAD`` naming the
library; the processes it spawns inherit that environment. Nothing changes when the library is
absent, when it is already preloaded, or when ``DIALER_WORKER_JEMALLOC=0``.
"""

from __future__ import annotations

import glob
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

SWITCH = "DIALER_WORKER_JEMALLOC"
PRELOAD = "LD_PRELOAD"
LIBRARY_NAME = "libjemalloc.so.2"
# Where Debian and Ubuntu put libjemalloc2 (multiarch directories), and local builds.
LIBRARY_PATTERNS = (
    f"/usr/lib/*-linux-gnu/{LIBRARY_NAME}",
    f"/usr/lib/{LIBRARY_NAME}",
    f"/usr/local/lib/{LIBRARY_NAME}",
)
_OFF = frozenset({"0", "no", "off", "false"})


def find_jemalloc(patterns: Sequence[str] = LIBRARY_PATTERNS) -> Path | None:
    """The first jemalloc shared library found, or None."""
    for pattern in patterns:
        for match in sorted(glob.glob(pattern)):
            if Path(match).is_file():
                return Path(match)
    return None


def jemalloc_environment(
    environment: Mapping[str, str], library: Path | None
) -> dict[str, str] | None:
    """The environment to restart a worker with so it uses ``library``; None to run as it is
    (no library, switched off, or jemalloc already preloaded)."""
    if library is None:
        return None
    if environment.get(SWITCH, "").strip().lower() in _OFF:
        return None
    preloaded = environment.get(PRELOAD, "")
    if "jemalloc" in preloaded:
        return None
    return {**environment, PRELOAD: f"{library} {preloaded}".strip()}


def restart_with_jemalloc() -> None:
    """Re-execute this process's command line with jemalloc preloaded, when that applies.

    Returns only when the process goes on as it is. Call it before any work: the process image
    is replaced (same id, so a supervisor or a ``kill`` still reaches the worker)."""
    environment = jemalloc_environment(os.environ, find_jemalloc())
    if environment is None:
        return
    arguments = list(sys.orig_argv)
    logger.info("restarting the worker with %s", environment[PRELOAD])
    sys.stdout.flush()
    sys.stderr.flush()
    # The same interpreter and arguments: nothing here comes from outside the process.
    os.execve(sys.executable, [sys.executable, *arguments[1:]], environment)  # noqa: S606
