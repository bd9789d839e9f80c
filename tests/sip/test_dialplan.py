"""Dial plans turn what a user typed into the Request-URI a trunk expects."""

from __future__ import annotations

import pytest

from sip.account import Account
from sip.dialplan import apply_dial_plan, parse_dial_plan, target_uri
from sip.errors import DialPlanError


@pytest.mark.parametrize(
    ("plan", "typed", "dialled"),
    [
        ("", "+7 (912) 345-67-89", "+79123456789"),
        ("e164", "0049 30 123456", "+4930123456"),
        ("e164", "+4930123456", "+4930123456"),
        ("plus", "4930123456", "+4930123456"),
        ("strip-plus", "+4930123456", "4930123456"),
        ("ru8", "+7 912 345 67 89", "89123456789"),
        ("ru8", "79123456789", "89123456789"),
        ("ru8", "+4930123456", "+4930123456"),
        ("prefix:9", "5551234", "95551234"),
        ("e164,ru8,prefix:9", "+7 (912) 345-67-89", "989123456789"),
        ("strip-plus, prefix:00", "+4930123", "004930123"),
        ("ru8", "sales-desk", "sales-desk"),
    ],
)
def test_rules_rewrite_numbers(plan: str, typed: str, dialled: str) -> None:
    assert apply_dial_plan(plan, typed) == dialled


@pytest.mark.parametrize("plan", ["e165", "prefix:", "prefix:9a", "ru8,bogus"])
def test_unknown_rules_are_refused(plan: str) -> None:
    with pytest.raises(DialPlanError):
        parse_dial_plan(plan)


@pytest.mark.parametrize("typed", ["", "   ", "555 <1234>", "a@b"])
def test_undialable_targets_are_refused(typed: str) -> None:
    with pytest.raises(DialPlanError):
        apply_dial_plan("", typed)


def test_target_uri_uses_the_account_server_and_plan() -> None:
    account = Account(name="trunk", host="sip.example.com", username="a", dial_plan="ru8")
    assert target_uri(account, "+7 912 345 67 89") == "sip:89123456789@sip.example.com"
    tcp = Account(name="t", host="10.0.0.1", port=5070, transport="tcp", dial_plan="plus")
    assert target_uri(tcp, "4930") == "sip:+4930@10.0.0.1:5070;transport=tcp;user=phone"
    tls = Account(name="s", host="sip.example.com", port=5061, transport="tls")
    assert target_uri(tls, "alice") == "sips:alice@sip.example.com"
    assert target_uri(account, "sip:bob@elsewhere.example") == "sip:bob@elsewhere.example"
