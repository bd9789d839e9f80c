"""Dial plans: how the number a user typed becomes the user part of the Request-URI.

An account's ``dial_plan`` is a comma-separated list of rules applied left to right to the
number once its formatting (spaces, dashes, dots, parentheses) is removed:

``e164``
    International form with a plus: ``00`` becomes ``+``; a number already in ``+E.164`` is
    kept. Numbers without an international prefix are left as they are.
``plus``
    Make sure the number starts with ``+`` (``4930123`` becomes ``+4930123``).
``strip-plus``
    Remove a leading ``+`` (``+4930123`` becomes ``4930123``).
``ru8``
    Russian trunk dialling: ``+7XXXXXXXXXX`` (or ``7XXXXXXXXXX``, eleven digits) becomes
    ``8XXXXXXXXXX``.
``prefix:NNN``
    Put ``NNN`` (digits, ``*`` or ``#``) in front, e.g. a carrier or outside-line prefix.

An empty plan (``""``) sends the number as typed, minus formatting. User names (anything with
letters, such as ``sales-desk``) are never rewritten, nor is a target that already is a
``sip:``/``sips:`` URI. Example: ``"e164,ru8,prefix:9"`` turns
``"+7 (912) 345-67-89"`` into ``"989123456789"``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from sip.account import Account
from sip.errors import DialPlanError

_FORMATTING = re.compile(r"[\s\-.()/]")
_NUMBER = re.compile(r"^\+?[0-9*#]+$")
_DIALABLE = re.compile(r"^[0-9A-Za-z+*#_.~!$&'=\-]+$")
_PREFIX = re.compile(r"^[0-9*#]+$")


@dataclass(frozen=True)
class DialRule:
    """One step of a dial plan: its text (``"prefix:9"``) and what it does to a number."""

    text: str
    rewrite: Callable[[str], str]


def _e164(number: str) -> str:
    if number.startswith("00") and number[2:].isdigit():
        return "+" + number[2:]
    return number


def _plus(number: str) -> str:
    return number if number.startswith("+") else "+" + number


def _strip_plus(number: str) -> str:
    return number.removeprefix("+")


def _russian_eight(number: str) -> str:
    digits = number.removeprefix("+")
    if len(digits) == 11 and digits.startswith("7") and digits.isdigit():
        return "8" + digits[1:]
    return number


def _prefixer(prefix: str) -> Callable[[str], str]:
    def add_prefix(number: str) -> str:
        return prefix + number

    return add_prefix


_SIMPLE_RULES: dict[str, Callable[[str], str]] = {
    "e164": _e164,
    "plus": _plus,
    "strip-plus": _strip_plus,
    "ru8": _russian_eight,
}


def parse_dial_plan(plan: str) -> tuple[DialRule, ...]:
    """The rules of ``plan``; raises ``DialPlanError`` naming the rule it does not know."""
    rules: list[DialRule] = []
    for raw in plan.split(","):
        text = raw.strip()
        if not text:
            continue
        simple = _SIMPLE_RULES.get(text.lower())
        if simple is not None:
            rules.append(DialRule(text.lower(), simple))
            continue
        if text.lower().startswith("prefix:"):
            prefix = text.split(":", 1)[1].strip()
            if not _PREFIX.match(prefix):
                raise DialPlanError(f"prefix rule {text!r} needs digits, * or # after 'prefix:'")
            rules.append(DialRule(f"prefix:{prefix}", _prefixer(prefix)))
            continue
        known = ", ".join([*_SIMPLE_RULES, "prefix:NNN"])
        raise DialPlanError(f"unknown dial plan rule {text!r} (known: {known})")
    return tuple(rules)


def apply_dial_plan(plan: str, number: str) -> str:
    """``number`` without formatting, rewritten by every rule of ``plan`` in order.

    Only telephone numbers (digits, ``*``, ``#``, an optional leading ``+``, once formatting is
    removed) are rewritten; a user name such as ``sales-desk`` is dialled as it is.
    """
    rules = parse_dial_plan(plan)
    stripped = number.strip()
    cleaned = _FORMATTING.sub("", stripped)
    if _NUMBER.match(cleaned):
        for rule in rules:
            cleaned = rule.rewrite(cleaned)
        return cleaned
    if not stripped or not _DIALABLE.match(stripped):
        raise DialPlanError(f"{number!r} is not a number or user name we can dial")
    return stripped


def target_uri(account: Account, target: str) -> str:
    """The Request-URI for calling ``target`` (a number, a user name or a SIP URI) on
    ``account``: the dial plan applies to numbers; the account's host, port and transport
    complete them."""
    if target.lower().startswith(("sip:", "sips:")):
        return target
    user = apply_dial_plan(account.dial_plan, target)
    host = account.host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    default_port = 5061 if account.transport == "tls" else 5060
    port = "" if account.port == default_port else f":{account.port}"
    parameters = ";transport=tcp" if account.transport == "tcp" else ""
    user_phone = ";user=phone" if user.startswith("+") and user[1:].isdigit() else ""
    return f"{account.uri_scheme}:{user}@{host}{port}{parameters}{user_phone}"
