"""A labelled personal-data corpus, generated from a seed, and precision/recall/F1 on it.

Sentences come from templates filled by Faker (and libphonenumber for phone numbers
that exist in a numbering plan), so every entity has a known span. Distractors that a
careless scanner flags are mixed in: order and tracking numbers that fail Luhn, prices,
times, version strings, dates that are not birth dates, capitalized words that are not
names, and context words inside other words ("discard", "telephoto"). A finding counts
as a true positive when it has the gold entity and overlaps the gold span (matched one
to one), so scanners that draw boundaries a little differently are compared fairly.

Faker is a development dependency (``pip install 'bastion[dev]'``).

Faker is kept to card numbers a network issues: not its obsolete 15-digit JCB range,
its JCB numbers below 3528, or its Maestro numbers that start with 0 or 6390.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import phonenumbers
from phonenumbers import PhoneNumberType

from bastion.errors import ConfigError
from bastion.privacy.scanner import Entity, Finding
from bastion.privacy.validators import is_luhn_valid

Scan = Callable[[str], Iterable[Finding]]


@dataclass(frozen=True)
class Labelled:
    """A sentence and the gold spans of the personal data in it."""

    text: str
    spans: tuple[Finding, ...]


@dataclass(frozen=True)
class Score:
    """Precision, recall and F1 of one entity over a corpus."""

    entity: Entity
    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def precision(self) -> float:
        """Share of findings that are right."""
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        """Share of gold spans that were found."""
        gold = self.true_positives + self.false_negatives
        return self.true_positives / gold if gold else 1.0

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


_TEMPLATES: dict[Entity, tuple[str, ...]] = {
    Entity.EMAIL: (
        "Please write to {} before Friday.",
        "Contact: {}",
        "The invoice went to {}, copy to the team.",
        "{} asked to be removed from the list.",
    ),
    Entity.PHONE: (
        "Call me on {} after six.",
        "Phone: {}",
        "You can reach the office at {} during working hours.",
        "Her mobile {} is switched off.",
        "Left a voicemail, number {}.",
        "The courier will ring {} on arrival.",
    ),
    Entity.CREDIT_CARD: (
        "Card number {} was declined.",
        "Charge it to {} please.",
        "Payment with visa {} expired.",
        "Refund issued to {} yesterday.",
    ),
    Entity.IBAN: (
        "Transfer the deposit to IBAN {}.",
        "Account {} belongs to the landlord.",
        "Wire the fee to {} by Monday.",
    ),
    Entity.US_SSN: (
        "SSN: {}",
        "His social security number is {}.",
        "Applicant provided {} on the form.",
    ),
    Entity.IP_ADDRESS: (
        "Login from {} was blocked.",
        "The request came from {} at night.",
        "Whitelist {} for the VPN.",
    ),
    Entity.MAC_ADDRESS: (
        "Device {} joined the network.",
        "Unknown MAC {} seen on port 4.",
    ),
    Entity.URL: (
        "See her profile at {} for details.",
        "Shared link: {}",
        "Old homepage {} is down.",
    ),
    Entity.DATE_OF_BIRTH: (
        "Patient born on {} in Leeds.",
        "DOB: {}",
        "Date of birth {} confirmed by phone.",
        "His birthday is {}, send a card.",
    ),
    Entity.NATIONAL_ID: (
        "National ID number {} on file.",
        "Her ID number is {}.",
        "Her personal number {} was verified at the desk.",
    ),
    Entity.PERSON: (
        "Dear {},",
        "My name is {} and I need help.",
        "Dr. {} will see you now.",
        "Signed by {} on behalf of the board.",
        "Patient {} was admitted overnight.",
        "{} called about the delivery.",
        "Thanks to {} for the quick reply.",
    ),
}

_DISTRACTORS: tuple[str, ...] = (
    "Order #{order} ships in {days} days.",
    "Tracking number {tracking} is not active.",
    "The total is ${amount}, due at 10:{minute}.",
    "Upgrade to version {version} before the meeting on {meeting}.",
    "Room {room} on floor {floor} is free.",
    "We discard {tracking} after the audit.",
    "The telephoto lens costs {amount} euros.",
    "Visit Paris in {month} with Team Alpha.",
    "Reference {order}-{room} closed.",
)


def generate(sentences: int, *, seed: int) -> list[Labelled]:
    """``sentences`` labelled sentences, the same for the same seed.

    Raises:
        ConfigError: Faker is not installed.
    """
    try:
        from faker import Faker  # noqa: PLC0415 - a development dependency
    except ImportError:
        raise ConfigError("The PII corpus needs Faker: pip install 'bastion[dev]'.") from None
    rng = random.Random(seed)  # noqa: S311 - a reproducible corpus, not a secret
    fake = Faker(["en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL"])
    fake.seed_instance(seed)
    makers = _makers(fake, rng)
    corpus = []
    for index in range(sentences):
        parts = [_sentence(rng, makers) for _ in range(rng.randint(1, 3))]
        if index % 4 == 0:
            parts.insert(rng.randint(0, len(parts)), _distractor(rng))
        corpus.append(_join(parts))
    return corpus


def evaluate(scan: Scan, corpus: Sequence[Labelled]) -> dict[Entity, Score]:
    """Per-entity scores of ``scan`` on ``corpus`` (overlap matching, one to one)."""
    counts = {entity: [0, 0, 0] for entity in Entity}
    for item in corpus:
        gold = list(item.spans)
        for finding in scan(item.text):
            hit = next(
                (
                    g
                    for g in gold
                    if g.entity == finding.entity
                    and finding.start < g.end
                    and g.start < finding.end
                ),
                None,
            )
            if hit is None:
                counts[finding.entity][1] += 1
            else:
                counts[finding.entity][0] += 1
                gold.remove(hit)
        for missed in gold:
            counts[missed.entity][2] += 1
    return {entity: Score(entity, *numbers) for entity, numbers in counts.items()}


def _sentence(rng: random.Random, makers: dict[Entity, Callable[[], str]]) -> Labelled:
    entity = rng.choice(list(_TEMPLATES))
    template = rng.choice(_TEMPLATES[entity])
    value = makers[entity]()
    start = template.index("{}")
    return Labelled(
        template.replace("{}", value, 1),
        (Finding(start, start + len(value), entity, 1.0),),
    )


def _distractor(rng: random.Random) -> Labelled:
    tracking = str(rng.randrange(10**15, 10**16))
    while is_luhn_valid(tracking):
        tracking = str(rng.randrange(10**15, 10**16))
    text = rng.choice(_DISTRACTORS).format(
        order=rng.randrange(10**5, 10**7),
        days=rng.randint(2, 9),
        tracking=tracking,
        amount=f"{rng.randint(1, 9)},{rng.randint(100, 999)}.{rng.randint(10, 99)}",
        minute=rng.randint(10, 59),
        version=f"{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}",
        meeting=f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        room=rng.randint(100, 999),
        floor=rng.randint(1, 30),
        month=rng.choice(["May", "June", "April"]),
    )
    return Labelled(text, ())


def _join(parts: list[Labelled]) -> Labelled:
    text, spans = "", list[Finding]()
    for part in parts:
        if text:
            text += " "
        spans.extend(
            Finding(s.start + len(text), s.end + len(text), s.entity, 1.0) for s in part.spans
        )
        text += part.text
    return Labelled(text, tuple(spans))


def _makers(fake: Any, rng: random.Random) -> dict[Entity, Callable[[], str]]:
    return {
        Entity.EMAIL: partial(_one_of, rng, [fake.email, fake.free_email, fake.company_email]),
        Entity.PHONE: lambda: _phone(rng),
        Entity.CREDIT_CARD: lambda: _card(fake, rng),
        Entity.IBAN: lambda: _spaced(fake.iban(), rng),
        Entity.US_SSN: fake["en_US"].ssn,
        Entity.IP_ADDRESS: partial(_one_of, rng, [fake.ipv4, fake.ipv4_public, fake.ipv6]),
        Entity.MAC_ADDRESS: lambda: _mac(fake.mac_address(), rng),
        Entity.URL: partial(_one_of, rng, [fake.url, fake.uri]),
        Entity.DATE_OF_BIRTH: lambda: _birth_date(fake.date_of_birth(), rng),
        Entity.NATIONAL_ID: partial(
            _one_of,
            rng,
            [fake["it_IT"].ssn, fake["es_ES"].nif, fake["nl_NL"].ssn, partial(_nhs, rng)],
        ),
        Entity.PERSON: lambda: fake.name() if rng.random() < 0.7 else fake.last_name(),  # noqa: PLR2004
    }


def _one_of(rng: random.Random, makers: list[Callable[[], str]]) -> str:
    return rng.choice(makers)()


def _nhs(rng: random.Random) -> str:
    """A UK NHS number: nine digits and a mod-11 check digit (never 10), as 3-3-4."""
    while True:
        digits = [rng.randint(0, 9) for _ in range(9)]
        check = 11 - sum(d * (10 - i) for i, d in enumerate(digits)) % 11
        if check != 10:  # noqa: PLR2004
            number = "".join(map(str, digits)) + str(check % 11)
            return f"{number[:3]} {number[3:6]} {number[6:]}"


def _phone(rng: random.Random) -> str:
    region = rng.choice(["US", "GB", "DE", "FR", "IN"])
    kind = rng.choice([PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE])
    example = phonenumbers.example_number_for_type(region, kind)
    if example is None:
        return _phone(rng)
    while True:
        national = str(example.national_number)
        tail = "".join(str(rng.randint(0, 9)) for _ in range(4))
        number = phonenumbers.parse(f"+{example.country_code}{national[:-4]}{tail}")
        if phonenumbers.is_valid_number(number):
            break
    style = rng.choice(
        [
            phonenumbers.PhoneNumberFormat.E164,
            phonenumbers.PhoneNumberFormat.INTERNATIONAL,
            phonenumbers.PhoneNumberFormat.NATIONAL,
        ]
    )
    return str(phonenumbers.format_number(number, style))


def _card(fake: Any, rng: random.Random) -> str:
    kinds = ["visa16", "visa13", "visa19", "mastercard", "amex", "discover", "diners", "jcb16"]
    kinds.append("maestro")
    while True:
        number: str = fake.credit_card_number(card_type=rng.choice(kinds))
        if not number.startswith(("0", "6390")) and not "35" <= number[:4] < "3528":
            break
    style = rng.random()
    if style < 0.4:  # noqa: PLR2004
        return number
    sep = " " if style < 0.8 else "-"  # noqa: PLR2004
    return sep.join(number[i : i + 4] for i in range(0, len(number), 4))


def _spaced(code: str, rng: random.Random) -> str:
    if rng.random() < 0.5:  # noqa: PLR2004
        return code
    return " ".join(code[i : i + 4] for i in range(0, len(code), 4))


def _mac(address: str, rng: random.Random) -> str:
    return address.upper().replace(":", "-") if rng.random() < 0.3 else address  # noqa: PLR2004


def _birth_date(date: object, rng: random.Random) -> str:
    formats = ["%Y-%m-%d", "%m/%d/%Y", "%d.%m.%Y", "%B %d, %Y", "%d %B %Y", "%b %d %Y"]
    return format(date, rng.choice(formats))
