"""``dialer db upgrade``, ``dialer user ...``, ``dialer audit verify``, ``dialer backup`` and
``dialer restore``: administration of the data core from the server's shell.

Settings come from the DIALER_* environment (``dialer.settings.load_settings``). Commands run as
the system actor (audited as such). Exit codes: 0 done, 1 problems found (audit verify), 2 refused.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from dialer.actors import Role
from dialer.commands.running import (
    EXIT_OK,
    EXIT_PROBLEMS,
    Subparsers,
    refuse,
    run_in_session,
)
from dialer.errors import DialerError, NotFound, ValidationFailed
from dialer.settings import Settings, load_settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from dialer.models import User


def register(subparsers: Subparsers) -> None:
    database = subparsers.add_parser("db", help="database schema")
    database_commands = database.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upgrade = database_commands.add_parser("upgrade", help="create or migrate the schema")
    upgrade.set_defaults(handler=_db_upgrade)

    user = subparsers.add_parser("user", help="manage users")
    user_commands = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    add = user_commands.add_parser("add", help="create a user")
    add.add_argument("login")
    add.add_argument("--role", choices=[role.value for role in Role], default=Role.OPERATOR.value)
    add.add_argument("--name", help="display name (default: the login)")
    add.add_argument("--team", help="team name (created if missing)")
    add.add_argument("--extension", help="phone or extension for the callback leg")
    add.add_argument("--allow", action="append", default=[], metavar="CIDR", help="allow-list")
    _password_option(add)
    add.set_defaults(handler=_user_add)
    disable = user_commands.add_parser("disable", help="disable a user and end their sessions")
    disable.add_argument("login")
    disable.set_defaults(handler=_user_disable, disabled=True)
    enable = user_commands.add_parser("enable", help="re-enable a disabled user")
    enable.add_argument("login")
    enable.set_defaults(handler=_user_disable, disabled=False)
    unlock = user_commands.add_parser("unlock", help="clear a failed-login lock")
    unlock.add_argument("login")
    unlock.set_defaults(handler=_user_unlock)
    reset = user_commands.add_parser("reset-password", help="set a new password")
    reset.add_argument("login")
    _password_option(reset)
    reset.set_defaults(handler=_user_reset_password)
    listing = user_commands.add_parser("list", help="list users")
    listing.set_defaults(handler=_user_list)

    audit_parser = subparsers.add_parser("audit", help="the audit log")
    audit_commands = audit_parser.add_subparsers(
        dest="audit_command", required=True, metavar="ACTION"
    )
    verify = audit_commands.add_parser("verify", help="check the hash chain; exit 1 on problems")
    verify.set_defaults(handler=_audit_verify)

    backup_parser = subparsers.add_parser("backup", help="write a consistent database backup")
    backup_parser.add_argument(
        "--output", type=Path, help="file to write (default: <data dir>/backups/dialer-<time>)"
    )
    backup_parser.set_defaults(handler=_backup)
    restore = subparsers.add_parser(
        "restore", help="replace the database with a backup (stop the server first)"
    )
    restore.add_argument("file", type=Path)
    restore.set_defaults(handler=_restore)


def _password_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input (default: prompt twice)",
    )


def _read_password(arguments: argparse.Namespace) -> str:
    if arguments.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise ValidationFailed("password", "no terminal to prompt on: use --password-stdin")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != first:
        raise ValidationFailed("password", "the two entries differ")
    return first


async def _user_by_login(session: AsyncSession, login: str) -> User:
    from dialer.users import find_user_by_login

    user = await find_user_by_login(session, login)
    if user is None:
        raise NotFound(f"no user {login!r}")
    return user


def _db_upgrade(arguments: argparse.Namespace) -> int:
    from dialer.storage import upgrade_database

    settings = load_settings()
    asyncio.run(upgrade_database(settings.database_url))
    print("database schema is up to date")
    return EXIT_OK


def _user_add(arguments: argparse.Namespace) -> int:
    try:
        password = _read_password(arguments)
    except DialerError as error:
        return refuse(error)

    async def operation(session: AsyncSession, settings: Settings) -> int:
        from dialer import users

        team_id: int | None = None
        if arguments.team:
            team = await users.find_team(session, arguments.team)
            if team is None:
                team = await users.create_team(session, None, arguments.team)
            team_id = team.id
        user = await users.create_user(
            session,
            None,
            settings,
            login=arguments.login,
            password=password,
            display_name=arguments.name or arguments.login,
            role=Role(arguments.role),
            team_id=team_id,
            phone_extension=arguments.extension,
            allowed_networks=arguments.allow,
        )
        print(f"user {user.login} ({user.role}) created with id {user.id}")
        return EXIT_OK

    return run_in_session(operation)


def _user_disable(arguments: argparse.Namespace) -> int:
    async def operation(session: AsyncSession, settings: Settings) -> int:
        from dialer.users import disable_user

        user = await _user_by_login(session, arguments.login)
        await disable_user(session, None, user.id, disabled=arguments.disabled)
        print(f"user {user.login} {'disabled' if arguments.disabled else 'enabled'}")
        return EXIT_OK

    return run_in_session(operation)


def _user_unlock(arguments: argparse.Namespace) -> int:
    async def operation(session: AsyncSession, settings: Settings) -> int:
        from dialer.users import unlock_user

        user = await _user_by_login(session, arguments.login)
        await unlock_user(session, None, user.id)
        print(f"user {user.login} unlocked")
        return EXIT_OK

    return run_in_session(operation)


def _user_reset_password(arguments: argparse.Namespace) -> int:
    try:
        password = _read_password(arguments)
    except DialerError as error:
        return refuse(error)

    async def operation(session: AsyncSession, settings: Settings) -> int:
        from dialer.users import reset_password

        user = await _user_by_login(session, arguments.login)
        await reset_password(session, None, settings, user.id, password)
        print(f"password of {user.login} reset; their sessions were ended")
        return EXIT_OK

    return run_in_session(operation)


def _user_list(arguments: argparse.Namespace) -> int:
    async def operation(session: AsyncSession, settings: Settings) -> int:
        from dialer.users import list_users

        for user in await list_users(session, None):
            state = "disabled" if user.disabled else "active"
            print(f"{user.id}\t{user.login}\t{user.role}\t{state}\t{user.display_name}")
        return EXIT_OK

    return run_in_session(operation)


def _audit_verify(arguments: argparse.Namespace) -> int:
    async def operation(session: AsyncSession, settings: Settings) -> int:
        from dialer.audit import verify_audit_chain

        problems = await verify_audit_chain(session)
        for problem in problems:
            print(f"audit event {problem.audit_event_id}: {problem.kind}: {problem.detail}")
        if problems:
            print(f"{len(problems)} problem(s) in the audit chain", file=sys.stderr)
            return EXIT_PROBLEMS
        print("audit chain intact")
        return EXIT_OK

    return run_in_session(operation)


def _backup(arguments: argparse.Namespace) -> int:
    from dialer.backup import backup_database, default_backup_path

    settings = load_settings()
    destination = arguments.output or default_backup_path(
        settings.database_url, settings.backups_dir
    )
    try:
        written = backup_database(settings.database_url, destination)
    except DialerError as error:
        return refuse(error)
    print(f"backup written to {written}")
    return EXIT_OK


def _restore(arguments: argparse.Namespace) -> int:
    from dialer.backup import restore_database
    from dialer.storage import upgrade_database

    settings = load_settings()
    try:
        restore_database(settings.database_url, arguments.file)
    except DialerError as error:
        return refuse(error)
    # A backup made by an older version is brought up to this version's schema.
    asyncio.run(upgrade_database(settings.database_url))
    print(f"database restored from {arguments.file}")
    return EXIT_OK
