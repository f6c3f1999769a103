"""The PII scanner: each entity, context as whole words, hostile input, long lines."""

import pytest

from bastion.privacy import Entity, Finding, PiiScanner
from bastion.privacy.corpus import evaluate, generate


def found(text, **options):
    return [(f.entity, text[f.start : f.end]) for f in PiiScanner(**options).scan(text)]


@pytest.mark.parametrize(
    ("text", "entity", "value"),
    [
        ("Mail ann.lee+x@mail.example.co.uk today", Entity.EMAIL, "ann.lee+x@mail.example.co.uk"),
        ("Call +44 20 7946 0958 now", Entity.PHONE, "+44 20 7946 0958"),
        ("phone (415) 555-2671.", Entity.PHONE, "(415) 555-2671"),
        ("Card 4111 1111 1111 1111 expired", Entity.CREDIT_CARD, "4111 1111 1111 1111"),
        ("Pay to DE89 3704 0044 0532 0130 00 BANK", Entity.IBAN, "DE89 3704 0044 0532 0130 00"),
        ("SSN 536-22-1234 on file", Entity.US_SSN, "536-22-1234"),
        ("from 192.168.1.20, then", Entity.IP_ADDRESS, "192.168.1.20"),
        ("host 2001:db8::1 down", Entity.IP_ADDRESS, "2001:db8::1"),
        ("MAC 00:1A:2B:3C:4D:5E seen", Entity.MAC_ADDRESS, "00:1A:2B:3C:4D:5E"),
        ("See https://example.org/a?b=1.", Entity.URL, "https://example.org/a?b=1"),
        ("She was born on 17.05.1990 in Lyon", Entity.DATE_OF_BIRTH, "17.05.1990"),
        ("DOB: March 5, 1990", Entity.DATE_OF_BIRTH, "March 5, 1990"),
        ("Codice fiscale RCCMNL83S18D969H ok", Entity.NATIONAL_ID, "RCCMNL83S18D969H"),
        ("DNI 12345678Z on file", Entity.NATIONAL_ID, "12345678Z"),
        ("NIE X1234567L.", Entity.NATIONAL_ID, "X1234567L"),
        ("BSN 111222333 verified", Entity.NATIONAL_ID, "111222333"),
        ("NHS number 943 476 5919.", Entity.NATIONAL_ID, "943 476 5919"),
        ("Steuer-IdNr 36574261809", Entity.NATIONAL_ID, "36574261809"),
        ("Dear Zoë O'Brien-Smith,", Entity.PERSON, "Zoë O'Brien-Smith"),
        ("Dr. Vincent van Gogh will see you", Entity.PERSON, "Vincent van Gogh"),
    ],
)
def test_each_entity(text, entity, value):
    """Every entity is found with exact offsets."""
    assert found(text) == [(entity, value)]


def test_context_counts_only_as_whole_words_in_the_same_clause():
    """Bare nine digits are an SSN after "SSN", not after "lessn" or a previous sentence's "SSN"."""
    assert found("SSN 536221234") == [(Entity.US_SSN, "536221234")]
    assert found("the lessn 536221234") == []
    assert found("My SSN is secret. Order 536221234 shipped.") == []
    assert found("born 1990-05-17") == [(Entity.DATE_OF_BIRTH, "1990-05-17")]
    assert found("reborn 1990-05-17") == []
    assert found("order 111222333 shipped") == []  # a valid BSN checksum, but no context


def test_distractors_are_not_findings():
    """Prices, times, versions, ordinary dates and Luhn-failing numbers are not PII."""
    text = (
        "Order 5545004 costs $1,234.56 at 10:30; version 2.14.9 ships on 2026-11-17. "
        "Tracking 1234567812345678 is late. Visit Paris with Team Alpha."
    )
    assert found(text) == []


def test_several_values_in_one_run_of_digits():
    """Two numbers separated by a space are two findings, not one invalid run."""
    text = "call 020 7946 0958 0161 496 0000"
    assert [e for e, _ in found(text, regions=("GB",))] == [Entity.PHONE, Entity.PHONE]


def test_entity_filter_threshold_and_bad_threshold():
    """Only the asked-for entities are reported; URLs (0.6) drop below a 0.7 threshold."""
    text = "ann@example.com https://example.org 4111111111111111"
    assert [e for e, _ in found(text, entities=[Entity.EMAIL])] == [Entity.EMAIL]
    assert Entity.URL not in [e for e, _ in found(text, threshold=0.7)]
    with pytest.raises(ValueError, match="threshold"):
        PiiScanner(threshold=0)


def test_ner_hook_adds_names_and_overlaps_resolve():
    """A user-supplied NER model adds PERSON findings; overlapping findings keep the stronger."""
    text = "Ana called from 192.168.1.20"

    def ner(value):
        yield Finding(0, 3, Entity.PERSON, 0.9)
        yield Finding(16, 20, Entity.PERSON, 0.55)  # overlaps the address, weaker

    assert found(text, ner=ner) == [
        (Entity.PERSON, "Ana"),
        (Entity.IP_ADDRESS, "192.168.1.20"),
    ]


@pytest.mark.parametrize(
    "hostile",
    [
        "1 " * 100_000,
        "a@" * 100_000,
        ":" * 100_000,
        "Dear " * 40_000,
        "4" * 100_000,
        "+(" * 100_000,
    ],
)
def test_hostile_input_is_scanned_in_linear_time(hostile):
    """Inputs that make backtracking patterns explode finish (each pattern is bounded)."""
    PiiScanner().scan(hostile)


def test_long_lines_are_scanned_in_windows(monkeypatch):
    """A finding across a window boundary is reported once, at its offset in the line."""
    import bastion.privacy.scanner as module

    monkeypatch.setattr(module, "_WINDOW", 1000)
    line = "x" * 990 + " ann@example.com " + "y" * 3000 + " 4111111111111111"
    results = list(PiiScanner().scan_lines([line]))
    assert [(n, v, f.start) for n, v, f in results] == [
        (1, "ann@example.com", 991),
        (1, "4111111111111111", line.index("4111")),
    ]


def test_scores_on_the_generated_corpus():
    """Per-entity F1 on 1200 generated sentences: ≥ 0.97 for pattern entities, ≥ 0.7 names."""
    scores = evaluate(PiiScanner().scan, generate(1200, seed=11))
    for entity, score in scores.items():
        floor = 0.7 if entity is Entity.PERSON else 0.97
        assert score.f1 >= floor, (entity, score)
        assert score.true_positives > 50, entity


def test_the_corpus_is_reproducible():
    """The same seed gives the same corpus; gold spans point at their entities."""
    first, second = generate(50, seed=3), generate(50, seed=3)
    assert first == second
    assert any(
        span.entity is Entity.EMAIL and "@" in item.text[span.start : span.end]
        for item in first
        for span in item.spans
    )
