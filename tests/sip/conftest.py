"""Fixtures of the SIP tests: ``phone``, a ``sip.phone.Phone`` on 127.0.0.1 whose send queue
takes a few seconds of audio at once (400 frames); the built-in test line is ``test_line``
(``tests/conftest.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sip.phone import Phone, PhoneConfig


@pytest.fixture
async def phone() -> AsyncIterator[Phone]:
    phone = await Phone.start(PhoneConfig(bind_host="127.0.0.1", send_queue_frames=400))
    yield phone
    await phone.aclose()
