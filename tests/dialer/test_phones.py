"""Phone normalisation, time zones and search prefixes."""

from __future__ import annotations

import pytest

from dialer.errors import ValidationFailed
from dialer.models import PhoneKind
from dialer.phones import normalise_phone, phone_search_prefix, timezone_for_number


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("8 (916) 123-45-67", "RU", "+79161234567"),
        ("+7 916 123 45 67", "RU", "+79161234567"),
        ("79161234567", "RU", "+79161234567"),
        ("(212) 555-1234", "US", "+12125551234"),
        ("+49 30 1234567", "RU", "+49301234567"),
    ],
)
def test_common_formats_become_e164_and_keep_the_raw_text(raw: str, region: str, e164: str) -> None:
    phone = normalise_phone(raw, region)
    assert phone.e164 == e164
    assert phone.raw == raw


def test_kind_is_guessed_or_kept() -> None:
    assert normalise_phone("8 916 123-45-67", "RU").kind is PhoneKind.MOBILE
    assert normalise_phone("8 495 123-45-67", "RU").kind is PhoneKind.WORK
    assert normalise_phone("8 916 123-45-67", "RU", "home").kind is PhoneKind.HOME
    with pytest.raises(ValidationFailed):
        normalise_phone("8 916 123-45-67", "RU", "fax")


@pytest.mark.parametrize("raw", ["", "call me", "12", "+7 916 123 45 67 89 01 23"])
def test_impossible_numbers_are_refused(raw: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        normalise_phone(raw, "RU")
    assert caught.value.field == "phone"


def test_timezone_only_when_the_number_says_so() -> None:
    assert timezone_for_number("+74951234567") == "Europe/Moscow"
    assert timezone_for_number("+73832123456") == "Asia/Novosibirsk"
    assert timezone_for_number("+79161234567") is None  # mobile range spans Russia


@pytest.mark.parametrize(
    ("text", "prefix"),
    [
        ("+7 916 12", "+791612"),
        ("8916", "+7916"),
        ("7 916", "+7916"),
        ("916-1", "+79161"),
        ("0049 30", "+4930"),
        ("Ivan", None),
        ("1C Company", None),
        ("5", None),
    ],
)
def test_search_prefix_from_what_people_type(text: str, prefix: str | None) -> None:
    assert phone_search_prefix(text, "RU") == prefix
