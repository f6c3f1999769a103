"""FF1: NIST's samples, round trips, and the domain-size rule."""

import json
import pickle
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.errors import InvalidInput
from bastion.privacy.fpe import ALPHANUMERIC, DIGITS, FF1

VECTORS = json.loads((Path(__file__).parents[2] / "vectors" / "ff1.json").read_text())["cases"]


@pytest.mark.parametrize("case", VECTORS, ids=lambda c: f"radix{c['radix']}-{len(c['key'])}")
def test_nist_samples(case):
    """Encryption and decryption reproduce SP 800-38G's published FF1 samples exactly."""
    ff1 = FF1(bytes.fromhex(case["key"]), alphabet=ALPHANUMERIC[: case["radix"]])
    tweak = bytes.fromhex(case["tweak"])
    assert ff1.encrypt(case["plaintext"], tweak=tweak) == case["ciphertext"]
    assert ff1.decrypt(case["ciphertext"], tweak=tweak) == case["plaintext"]


@settings(max_examples=60, deadline=None)
@given(value=st.text(DIGITS, min_size=6, max_size=40), tweak=st.binary(max_size=20))
def test_round_trip_keeps_length_and_alphabet(value, tweak):
    """Any digit string of a legal length comes back exactly, and stays digits of its length."""
    ff1 = FF1(bytes(range(32)), alphabet=DIGITS)
    token = ff1.encrypt(value, tweak=tweak)
    assert len(token) == len(value) and set(token) <= set(DIGITS)
    assert ff1.decrypt(token, tweak=tweak) == value


def test_the_tweak_and_key_change_the_output():
    """The same value under another tweak or key encrypts differently."""
    ff1 = FF1(bytes(32), alphabet=DIGITS)
    value = "4111111111111111"
    assert ff1.encrypt(value, tweak=b"a") != ff1.encrypt(value, tweak=b"b")
    assert FF1(bytes(31) + b"\x01", alphabet=DIGITS).encrypt(value, tweak=b"a") != ff1.encrypt(
        value, tweak=b"a"
    )


def test_domains_below_a_million_are_refused():
    """Five digits (100 000 values) are refused; six pass; four letters of 36 pass (1.7 M)."""
    digits = FF1(bytes(32), alphabet=DIGITS)
    with pytest.raises(InvalidInput, match="1,000,000"):
        digits.encrypt("12345", tweak=b"")
    assert len(digits.encrypt("123456", tweak=b"")) == 6
    assert FF1(bytes(32), alphabet=ALPHANUMERIC).min_length == 4


def test_bad_arguments():
    """Foreign characters, bad keys and bad alphabets are refused; the key never pickles."""
    ff1 = FF1(bytes(32), alphabet=DIGITS)
    with pytest.raises(InvalidInput, match="alphabet"):
        ff1.encrypt("12345a789", tweak=b"")
    with pytest.raises(ValueError, match="16, 24 or 32"):
        FF1(bytes(20), alphabet=DIGITS)
    with pytest.raises(ValueError, match="distinct"):
        FF1(bytes(32), alphabet="0012")
    with pytest.raises(TypeError):
        pickle.dumps(ff1)
    assert "radix=10" in repr(ff1)
