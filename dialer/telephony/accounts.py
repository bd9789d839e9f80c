"""Which SIP account places the calls: the configured ones, or the built-in test line.

The accounts file is the TOML of :mod:`sip.config` (``[accounts.NAME]`` tables). Two optional
tables of our own sit beside them (``sip.config`` reads only ``accounts``)::

    [calls]
    account = "office"            # the account operators dial out on (default: the first one)

    [recording]
    off = ["internal"]            # accounts whose calls are not recorded (default: all recorded)

Without an accounts file the service starts the built-in :class:`sip.testline.TestLine` and
calls it: every number answers with a spoken prompt, then echoes (a demo and self-test mode).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sip.account import Account
from sip.config import load_accounts
from sip.errors import AccountConfigError
from sip.testline import TestLine

ACCOUNTS_ENVIRONMENT_VARIABLE = "DIALER_SIP_ACCOUNTS"
TEST_LINE_ACCOUNT_NAME = "testline"


@dataclass(frozen=True)
class CallingAccount:
    """A SIP account and whether calls placed on it are recorded (always, by default)."""

    account: Account
    record_calls: bool = True

    @property
    def name(self) -> str:
        return self.account.name


@dataclass(frozen=True)
class AccountChoice:
    """The accounts the service may use and the one operators dial out on."""

    accounts: Mapping[str, CallingAccount]
    default_name: str

    def __post_init__(self) -> None:
        if self.default_name not in self.accounts:
            raise AccountConfigError("calls.account", f"no account named {self.default_name!r}")

    @classmethod
    def single(cls, account: Account, *, record_calls: bool = True) -> AccountChoice:
        """Just ``account`` (recorded unless ``record_calls`` is False)."""
        return cls({account.name: CallingAccount(account, record_calls)}, account.name)

    def for_operator(self, operator_id: int) -> CallingAccount:
        """The account a call of ``operator_id`` goes out on (one default account for now)."""
        return self.accounts[self.default_name]


def load_account_choice(path: Path) -> AccountChoice:
    """Read an accounts file (see the module docstring); ``AccountConfigError`` on problems."""
    accounts = load_accounts(path)
    try:
        document: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise AccountConfigError(str(path), str(error)) from None
    calls = document.get("calls", {})
    recording = document.get("recording", {})
    if not isinstance(calls, Mapping) or not isinstance(recording, Mapping):
        raise AccountConfigError("calls", "[calls] and [recording] must be tables")
    default_name = calls.get("account", next(iter(accounts)))
    if not isinstance(default_name, str):
        raise AccountConfigError("calls.account", "must be the name of an account")
    not_recorded = recording.get("off", [])
    if not isinstance(not_recorded, list) or not all(
        isinstance(name, str) for name in not_recorded
    ):
        raise AccountConfigError("recording.off", "must be a list of account names")
    unknown = [name for name in not_recorded if name not in accounts]
    if unknown:
        raise AccountConfigError("recording.off", f"no account named {unknown[0]!r}")
    return AccountChoice(
        {
            name: CallingAccount(account, record_calls=name not in not_recorded)
            for name, account in accounts.items()
        },
        default_name,
    )


def accounts_file_from_environment(environ: Mapping[str, str] = os.environ) -> Path | None:
    """The accounts file named by ``DIALER_SIP_ACCOUNTS``, if set."""
    value = environ.get(ACCOUNTS_ENVIRONMENT_VARIABLE, "").strip()
    return Path(value) if value else None


async def start_test_line(host: str = "127.0.0.1") -> tuple[TestLine, AccountChoice]:
    """Start the built-in test line on ``host`` (free port) and an account choice calling it."""
    line = await TestLine.start(host=host, port=0)
    return line, AccountChoice.single(line.account(TEST_LINE_ACCOUNT_NAME))
