"""The token-signing key file, and JWK helpers."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import nacl.bindings
import nacl.exceptions
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bastion.errors import ConfigError, CryptoError

_PRIVATE_FILE_MODE = 0o600


def b64url(data: bytes) -> str:
    """Base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode canonical base64url without padding.

    Raises:
        ValueError: the text is not base64url, or not its one canonical spelling (so a
            token cannot be re-spelt into a different string that still verifies).
    """
    if not _B64URL.fullmatch(text):
        raise ValueError("not base64url")
    try:
        decoded = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error:
        raise ValueError("not base64url") from None
    if b64url(decoded) != text:
        raise ValueError("not canonical base64url")
    return decoded


_B64URL = re.compile(r"[A-Za-z0-9_-]+")


def write_private_file(path: Path, data: bytes) -> None:
    """Create ``path`` readable by its owner only; never overwrite an existing key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _PRIVATE_FILE_MODE)
    with os.fdopen(fd, "wb") as file:
        file.write(data)


def _read_private_file(path: Path) -> bytes:
    if not path.is_file():
        raise ConfigError(f"Key file {path} is missing; run `bastion init` first.")
    if path.stat().st_mode & 0o077:
        raise ConfigError(f"Key file {path} is readable by others; run `chmod 600 {path}`.")
    return path.read_bytes()


@dataclass(frozen=True, repr=False)
class SigningKey:
    """An Ed25519 key that signs access tokens, with its RFC 7638 key id."""

    kid: str
    _private: Ed25519PrivateKey = field(repr=False)

    @classmethod
    def generate(cls, path: Path) -> SigningKey:
        """Create a new Ed25519 key file (PKCS#8 PEM, mode 0600)."""
        private = Ed25519PrivateKey.generate()
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_private_file(path, pem)
        return cls(kid=jwk_thumbprint(private.public_key()), _private=private)

    @classmethod
    def load(cls, path: Path) -> SigningKey:
        """Read an Ed25519 key file.

        Raises:
            ConfigError: the file is missing, readable by others or not an Ed25519 key.
        """
        pem = _read_private_file(path)
        try:
            private = serialization.load_pem_private_key(pem, password=None)
        except ValueError:
            raise ConfigError(f"Key file {path} is not a PEM private key.") from None
        if not isinstance(private, Ed25519PrivateKey):
            raise ConfigError(f"Key file {path} is not an Ed25519 key.")
        return cls(kid=jwk_thumbprint(private.public_key()), _private=private)

    @property
    def public_key(self) -> Ed25519PublicKey:
        """The verifying half."""
        return self._private.public_key()

    def sign(self, message: bytes) -> bytes:
        """Ed25519 signature of ``message``."""
        return self._private.sign(message)

    def __repr__(self) -> str:
        return f"SigningKey(kid={self.kid!r})"

    def __getstate__(self) -> object:
        raise TypeError("key material cannot be pickled")


def public_jwk(key: Ed25519PublicKey, *, kid: str) -> dict[str, str]:
    """The public JWK (RFC 8037) of an Ed25519 key."""
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": b64url(_raw(key)),
        "kid": kid,
        "alg": "EdDSA",
        "use": "sig",
    }


def verify_ed25519(key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    """Whether ``signature`` is ``key``'s Ed25519 signature of ``message``.

    libsodium's verification: about twice as fast as OpenSSL's here, and strict (it
    refuses non-canonical signatures and small-order keys). Tokens are verified on the
    request path, so the difference is most of a cold request's cost.
    """
    if len(signature) != _SIGNATURE_BYTES:
        return False
    try:
        nacl.bindings.crypto_sign_open(signature + message, _raw(key))
    except nacl.exceptions.BadSignatureError:
        return False
    return True


_SIGNATURE_BYTES = 64


def jwk_thumbprint(key: Ed25519PublicKey) -> str:
    """RFC 7638 thumbprint: SHA-256 of the canonical JWK members, base64url."""
    canonical = json.dumps(
        {"crv": "Ed25519", "kty": "OKP", "x": b64url(_raw(key))},
        separators=(",", ":"),
        sort_keys=True,
    )
    return b64url(hashlib.sha256(canonical.encode()).digest())


def load_public_jwk(jwk: dict[str, str]) -> Ed25519PublicKey:
    """An Ed25519 public key from its JWK.

    Raises:
        CryptoError: the JWK is not an Ed25519 public key.
    """
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        raise CryptoError("Unsupported key type.")
    try:
        return Ed25519PublicKey.from_public_bytes(b64url_decode(jwk["x"]))
    except (KeyError, ValueError):
        raise CryptoError("Malformed public key.") from None


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
