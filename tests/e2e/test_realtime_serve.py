"""``dialer serve --realtime-priority N``: the whole server, and the threads a call starts,
run under SCHED_FIFO; a priority the kernel does not have is refused before anything starts."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.server import (
    REPOSITORY,
    call_first_contact,
    first_start_credentials,
    signed_in,
    start_server,
    wait_for_call,
)
from tests.sip.media.test_priority import may_use_realtime

PRIORITY = 3


def thread_policies(pid: int) -> dict[int, tuple[int, int]]:
    """Every thread of ``pid``: its scheduling policy and priority."""
    policies = {}
    for task in os.listdir(f"/proc/{pid}/task"):
        thread = int(task)
        try:
            policies[thread] = (
                os.sched_getscheduler(thread),
                os.sched_getparam(thread).sched_priority,
            )
        except ProcessLookupError:
            continue  # ended meanwhile
    return policies


async def test_the_server_and_its_call_threads_run_real_time(tmp_path: Path) -> None:
    if not may_use_realtime():
        pytest.skip("this machine does not allow real-time scheduling (root or CAP_SYS_NICE)")
    server = await start_server(
        tmp_path / "data", tmp_path / "server.log", arguments=["--realtime-priority", str(PRIORITY)]
    )
    try:
        login, password = first_start_credentials(server.console())
        async with signed_in(server.base_url, login, password) as client:
            call_id = await call_first_contact(client)
            await wait_for_call(client, call_id, states=("answered",))
            await asyncio.sleep(1.0)  # recorded a while: the recording threads are up
            policies = thread_policies(server.process.pid)
            assert len(policies) > 1
            assert set(policies.values()) == {(os.SCHED_FIFO, PRIORITY)}
            hung_up = await client.post(f"/api/calls/{call_id}/hangup")
            assert hung_up.status_code in (200, 202, 204), hung_up.text
            ended = await wait_for_call(client, call_id, states=("ended",))
            assert ended["end_cause"] == "local_hangup"
    finally:
        await server.stop()


def test_a_priority_out_of_range_is_refused_with_its_range(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "web.cli", "serve", "--port", "9", "--realtime-priority", "0"],
        cwd=REPOSITORY,
        env={**os.environ, "DIALER_DATA_DIR": str(tmp_path / "data")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "--realtime-priority: real-time priority must be from 1 to 99: 0" in result.stdout
    assert not (tmp_path / "data").exists()  # refused before anything was set up
