"""Phone numbers: normalisation to E.164 (raw input kept), time zones, search prefixes.

``normalise_phone`` parses a number once and derives everything from that parse: E.164, the
kind and the time zone (``NormalisedPhone.timezone``); bulk importers need all three per row and
parsing is the expensive part. Text made only of digits and the usual separators is handed to
the parser as bare digits, which gives the same number faster; Russian mobile numbers in the
usual national and international forms ("8 (916) 123-45-67", "+7 916 ...", "7916...", "916...")
skip the parser altogether: what it would make of them is known (country code 7 and the ten
digits from the 9 on), and tests compare the two on many inputs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers
from phonenumbers import timezone as phone_timezones

from dialer.errors import ValidationFailed
from dialer.models import PhoneKind

_PHONE_SEARCH_PATTERN = re.compile(r"^\+?[\d\s().\-]+$")
# Plain digits with spaces, brackets, dots and hyphens (at least three digits): the parser reads
# such text exactly as it reads the bare digits.
_PLAIN_NUMBER_PATTERN = re.compile(r"\+?[0-9 ().\-]+")
_NOT_DIGITS = re.compile(r"[^0-9]")
_PLAIN_NUMBER_MINIMUM_DIGITS = 3
# Bare digits of a Russian mobile number: "+7" and ten digits from a 9 (any default region), or
# with region RU also "8" (the national prefix) or "7" (the country code without "+") before
# them, or the ten digits alone. The parser reads all of these as +7 and the ten digits: "8" is
# not the start of the international prefix "810" here, and neither ten nor eleven digits match
# the region's 14-digit "8..." pattern that would keep a leading 8 or 7.
_INTERNATIONAL_RUSSIAN_MOBILE = re.compile(r"\+7(9[0-9]{9})")
_NATIONAL_RUSSIAN_MOBILE = re.compile(r"(?:\+7|[78])?(9[0-9]{9})")
_RUSSIA = "RU"
_RUSSIA_COUNTRY_CODE = 7
_MOBILE_TYPES = frozenset(
    {phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE}
)


@dataclass(frozen=True)
class NormalisedPhone:
    e164: str
    raw: str
    kind: PhoneKind
    # The IANA zone when the number has exactly one (see ``timezone_for_number``).
    timezone: str | None = None


def normalise_phone(
    raw: str, default_region: str, kind: PhoneKind | str | None = None
) -> NormalisedPhone:
    """Parse ``raw`` ("8 (916) 123-45-67", "+7 916 ...") into E.164, keeping the raw text.

    Numbers without a leading + are read in ``default_region`` (national prefix handled: with
    region RU, "8 916 123-45-67" -> +79161234567). ``kind`` defaults to mobile for mobile numbers
    and work otherwise. Raises ValidationFailed("phone", ...) for text that is not a possible
    number.
    """
    text = raw.strip()
    if not text:
        raise ValidationFailed("phone", "is empty")
    if _PLAIN_NUMBER_PATTERN.fullmatch(text):
        digits = _NOT_DIGITS.sub("", text)
        if len(digits) >= _PLAIN_NUMBER_MINIMUM_DIGITS:
            text = ("+" if text.startswith("+") else "") + digits
    region = default_region.upper()
    number = _russian_mobile_number(text, region)
    if number is None:
        try:
            number = phonenumbers.parse(text, region)
        except phonenumbers.NumberParseException as error:
            raise ValidationFailed("phone", f"not a phone number: {raw!r}") from error
        if not phonenumbers.is_possible_number(number):
            raise ValidationFailed("phone", f"not a possible phone number: {raw!r}")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    number_type = phonenumbers.number_type(number)
    if kind is None:
        chosen = PhoneKind.MOBILE if number_type in _MOBILE_TYPES else PhoneKind.WORK
    else:
        try:
            chosen = PhoneKind(kind)
        except ValueError as error:
            raise ValidationFailed("phone kind", f"unknown kind {kind!r}") from error
    return NormalisedPhone(
        e164=e164, raw=raw, kind=chosen, timezone=_single_timezone(number, number_type)
    )


def _russian_mobile_number(text: str, region: str) -> phonenumbers.PhoneNumber | None:
    """The number ``phonenumbers.parse(text, region)`` gives, without parsing, when ``text`` is
    the bare digits of a Russian mobile number (see ``_NATIONAL_RUSSIAN_MOBILE``); else None."""
    pattern = _NATIONAL_RUSSIAN_MOBILE if region == _RUSSIA else _INTERNATIONAL_RUSSIAN_MOBILE
    match = pattern.fullmatch(text)
    if match is None:
        return None
    return phonenumbers.PhoneNumber(
        country_code=_RUSSIA_COUNTRY_CODE, national_number=int(match.group(1))
    )


def timezone_for_number(e164: str) -> str | None:
    """The IANA time zone of a number when the metadata gives exactly one, else None.

    Landlines usually have one (+7495... -> Europe/Moscow, +7383... -> Asia/Novosibirsk); mobile
    ranges often span a whole country (+7916...) and give None: ask the user instead.
    """
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return None
    return _single_timezone(number, phonenumbers.number_type(number))


def _single_timezone(number: phonenumbers.PhoneNumber, number_type: int) -> str | None:
    """``phonenumbers.timezone.time_zones_for_number`` for a number whose type is known (that
    function works the type out again, which costs as much as the rest of it)."""
    if number_type == phonenumbers.PhoneNumberType.UNKNOWN:
        return None
    if phonenumbers.is_number_type_geographical(number_type, number.country_code or 0):
        found = phone_timezones.time_zones_for_geographical_number(number)
    else:
        found = phone_timezones._country_level_time_zones_for_number(number)
    zones = [zone for zone in found if zone != phone_timezones.UNKNOWN_TIMEZONE]
    return zones[0] if len(zones) == 1 else None


def phone_search_prefix(text: str, region: str) -> str | None:
    """The E.164 prefix a user means by ``text``, or None if ``text`` does not look like digits.

    "+7 916 12" -> "+791612"; "8916" (RU) -> "+7916"; "7916" (RU) -> "+7916"; "0049 30" ->
    "+4930"; "916" (RU) -> "+7916". Needs at least two digits.
    """
    stripped = text.strip()
    if not stripped or not _PHONE_SEARCH_PATTERN.match(stripped):
        return None
    digits = re.sub(r"\D", "", stripped)
    if len(digits) < 2:
        return None
    if stripped.startswith("+"):
        return "+" + digits
    if digits.startswith("00"):
        return "+" + digits[2:] if len(digits) > 3 else None
    region = region.upper()
    country_code = phonenumbers.country_code_for_region(region)
    if country_code == 0:
        return "+" + digits
    code_text = str(country_code)
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    national_prefix = metadata.national_prefix if metadata is not None else None
    if national_prefix and digits.startswith(national_prefix):
        return "+" + code_text + digits[len(national_prefix) :]
    if digits.startswith(code_text) and len(digits) > len(code_text):
        return "+" + digits
    return "+" + code_text + digits


def prefix_upper_bound(prefix: str) -> str:
    """The smallest string greater than every string starting with ``prefix`` (binary order)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)
