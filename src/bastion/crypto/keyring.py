"""Key-encryption keys with versions: the keyring that wraps every data key.

A :class:`Keyring` names one ring (``key_id``) whose versions live in a KMS backend
(a passphrase-protected local keystore, or an HSM over PKCS#11); the database holds
the ring's metadata: the primary version, the minimum version still allowed to
decrypt, and how many data keys each version has wrapped.

>>> keys = StaticKeys.random()
>>> data_key, wrapped = keys.new_data_key()
>>> keys.unwrap(wrapped) == data_key
True
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from threading import RLock
from typing import Protocol

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bastion.errors import ConfigError, Conflict, CryptoError, NotFound
from bastion.storage import Database, tables
from bastion.types import Clock

DATA_KEY_BYTES = 32
# AES-GCM with random 96-bit nonces is safe for 2^32 encryptions under one key (NIST
# SP 800-38D §8.3); each key version wraps at most a quarter of that, then rotates.
MAX_WRAPS_PER_VERSION = 2**30
_RESERVATION = 1024  # wraps counted in the database ahead of use, so a crash over-counts


@dataclass(frozen=True)
class WrappedKey:
    """A data key wrapped by one version of a keyring."""

    key_id: str
    version: int
    ciphertext: bytes


class KeyProvider(Protocol):
    """What envelope encryption needs from a keyring."""

    def new_data_key(self) -> tuple[bytes, WrappedKey]:
        """A fresh random data key and its wrapped form."""
        ...

    def unwrap(self, wrapped: WrappedKey) -> bytes:
        """The data key inside ``wrapped``; raises CryptoError if it cannot be had."""
        ...

    def rewrap(self, wrapped: WrappedKey) -> WrappedKey:
        """The same data key wrapped by the current primary version."""
        ...


class KekBackend(Protocol):
    """Where key-encryption keys live; their material never leaves an HSM backend."""

    name: str

    def generate(self, version: int) -> None:
        """Create key version ``version``."""
        ...

    def wrap(self, version: int, data_key: bytes, *, context: bytes) -> bytes:
        """Encrypt ``data_key`` under ``version``, bound to ``context``."""
        ...

    def unwrap(self, version: int, wrapped: bytes, *, context: bytes) -> bytes:
        """Decrypt a wrapped data key; raises CryptoError on any failure."""
        ...


@dataclass(frozen=True)
class KeyVersion:
    """The state of one key version, as `bastion keys status` shows it."""

    version: int
    created_at: float
    wraps: int
    primary: bool
    retired: bool


class Keyring:
    """A versioned keyring: rotate, rewrap, retire; usage counted per version."""

    def __init__(
        self,
        *,
        key_id: str,
        backend: KekBackend,
        database: Database,
        clock: Clock,
        max_wraps: int = MAX_WRAPS_PER_VERSION,
    ) -> None:
        self.key_id = key_id
        self._backend = backend
        self._db = database
        self._clock = clock
        self._max_wraps = max_wraps
        self._lock = RLock()  # rotate() may run inside _take_wrap()
        self._reserved: tuple[int, int] = (0, 0)  # (version, wraps left in the reservation)

    def create(self) -> KeyVersion:
        """Create the ring with version 1 as primary.

        Raises:
            Conflict: the ring exists already.
        """
        self._backend.generate(1)
        with self._db.transaction() as db:
            db.execute(
                tables.keyrings.insert().values(
                    key_id=self.key_id, primary_version=1, min_decryption_version=1
                )
            )
            db.execute(
                tables.key_versions.insert().values(
                    key_id=self.key_id, version=1, created_at=self._clock(), wraps=0
                )
            )
        return self.status()[0]

    def status(self) -> list[KeyVersion]:
        """Every version of the ring, oldest first.

        Raises:
            ConfigError: the ring does not exist.
        """
        primary, minimum = self._ring()
        with self._db.transaction() as db:
            rows = db.execute(
                sa.select(tables.key_versions)
                .where(tables.key_versions.c.key_id == self.key_id)
                .order_by(tables.key_versions.c.version)
            ).all()
        return [
            KeyVersion(r.version, r.created_at, r.wraps, r.version == primary, r.version < minimum)
            for r in rows
        ]

    def rotate(self) -> KeyVersion:
        """Create a new version and make it primary; old versions still decrypt."""
        with self._lock:
            primary, _ = self._ring()
            version = primary + 1
            self._backend.generate(version)
            with self._db.transaction() as db:
                db.execute(
                    tables.key_versions.insert().values(
                        key_id=self.key_id, version=version, created_at=self._clock(), wraps=0
                    )
                )
                db.execute(
                    tables.keyrings.update()
                    .where(tables.keyrings.c.key_id == self.key_id)
                    .values(primary_version=version)
                )
            self._reserved = (0, 0)
        return self.status()[-1]

    def retire(self, version: int, *, in_use: int) -> None:
        """Stop ``version`` and every older version from decrypting.

        Raises:
            Conflict: ``version`` is the primary, or ``in_use`` objects still need it.
            NotFound: there is no such version.
        """
        primary, minimum = self._ring()
        if not 1 <= version < primary + 1 or version < minimum:
            raise NotFound(f"{self.key_id} has no active version {version}.")
        if version == primary:
            raise Conflict("The primary version cannot be retired; rotate first.")
        if in_use:
            raise Conflict(
                f"{in_use} objects still use version {version} or older; "
                "run `bastion keys rewrap` first."
            )
        with self._db.transaction() as db:
            db.execute(
                tables.keyrings.update()
                .where(tables.keyrings.c.key_id == self.key_id)
                .values(min_decryption_version=version + 1)
            )

    def new_data_key(self) -> tuple[bytes, WrappedKey]:
        """A fresh data key wrapped by the primary version (rotating when it is worn)."""
        data_key = secrets.token_bytes(DATA_KEY_BYTES)
        version = self._take_wrap()
        wrapped = self._backend.wrap(version, data_key, context=self._context(version))
        return data_key, WrappedKey(self.key_id, version, wrapped)

    def unwrap(self, wrapped: WrappedKey) -> bytes:
        """The data key inside ``wrapped``.

        Raises:
            CryptoError: another ring, a retired or unknown version, or tampering.
        """
        _, minimum = self._ring()
        if wrapped.key_id != self.key_id or wrapped.version < minimum:
            raise CryptoError()
        return self._backend.unwrap(
            wrapped.version, wrapped.ciphertext, context=self._context(wrapped.version)
        )

    def rewrap(self, wrapped: WrappedKey) -> WrappedKey:
        """The same data key wrapped by the primary version."""
        data_key = self.unwrap(wrapped)
        version = self._take_wrap()
        ciphertext = self._backend.wrap(version, data_key, context=self._context(version))
        return WrappedKey(self.key_id, version, ciphertext)

    def _take_wrap(self) -> int:
        with self._lock:
            version, left = self._reserved
            if left == 0:
                version = self._reserve()
                left = _RESERVATION
            self._reserved = (version, left - 1)
            return version

    def _reserve(self) -> int:
        primary, _ = self._ring()
        with self._db.transaction() as db:
            wraps = db.execute(
                sa.select(tables.key_versions.c.wraps).where(
                    tables.key_versions.c.key_id == self.key_id,
                    tables.key_versions.c.version == primary,
                )
            ).scalar_one()
            if wraps + _RESERVATION <= self._max_wraps:
                db.execute(
                    tables.key_versions.update()
                    .where(
                        tables.key_versions.c.key_id == self.key_id,
                        tables.key_versions.c.version == primary,
                    )
                    .values(wraps=tables.key_versions.c.wraps + _RESERVATION)
                )
                return primary
        self.rotate()  # this version has wrapped its share: move on before GCM limits
        return self._reserve()

    def _ring(self) -> tuple[int, int]:
        with self._db.transaction() as db:
            row = db.execute(
                sa.select(tables.keyrings).where(tables.keyrings.c.key_id == self.key_id)
            ).first()
        if row is None:
            raise ConfigError(f"Keyring {self.key_id!r} does not exist; run `bastion init`.")
        return row.primary_version, row.min_decryption_version

    def _context(self, version: int) -> bytes:
        return f"bastion/keyring/{self.key_id}/v{version}".encode()


class StaticKeys:
    """One fixed AES-256 key as a key provider: for tests and single-key scripts.

    It has no versions, no rotation and no usage limits; Bastion's own storage always
    uses a :class:`Keyring`.
    """

    key_id = "static"

    def __init__(self, key: bytes) -> None:
        if len(key) != DATA_KEY_BYTES:
            raise ValueError("a static key is 32 bytes")
        self._aead = AESGCM(key)

    @classmethod
    def random(cls) -> StaticKeys:
        """A provider with a new random key."""
        return cls(os.urandom(DATA_KEY_BYTES))

    def new_data_key(self) -> tuple[bytes, WrappedKey]:
        """A fresh data key wrapped by the static key."""
        data_key = secrets.token_bytes(DATA_KEY_BYTES)
        return data_key, self._wrap(data_key)

    def unwrap(self, wrapped: WrappedKey) -> bytes:
        """The data key inside ``wrapped``."""
        if wrapped.key_id != self.key_id or wrapped.version != 1:
            raise CryptoError()
        try:
            return self._aead.decrypt(wrapped.ciphertext[:12], wrapped.ciphertext[12:], None)
        except InvalidTag:
            raise CryptoError() from None

    def rewrap(self, wrapped: WrappedKey) -> WrappedKey:
        """A static key has one version: rewrapping re-encrypts under it."""
        return self._wrap(self.unwrap(wrapped))

    def _wrap(self, data_key: bytes) -> WrappedKey:
        nonce = secrets.token_bytes(12)
        return WrappedKey(self.key_id, 1, nonce + self._aead.encrypt(nonce, data_key, None))

    def __getstate__(self) -> object:
        raise TypeError("key material cannot be pickled")
