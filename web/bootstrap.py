"""What ``dialer serve`` sets up around the web application, in its lifespan.

``serving(app, settings)`` is an async context manager; on entry, in order:

1. the data directory is made and the database upgraded to the newest migration;
2. first start (no user at all): an ``admin`` account with a random password, shown ONCE on the
   console (standard error) and written nowhere else; on the embedded default (no SIP accounts
   configured) a few shared demo contacts are added at the same moment, so they are never
   duplicated nor brought back after being deleted;
3. the call service (``dialer.telephony.CallService``) starts: it repairs unfinished recordings
   and marks calls cut short by the last shutdown as interrupted, then places calls on the
   accounts of ``DIALER_SIP_ACCOUNTS`` (a TOML file, see ``sip.config``) or, without one, on
   the built-in SIP test line started in this process on 127.0.0.1 (every number answers,
   speaks a prompt, then echoes);
4. the service goes to ``app.state.call_control`` and shares ``app.state.event_bus``.

On exit the call service hangs up what is still running, stores the recordings and stops.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from dialer.actors import Actor, Role
from dialer.contacts import ContactInput, PhoneInput, create_contact
from dialer.live_events import EventBus, InProcessEventBus
from dialer.models import User
from dialer.settings import Settings
from dialer.storage import upgrade_database
from dialer.telephony import CallService
from dialer.telephony.accounts import accounts_file_from_environment
from dialer.telephony.service import DEFAULT_BROWSER_GRACE_SECONDS
from dialer.users import create_user
from web.settings import WebSettings

logger = logging.getLogger(__name__)

ADMIN_LOGIN = "admin"
ADMIN_PASSWORD_BYTES = 12  # 16 URL-safe characters

Announce = Callable[[str], None]


@dataclass(frozen=True)
class DemoContact:
    name: str
    company: str
    position: str
    number: str
    notes: str = "Demo contact: calls to it reach the built-in test line (a prompt, then echo)."


DEMO_CONTACTS: tuple[DemoContact, ...] = (
    DemoContact("Anna Petrova", "Northwind Trading", "Purchasing manager", "+7 495 555-01-01"),
    DemoContact("Ivan Smirnov", "Baltic Logistics", "Director", "+7 812 555-02-02"),
    DemoContact("Maria Volkova", "Ural Steelworks", "Head of procurement", "+7 343 555-03-03"),
    DemoContact("Oleg Kuznetsov", "Siberian Timber", "Owner", "+7 383 555-04-04"),
)


@dataclass(frozen=True)
class FirstStart:
    """What the first start made: the admin's login and password, and the demo contacts."""

    admin_login: str
    admin_password: str
    demo_contact_ids: tuple[int, ...]


def write_to_console(text: str) -> None:
    """The console of ``dialer serve`` (standard error, never a log file)."""
    sys.stderr.write(text)
    sys.stderr.flush()


def credentials_banner(first: FirstStart) -> str:
    line = "=" * 72
    return (
        f"\n{line}\n"
        "dialer: first start, an administrator account was created.\n"
        f"    login:    {first.admin_login}\n"
        f"    password: {first.admin_password}\n"
        "This password is shown only now and is stored nowhere in clear: note it,\n"
        "log in and change it (or: dialer user reset-password admin).\n"
        f"{line}\n\n"
    )


async def create_first_admin(
    session: AsyncSession,
    settings: Settings,
    demo_contacts: Sequence[DemoContact] = DEMO_CONTACTS,
) -> FirstStart | None:
    """On a database without users: the admin (random password) and the demo contacts
    (shared, owned by the admin). None when there are users already. The caller commits."""
    users = await session.scalar(select(func.count()).select_from(User))
    if users:
        return None
    password = secrets.token_urlsafe(ADMIN_PASSWORD_BYTES)
    admin = await create_user(
        session,
        None,
        settings,
        login=ADMIN_LOGIN,
        password=password,
        display_name="Administrator",
        role=Role.ADMIN,
    )
    actor = Actor.for_user(admin, None)
    contact_ids: list[int] = []
    for demo in demo_contacts:
        contact = await create_contact(
            session,
            actor,
            ContactInput(
                name=demo.name,
                company=demo.company,
                position=demo.position,
                phones=[PhoneInput(raw=demo.number, primary=True)],
                notes=demo.notes,
                tags=["demo"],
                shared=True,
            ),
            default_region=settings.default_region,
        )
        contact_ids.append(contact.id)
    return FirstStart(ADMIN_LOGIN, password, tuple(contact_ids))


async def first_start(
    session_factory: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    with_demo_contacts: bool,
    announce: Announce = write_to_console,
) -> FirstStart | None:
    """Create the admin (and demo contacts) if the database has no user; show the password."""
    async with session_factory() as session:
        made = await create_first_admin(
            session, settings, DEMO_CONTACTS if with_demo_contacts else ()
        )
        await session.commit()
    if made is not None:
        announce(credentials_banner(made))
        logger.warning("first start: created the administrator account %r", made.admin_login)
    return made


def event_bus_of(app: Starlette) -> EventBus:
    """The application's event bus (``web.live`` makes one; made here if it did not)."""
    bus: EventBus | None = getattr(app.state, "event_bus", None)
    if bus is None:
        bus = InProcessEventBus()
        app.state.event_bus = bus
    return bus


@asynccontextmanager
async def call_service(
    app: Starlette,
    settings: Settings,
    *,
    environ: Mapping[str, str] | None = None,
    browser_grace_seconds: float = DEFAULT_BROWSER_GRACE_SECONDS,
) -> AsyncIterator[CallService]:
    """The call service on ``app.state.call_control`` for the block (recovery included)."""
    service = await CallService.start(
        settings,
        app.state.session_factory,
        event_bus_of(app),
        environ=environ,
        browser_grace_seconds=browser_grace_seconds,
    )
    report = service.recovery_report
    if report is not None and (report.interrupted_call_ids or report.repaired_files):
        logger.warning(
            "start-up recovery: %d call(s) interrupted, %d recording(s) repaired",
            len(report.interrupted_call_ids),
            len(report.repaired_files),
        )
    if service.test_line is not None:
        logger.warning(
            "no SIP accounts configured: calls go to the built-in test line on %s:%d",
            service.test_line.host,
            service.test_line.port,
        )
    app.state.call_control = service
    try:
        yield service
    finally:
        app.state.call_control = None
        await service.close()


@asynccontextmanager
async def serving(
    app: Starlette,
    settings: WebSettings,
    *,
    environ: Mapping[str, str] | None = None,
    announce: Announce = write_to_console,
) -> AsyncIterator[None]:
    """Everything ``dialer serve`` runs beside the web application (see the module docstring)."""
    environment = os.environ if environ is None else environ
    core = settings.core
    core.data_dir.mkdir(parents=True, exist_ok=True)
    await upgrade_database(core.database_url)
    embedded = accounts_file_from_environment(environment) is None
    await first_start(
        app.state.session_factory, core, with_demo_contacts=embedded, announce=announce
    )
    async with call_service(app, core, environ=environment):
        yield
