"""``dialer serve`` freezes what is alive once it has started (``freeze_objects_after_start``):
the collector's full passes, which stop the event loop and every call's media tick, no longer
walk the imported modules and the application's long-lived objects."""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Iterator

import pytest

from web.app import create_app
from web.settings import WebSettings


class LongLived:
    """An object made before the server starts (a module's, the application's)."""


@pytest.fixture
def thawed() -> Iterator[None]:
    """Each test starts and ends with nothing frozen (the test process goes on collecting)."""
    gc.unfreeze()
    yield
    gc.unfreeze()


def is_collected_as_usual(thing: object) -> bool:
    return any(candidate is thing for candidate in gc.get_objects())


@pytest.mark.usefixtures("thawed")
async def test_objects_alive_at_start_are_left_out_of_collections(
    web_settings: WebSettings,
) -> None:
    long_lived = LongLived()
    app = create_app(dataclasses.replace(web_settings, freeze_objects_after_start=True))
    async with app.router.lifespan_context(app):
        assert gc.get_freeze_count() > 0
        assert not is_collected_as_usual(long_lived)
        made_later = LongLived()
        assert is_collected_as_usual(made_later)


@pytest.mark.usefixtures("thawed")
async def test_without_the_setting_nothing_is_frozen(web_settings: WebSettings) -> None:
    long_lived = LongLived()
    app = create_app(web_settings)
    async with app.router.lifespan_context(app):
        assert gc.get_freeze_count() == 0
        assert is_collected_as_usual(long_lived)
