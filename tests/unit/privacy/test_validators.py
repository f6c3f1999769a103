"""The exact checks behind each finding."""

import datetime as dt

import pytest

from bastion.privacy import validators as check


@pytest.mark.parametrize(
    "number",
    [
        "4111111111111111",  # Visa 16
        "4222222222222",  # Visa 13
        "4000000000000000006",  # Visa 19
        "5555555555554444",  # Mastercard 51-55
        "2221000000000009",  # Mastercard 2-series
        "2720990000000007",
        "378282246310005",  # Amex
        "6011111111111117",  # Discover
        "3530111333300000",  # JCB
        "30569309025904",  # Diners 14
        "6759649826438453",  # Maestro
        "2200000000000004",  # Mir
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
    ],
)
def test_issued_card_numbers_pass(number):
    """Card numbers of current networks and lengths pass Luhn and the issuer ranges."""
    assert check.is_payment_card(number)


@pytest.mark.parametrize(
    "number",
    [
        "4111111111111112",  # Luhn fails
        "2721000000000004",  # past the 2-series range (Luhn-valid)
        "3500000000000002",  # 35xx below JCB's 3528 (Luhn-valid)
        "41111111111111111",  # Visa never issues 17 digits (Luhn-valid)
        "+4915123455730",  # a phone number with a country code
        "1234",
    ],
)
def test_other_numbers_fail(number):
    """Luhn failures, unissued ranges and lengths, and phone numbers are not cards."""
    assert check.is_luhn_valid("4111111111111111")
    assert not check.is_payment_card(number)


def test_ssn_rules():
    """Area 000, 666 and 900-999, group 00 and serial 0000 are never issued."""
    assert check.is_us_ssn("536-22-1234")
    assert check.is_us_ssn("536221234")
    bad_ones = ("000-12-3456", "666-12-3456", "912-12-3456", "536-00-1234", "536-22-0000")
    for bad in (*bad_ones, "078-05-1120"):  # the last: printed in wallets in 1938, void
        assert not check.is_us_ssn(bad), bad
    assert not check.is_us_ssn("536-221234")  # mixed separators


def test_national_identifiers():
    """Check letters and checksums of the IT fiscal code, ES DNI/NIE, NL BSN, UK NHS, DE IdNr."""
    for good in ("RCCMNL83S18D969H", "12345678Z", "X1234567L"):
        assert check.is_letter_national_id(good), good
    assert not check.is_letter_national_id("12345678A")
    for good in ("111222333", "943 476 5919", "36574261809"):
        assert check.is_digit_national_id(good), good
    assert not check.is_digit_national_id("111222334")


def test_iban_checksum():
    """A valid IBAN passes in both spellings; one changed digit fails mod 97."""
    assert check.is_iban("DE89370400440532013000")
    assert check.is_iban("DE89 3704 0044 0532 0130 00")
    assert not check.is_iban("DE89370400440532013001")


def test_phone_numbers_and_their_grouping():
    """Valid numbers are found from the plan; grouping decides whether bare digits look like one."""
    regions = ("US", "GB", "DE")
    assert list(check.phone_numbers("+44 20 7946 0958", regions=regions))
    assert list(check.phone_numbers("(415) 555-2671", regions=regions))
    assert not list(check.phone_numbers("12345", regions=regions))
    [number] = check.phone_numbers("030 129454", regions=("DE",))
    assert check.is_grouped_like_phone("030 129454", number)
    assert not check.is_grouped_like_phone("0301-29454", number)


def test_addresses():
    """IPv4, IPv6 and MAC addresses are parsed, not guessed."""
    assert check.is_ip_address("192.168.1.20") and check.is_ip_address("2001:db8::1")
    assert not check.is_ip_address("256.1.1.1") and not check.is_ip_address("12:30:45")
    assert not check.is_ip_address("1.2.3")
    assert check.is_mac_address("00:1A:2B:3C:4D:5E") and check.is_mac_address("00-1a-2b-3c-4d-5e")
    assert not check.is_mac_address("00:1A-2B:3C:4D:5E")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1990-05-17", dt.date(1990, 5, 17)),
        ("05/17/1990", dt.date(1990, 5, 17)),
        ("17.05.1990", dt.date(1990, 5, 17)),
        ("March 5, 1990", dt.date(1990, 3, 5)),
        ("5 Sept 1990", dt.date(1990, 9, 5)),
        ("1990-02-30", None),
        ("12/27", None),
        ("3000-01-01", None),
        ("5 Brumaire 1990", None),
    ],
)
def test_dates(text, expected):
    """ISO, US, day-first and month-name dates parse; impossible ones do not."""
    assert check.parse_date(text) == expected
