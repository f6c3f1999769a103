"""Masking operators: each one's output, determinism, keys, and reversal."""

import pickle

import pytest

from bastion.errors import InvalidInput
from bastion.privacy import (
    FormatPreserving,
    Generalize,
    PartialMask,
    PiiScanner,
    Pseudonym,
    Redact,
    Tag,
    mask_text,
)

KEY = bytes(range(32))


def test_redact_tag_and_partial():
    """Redact empties, Tag names the field, PartialMask keeps separators and the last digits."""
    assert Redact().apply("x", field="EMAIL") == ""
    assert Tag().apply("x", field="EMAIL") == "<EMAIL>"
    mask = PartialMask(keep_first=1, keep_last=2)
    assert mask.apply("536-22-1234", field="ssn") == "5**-**-**34"
    assert PartialMask(keep_last=4).apply("1234", field="pin") == "***4"  # never whole


def test_pseudonyms_are_stable_keyed_and_per_field():
    """Same key, field and value: same pseudonym in any instance; another key or field differs."""
    first, again = Pseudonym(KEY), Pseudonym(bytes(KEY))
    value = "ann@example.com"
    assert first.apply(value, field="email") == again.apply(value, field="email")
    assert first.apply(value, field="email").startswith("email_")
    assert first.apply(value, field="email") != Pseudonym(bytes(32)).apply(value, field="email")
    assert first.apply(value, field="email") != first.apply(value, field="contact")
    with pytest.raises(ValueError, match="32 bytes"):
        Pseudonym(b"short")
    with pytest.raises(TypeError):
        pickle.dumps(first)
    assert "length=16" in repr(first)


def test_format_preserving_keeps_the_shape_and_reverses():
    """FPE changes digits only, keeps separators and letters, and reveals exactly."""
    fpe = FormatPreserving(KEY)
    card = "4111-1111-1111-1111"
    masked = fpe.apply(card, field="card")
    assert masked != card and masked[4] == "-" and len(masked) == len(card)
    assert fpe.reveal(masked, field="card") == card
    assert fpe.apply(card, field="other") != masked
    alnum = FormatPreserving(KEY, alphabet="alphanumeric")
    code = "AB12-cd34"
    assert alnum.reveal(alnum.apply(code, field="code"), field="code") == code
    with pytest.raises(InvalidInput, match="1,000,000"):
        fpe.apply("PIN 1234", field="pin")
    with pytest.raises(ValueError, match="alphabet"):
        FormatPreserving(KEY, alphabet="hex")


@pytest.mark.parametrize(
    ("spec", "value", "expected"),
    [
        ("year", "1990-05-17", "1990"),
        ("month", "17.05.1990", "1990-05"),
        ("year", "not a date", None),
        ("prefix:3", "94107", "941**"),
        ("range:10", "37", "30-39"),
        ("range:5", "-3.5", "-5--1"),
        ("range:10", "nan", None),
        ("range:10", "abc", None),
    ],
)
def test_generalize(spec, value, expected):
    """Dates become years or months, codes prefixes, numbers ranges; others are suppressed."""
    assert Generalize.parse(spec).apply(value, field="f") == expected


@pytest.mark.parametrize("spec", ["decade", "prefix", "range:0", "range:x", "year:2"])
def test_generalize_refuses_unknown_specs(spec):
    """Unknown kinds and missing or bad sizes are refused with the accepted forms."""
    with pytest.raises(InvalidInput):
        Generalize.parse(spec)


def test_mask_text_replaces_every_finding():
    """Free text keeps its words and loses its personal data."""
    text = "Mail ann@example.com or call +44 20 7946 0958 today."
    masked = mask_text(text, PiiScanner().scan(text), operator=Tag())
    assert masked == "Mail <EMAIL> or call <PHONE> today."
