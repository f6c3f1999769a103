"""Keys and encryption: streaming envelopes, versioned keyrings, KMS backends, TLS.

>>> from bastion.crypto import StaticKeys, decrypt, encrypt
>>> keys = StaticKeys.random()
>>> decrypt(encrypt(b"x", keys=keys, associated_data=b"ad"), keys=keys, associated_data=b"ad")
b'x'
"""

from bastion.crypto.blobs import BlobStore
from bastion.crypto.keyring import (
    KekBackend,
    KeyProvider,
    Keyring,
    KeyVersion,
    StaticKeys,
    WrappedKey,
)
from bastion.crypto.keys import (
    SigningKey,
    b64url,
    b64url_decode,
    jwk_thumbprint,
    load_public_jwk,
    public_jwk,
    verify_ed25519,
)
from bastion.crypto.stream import (
    decrypt,
    decrypt_file,
    decrypt_stream,
    encrypt,
    encrypt_file,
    encrypt_stream,
    rewrap,
)
from bastion.crypto.tls import CertificatePaths, create_local_pki, server_context

__all__ = [
    "BlobStore",
    "CertificatePaths",
    "KekBackend",
    "KeyProvider",
    "KeyVersion",
    "Keyring",
    "SigningKey",
    "StaticKeys",
    "WrappedKey",
    "b64url",
    "b64url_decode",
    "create_local_pki",
    "decrypt",
    "decrypt_file",
    "decrypt_stream",
    "encrypt",
    "encrypt_file",
    "encrypt_stream",
    "jwk_thumbprint",
    "load_public_jwk",
    "public_jwk",
    "rewrap",
    "server_context",
    "verify_ed25519",
]
