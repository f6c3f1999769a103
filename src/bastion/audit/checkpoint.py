"""Signed checkpoints: the C2SP checkpoint text in a C2SP signed note (Ed25519).

A checkpoint commits to the whole log at one size::

    <origin>
    <size>
    <base64 root hash>

    — <origin> <base64(key hash ‖ signature)>

where the key hash is the first 4 bytes of SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key).
Anyone with the public key can check a checkpoint, keep it (a witness file), and
later demand a consistency proof that the log only grew since.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bastion.crypto import SigningKey
from bastion.errors import IntegrityError

_ED25519 = b"\x01"
_DASH = "\u2014"


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement of the log's size and root hash."""

    origin: str
    size: int
    root: bytes
    note: str  # the full signed note, as exported

    @property
    def body(self) -> str:
        """The checkpoint text that the signature covers."""
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"


def key_hash(name: str, public_key: Ed25519PublicKey) -> bytes:
    """The 4-byte key hash of a C2SP signed-note Ed25519 key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(name.encode() + b"\n" + _ED25519 + raw).digest()[:4]


def sign_checkpoint(*, origin: str, size: int, root: bytes, key: SigningKey) -> Checkpoint:
    """Sign the checkpoint of a tree of ``size`` leaves with root hash ``root``."""
    unsigned = Checkpoint(origin, size, root, note="")
    signature = key_hash(origin, key.public_key) + key.sign(unsigned.body.encode())
    note = f"{unsigned.body}\n{_DASH} {origin} {base64.b64encode(signature).decode()}\n"
    return Checkpoint(origin, size, root, note)


def verify_checkpoint(note: str, *, origin: str, public_key: Ed25519PublicKey) -> Checkpoint:
    """Parse a signed note and check its signature by ``public_key`` for ``origin``.

    Raises:
        IntegrityError: the note is malformed, for another origin, or not signed by the key.
    """
    body, separator, signatures = note.partition("\n\n")
    lines = body.split("\n")
    if not separator or len(lines) < 3 or lines[0] != origin:  # noqa: PLR2004 - three lines
        raise IntegrityError("The checkpoint is malformed or for another log.")
    try:
        size = int(lines[1])
        root = base64.b64decode(lines[2], validate=True)
    except (ValueError, binascii.Error):
        raise IntegrityError("The checkpoint is malformed.") from None
    checkpoint = Checkpoint(origin, size, root, note)
    expected = key_hash(origin, public_key)
    if not signatures.endswith("\n"):
        raise IntegrityError("The checkpoint is malformed.")
    for line in signatures[:-1].split("\n"):
        parts = line.split(" ")
        # Every line is a signature line (C2SP): nothing else may be added to a stored note.
        if len(parts) != 3 or parts[0] != _DASH:  # noqa: PLR2004
            raise IntegrityError("The checkpoint is malformed.")
        try:
            signature = base64.b64decode(parts[2], validate=True)
        except binascii.Error:
            raise IntegrityError("The checkpoint is malformed.") from None
        if parts[1] != origin or signature[:4] != expected:
            continue
        try:
            public_key.verify(signature[4:], checkpoint.body.encode())
        except InvalidSignature:
            break
        if size < 0 or len(root) != 32:  # noqa: PLR2004 - SHA-256
            break
        return checkpoint
    raise IntegrityError("The checkpoint signature does not verify.")
