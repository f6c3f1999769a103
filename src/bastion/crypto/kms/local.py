"""The local KMS: key versions in one file, encrypted under a passphrase (scrypt).

The keystore file holds each key-encryption key sealed with AES-256-GCM under a key
derived from the passphrase with scrypt (N=2^15, r=8, p=1). The passphrase comes from
a prompt or, for automation, from ``BASTION_PASSPHRASE``; it is never stored.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from pydantic import SecretStr

from bastion.crypto.keys import b64url, b64url_decode
from bastion.errors import ConfigError, CryptoError

FORMAT = "bastion-local-kms-v1"
SCRYPT = {"n": 2**15, "r": 8, "p": 1}
_NONCE = 12
MIN_PASSPHRASE = 12


class LocalKms:
    """Key-encryption keys in a passphrase-protected file."""

    name = "local"

    def __init__(self, path: Path, *, kdf: dict[str, Any], unlock_key: bytes) -> None:
        self._path = path
        self._kdf = kdf
        self._unlock = AESGCM(unlock_key)
        self._keys: dict[int, AESGCM] = {}
        self._sealed: dict[str, str] = {}

    @classmethod
    def create(cls, path: Path, *, passphrase: SecretStr) -> LocalKms:
        """Start an empty keystore at ``path`` (it is written on the first ``generate``).

        Raises:
            ConfigError: the passphrase is too short, or a keystore exists there.
        """
        if len(passphrase.get_secret_value()) < MIN_PASSPHRASE:
            raise ConfigError(f"The passphrase must have at least {MIN_PASSPHRASE} characters.")
        if path.exists():
            raise ConfigError(f"A keystore exists at {path} already.")
        kdf = {"name": "scrypt", "salt": b64url(secrets.token_bytes(16)), **SCRYPT}
        return cls(path, kdf=kdf, unlock_key=_derive(passphrase, kdf))

    @classmethod
    def open(cls, path: Path, *, passphrase: SecretStr | None) -> LocalKms:
        """Unlock the keystore at ``path``.

        Raises:
            ConfigError: no keystore, no passphrase, or the wrong passphrase.
        """
        if passphrase is None:
            raise ConfigError(
                "The workspace keys are locked: set BASTION_PASSPHRASE to the passphrase "
                "given to `bastion init`."
            )
        try:
            stored = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"No keystore at {path}; run `bastion init`.") from None
        except ValueError:
            raise ConfigError(f"The keystore {path} is damaged.") from None
        if stored.get("format") != FORMAT:
            raise ConfigError(f"{path} is not a Bastion keystore.")
        kms = cls(path, kdf=stored["kdf"], unlock_key=_derive(passphrase, stored["kdf"]))
        kms._sealed = dict(stored["versions"])
        for version in kms._sealed:
            try:
                kms._load(int(version))
            except CryptoError:
                raise ConfigError("Wrong passphrase for the workspace keys.") from None
        return kms

    def generate(self, version: int) -> None:
        """Create key version ``version`` and save the keystore atomically."""
        if str(version) in self._sealed:
            raise ConfigError(f"Key version {version} exists already.")
        material = AESGCM.generate_key(bit_length=256)
        nonce = secrets.token_bytes(_NONCE)
        sealed = nonce + self._unlock.encrypt(nonce, material, _label(version))
        self._sealed[str(version)] = b64url(sealed)
        self._keys[version] = AESGCM(material)
        self._save()

    def wrap(self, version: int, data_key: bytes, *, context: bytes) -> bytes:
        """AES-256-GCM of ``data_key`` under key ``version``, bound to ``context``."""
        nonce = secrets.token_bytes(_NONCE)
        return nonce + self._key(version).encrypt(nonce, data_key, context)

    def unwrap(self, version: int, wrapped: bytes, *, context: bytes) -> bytes:
        """Inverse of :meth:`wrap`.

        Raises:
            CryptoError: unknown version, wrong context or tampering.
        """
        if len(wrapped) <= _NONCE:
            raise CryptoError()
        try:
            return self._key(version).decrypt(wrapped[:_NONCE], wrapped[_NONCE:], context)
        except InvalidTag:
            raise CryptoError() from None

    def _key(self, version: int) -> AESGCM:
        key = self._keys.get(version)
        if key is None:
            key = self._load(version)
        return key

    def _load(self, version: int) -> AESGCM:
        sealed = self._sealed.get(str(version))
        if sealed is None:
            raise CryptoError()
        raw = b64url_decode(sealed)
        try:
            material = self._unlock.decrypt(raw[:_NONCE], raw[_NONCE:], _label(version))
        except InvalidTag:
            raise CryptoError() from None
        self._keys[version] = AESGCM(material)
        return self._keys[version]

    def _save(self) -> None:
        document = {"format": FORMAT, "kdf": self._kdf, "versions": self._sealed}
        partial = self._path.with_name(self._path.name + ".partial")
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            json.dump(document, file, indent=2)
            file.flush()
            os.fsync(file.fileno())
        partial.replace(self._path)  # a crash leaves the old keystore or the new one

    def __repr__(self) -> str:
        return f"LocalKms({str(self._path)!r}, versions={sorted(self._sealed)})"

    def __getstate__(self) -> object:
        raise TypeError("key material cannot be pickled")


def _derive(passphrase: SecretStr, kdf: dict[str, Any]) -> bytes:
    if kdf.get("name") != "scrypt":
        raise ConfigError("The keystore uses an unknown key derivation.")
    return Scrypt(
        salt=b64url_decode(kdf["salt"]), length=32, n=kdf["n"], r=kdf["r"], p=kdf["p"]
    ).derive(passphrase.get_secret_value().encode())


def _label(version: int) -> bytes:
    return f"bastion/local-kms/kek/v{version}".encode()
