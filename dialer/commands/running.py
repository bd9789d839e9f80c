"""How the administration commands run: exit codes, and their work in one database session.

Only the standard library and light ``dialer`` modules are imported here at load time, so that
``dialer --help`` stays fast; SQLAlchemy, the models and the storage layer are imported when a
command runs.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeAlias

from dialer.errors import DialerError
from dialer.settings import Settings, load_settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
Operation: TypeAlias = "Callable[[AsyncSession, Settings], Awaitable[int]]"

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_REFUSED = 2


def refuse(reason: object) -> int:
    """Say on standard error why the command refused (an error or a message); the exit status
    for it."""
    print(f"dialer: {reason}", file=sys.stderr)
    return EXIT_REFUSED


def run_in_session(
    operation: Operation,
    *,
    commit: bool = True,
    also_refused: tuple[type[Exception], ...] = (),
) -> int:
    """Run ``operation(session, settings)`` on the database of the DIALER_* environment,
    brought to the current schema first, in one session that is committed afterwards (rolled
    back with ``commit=False``). A ``DialerError`` (or one of ``also_refused``) is reported and
    gives ``EXIT_REFUSED``; otherwise the exit status is the operation's."""
    refused: tuple[type[Exception], ...] = (DialerError, *also_refused)
    try:
        return asyncio.run(_in_session(load_settings(), operation, commit=commit))
    except refused as error:
        return refuse(error)


async def _in_session(settings: Settings, operation: Operation, *, commit: bool) -> int:
    # Importing dialer.reports installs the listener that keeps the report rollups exact
    # whenever a command changes calls or users through the ORM (see dialer.reports.tracking).
    import dialer.reports  # noqa: F401
    from dialer.storage import create_engine, create_session_factory, upgrade_database

    await upgrade_database(settings.database_url)
    engine = create_engine(settings.database_url)
    try:
        async with create_session_factory(engine)() as session:
            result = await operation(session, settings)
            if commit:
                await session.commit()
            else:
                await session.rollback()
            return result
    finally:
        await engine.dispose()
