"""Key-encryption keys inside an HSM, over PKCS#11 (tested against SoftHSM2).

Each key version is an AES-256 key generated inside the token with CKA_SENSITIVE set
and CKA_EXTRACTABLE cleared, so its material never leaves the HSM. Data keys are
wrapped with CKM_AES_GCM inside the token, bound to a context as associated data.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from threading import Lock
from typing import Any

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism
from pkcs11.exceptions import (
    NoSuchKey,
    NoSuchToken,
    PinIncorrect,
    PKCS11Error,
    UserAlreadyLoggedIn,
)
from pkcs11.mechanisms import GCMParams
from pydantic import SecretStr

from bastion.errors import BackendError, ConfigError, CryptoError

_NONCE = 12


class Pkcs11Kms:
    """Key versions as non-extractable AES keys in a PKCS#11 token."""

    name = "pkcs11"

    def __init__(self, *, library: Path, token_label: str, pin: SecretStr, key_prefix: str) -> None:
        try:
            token = pkcs11.lib(str(library)).get_token(token_label=token_label)
            try:
                self._session = token.open(rw=True, user_pin=pin.get_secret_value())
            except UserAlreadyLoggedIn:  # PKCS#11 logins are per process, shared by sessions
                self._session = token.open(rw=True)
        except NoSuchToken:
            raise ConfigError(f"No PKCS#11 token labelled {token_label!r}.") from None
        except PinIncorrect:
            raise ConfigError("The PKCS#11 PIN is wrong.") from None
        except (PKCS11Error, RuntimeError) as exc:
            raise ConfigError(f"Cannot open the PKCS#11 token: {type(exc).__name__}.") from None
        self._prefix = key_prefix
        self._lock = Lock()  # a PKCS#11 session is not safe for concurrent use
        self._keys: dict[int, Any] = {}

    def generate(self, version: int) -> None:
        """Generate key ``version`` inside the token; it can never be exported.

        Raises:
            ConfigError: a key with this label exists in the token already.
        """
        label = self._label(version)
        with self._token():
            if list(self._session.get_objects({Attribute.LABEL: label})):
                raise ConfigError(f"The token already holds a key labelled {label!r}.")
            self._keys[version] = self._session.generate_key(
                KeyType.AES,
                256,
                label=label,
                store=True,
                template={
                    Attribute.EXTRACTABLE: False,
                    Attribute.SENSITIVE: True,
                    Attribute.ENCRYPT: True,
                    Attribute.DECRYPT: True,
                },
            )

    def wrap(self, version: int, data_key: bytes, *, context: bytes) -> bytes:
        """AES-256-GCM of ``data_key`` inside the token, bound to ``context``."""
        nonce = secrets.token_bytes(_NONCE)
        with self._token():
            sealed = self._key(version).encrypt(
                data_key, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(nonce, context)
            )
        return nonce + bytes(sealed)

    def unwrap(self, version: int, wrapped: bytes, *, context: bytes) -> bytes:
        """Inverse of :meth:`wrap`.

        Raises:
            CryptoError: unknown version, wrong context or tampering.
        """
        if len(wrapped) <= _NONCE:
            raise CryptoError()
        params = GCMParams(wrapped[:_NONCE], context)
        try:
            with self._token():
                return bytes(
                    self._key(version).decrypt(
                        wrapped[_NONCE:], mechanism=Mechanism.AES_GCM, mechanism_param=params
                    )
                )
        except BackendError:
            raise CryptoError() from None

    def close(self) -> None:
        """Close the session with the token."""
        with self._lock:
            self._session.close()

    def _key(self, version: int) -> Any:
        key = self._keys.get(version)
        if key is None:
            try:
                key = self._session.get_key(key_type=KeyType.AES, label=self._label(version))
            except NoSuchKey:
                raise CryptoError() from None
            self._keys[version] = key
        return key

    @contextmanager
    def _token(self) -> Iterator[None]:
        """Serialize use of the session and turn token failures into Bastion errors."""
        with self._lock:
            try:
                yield
            except PKCS11Error as exc:
                # Only the class name: PKCS#11 messages are codes, never key material.
                raise BackendError(
                    "The HSM refused the operation.", detail=type(exc).__name__
                ) from None

    def _label(self, version: int) -> str:
        return f"{self._prefix}-v{version}"

    def __getstate__(self) -> object:
        raise TypeError("HSM sessions cannot be pickled")
