"""Masking operators: what replaces a piece of personal data.

Every operator is deterministic, so equal inputs mask to equal outputs (joins and
counts survive) and a table can be masked one distinct value at a time. ``field`` names
where the value came from (a column, or an entity type in free text): keyed operators
mix it in, so the same e-mail in two columns gives unrelated pseudonyms unless both
columns say the same field. An operator returns ``None`` when it cannot mask a value
safely (a "date" that is not one); tables then hold a null there and count it.

>>> PartialMask(keep_last=4).apply("4111 1111 1111 1111", field="card")
'**** **** **** 1111'
>>> Generalize.parse("range:10").apply("37", field="age")
'30-39'
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from bastion.errors import InvalidInput
from bastion.privacy import validators
from bastion.privacy.fpe import FF1
from bastion.privacy.scanner import Finding


class Operator(Protocol):
    """Replaces one value; ``None`` means the value is suppressed."""

    def apply(self, value: str, *, field: str) -> str | None:
        """The masked form of ``value`` found in ``field``."""
        ...


class Reversible(Operator, Protocol):
    """An operator whose output a holder of its key can turn back into the input."""

    def reveal(self, value: str, *, field: str) -> str:
        """The original of a masked ``value``; raises InvalidInput if it is not one."""
        ...


@dataclass(frozen=True)
class Redact:
    """Removes the value (an empty string)."""

    def apply(self, value: str, *, field: str) -> str | None:
        """An empty string."""
        return ""


@dataclass(frozen=True)
class Tag:
    """Replaces the value with its field's name in angle brackets: ``<EMAIL>``."""

    def apply(self, value: str, *, field: str) -> str | None:
        """``<FIELD>``."""
        return f"<{field}>"


@dataclass(frozen=True)
class PartialMask:
    """Hides letters and digits except the first and last few; separators stay."""

    keep_first: int = 0
    keep_last: int = 4
    mask: str = "*"

    def apply(self, value: str, *, field: str) -> str | None:
        """``value`` with its hidden characters replaced by ``mask``."""
        positions = [i for i, char in enumerate(value) if char.isalnum()]
        shown = set(positions[: self.keep_first])
        if self.keep_last:
            shown.update(positions[-self.keep_last :])
        # Keep at least half hidden: a short value must not come out whole.
        if len(shown) * 2 > len(positions):
            shown = set(positions[len(positions) - len(positions) // 4 :])
        return "".join(
            char if i in shown or not char.isalnum() else self.mask for i, char in enumerate(value)
        )


class Pseudonym:
    """A keyed HMAC-SHA-256 pseudonym: stable across runs and files for one key, not reversible."""

    def __init__(self, key: bytes, *, length: int = 16) -> None:
        if len(key) < 32:  # noqa: PLR2004
            raise ValueError("pseudonym keys are at least 32 bytes")
        if not 8 <= length <= 52:  # noqa: PLR2004
            raise ValueError("pseudonyms are 8 to 52 characters")
        self._key = key
        self.length = length

    def __repr__(self) -> str:
        return f"Pseudonym(length={self.length})"

    def __getstate__(self) -> object:
        raise TypeError("Pseudonym holds a key; it cannot be pickled")

    def apply(self, value: str, *, field: str) -> str | None:
        """``FIELD_`` and the first characters of the base32 HMAC of (field, value)."""
        digest = hmac.new(self._key, f"{field}\x00{value}".encode(), hashlib.sha256).digest()
        return f"{field}_{base64.b32encode(digest).decode()[: self.length]}"


class FormatPreserving:
    """FF1 encryption of a value's digits (or letters and digits); everything else stays.

    The field is the FF1 tweak, so the same card number in two columns encrypts
    differently unless the columns share a field name.
    """

    def __init__(self, key: bytes, *, alphabet: str = "digits") -> None:
        choices = {"digits": "0123456789", "alphanumeric": _ALNUM}
        if alphabet not in choices:
            raise ValueError("alphabet is 'digits' or 'alphanumeric'")
        self.alphabet = alphabet
        self._ff1 = FF1(key, alphabet=choices[alphabet])
        self._symbols = frozenset(choices[alphabet])

    def __repr__(self) -> str:
        return f"FormatPreserving(alphabet={self.alphabet!r})"

    def __getstate__(self) -> object:
        raise TypeError("FormatPreserving holds a key; it cannot be pickled")

    def apply(self, value: str, *, field: str) -> str | None:
        """The value with its symbols FF1-encrypted in place.

        Raises:
            InvalidInput: fewer symbols than FF1's minimum domain allows.
        """
        return self._map(value, field, self._ff1.encrypt)

    def reveal(self, value: str, *, field: str) -> str:
        """The value with its symbols FF1-decrypted in place."""
        return self._map(value, field, self._ff1.decrypt)

    def _map(self, value: str, field: str, cipher: Callable[..., str]) -> str:
        slots = [i for i, char in enumerate(value) if char in self._symbols]
        out = list(value)
        result = cipher("".join(value[i] for i in slots), tweak=field.encode())
        for i, char in zip(slots, result, strict=True):
            out[i] = char
        return "".join(out)


_ALNUM = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class Generalize:
    """Coarser values: dates to a year or month, codes to a prefix, numbers to a range."""

    kind: str  # "year", "month", "prefix" or "range"
    size: int = 0  # characters kept for "prefix", width for "range"

    @classmethod
    def parse(cls, spec: str) -> Generalize:
        """``year``, ``month``, ``prefix:N`` or ``range:W``.

        Raises:
            InvalidInput: an unknown kind or a missing or non-positive size.
        """
        kind, _, size = spec.partition(":")
        sized = kind in {"prefix", "range"}
        if kind not in {"year", "month", "prefix", "range"} or sized != bool(size):
            raise InvalidInput(f"Unknown generalization {spec!r}: year, month, prefix:N, range:W.")
        if sized and (not size.isdigit() or int(size) < 1):
            raise InvalidInput(f"The size in {spec!r} must be a positive integer.")
        return cls(kind, int(size or 0))

    def apply(self, value: str, *, field: str) -> str | None:
        """The generalized value, or ``None`` when ``value`` is not of the expected kind."""
        text = value.strip()
        if self.kind == "prefix":
            return text[: self.size] + "*" * max(0, len(text) - self.size)
        if self.kind == "range":
            try:
                number = float(text)
            except ValueError:
                return None
            if not math.isfinite(number):
                return None
            low = math.floor(number / self.size) * self.size
            return f"{low}-{low + self.size - 1}"
        date = validators.parse_date(text)
        if date is None:
            return None
        return f"{date.year}" if self.kind == "year" else f"{date.year}-{date.month:02d}"


def mask_text(text: str, findings: Sequence[Finding], *, operator: Operator) -> str:
    """``text`` with every finding replaced by ``operator`` (the entity is the field).

    ``findings`` must be in order and must not overlap, as :meth:`PiiScanner.scan` gives them.
    """
    out, last = [], 0
    for finding in findings:
        out.append(text[last : finding.start])
        out.append(operator.apply(text[finding.start : finding.end], field=finding.entity) or "")
        last = finding.end
    out.append(text[last:])
    return "".join(out)
