"""Accounts from TOML: valid files load, every mistake names the setting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sip.config import account_from_options, load_account, load_accounts
from sip.errors import AccountConfigError

GOOD = """
[accounts.office]
host = "sip.example.com"
username = "alice"
password = "secret"
dial_plan = "e164,ru8"
codecs = ["pcma"]
ring_timeout = 30

[accounts.trunk]
host = "10.0.0.1"
transport = "tls"
register = false
"""


def test_accounts_load_from_a_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "accounts.toml"
    path.write_text(GOOD)
    accounts = load_accounts(path)
    office = accounts["office"]
    assert (office.host, office.port, office.transport) == ("sip.example.com", 5060, "udp")
    assert office.codecs == ("PCMA",)
    assert office.ring_timeout == 30.0
    trunk = load_account(path, "trunk")
    assert (trunk.port, trunk.register, trunk.username) == (5061, False, "")


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"username": "a"}, "accounts.x.host"),
        ({"host": "h", "username": "a", "port": 70000}, "accounts.x.port"),
        ({"host": "h", "username": "a", "port": "5060"}, "accounts.x.port"),
        ({"host": "h", "username": "a", "transport": "sctp"}, "accounts.x.transport"),
        ({"host": "h", "username": "a", "dial_plan": "ru9"}, "accounts.x.dial_plan"),
        ({"host": "h", "username": "a", "codecs": ["G729"]}, "accounts.x.codecs"),
        ({"host": "h", "username": "a", "register": "yes"}, "accounts.x.register"),
        ({"host": "h", "username": "a", "media_timeout": 0}, "accounts.x.media_timeout"),
        ({"host": "h", "username": "a", "colour": "red"}, "accounts.x.colour"),
        ({"host": "h"}, "accounts.x.username"),
        ({"host": "h", "username": "a", "outbound_proxy": "p:99999"}, "accounts.x.outbound_proxy"),
    ],
)
def test_mistakes_name_the_field(settings: dict[str, Any], field: str) -> None:
    with pytest.raises(AccountConfigError) as raised:
        load_accounts({"accounts": {"x": settings}})
    assert raised.value.field == field
    assert field in str(raised.value)


def test_missing_file_and_missing_account(tmp_path: Path) -> None:
    with pytest.raises(AccountConfigError, match="file not found"):
        load_accounts(tmp_path / "none.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[accounts.office\n")
    with pytest.raises(AccountConfigError, match="not valid TOML"):
        load_accounts(broken)
    with pytest.raises(AccountConfigError) as raised:
        load_account({"accounts": {"office": {"host": "h", "username": "a"}}}, "home")
    assert raised.value.field == "accounts.home"


def test_command_line_options() -> None:
    account = account_from_options(server="[::1]:5080", username="bob", password="pw")
    assert (account.host, account.port, account.password) == ("::1", 5080, "pw")
    assert account_from_options(server="h", username="u", transport="tls").port == 5061
    with pytest.raises(AccountConfigError) as raised:
        account_from_options(server="h:0", username="u")
    assert raised.value.field == "server"
    with pytest.raises(AccountConfigError) as raised:
        account_from_options(server="h", username="")
    assert raised.value.field == "username"
