"""Fixtures of the telephony and floor tests: a real call service on the test line.

- ``bus``: an in-process event bus.
- ``service``: a ``CallService`` on the test database, placing its calls through ``test_line``
  (``tests/conftest.py``) and publishing on ``bus``; a browser that leaves ends its call after
  ``browser_grace_seconds`` (the service's default unless a module overrides that fixture).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.live_events import InProcessEventBus
from dialer.settings import Settings
from dialer.telephony import AccountChoice, CallService
from dialer.telephony.service import DEFAULT_BROWSER_GRACE_SECONDS
from sip.testline import TestLine


@pytest.fixture
def bus() -> InProcessEventBus:
    return InProcessEventBus()


@pytest.fixture
def browser_grace_seconds() -> float:
    return DEFAULT_BROWSER_GRACE_SECONDS


@pytest.fixture
async def service(
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    bus: InProcessEventBus,
    test_line: TestLine,
    browser_grace_seconds: float,
) -> AsyncIterator[CallService]:
    service = await CallService.start(
        settings,
        session_factory,
        bus,
        accounts=AccountChoice.single(test_line.account()),
        browser_grace_seconds=browser_grace_seconds,
    )
    yield service
    await service.close()
