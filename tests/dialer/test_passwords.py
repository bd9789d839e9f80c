"""argon2id hashing as the server uses it: off the event loop, which keeps serving meanwhile."""

from __future__ import annotations

import asyncio
from pathlib import Path

from dialer.passwords import (
    hash_password_in_thread,
    verify_password,
    verify_password_in_thread,
)
from dialer.settings import Settings


async def test_a_password_check_leaves_the_event_loop_free_for_other_work(
    tmp_path: Path,
) -> None:
    """While a log-in's password is hashed and checked (the production cost: tens of
    milliseconds each), other tasks on the loop (audio pacing, events) keep running."""
    settings = Settings(data_dir=tmp_path, database_url="", recordings_dir=tmp_path)
    turns = 0
    checking = True

    async def other_work() -> None:
        nonlocal turns
        while checking:
            turns += 1
            await asyncio.sleep(0)

    worker = asyncio.get_running_loop().create_task(other_work())
    await asyncio.sleep(0)
    started = turns
    stored = await hash_password_in_thread("correct horse battery", settings)
    hashed_turns = turns - started
    assert await verify_password_in_thread(stored, "correct horse battery", settings)
    assert not await verify_password_in_thread(stored, "wrong horse battery", settings)
    checking = False
    await worker
    assert hashed_turns > 1
    assert turns - started > hashed_turns + 2
    assert verify_password(stored, "correct horse battery", settings)
