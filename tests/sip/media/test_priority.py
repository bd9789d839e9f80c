"""Real-time scheduling of a media process (``sip.media.priority``), checked in child processes
so that the test run itself keeps the normal scheduler."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sip.errors import SchedulingError
from sip.media.priority import (
    current_realtime_priority,
    realtime_priority_range,
    use_realtime_scheduling,
)

REPOSITORY = Path(__file__).resolve().parents[3]


def run_python(source: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source)],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def may_use_realtime() -> bool:
    """Whether this machine lets a child process take SCHED_FIFO priority 1."""
    probe = run_python(
        """
        import os
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        """
    )
    return probe.returncode == 0


def test_the_range_is_the_kernels() -> None:
    assert realtime_priority_range() == (
        os.sched_get_priority_min(os.SCHED_FIFO),
        os.sched_get_priority_max(os.SCHED_FIFO),
    )
    assert current_realtime_priority() == 0  # the test run itself is not real-time


@pytest.mark.parametrize("priority", [0, -1, 100])
def test_a_priority_outside_the_range_is_refused_and_changes_nothing(priority: int) -> None:
    lowest, highest = realtime_priority_range()
    with pytest.raises(ValueError, match=f"from {lowest} to {highest}: {priority}"):
        use_realtime_scheduling(priority)
    assert os.sched_getscheduler(0) == os.SCHED_OTHER


def test_every_thread_of_the_process_runs_real_time_earlier_and_later_ones() -> None:
    if not may_use_realtime():
        pytest.skip("this machine does not allow real-time scheduling (root or CAP_SYS_NICE)")
    result = run_python(
        """
        import os, threading
        from sip.media.priority import current_realtime_priority, use_realtime_scheduling
        def policy():
            return os.sched_getscheduler(0) == os.SCHED_FIFO, current_realtime_priority()
        seen = []
        started = threading.Event()
        go_on = threading.Event()
        def earlier():
            started.set()
            go_on.wait()
            seen.append(policy())
        before = threading.Thread(target=earlier)
        before.start()
        started.wait()
        use_realtime_scheduling(7)
        go_on.set()
        before.join()
        after = threading.Thread(target=lambda: seen.append(policy()))
        after.start()
        after.join()
        print(*policy())
        print(*seen[0])
        print(*seen[1])
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:3] == ["True 7", "True 7", "True 7"]


def test_without_the_privilege_the_error_says_what_would_allow_it() -> None:
    # RLIMIT_RTPRIO 0 and, for root, a user without capabilities: not permitted.
    result = run_python(
        """
        import os, resource
        from sip.errors import SchedulingError
        from sip.media.priority import current_realtime_priority, use_realtime_scheduling
        resource.setrlimit(resource.RLIMIT_RTPRIO, (0, 0))
        if os.getuid() == 0:
            os.setgid(65534)
            os.setuid(65534)
        try:
            use_realtime_scheduling(5)
        except SchedulingError as error:
            print("refused:", error)
        print("priority", current_realtime_priority())
        """
    )
    assert result.returncode == 0, result.stderr
    refusal, priority = result.stdout.strip().split("\n")
    assert refusal.startswith("refused: SCHED_FIFO priority 5 is not permitted")
    assert "CAP_SYS_NICE" in refusal
    assert "ulimit -r" in refusal
    assert priority == "priority 0"


def test_scheduling_errors_are_media_errors() -> None:
    from sip.errors import MediaError

    assert issubclass(SchedulingError, MediaError)
