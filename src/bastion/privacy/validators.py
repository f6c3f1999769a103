"""Checks that turn a candidate string into a personal-data finding, or reject it.

Each check is cheap, offline and exact where the identifier has a checksum: Luhn and
current issuer ranges for payment cards, ISO 7064 mod 97 for IBANs (python-stdnum),
the SSA's rules for US social security numbers, libphonenumber's metadata for phone
numbers (phonenumbers), and the standard library's parsers for addresses and dates.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import ipaddress
import re
from collections.abc import Iterator

import phonenumbers
from phonenumbers import PhoneNumberFormat
from stdnum import iban
from stdnum.de import idnr
from stdnum.es import dni, nie
from stdnum.gb import nhs
from stdnum.it import codicefiscale
from stdnum.nl import bsn
from stdnum.us import ssn

# Issuer identification ranges (first digits, inclusive) and the lengths each network
# issues, as published by the networks in 2024-2026: 2-series Mastercard, 19-digit Visa,
# JCB, Maestro, UnionPay, Mir, Discover, Diners and Amex.
_CARD_RANGES: tuple[tuple[int, int, frozenset[int]], ...] = (
    (4, 4, frozenset({13, 16, 19})),  # Visa
    (51, 55, frozenset({16})),  # Mastercard
    (2221, 2720, frozenset({16})),  # Mastercard 2-series
    (34, 34, frozenset({15})),  # American Express
    (37, 37, frozenset({15})),
    (6011, 6011, frozenset(range(16, 20))),  # Discover
    (644, 649, frozenset(range(16, 20))),
    (65, 65, frozenset(range(16, 20))),
    (3528, 3589, frozenset(range(16, 20))),  # JCB
    (300, 305, frozenset(range(14, 20))),  # Diners Club
    (36, 36, frozenset(range(14, 20))),
    (38, 39, frozenset(range(14, 20))),
    (62, 62, frozenset(range(16, 20))),  # UnionPay
    (2200, 2204, frozenset(range(16, 20))),  # Mir
    (50, 50, frozenset(range(12, 20))),  # Maestro
    (56, 58, frozenset(range(12, 20))),
    (6304, 6304, frozenset(range(12, 20))),
    (6759, 6759, frozenset(range(12, 20))),
    (6761, 6763, frozenset(range(12, 20))),
)

_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ),
        start=1,
    )
    for name in names
}
_NUMERIC_DATE = re.compile(r"(\d{1,4})[-/.](\d{1,2})[-/.](\d{1,4})")
_WORDS_DATE = re.compile(
    r"(?:(\d{1,2})\s+([A-Za-z]{3,9})\.?|([A-Za-z]{3,9})\.?\s+(\d{1,2}),?)\s+(\d{4})"
)
_MAC = re.compile(r"[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(?:\1[0-9A-Fa-f]{2}){4}")
_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_DIGIT_GROUPS = re.compile(r"\d+")
_NOT_DIGITS = re.compile(r"[^0-9]+")
_SSN = re.compile(r"\d{3}([- ]?)\d{2}\1\d{4}")


def digits_of(text: str) -> str:
    """The decimal digits of ``text``, in order."""
    return _NOT_DIGITS.sub("", text)


def is_luhn_valid(number: str) -> bool:
    """Whether a digit string passes the Luhn (mod 10) check."""
    total = 0
    for index, char in enumerate(reversed(number)):
        value = ord(char) - 48
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2  # noqa: PLR2004
        total += value
    return total % 10 == 0


def is_payment_card(text: str) -> bool:
    """Whether ``text`` is a card number: issued length for its range, and Luhn-valid."""
    if text[0] in "+(":  # a country code or an area code: a phone number
        return False
    number = digits_of(text)
    if not 12 <= len(number) <= 19 or not is_luhn_valid(number):  # noqa: PLR2004
        return False
    for low, high, lengths in _CARD_RANGES:
        width = len(str(low))
        if low <= int(number[:width]) <= high and len(number) in lengths:
            return True
    return False


def is_us_ssn(text: str) -> bool:
    """Whether ``text`` is a US SSN shape with an area, group and serial the SSA issues."""
    if _SSN.fullmatch(text) is None:
        return False
    return bool(ssn.is_valid(digits_of(text)))


def is_letter_national_id(text: str) -> bool:
    """Whether ``text`` is an Italian codice fiscale or a Spanish DNI/NIE (check letters)."""
    return bool(codicefiscale.is_valid(text) or dni.is_valid(text) or nie.is_valid(text))


def is_digit_national_id(text: str) -> bool:
    """Whether ``text`` passes the checksum of a digits-only national identifier.

    Dutch BSN (9 digits), UK NHS number (10) or German tax IdNr (11). Digits alone prove
    little, so callers also need a context word.
    """
    number = digits_of(text)
    return bool(bsn.is_valid(number) or nhs.is_valid(number) or idnr.is_valid(number))


def is_iban(text: str) -> bool:
    """Whether ``text`` is an IBAN with a valid country format and mod-97 checksum."""
    return bool(iban.is_valid(text))


def phone_numbers(text: str, *, regions: tuple[str, ...]) -> Iterator[phonenumbers.PhoneNumber]:
    """The valid phone numbers ``text`` may spell, international or national to ``regions``.

    Lazy: callers that are satisfied by the first one parse no further.
    """
    if not 7 <= len(digits_of(text)) <= 15:  # noqa: PLR2004 - E.164's bounds
        return
    if sum(len(group) == 1 for group in _DIGIT_GROUPS.findall(text)) > 2:  # noqa: PLR2004
        return  # no plan writes three lone digits ("1 2 3 4 5 6 7")
    if text.startswith("+"):
        with contextlib.suppress(phonenumbers.NumberParseException):
            parsed = phonenumbers.parse(text, None)
            if phonenumbers.is_valid_number(parsed):
                yield parsed
        return
    leading_zero = digits_of(text).startswith("0")
    for region in regions:
        if leading_zero and _trunk_prefix(region) != "0":
            continue  # a national number written with a 0 is not from a plan without one
        try:
            parsed = phonenumbers.parse(text, region)
        except phonenumbers.NumberParseException:
            continue
        # Checking against the one region parsed for is much cheaper than finding it.
        if phonenumbers.is_valid_number_for_region(parsed, region):
            yield parsed


@functools.cache
def _trunk_prefix(region: str) -> str | None:
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    return None if metadata is None else metadata.national_prefix


def is_grouped_like_phone(text: str, number: phonenumbers.PhoneNumber) -> bool:
    """Whether ``text`` is written as phone numbers are: E.164, or the plan's digit groups.

    "030 129454" is grouped as Berlin numbers are; "3442860-496" is not, though its
    digits happen to form a valid number somewhere.
    """
    if text.startswith("+") and text[1:].isdigit():
        return True
    groups = [len(g) for g in _DIGIT_GROUPS.findall(text)]
    for style in (PhoneNumberFormat.NATIONAL, PhoneNumberFormat.INTERNATIONAL):
        written = phonenumbers.format_number(number, style)
        expected = [len(g) for g in _DIGIT_GROUPS.findall(written)]
        if groups == expected or groups == expected[1:]:
            return True
    return False


def is_ip_address(text: str) -> bool:
    """Whether ``text`` is a dotted IPv4 or a textual IPv6 address."""
    if "." in text and _IPV4.fullmatch(text) is None:
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def is_mac_address(text: str) -> bool:
    """Whether ``text`` is an EUI-48 address in colon or hyphen notation."""
    return _MAC.fullmatch(text) is not None


def parse_date(text: str) -> dt.date | None:
    """The calendar date ``text`` spells (ISO, day-first, month-first or with a month name)."""
    if (match := _NUMERIC_DATE.fullmatch(text)) is not None:
        first, second, third = (int(part) for part in match.groups())
        if len(match.group(1)) == 4:  # noqa: PLR2004
            orders = [(first, second, third)]
        elif len(match.group(3)) == 4:  # noqa: PLR2004
            orders = [(third, first, second), (third, second, first)]  # US first, then day-first
        else:
            return None
        for year, month, day in orders:
            if (date := _date(year, month, day)) is not None:
                return date
        return None
    if (match := _WORDS_DATE.fullmatch(text)) is not None:
        day_text, month_name = (match[1], match[2]) if match[1] else (match[4], match[3])
        number = _MONTHS.get(month_name.lower())
        return None if number is None else _date(int(match[5]), number, int(day_text))
    return None


def _date(year: int, month: int, day: int) -> dt.date | None:
    if not 1900 <= year <= 2100:  # noqa: PLR2004 - a birth date, not an arbitrary number
        return None
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None
