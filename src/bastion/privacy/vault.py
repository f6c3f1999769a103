"""Reversible tokenization: random tokens in place of values, the values in an encrypted vault.

A token says nothing about its value (it is random, unlike a pseudonym or FPE output);
the vault keeps each value encrypted with AES-256-GCM under a key the keyring wraps,
bound to its token and field, and finds it again by a keyed hash so that equal values
in one field always get the same token. Turning tokens back into values is
re-identification: callers go through :class:`~bastion.privacy.Reidentifier`, which asks
the policy engine and writes the audit record.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from collections.abc import Iterator, Sequence
from contextlib import suppress
from typing import Any

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bastion.errors import Conflict, CryptoError, InvalidInput, NotFound
from bastion.storage import Database, tables
from bastion.types import Clock

KEY_BYTES = 64  # 32 for AES-256-GCM, 32 for the lookup HMAC
_PREFIX = "tok_"
_NONCE = 12
_CHUNK = 500  # values per IN (…) query


class TokenVault:
    """Tokens for values, per field; values kept encrypted in the database."""

    def __init__(self, *, database: Database, key: bytes, clock: Clock) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"the vault key is {KEY_BYTES} bytes")
        self._db = database
        self._aead = AESGCM(key[:32])
        self._lookup_key = key[32:]
        self._clock = clock

    def __repr__(self) -> str:
        return "TokenVault()"

    def __getstate__(self) -> object:
        raise TypeError("TokenVault holds a key; it cannot be pickled")

    def apply(self, value: str, *, field: str) -> str | None:
        """The token of one value (the :class:`~bastion.privacy.Operator` interface)."""
        return self.tokenize([value], field=field)[0]

    def tokenize(self, values: Sequence[str], *, field: str) -> list[str]:
        """One token per value, the same token for equal values in ``field``."""
        lookups = [self._lookup(field, value) for value in values]
        known = self._known(field, set(lookups))
        fresh: dict[str, tuple[str, str]] = {}
        for lookup, value in zip(lookups, values, strict=True):
            if lookup not in known and lookup not in fresh:
                fresh[lookup] = (_PREFIX + _random_token(), value)
        if fresh:
            known |= self._store(field, fresh)
        return [known[lookup] for lookup in lookups]

    def detokenize(self, tokens: Sequence[str], *, field: str) -> list[str]:
        """The values behind ``tokens``.

        Raises:
            NotFound: a token is not in the vault for ``field``.
            CryptoError: a stored value does not decrypt (tampered, or moved to another token).
        """
        table = tables.vault_tokens
        rows = self._pairs(table.c.token, table.c.ciphertext, field, set(tokens))
        missing = [t for t in tokens if t not in rows]
        if missing:
            raise NotFound(f"{len(missing)} token(s) are not in the vault for field {field!r}.")
        return [self._decrypt(token, field, rows[token]) for token in tokens]

    def _known(self, field: str, lookups: set[str]) -> dict[str, str]:
        table = tables.vault_tokens
        return self._pairs(table.c.lookup, table.c.token, field, lookups)

    def _pairs(
        self, key: sa.Column[Any], value: sa.Column[Any], field: str, wanted: set[str]
    ) -> dict[Any, Any]:
        """``key → value`` for the rows of ``field`` whose key is wanted, in chunks."""
        found: dict[Any, Any] = {}
        for chunk in _chunks(sorted(wanted)):
            with self._db.transaction() as db:
                rows = db.execute(
                    sa.select(key, value)
                    .where(tables.vault_tokens.c.field == field)
                    .where(key.in_(chunk))
                )
                found.update((k, v) for k, v in rows)
        return found

    def _store(self, field: str, fresh: dict[str, tuple[str, str]]) -> dict[str, str]:
        now = self._clock()
        rows = [
            {
                "token": token,
                "field": field,
                "lookup": lookup,
                "ciphertext": self._encrypt(token, field, value),
                "created_at": now,
            }
            for lookup, (token, value) in fresh.items()
        ]
        try:
            with self._db.transaction() as db:
                db.execute(tables.vault_tokens.insert(), rows)
        except Conflict:
            # Another process tokenized some of these values first: keep its tokens.
            for row in rows:
                with suppress(Conflict), self._db.transaction() as db:
                    db.execute(tables.vault_tokens.insert(), [row])
            return self._known(field, set(fresh))
        return {lookup: token for lookup, (token, _) in fresh.items()}

    def _lookup(self, field: str, value: str) -> str:
        message = f"{field}\x00{value}".encode()
        return hmac.new(self._lookup_key, message, hashlib.sha256).hexdigest()

    def _encrypt(self, token: str, field: str, value: str) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, value.encode(), _binding(token, field))

    def _decrypt(self, token: str, field: str, blob: bytes) -> str:
        try:
            plain = self._aead.decrypt(blob[:_NONCE], blob[_NONCE:], _binding(token, field))
        except InvalidTag:
            raise CryptoError() from None
        return plain.decode()


def check_token(text: str) -> str:
    """``text`` if it has the shape of a vault token.

    Raises:
        InvalidInput: it does not.
    """
    body = text.removeprefix(_PREFIX)
    if not text.startswith(_PREFIX) or len(body) != 26 or not body.isalnum():  # noqa: PLR2004
        raise InvalidInput("That is not a vault token (tok_ and 26 letters or digits).")
    return text


def _random_token() -> str:
    return base64.b32encode(secrets.token_bytes(16)).decode().rstrip("=").lower()


def _binding(token: str, field: str) -> bytes:
    return f"bastion-vault|{field}|{token}".encode()


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]
