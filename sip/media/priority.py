"""Real-time scheduling for a process that carries media (opt-in).

A media process sends every stream's packet on a 20 ms tick. On a machine whose cores are busy
with other work (a database, the web pages, a softphone's far end on the same box), the normal
scheduler lets that work run first now and then, the tick starts late, and every stream's
packet leaves late with it. Media servers therefore run at a real-time priority when they may
(Asterisk's ``-p``, FreeSWITCH's ``-rp``): a runnable real-time thread always runs before a
normal one, so the tick starts on its deadline. Measured with ``bench/sip_load.py`` (1000
recorded calls, two worker processes, SIPp echoing on the same two cores): send interval p99
about 28 ms under the normal scheduler, about 21.5 ms under ``SCHED_FIFO``.

The kernel keeps a share of every second for normal threads (``sched_rt_runtime_us``, 95 % by
default), so a real-time process that spins cannot lock up the machine; other work on the
machine still waits for the media while the media works. Linux only; it needs root, the
``CAP_SYS_NICE`` capability or an ``RLIMIT_RTPRIO`` (``ulimit -r``) of at least the priority.
"""

from __future__ import annotations

import contextlib
import os
import threading

from sip.errors import SchedulingError

REALTIME_POLICY_NAME = "SCHED_FIFO"


def realtime_priority_range() -> tuple[int, int]:
    """The lowest and highest ``SCHED_FIFO`` priority of this system (1 and 99 on Linux)."""
    if not hasattr(os, "sched_setscheduler"):
        raise SchedulingError("real-time scheduling is not available on this platform")
    return os.sched_get_priority_min(os.SCHED_FIFO), os.sched_get_priority_max(os.SCHED_FIFO)


def use_realtime_scheduling(priority: int) -> None:
    """Run the whole process under ``SCHED_FIFO`` at ``priority``: every thread it has now
    (libraries start some on import, e.g. numpy's BLAS pool) and, by inheritance, every thread
    started from now on. Call it early, before the event loop starts.

    Raises ``ValueError`` for a priority outside :func:`realtime_priority_range`, and
    :class:`SchedulingError` when the platform has no real-time scheduling or the process may
    not use it (the message says what would allow it; nothing is changed then).
    """
    lowest, highest = realtime_priority_range()
    if not lowest <= priority <= highest:
        raise ValueError(f"real-time priority must be from {lowest} to {highest}: {priority}")
    parameters = os.sched_param(priority)
    try:
        # the calling thread first: if it may not, nothing has changed
        os.sched_setscheduler(0, os.SCHED_FIFO, parameters)
    except PermissionError as error:
        raise SchedulingError(
            f"{REALTIME_POLICY_NAME} priority {priority} is not permitted: run as root, with "
            f"the CAP_SYS_NICE capability, or with an RLIMIT_RTPRIO (ulimit -r) of at least "
            f"{priority}"
        ) from error
    for thread in _other_threads():
        with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
            os.sched_setscheduler(thread, os.SCHED_FIFO, parameters)


def _other_threads() -> list[int]:
    """The kernel ids of this process's threads other than the calling one (Linux; none
    where ``/proc`` does not list them)."""
    try:
        tasks = os.listdir(f"/proc/{os.getpid()}/task")
    except OSError:
        return []
    calling = threading.get_native_id()
    return [int(task) for task in tasks if int(task) != calling]


def current_realtime_priority() -> int:
    """The calling thread's real-time priority, 0 when it runs under a normal policy."""
    if not hasattr(os, "sched_getscheduler"):
        return 0
    if os.sched_getscheduler(0) not in (os.SCHED_FIFO, os.SCHED_RR):
        return 0
    return int(os.sched_getparam(0).sched_priority)
