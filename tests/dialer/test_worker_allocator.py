"""``dialer worker`` runs its processes with jemalloc when the system has it (Debian
``libjemalloc2``), and with the usual malloc when it has not or when
``DIALER_WORKER_JEMALLOC=0``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dialer.commands.worker_commands import started_as_worker_command
from dialer.transcripts.allocator import find_jemalloc, jemalloc_environment
from tests.recordings.speech import packaged_model_path

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = Path("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")
STARTUP_LIMIT_SECONDS = 120.0


def test_the_worker_is_restarted_with_jemalloc_preloaded_before_what_was_preloaded() -> None:
    environment = jemalloc_environment({"PATH": "/bin", "LD_PRELOAD": "libother.so"}, LIBRARY)
    assert environment == {"PATH": "/bin", "LD_PRELOAD": f"{LIBRARY} libother.so"}
    assert jemalloc_environment({}, LIBRARY) == {"LD_PRELOAD": str(LIBRARY)}


@pytest.mark.parametrize(
    "environment",
    [
        {"DIALER_WORKER_JEMALLOC": "0"},
        {"DIALER_WORKER_JEMALLOC": "off"},
        {"LD_PRELOAD": "/opt/lib/libjemalloc.so.2"},
    ],
)
def test_the_worker_is_not_restarted_when_switched_off_or_already_preloaded(
    environment: dict[str, str],
) -> None:
    assert jemalloc_environment(environment, LIBRARY) is None


def test_without_the_library_the_worker_runs_as_it_is(tmp_path: Path) -> None:
    assert find_jemalloc([str(tmp_path / "*" / "libjemalloc.so.2")]) is None
    assert jemalloc_environment({}, None) is None
    installed = tmp_path / "x86_64-linux-gnu" / "libjemalloc.so.2"
    installed.parent.mkdir()
    installed.write_bytes(b"")
    assert find_jemalloc([str(tmp_path / "*" / "libjemalloc.so.2")]) == installed


def test_only_the_worker_command_line_itself_replaces_its_process() -> None:
    assert started_as_worker_command(["/venv/bin/dialer", "worker", "--threads", "2"])
    assert started_as_worker_command(["/app/web/cli.py", "--log-level", "INFO", "worker"])
    assert not started_as_worker_command(["/venv/bin/dialer", "serve"])
    assert not started_as_worker_command(["/venv/bin/pytest", "tests/dialer", "-k", "worker"])


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text(encoding="utf-8")
    return [int(child) for child in text.split()]


def _maps(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/maps").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _wait_for_vosk(worker: subprocess.Popen[bytes], processes: int) -> list[int]:
    """The worker's processes that have loaded Vosk, once ``processes`` of them have (the
    command's own process when it runs alone, else the processes it started)."""
    deadline = time.monotonic() + STARTUP_LIMIT_SECONDS
    while time.monotonic() < deadline:
        assert worker.poll() is None, "the worker exited early"
        candidates = [worker.pid] if processes == 1 else _children(worker.pid)
        loaded = [pid for pid in candidates if "libvosk" in _maps(pid)]
        if len(loaded) >= processes:
            return loaded
        time.sleep(0.05)
    raise AssertionError("the worker processes never loaded Vosk")


def _run_worker(tmp_path: Path, processes: int, **environment: str) -> list[bool]:
    """Whether each worker process uses jemalloc, seen while it waits for jobs."""
    env = {**os.environ, "DIALER_DATA_DIR": str(tmp_path / "data"), **environment}
    env.pop("LD_PRELOAD", None)
    command = [sys.executable, "-m", "web.cli", "worker", "--model", str(packaged_model_path())]
    command += ["--processes", str(processes), "--poll-seconds", "0.2"]
    worker = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        return ["jemalloc" in _maps(pid) for pid in _wait_for_vosk(worker, processes)]
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(60)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)


@pytest.mark.skipif(find_jemalloc() is None, reason="libjemalloc2 is not installed")
def test_worker_processes_use_jemalloc_when_the_system_has_it(tmp_path: Path) -> None:
    assert _run_worker(tmp_path, processes=2) == [True, True]


def test_worker_uses_the_usual_malloc_when_jemalloc_is_switched_off(tmp_path: Path) -> None:
    assert _run_worker(tmp_path, processes=1, DIALER_WORKER_JEMALLOC="0") == [False]
