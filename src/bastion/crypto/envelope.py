"""Envelope encryption of whole objects with AES-256-GCM.

Each object gets a fresh 256-bit data key. The data key is wrapped (AES-256-GCM) by
the workspace root key and stored in the header; the header is authenticated as
associated data of the payload, together with the caller's associated data, which
binds a ciphertext to its purpose (for example ``model:digits@1``). The byte layout
is documented in docs/formats/envelope.md.

>>> from bastion.crypto import RootKey, seal, open_sealed
>>> key = RootKey(key_id="local:root", _material=bytes(32))
>>> box = seal(b"weights", key=key, associated_data=b"model:m@1")
>>> open_sealed(box, key=key, associated_data=b"model:m@1")
b'weights'
"""

from __future__ import annotations

import secrets
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bastion.crypto.keys import RootKey
from bastion.errors import CryptoError

MAGIC = b"BSTE"
VERSION = 0
ALG_AES256GCM = 1
_NONCE = 12
_WRAPPED = 32 + 16  # data key + GCM tag
_WRAP_CONTEXT = b"bastion/envelope/v0/data-key"
_FIXED = struct.Struct(">4sBBB")  # magic, version, algorithm, key-id length


def seal(plaintext: bytes, *, key: RootKey, associated_data: bytes) -> bytes:
    """Encrypt ``plaintext`` under a fresh data key wrapped by ``key``."""
    data_key = AESGCM.generate_key(bit_length=256)
    key_id = key.key_id.encode()
    wrap_nonce = secrets.token_bytes(_NONCE)
    header_start = _FIXED.pack(MAGIC, VERSION, ALG_AES256GCM, len(key_id)) + key_id
    wrapped = AESGCM(key.reveal()).encrypt(wrap_nonce, data_key, _WRAP_CONTEXT + header_start)
    nonce = secrets.token_bytes(_NONCE)
    header = header_start + wrap_nonce + wrapped + nonce
    return header + AESGCM(data_key).encrypt(nonce, plaintext, header + associated_data)


def open_sealed(envelope: bytes, *, key: RootKey, associated_data: bytes) -> bytes:
    """Decrypt an envelope made by :func:`seal`.

    Raises:
        CryptoError: for any problem (wrong key, wrong associated data, tampering,
            truncation); the error says nothing more, on purpose.
    """
    try:
        magic, version, algorithm, id_len = _FIXED.unpack_from(envelope)
    except struct.error:
        raise CryptoError() from None
    if magic != MAGIC or version != VERSION or algorithm != ALG_AES256GCM:
        raise CryptoError()
    offset = _FIXED.size + id_len
    if envelope[_FIXED.size : offset] != key.key_id.encode():
        raise CryptoError()
    header_start = envelope[:offset]
    wrap_nonce = envelope[offset : offset + _NONCE]
    wrapped = envelope[offset + _NONCE : offset + _NONCE + _WRAPPED]
    nonce_at = offset + _NONCE + _WRAPPED
    nonce = envelope[nonce_at : nonce_at + _NONCE]
    header = envelope[: nonce_at + _NONCE]
    if len(nonce) != _NONCE:
        raise CryptoError()
    try:
        data_key = AESGCM(key.reveal()).decrypt(wrap_nonce, wrapped, _WRAP_CONTEXT + header_start)
        return AESGCM(data_key).decrypt(nonce, envelope[len(header) :], header + associated_data)
    except InvalidTag:
        raise CryptoError() from None
