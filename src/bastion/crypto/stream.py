"""Envelope format v1: streaming AES-256-GCM with key commitment.

An envelope is a header followed by segments of 64 KiB of plaintext, each sealed with
AES-256-GCM under a key derived for this one object. The byte layout is documented in
docs/formats/envelope.md. In short:

- a fresh 256-bit data key per object, wrapped by the keyring (``key_id``, ``version``);
- ``HKDF-SHA256(data key, salt, info)`` gives the payload key and a 32-byte commitment,
  where ``info`` binds the format parameters and the caller's associated data;
- segment *i* uses the nonce ``0^7 ‖ be32(i) ‖ last``, so truncation, reordering,
  dropped, duplicated or appended segments all fail authentication;
- decryption checks the commitment before it decrypts anything, and every failure is
  the same :class:`~bastion.errors.CryptoError`.

The streaming functions release each segment only after it authenticated; the end of
the stream is authenticated by the final segment, so a caller that must not act on a
truncated stream should use :func:`decrypt_file` (atomic) or :func:`decrypt` (bytes).

>>> from bastion.crypto.stream import encrypt, decrypt
>>> from bastion.crypto.keyring import StaticKeys
>>> keys = StaticKeys.random()
>>> decrypt(encrypt(b"weights", keys=keys, associated_data=b"m@1"), keys=keys,
...         associated_data=b"m@1")
b'weights'
"""

from __future__ import annotations

import hashlib
import hmac
import io
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bastion.crypto.keyring import KeyProvider, WrappedKey
from bastion.crypto.outputs import write_new_file
from bastion.errors import CryptoError

MAGIC = b"BSTE"
VERSION = 1
ALGORITHM = 1  # AES-256-GCM, HKDF-SHA256, 64 KiB segments, 32-byte commitment
SEGMENT = 64 * 1024
TAG = 16
SALT = 32
COMMITMENT = 32
MAX_SEGMENTS = 2**32
_FIXED = struct.Struct(">4sBBIB")  # magic, version, algorithm, segment size, key-id length
_KEY_REF = struct.Struct(">IH")  # key version, wrapped-key length
_INFO = b"bastion/envelope/v1"

Progress = Callable[[int], None]


@dataclass(frozen=True)
class Header:
    """The parsed header of a v1 envelope."""

    wrapped: WrappedKey
    salt: bytes
    commitment: bytes

    def prefix(self) -> bytes:
        """Every header byte before the commitment."""
        key_id = self.wrapped.key_id.encode()
        return (
            _FIXED.pack(MAGIC, VERSION, ALGORITHM, SEGMENT, len(key_id))
            + key_id
            + _KEY_REF.pack(self.wrapped.version, len(self.wrapped.ciphertext))
            + self.wrapped.ciphertext
            + self.salt
        )

    def to_bytes(self) -> bytes:
        """The header as written at the start of an envelope."""
        return self.prefix() + self.commitment


def encrypt_stream(
    source: BinaryIO,
    sink: BinaryIO,
    *,
    keys: KeyProvider,
    associated_data: bytes,
    progress: Progress | None = None,
    random_bytes: Callable[[int], bytes] = os.urandom,
) -> int:
    """Encrypt everything ``source`` yields into ``sink``, in constant memory.

    Returns the number of plaintext bytes.
    """
    data_key, wrapped = keys.new_data_key()
    salt = random_bytes(SALT)
    aead, commitment = _derive(data_key, salt, associated_data)
    sink.write(Header(wrapped, salt, commitment).to_bytes())
    current, ahead = bytearray(SEGMENT), bytearray(SEGMENT)
    out = bytearray(SEGMENT + TAG)
    size = _fill(source, current)
    total, index = 0, 0
    while True:
        ahead_size = _fill(source, ahead) if size == SEGMENT else 0
        last = ahead_size == 0
        nonce = _nonce(index, last=last)
        sealed = memoryview(out)[: size + TAG]
        written = aead.encrypt_into(nonce, memoryview(current)[:size], None, sealed)
        sink.write(memoryview(out)[:written])
        total += size
        if progress is not None:
            progress(size)
        if last:
            return total
        index += 1
        if index >= MAX_SEGMENTS:
            raise CryptoError("The input is too large for one envelope.")
        current, ahead, size = ahead, current, ahead_size


def decrypt_stream(
    source: BinaryIO,
    sink: BinaryIO,
    *,
    keys: KeyProvider,
    associated_data: bytes,
    progress: Progress | None = None,
) -> int:
    """Decrypt an envelope from ``source`` into ``sink``, segment by segment.

    Returns the number of plaintext bytes.

    Raises:
        CryptoError: anything is wrong; earlier, authenticated segments may already
            have been written to ``sink``, but never unauthenticated bytes.
    """
    header = read_header(source)
    aead, commitment = _derive(keys.unwrap(header.wrapped), header.salt, associated_data)
    if not hmac.compare_digest(commitment, header.commitment):
        raise CryptoError()
    current, ahead = bytearray(SEGMENT + TAG), bytearray(SEGMENT + TAG)
    plain = bytearray(SEGMENT)
    size = _fill(source, current)
    total, index = 0, 0
    while True:
        if size < TAG:
            raise CryptoError()  # a missing or cut final segment
        ahead_size = _fill(source, ahead) if size == SEGMENT + TAG else 0
        last = ahead_size == 0
        try:
            count = aead.decrypt_into(
                _nonce(index, last=last),
                memoryview(current)[:size],
                None,
                memoryview(plain)[: size - TAG],
            )
        except InvalidTag:
            raise CryptoError() from None
        sink.write(memoryview(plain)[:count])
        total += count
        if progress is not None:
            progress(count)
        if last:
            return total
        index += 1
        current, ahead, size = ahead, current, ahead_size


def encrypt(data: bytes, *, keys: KeyProvider, associated_data: bytes) -> bytes:
    """Encrypt ``data`` into a v1 envelope."""
    sink = io.BytesIO()
    encrypt_stream(io.BytesIO(data), sink, keys=keys, associated_data=associated_data)
    return sink.getvalue()


def decrypt(envelope: bytes, *, keys: KeyProvider, associated_data: bytes) -> bytes:
    """Decrypt a whole envelope; nothing is returned unless all of it authenticates.

    Raises:
        CryptoError: for any problem, without saying which.
    """
    sink = io.BytesIO()
    decrypt_stream(io.BytesIO(envelope), sink, keys=keys, associated_data=associated_data)
    return sink.getvalue()


def encrypt_file(
    source: Path,
    target: Path,
    *,
    keys: KeyProvider,
    associated_data: bytes,
    progress: Progress | None = None,
) -> int:
    """Encrypt a file; ``target`` (mode 0600) appears only when it is complete.

    The ciphertext is written unnamed and named at the end (see
    :mod:`bastion.crypto.outputs`), so even a killed process leaves no partial file.

    Raises:
        Conflict: ``target`` exists (it is never overwritten).
    """
    with source.open("rb") as reader:
        return write_new_file(
            target,
            lambda sink: encrypt_stream(
                reader, sink, keys=keys, associated_data=associated_data, progress=progress
            ),
        )


def decrypt_file(
    source: Path,
    target: Path,
    *,
    keys: KeyProvider,
    associated_data: bytes,
    progress: Progress | None = None,
) -> int:
    """Decrypt a file; ``target`` (mode 0600) appears only if the whole envelope authenticated.

    The plaintext is written to an unnamed file in ``target``'s folder and named only
    at the end (see :mod:`bastion.crypto.outputs`): a damaged file, a wrong key, or a
    process killed half way (``kill -9``) leaves no file and no verified prefix.

    Raises:
        CryptoError: the envelope is damaged or the key is wrong; nothing is written.
        Conflict: ``target`` exists (it is never overwritten).
    """
    with source.open("rb") as reader:
        return write_new_file(
            target,
            lambda sink: decrypt_stream(
                reader, sink, keys=keys, associated_data=associated_data, progress=progress
            ),
        )


def read_header(source: BinaryIO) -> Header:
    """Parse the header at the start of ``source``.

    Raises:
        CryptoError: it is not a v1 envelope header.
    """
    magic, version, algorithm, segment, id_length = _FIXED.unpack(_exactly(source, _FIXED.size))
    if (magic, version, algorithm, segment) != (MAGIC, VERSION, ALGORITHM, SEGMENT):
        raise CryptoError()
    try:
        key_id = _exactly(source, id_length).decode()
    except UnicodeDecodeError:
        raise CryptoError() from None
    key_version, wrapped_length = _KEY_REF.unpack(_exactly(source, _KEY_REF.size))
    wrapped = WrappedKey(key_id, key_version, _exactly(source, wrapped_length))
    return Header(wrapped, _exactly(source, SALT), _exactly(source, COMMITMENT))


def read_header_bytes(envelope: bytes) -> Header:
    """Parse the header at the start of ``envelope``.

    Raises:
        CryptoError: it is not a v1 envelope.
    """
    return read_header(io.BytesIO(envelope))


def rewrap(envelope: bytes, *, keys: KeyProvider) -> bytes:
    """The same envelope with its data key wrapped by the current primary key version.

    The payload is untouched: the commitment and segment keys depend only on the data
    key, the salt and the associated data.

    Raises:
        CryptoError: the header is malformed or its key version cannot be unwrapped.
    """
    source = io.BytesIO(envelope)
    header = read_header(source)
    fresh = Header(keys.rewrap(header.wrapped), header.salt, header.commitment)
    return fresh.to_bytes() + envelope[source.tell() :]


def _derive(data_key: bytes, salt: bytes, associated_data: bytes) -> tuple[AESGCM, bytes]:
    info = _INFO + struct.pack(">BI", ALGORITHM, SEGMENT) + hashlib.sha256(associated_data).digest()
    okm = HKDF(algorithm=hashes.SHA256(), length=64, salt=salt, info=info).derive(data_key)
    return AESGCM(okm[:32]), okm[32:]


def _nonce(index: int, *, last: bool) -> bytes:
    return bytes(7) + index.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


def _fill(source: BinaryIO, buffer: bytearray) -> int:
    """Read until ``buffer`` is full or the source ends; return the count."""
    view, filled = memoryview(buffer), 0
    while filled < len(buffer):
        count = source.readinto(view[filled:])  # type: ignore[attr-defined]
        if not count:
            break
        filled += count
    return filled


def _exactly(source: BinaryIO, size: int) -> bytes:
    data = bytearray(size)
    if _fill(source, data) != size:
        raise CryptoError()
    return bytes(data)
