"""``normalise_phone`` gives what ``phonenumbers`` gives, whichever way it gets there.

Russian mobile numbers in the common forms skip the parser (``dialer.phones``); every input here
is also run through ``phonenumbers`` directly, and the E.164 form, the kind, the time zone and
whether the text is refused at all must be the same.
"""

from __future__ import annotations

import random

import phonenumbers
import pytest
from phonenumbers import timezone as phone_timezones

from dialer.errors import ValidationFailed
from dialer.models import PhoneKind
from dialer.phones import normalise_phone

_MOBILE_TYPES = {
    phonenumbers.PhoneNumberType.MOBILE,
    phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
}


def reference(raw: str, region: str) -> tuple[str, PhoneKind, str | None] | None:
    """The phone as ``phonenumbers`` alone reads it; None when it is not a possible number."""
    try:
        number = phonenumbers.parse(raw.strip(), region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    number_type = phonenumbers.number_type(number)
    kind = PhoneKind.MOBILE if number_type in _MOBILE_TYPES else PhoneKind.WORK
    zones = [
        zone
        for zone in phone_timezones.time_zones_for_number(number)
        if zone != phone_timezones.UNKNOWN_TIMEZONE
    ]
    return (
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
        kind,
        zones[0] if len(zones) == 1 else None,
    )


def ours(raw: str, region: str) -> tuple[str, PhoneKind, str | None] | None:
    try:
        phone = normalise_phone(raw, region)
    except ValidationFailed:
        return None
    assert phone.raw == raw
    return phone.e164, phone.kind, phone.timezone


def written_forms(digits: str) -> list[str]:
    """Ten national digits as people type them."""
    code, rest = digits[:3], digits[3:]
    grouped = f"{rest[:3]}-{rest[3:5]}-{rest[5:]}"
    return [
        f"8 ({code}) {grouped}",
        f"8({code}){rest}",
        f"8{digits}",
        f"+7 ({code}) {grouped}",
        f"+7 {code} {rest[:3]} {rest[3:5]} {rest[5:]}",
        f"+7{digits}",
        f"7{digits}",
        f"7 {code} {rest}",
        f"{code} {grouped}",
        digits,
        f" 8.{code}.{rest} ",
        f"+7-{code}-{grouped}",
        # Near misses: other lengths, other prefixes, not bare digits.
        f"8{digits}0",
        f"8{digits[:-1]}",
        f"+8{digits}",
        f"+{digits}",
        f"+77{digits}",
        f"87{digits}",
        f"0{digits}",
        f"810{digits}",
        f"8 {code} {rest} доб. 12",
        f"tel: 8 {code} {rest}",
        f"+7 {code} {rest}#",
    ]


def sample_digits(generator: random.Random) -> list[str]:
    """Ten-digit national numbers: every 9xx code (mobile and the odd 930 ranges), Russian
    landline and toll-free codes, and anything at all."""
    numbers = [f"9{code:02d}{generator.randrange(10**7):07d}" for code in range(100)]
    numbers += [f"9300{generator.randrange(10**6):06d}" for _ in range(60)]
    numbers += [f"93000{ending:02d}{generator.randrange(1000):03d}" for ending in range(100)]
    numbers += [
        f"{code}{generator.randrange(10**7):07d}"
        for code in ("495", "499", "812", "383", "343", "800", "804", "809", "301", "700", "600")
    ]
    numbers += [f"{generator.randrange(10**10):010d}" for _ in range(150)]
    return numbers


@pytest.mark.parametrize("region", ["RU", "KZ", "US", "DE", "BY"])
def test_normalise_phone_matches_phonenumbers_on_many_inputs(region: str) -> None:
    generator = random.Random(f"phones-{region}")
    checked = 0
    for digits in sample_digits(generator):
        for raw in written_forms(digits):
            assert ours(raw, region) == reference(raw, region), (raw, region)
            checked += 1
    assert checked > 9_000


def test_common_russian_forms_give_the_same_number() -> None:
    forms = written_forms("9161234567")[:12]
    assert {normalise_phone(raw, "RU").e164 for raw in forms} == {"+79161234567"}
    phone = normalise_phone("8 (916) 123-45-67", "ru")
    assert (phone.e164, phone.kind, phone.timezone) == ("+79161234567", PhoneKind.MOBILE, None)
    assert normalise_phone("+7 916 123 45 67", "US").e164 == "+79161234567"
    assert normalise_phone("8 (916) 123-45-67", "RU", "home").kind is PhoneKind.HOME
