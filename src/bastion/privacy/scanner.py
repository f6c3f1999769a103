"""Find personal data in text: one compiled pass for candidates, then exact validators.

The scanner runs a single regular expression over the text. Its alternatives are
candidate *shapes* (an e-mail, a URL, a run of digits and separators, a hex address, an
IBAN, a titled name, …), every quantifier is bounded and no two quantifiers nest over
the same characters, so the pass is linear in the text even on hostile input. Each
candidate then goes to the validators (Luhn and issuer ranges, mod 97, libphonenumber,
SSA rules, the address parsers); context words raise or enable a finding only when
they stand as whole words in the few characters before it ("card" in "discard" counts
for nothing). Nothing is downloaded and no model is needed; a user who has a spaCy
pipeline can add its names through ``ner=SpacyNames(nlp)``.

>>> scanner = PiiScanner()
>>> text = "Mail ann@example.com or call +44 20 7946 0958."
>>> [(f.entity.value, text[f.start:f.end]) for f in scanner.scan(text)]
[('EMAIL', 'ann@example.com'), ('PHONE', '+44 20 7946 0958')]
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from bastion.privacy import validators as check


class Entity(StrEnum):
    """The kinds of personal data the scanner knows."""

    EMAIL = "EMAIL"
    PHONE = "PHONE"
    CREDIT_CARD = "CREDIT_CARD"
    IBAN = "IBAN"
    US_SSN = "US_SSN"
    IP_ADDRESS = "IP_ADDRESS"
    MAC_ADDRESS = "MAC_ADDRESS"
    URL = "URL"
    DATE_OF_BIRTH = "DATE_OF_BIRTH"
    NATIONAL_ID = "NATIONAL_ID"
    PERSON = "PERSON"


@dataclass(frozen=True, order=True)
class Finding:
    """One piece of personal data: where it is and how sure the scanner is.

    It holds offsets, never the text itself, so a finding can be logged safely.
    """

    start: int
    end: int
    entity: Entity
    score: float


NerModel = Callable[[str], Iterable[Finding]]

_TITLES = r"(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sir)\.?"
_STRONG = r"(?:Dear|[Nn]ame\s+is|[Nn]ame:|[Nn]amed|[Ss]igned\s+by)"
_WEAK = r"(?:[Pp]atient|[Cc]ustomer|[Ee]mployee|[Aa]pplicant|[Cc]ardholder|[Cc]ontact|[Ww]itness)"
_WORD = r"[A-ZÀ-ÖØ-Þ][^\W\d_]{0,24}(?:[-'\u2019][A-ZÀ-ÖØ-Þ][^\W\d_]{0,24}){0,2}"
_NAME = rf"{_WORD}(?:\s(?:(?:van|von|de|der|den|da|di|du|del|la|le)\s){{0,2}}{_WORD}){{0,3}}"
_MONTH = r"(?i:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]{0,6}\.?"
# Order matters: at each position the first alternative that matches wins.
_CANDIDATES = re.compile(
    rf"""
    (?<!\w)(?=[\w+(:])  # a candidate never starts inside a word: one check skips its insides
    (?:
      (?P<url>(?:https?://|ftp://|www\.)[^\s<>"'()\[\]{{}}]{{2,2000}})
    | (?P<email>[A-Za-z0-9][A-Za-z0-9._%+-]{{0,63}}
                @[A-Za-z0-9-]{{1,63}}(?:\.[A-Za-z0-9-]{{1,63}}){{1,8}}\b)
    | (?P<mac>[0-9A-Fa-f]{{2}}(?P<sep>[:-])[0-9A-Fa-f]{{2}}(?:(?P=sep)[0-9A-Fa-f]{{2}}){{4}}\b)
    | (?P<ipv6>(?<![:.])(?:[0-9A-Fa-f]{{0,4}}:){{2,7}}[0-9A-Fa-f]{{0,4}}(?![\w:]))
    | (?P<wdate>(?:\d{{1,2}}\s+{_MONTH}|{_MONTH}\s+\d{{1,2}},?)\s+\d{{4}}\b)
    | (?P<digits>(?<!\.)(?:\+|\(\+?)?\d[\d().\-/ ]{{4,40}}\d(?![\w]|\.\d))
    | (?P<natid>(?:[A-Z]{{6}}\d{{2}}[A-Z]\d{{2}}[A-Z]\d{{3}}[A-Z]|[XYZ]?\d{{7,8}}[A-Z])\b)
    | (?P<iban>[A-Z]{{2}}\d{{2}}(?:\ ?[A-Z0-9]{{4}}){{2,7}}(?:\ ?[A-Z0-9]{{1,3}})?\b)
    | (?:{_TITLES}\s+(?P<titled>{_NAME}))
    | (?:{_STRONG}:?\s+(?P<named>{_NAME}))
    | (?:{_WEAK}:?\s+(?P<weak>{_WORD}\s(?:{_NAME})))
    )
    """,
    re.VERBOSE,
)

_CONTEXT: dict[Entity, re.Pattern[str]] = {
    entity: re.compile(rf"\b(?:{words})\b", re.IGNORECASE)
    for entity, words in {
        Entity.PHONE: r"phone|tel|telephone|call|mobile|cell|fax|contact|number|reach",
        Entity.CREDIT_CARD: r"card|credit|debit|visa|mastercard|amex|payment|pan",
        Entity.US_SSN: r"ssn|social\s+security|ss\s*#|taxpayer",
        Entity.DATE_OF_BIRTH: r"born|birth|birthday|birthdate|dob|d\.o\.b|date\s+of\s+birth",
        Entity.IBAN: r"iban|account|bank|transfer|wire",
        Entity.NATIONAL_ID: r"bsn|burgerservicenummer|nhs|idnr|identifikationsnummer|steuer-?id"
        r"|national\s+id|identity\s+number|id\s+number|personal\s+number",
    }.items()
}
_MAX_PARTS = 12  # space-separated groups of one run tried as separate values
_MAX_GROUPS = 6  # groups one value may have ("+33 1 23 45 67 89")
_WINDOW = 1 << 20  # characters of one line scanned at once
_OVERLAP = 4096  # longer than any candidate the pattern can match
_SENTENCE_END = re.compile(r"[.!?;]\s|\n")  # context words count within the same clause
_TRIM_URL = ".,;:!?'\""
_SCORE_VALIDATED = 0.95  # a checksum or a numbering plan confirmed it
_SCORE_SHAPED = 0.85  # an unambiguous shape with sound contents
_SCORE_CONTEXT = 0.6  # a plausible shape that needs the words around it
_FIXED: dict[str, tuple[Entity | None, float]] = {
    "email": (Entity.EMAIL, _SCORE_SHAPED),
    "url": (Entity.URL, _SCORE_CONTEXT),
    "mac": (Entity.MAC_ADDRESS, _SCORE_SHAPED),
}
_CHECKED: dict[str, tuple[Callable[[str], bool], Entity, float]] = {
    "ipv6": (check.is_ip_address, Entity.IP_ADDRESS, _SCORE_SHAPED),
    "iban": (check.is_iban, Entity.IBAN, _SCORE_VALIDATED),
    "natid": (check.is_letter_national_id, Entity.NATIONAL_ID, _SCORE_VALIDATED),
}
_NAME_SCORES = {"titled": _SCORE_SHAPED, "named": 0.75, "weak": _SCORE_CONTEXT}


class PiiScanner:
    """Finds personal data in text, with offsets and scores, offline and in linear time.

    Args:
        entities: the kinds to report (default: all).
        regions: where national phone numbers (without a leading ``+``) may be from.
        threshold: findings scoring below it are dropped.
        ner: an optional named-entity model adding ``PERSON`` findings.
    """

    def __init__(
        self,
        *,
        entities: Iterable[Entity] | None = None,
        regions: tuple[str, ...] = ("US", "GB", "DE", "FR", "IN"),
        threshold: float = 0.5,
        ner: NerModel | None = None,
    ) -> None:
        if not 0 < threshold <= 1:
            raise ValueError("threshold must be in (0, 1]")
        self.entities = frozenset(Entity if entities is None else entities)
        self.regions = regions
        self.threshold = threshold
        self._ner = ner

    def scan(self, text: str) -> list[Finding]:
        """Every finding in ``text``, in order, overlaps resolved (higher score wins)."""
        found = [f for f in self._candidates(text) if f.score >= self.threshold]
        if self._ner is not None and Entity.PERSON in self.entities:
            found.extend(f for f in self._ner(text) if f.score >= self.threshold)
        return _without_overlaps(found)

    def scan_lines(self, lines: Iterable[str]) -> Iterator[tuple[int, str, Finding]]:
        """Findings line by line: (line number from 1, matched text, finding on that line).

        Very long lines are scanned in overlapping windows, so memory stays bounded by the
        window, not by whatever a file puts on one line.
        """
        for number, line in enumerate(lines, start=1):
            for offset in range(0, max(len(line), 1), _WINDOW):
                window = line[offset : offset + _WINDOW + _OVERLAP]
                for finding in self.scan(window):
                    if finding.start < _WINDOW or offset + _WINDOW >= len(line):
                        moved = Finding(
                            finding.start + offset,
                            finding.end + offset,
                            finding.entity,
                            finding.score,
                        )
                        yield number, window[finding.start : finding.end], moved

    def _candidates(self, text: str) -> Iterator[Finding]:
        for match in _CANDIDATES.finditer(text):
            kind = match.lastgroup if match.lastgroup != "sep" else "mac"
            if kind in _NAME_SCORES:
                if Entity.PERSON in self.entities:
                    score = _NAME_SCORES[kind]
                    yield Finding(*match.span(kind), Entity.PERSON, score)
                continue
            start, end = match.span()
            if kind == "url":
                end = start + len(match.group().rstrip(_TRIM_URL))
            yield from self._classify(kind or "", text, start, end)

    def _classify(self, kind: str, text: str, start: int, end: int) -> Iterator[Finding]:
        span = text[start:end]
        entity, score = self._single(kind, text, start, span)
        if entity is not None:
            if entity in self.entities:
                yield Finding(start, end, entity, score)
        elif " " in span and kind in {"digits", "iban"}:
            yield from self._split(kind, text, start, span)

    def _split(self, kind: str, text: str, start: int, span: str) -> Iterator[Finding]:
        """Findings in a run that holds several values ("call 555 0100 or 555 0199")."""
        parts = [(m.start(), m.end()) for m in re.finditer(r"\S+", span)][:_MAX_PARTS]
        i = 0
        while i < len(parts):
            if parts[i][1] - parts[i][0] < 2:  # noqa: PLR2004 - no value starts with a lone digit
                i += 1
                continue
            for j in range(min(len(parts), i + _MAX_GROUPS), i, -1):
                lo, hi = start + parts[i][0], start + parts[j - 1][1]
                entity, score = self._single(kind, text, lo, text[lo:hi])
                if entity is not None:
                    if entity in self.entities:
                        yield Finding(lo, hi, entity, score)
                    i = j
                    break
            else:
                i += 1

    def _single(self, kind: str, text: str, start: int, span: str) -> tuple[Entity | None, float]:
        if kind in _FIXED:
            return _FIXED[kind]
        if kind in _CHECKED:
            test, entity, score = _CHECKED[kind]
            return (entity, score) if test(span) else _NONE
        before = _SENTENCE_END.split(text[max(0, start - 48) : start])[-1]
        if kind == "wdate":
            return _birth_date(span, before)
        return self._digits(span, before)

    def _digits(self, span: str, before: str) -> tuple[Entity | None, float]:
        if not 4 <= len(check.digits_of(span)) <= 19:  # noqa: PLR2004 - an IPv4 … a card
            return _NONE
        if check.is_payment_card(span):
            return Entity.CREDIT_CARD, _SCORE_VALIDATED
        if check.is_us_ssn(span):
            near = _near(Entity.US_SSN, before)
            if near or "-" in span:  # nine bare digits are an SSN only where the text says so
                return Entity.US_SSN, _SCORE_VALIDATED if near else _SCORE_SHAPED
        if check.is_ip_address(span):
            return Entity.IP_ADDRESS, _SCORE_SHAPED
        if check.parse_date(span) is not None:
            return _birth_date(span, before)
        return self._numbered(span, before)

    def _numbered(self, span: str, before: str) -> tuple[Entity | None, float]:
        """A national identifier where the words before say so, else maybe a phone number."""
        if _near(Entity.NATIONAL_ID, before) and check.is_digit_national_id(span):
            return Entity.NATIONAL_ID, _SCORE_VALIDATED
        return self._phone(span, before)

    def _phone(self, span: str, before: str) -> tuple[Entity | None, float]:
        numbers = check.phone_numbers(span, regions=self.regions)
        first = next(numbers, None)
        if first is None:
            return _NONE
        if _near(Entity.PHONE, before):
            return Entity.PHONE, _SCORE_VALIDATED
        # A valid number with no context must at least be written the way numbers are.
        grouped = any(check.is_grouped_like_phone(span, n) for n in (first, *numbers))
        return Entity.PHONE, 0.75 if grouped else 0.4


_NONE: tuple[Entity | None, float] = (None, 0.0)


def _near(entity: Entity, before: str) -> bool:
    return _CONTEXT[entity].search(before) is not None


def _birth_date(span: str, before: str) -> tuple[Entity | None, float]:
    if check.parse_date(span) is None or not _near(Entity.DATE_OF_BIRTH, before):
        return _NONE
    return Entity.DATE_OF_BIRTH, _SCORE_SHAPED


def _without_overlaps(findings: list[Finding]) -> list[Finding]:
    kept: list[Finding] = []
    for finding in sorted(findings):
        if kept and finding.start < kept[-1].end:
            last = kept[-1]
            if (finding.score, finding.end - finding.start) > (last.score, last.end - last.start):
                kept[-1] = finding
            continue
        kept.append(finding)
    return kept


class SpacyNames:
    """Names from a spaCy pipeline the user has installed (Bastion never downloads one).

    >>> import spacy  # doctest: +SKIP
    >>> scanner = PiiScanner(ner=SpacyNames(spacy.load("en_core_web_sm")))  # doctest: +SKIP
    """

    def __init__(self, nlp: Any, *, score: float = _SCORE_SHAPED) -> None:
        self._nlp = nlp
        self._score = score

    def __call__(self, text: str) -> Iterator[Finding]:
        """``PERSON`` findings for the pipeline's person entities."""
        for ent in self._nlp(text).ents:
            if ent.label_ == "PERSON":
                yield Finding(ent.start_char, ent.end_char, Entity.PERSON, self._score)
