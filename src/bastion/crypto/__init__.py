"""Keys, envelope encryption and TLS certificates.

>>> from bastion.crypto import RootKey, seal, open_sealed
>>> key = RootKey(key_id="local:root", _material=bytes(32))
>>> open_sealed(seal(b"x", key=key, associated_data=b"ad"), key=key, associated_data=b"ad")
b'x'
"""

from bastion.crypto.envelope import open_sealed, seal
from bastion.crypto.keys import (
    RootKey,
    SigningKey,
    b64url,
    b64url_decode,
    jwk_thumbprint,
    load_public_jwk,
    public_jwk,
)
from bastion.crypto.tls import CertificatePaths, create_local_pki, server_context

__all__ = [
    "CertificatePaths",
    "RootKey",
    "SigningKey",
    "b64url",
    "b64url_decode",
    "create_local_pki",
    "jwk_thumbprint",
    "load_public_jwk",
    "open_sealed",
    "public_jwk",
    "seal",
    "server_context",
]
