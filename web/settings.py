"""Settings of the web layer: the domain core's ``Settings`` plus HTTP options.

=========================  ===========================================  =====================
variable                   meaning                                      default
=========================  ===========================================  =====================
DIALER_TRUSTED_PROXIES     proxies whose X-Forwarded-For/-Proto count   none
DIALER_ALLOWED_ORIGINS     extra origins allowed to send state changes  none (same origin)
DIALER_MAX_BODY_BYTES      largest request body accepted                1048576
=========================  ===========================================  =====================

``clock`` is the application's only source of time (sessions, lockouts, audit); tests inject one
they can advance instead of sleeping.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dialer.settings import Settings, load_settings
from web.client_address import IPNetwork, parse_networks

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
SESSION_COOKIE_NAME = "dialer_session"


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class WebSettings:
    core: Settings
    clock: Callable[[], datetime] = system_clock
    trusted_proxies: tuple[IPNetwork, ...] = ()
    allowed_origins: frozenset[str] = field(default_factory=frozenset)
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    session_cookie_name: str = SESSION_COOKIE_NAME
    # Run Alembic migrations when the server starts (``dialer serve``); tests make the schema.
    upgrade_database_on_start: bool = False
    # Once started, move every object alive to the collector's permanent generation
    # (``gc.freeze``; ``dialer serve``): a full collection then never walks the imported
    # modules and the application's long-lived objects (about 117,000 of them, a pass that
    # stalls the event loop, and with it every call's 20 ms media tick, for 25-200 ms).
    freeze_objects_after_start: bool = False


def load_web_settings(environ: Mapping[str, str] = os.environ) -> WebSettings:
    """Web settings from DIALER_* environment variables (see the module docstring)."""
    origins = environ.get("DIALER_ALLOWED_ORIGINS", "").replace(",", " ").split()
    return WebSettings(
        core=load_settings(environ),
        trusted_proxies=parse_networks(environ.get("DIALER_TRUSTED_PROXIES", "")),
        allowed_origins=frozenset(origin.lower().rstrip("/") for origin in origins),
        max_body_bytes=int(environ.get("DIALER_MAX_BODY_BYTES", str(DEFAULT_MAX_BODY_BYTES))),
    )
