"""Accounts from configuration: a TOML file, a mapping, or command-line style options.

The TOML layout is one table per account under ``accounts``::

    [accounts.office]
    host = "sip.example.com"      # required
    port = 5060                   # default 5060 (5061 for tls)
    transport = "udp"             # udp | tcp | tls
    username = "alice"
    password = "secret"
    dial_plan = "e164,ru8"        # see sip.dialplan
    register = true
    codecs = ["PCMU", "PCMA"]

Every key of :class:`sip.account.Account` except ``name`` may appear. Any problem raises
:class:`sip.errors.AccountConfigError` whose ``field`` names the setting
(``accounts.office.port``) and whose ``problem`` says what is wrong.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sip.account import Account
from sip.dialplan import parse_dial_plan
from sip.errors import AccountConfigError, DialPlanError

TRANSPORTS = ("udp", "tcp", "tls")
SUPPORTED_CODECS = ("PCMU", "PCMA")

_STRING_FIELDS = ("host", "username", "password", "dial_plan")
_OPTIONAL_STRING_FIELDS = (
    "auth_username",
    "realm",
    "caller_id",
    "display_name",
    "outbound_proxy",
    "ca_file",
)
_BOOLEAN_FIELDS = ("register", "tls_verify")
_POSITIVE_NUMBER_FIELDS = ("ring_timeout", "media_timeout")
_KNOWN_FIELDS = {field.name for field in dataclasses.fields(Account)} - {"name"}


def load_accounts(source: Path | str | Mapping[str, Any]) -> dict[str, Account]:
    """Every account of a TOML file (path) or of an already parsed mapping, by name."""
    if isinstance(source, Mapping):
        document: Mapping[str, Any] = source
    else:
        path = Path(source)
        try:
            document = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise AccountConfigError(str(path), "file not found") from None
        except tomllib.TOMLDecodeError as error:
            raise AccountConfigError(str(path), f"not valid TOML: {error}") from None
    accounts = document.get("accounts")
    if not isinstance(accounts, Mapping) or not accounts:
        raise AccountConfigError("accounts", "no [accounts.NAME] table found")
    result: dict[str, Account] = {}
    for name, settings in accounts.items():
        if not isinstance(settings, Mapping):
            raise AccountConfigError(f"accounts.{name}", "must be a table of settings")
        result[str(name)] = account_from_mapping(str(name), settings, prefix=f"accounts.{name}.")
    return result


def load_account(source: Path | str | Mapping[str, Any], name: str) -> Account:
    """The account called ``name`` (``AccountConfigError`` naming it when absent)."""
    accounts = load_accounts(source)
    try:
        return accounts[name]
    except KeyError:
        known = ", ".join(sorted(accounts)) or "none"
        raise AccountConfigError(f"accounts.{name}", f"no such account (known: {known})") from None


def account_from_mapping(name: str, settings: Mapping[str, Any], *, prefix: str = "") -> Account:
    """Validate ``settings`` (keys as in :class:`Account`) and build the account."""
    values: dict[str, Any] = {}
    for key, value in settings.items():
        field = f"{prefix}{key}"
        if key not in _KNOWN_FIELDS:
            raise AccountConfigError(field, "unknown setting")
        values[key] = _checked(key, value, field)
    if not values.get("host"):
        raise AccountConfigError(f"{prefix}host", "required (the SIP server's host name or IP)")
    if "port" not in values:
        values["port"] = 5061 if values.get("transport") == "tls" else 5060
    if values.get("register", True) and not values.get("username"):
        raise AccountConfigError(
            f"{prefix}username", "required when register is true (set register = false for a trunk)"
        )
    if values.get("password") and not (values.get("username") or values.get("auth_username")):
        raise AccountConfigError(f"{prefix}username", "required when a password is set")
    return Account(name=name, **values)


def _checked(key: str, value: Any, field: str) -> Any:
    if key in _STRING_FIELDS:
        if not isinstance(value, str):
            raise AccountConfigError(field, "must be a string")
        if key == "dial_plan":
            try:
                parse_dial_plan(value)
            except DialPlanError as error:
                raise AccountConfigError(field, str(error)) from None
        return value.strip() if key == "host" else value
    if key in _OPTIONAL_STRING_FIELDS:
        if value is not None and not isinstance(value, str):
            raise AccountConfigError(field, "must be a string")
        if key == "outbound_proxy" and value:
            split_host_port(value, 5060, field)
        return value or None
    if key in _BOOLEAN_FIELDS:
        if not isinstance(value, bool):
            raise AccountConfigError(field, "must be true or false")
        return value
    if key in _POSITIVE_NUMBER_FIELDS:
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise AccountConfigError(field, "must be a positive number of seconds")
        return float(value)
    if key == "port":
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            raise AccountConfigError(field, "must be an integer between 1 and 65535")
        return value
    if key == "register_expires":
        if isinstance(value, bool) or not isinstance(value, int) or not 10 <= value <= 86400:
            raise AccountConfigError(field, "must be an integer number of seconds (10 to 86400)")
        return value
    if key == "transport":
        if not isinstance(value, str) or value.lower() not in TRANSPORTS:
            raise AccountConfigError(field, f"must be one of {', '.join(TRANSPORTS)}")
        return value.lower()
    if key == "codecs":
        if (
            not isinstance(value, list | tuple)
            or not value
            or not all(isinstance(codec, str) for codec in value)
        ):
            raise AccountConfigError(field, "must be a non-empty list of codec names")
        codecs = tuple(codec.upper() for codec in value)
        unknown = [codec for codec in codecs if codec not in SUPPORTED_CODECS]
        if unknown:
            supported = ", ".join(SUPPORTED_CODECS)
            raise AccountConfigError(field, f"unsupported {unknown[0]} (supported: {supported})")
        return codecs
    raise AccountConfigError(field, "unknown setting")  # pragma: no cover - guarded by caller


def split_host_port(text: str, default_port: int, field: str = "server") -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` -> (host, port)."""
    text = text.strip()
    if not text:
        raise AccountConfigError(field, "empty; expected HOST or HOST:PORT")
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest.removeprefix(":") if rest else ""
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, ""
    if not host:
        raise AccountConfigError(field, f"no host in {text!r}")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise AccountConfigError(field, f"port {port_text!r} is not between 1 and 65535")
    return host, int(port_text)


def account_from_options(
    *,
    server: str,
    username: str,
    password: str = "",
    transport: str = "udp",
    name: str = "command-line",
    **settings: Any,
) -> Account:
    """An account from ``--server HOST[:PORT] --username U --password P --transport T``."""
    transport_checked = _checked("transport", transport, "transport")
    default_port = 5061 if transport_checked == "tls" else 5060
    host, port = split_host_port(server, default_port, "server")
    if not username:
        raise AccountConfigError("username", "required with --server")
    mapping: dict[str, Any] = {
        "host": host,
        "port": port,
        "transport": transport_checked,
        "username": username,
        "password": password,
        **settings,
    }
    return account_from_mapping(name, mapping)
