"""Envelope format v1: known answers, round trips and the tamper suite."""

from __future__ import annotations

import hashlib
import io
import json
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.crypto import StaticKeys, WrappedKey, decrypt, decrypt_file, encrypt, encrypt_file
from bastion.crypto.stream import SEGMENT, TAG, decrypt_stream, encrypt_stream, read_header_bytes
from bastion.errors import CryptoError

VECTORS = json.loads((Path(__file__).parents[2] / "vectors" / "envelope_v1.json").read_text())
AD = b"bastion/model/m@1"
KEYS = StaticKeys.random()


class FixedKeys:
    """A key provider with one fixed data key, for known answers."""

    def __init__(self, data_key: bytes, wrapped: WrappedKey) -> None:
        self.data_key, self.wrapped = data_key, wrapped

    def new_data_key(self):
        return self.data_key, self.wrapped

    def unwrap(self, wrapped):
        if wrapped != self.wrapped:
            raise CryptoError()
        return self.data_key

    def rewrap(self, wrapped):
        return wrapped


def vector_keys(vector) -> FixedKeys:
    wrapped = WrappedKey(vector["key_id"], vector["key_version"], bytes.fromhex(vector["wrapped"]))
    return FixedKeys(bytes.fromhex(vector["data_key"]), wrapped)


def vector_plaintext(vector) -> bytes:
    return bytes(i % 251 for i in range(vector["plaintext_length"]))


def by_the_spec(vector) -> bytes:
    """The envelope built directly from docs/formats/envelope.md, without Bastion's code."""
    key_id = vector["key_id"].encode()
    wrapped = bytes.fromhex(vector["wrapped"])
    salt = bytes.fromhex(vector["salt"])
    info = (
        b"bastion/envelope/v1"
        + struct.pack(">BI", 1, 65536)
        + hashlib.sha256(vector["associated_data"].encode()).digest()
    )
    okm = HKDF(hashes.SHA256(), 64, salt, info).derive(bytes.fromhex(vector["data_key"]))
    header = (
        b"BSTE"
        + bytes([1, 1])
        + struct.pack(">I", 65536)
        + bytes([len(key_id)])
        + key_id
        + struct.pack(">IH", vector["key_version"], len(wrapped))
        + wrapped
        + salt
        + okm[32:]
    )
    plaintext = vector_plaintext(vector)
    chunks = [plaintext[i : i + 65536] for i in range(0, len(plaintext), 65536)] or [b""]
    body = b"".join(
        AESGCM(okm[:32]).encrypt(
            bytes(7) + i.to_bytes(4, "big") + bytes([i == len(chunks) - 1]), chunk, None
        )
        for i, chunk in enumerate(chunks)
    )
    return header + body


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_known_answers(vector):
    """Fixed key, salt and data give exactly the recorded bytes, which match the spec."""
    keys = vector_keys(vector)
    sink = io.BytesIO()
    encrypt_stream(
        io.BytesIO(vector_plaintext(vector)),
        sink,
        keys=keys,
        associated_data=vector["associated_data"].encode(),
        random_bytes=lambda n: bytes.fromhex(vector["salt"]),
    )
    envelope = sink.getvalue()
    assert hashlib.sha256(envelope).hexdigest() == vector["envelope_sha256"]
    assert envelope == by_the_spec(vector)
    if "envelope" in vector:
        assert envelope.hex() == vector["envelope"]
    assert decrypt(envelope, keys=keys, associated_data=vector["associated_data"].encode()) == (
        vector_plaintext(vector)
    )


SIZES = st.sampled_from(
    [
        0,
        1,
        15,
        16,
        17,
        SEGMENT - 1,
        SEGMENT,
        SEGMENT + 1,
        2 * SEGMENT,
        3 * SEGMENT - 5,
        4 * SEGMENT,
        4 * SEGMENT + 1,
        17 * SEGMENT + 9,
    ]
) | st.integers(0, 3 * SEGMENT + 100)


class Chunked(io.RawIOBase):
    """A stream that returns at most ``step`` bytes per read, like a pipe or socket."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data, self._pos, self._step = data, 0, step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = min(len(buffer), self._step, len(self._data) - self._pos)
        buffer[:count] = self._data[self._pos : self._pos + count]
        self._pos += count
        return count


@settings(max_examples=40, deadline=None)
@given(size=SIZES, step=st.integers(1, 3 * SEGMENT), seed=st.integers(0, 255))
def test_round_trip_any_size_any_chunking(size, step, seed):
    """Any size from empty to several segments, read in any chunk size, comes back intact."""
    data = bytes((i * 7 + seed) % 256 for i in range(size))
    sink = io.BytesIO()
    assert encrypt_stream(Chunked(data, step), sink, keys=KEYS, associated_data=AD) == size
    envelope = sink.getvalue()
    segments = max(1, -(-size // SEGMENT))
    assert len(envelope) == len(read_header_bytes(envelope).to_bytes()) + size + segments * TAG
    out = io.BytesIO()
    assert decrypt_stream(Chunked(envelope, step), out, keys=KEYS, associated_data=AD) == size
    assert out.getvalue() == data


def segments_of(envelope: bytes) -> tuple[bytes, list[bytes]]:
    header = read_header_bytes(envelope).to_bytes()
    body = envelope[len(header) :]
    return header, [body[i : i + SEGMENT + TAG] for i in range(0, len(body), SEGMENT + TAG)]


@pytest.fixture(scope="module")
def three_segments():
    data = bytes(range(256)) * (SEGMENT * 2 // 256) + b"tail"
    return data, encrypt(data, keys=KEYS, associated_data=AD)


def rejected(envelope: bytes) -> None:
    with pytest.raises(CryptoError) as caught:
        decrypt(envelope, keys=KEYS, associated_data=AD)
    assert str(caught.value) == "Decryption failed."


def test_every_header_byte_flipped_is_rejected(three_segments):
    """Each bit-flip of each header byte is rejected."""
    _, envelope = three_segments
    header_length = len(read_header_bytes(envelope).to_bytes())
    for index in range(header_length):
        tampered = bytearray(envelope)
        tampered[index] ^= 0x80
        rejected(bytes(tampered))


def test_every_byte_of_every_segment_flipped_is_rejected():
    """Each of the 65 668 body bytes of a full and a short segment, flipped, is rejected."""
    envelope = encrypt(bytes(SEGMENT + 100), keys=KEYS, associated_data=AD)
    start = len(read_header_bytes(envelope).to_bytes())
    tampered = bytearray(envelope)
    failures = 0
    for index in range(start, len(envelope)):
        tampered[index] ^= 0x01
        try:
            decrypt(bytes(tampered), keys=KEYS, associated_data=AD)
        except CryptoError:
            failures += 1
        tampered[index] ^= 0x01
    assert failures == len(envelope) - start == SEGMENT + 100 + 2 * TAG


def test_truncation_anywhere_is_rejected(three_segments):
    """Cutting at every segment boundary, inside segments, or inside the header fails."""
    _, envelope = three_segments
    header, segments = segments_of(envelope)
    cuts = {0, 1, len(header) - 1, len(header), len(envelope) - 1}
    edge = len(header)
    for segment in segments:
        cuts |= {edge + 1, edge + TAG, edge + len(segment) // 2}
        edge += len(segment)
        cuts.add(edge)
    for cut in sorted(cuts - {len(envelope)}):
        rejected(envelope[:cut])


def test_reordered_dropped_duplicated_and_appended_segments_are_rejected(three_segments):
    """Swapping, dropping, duplicating segments or appending bytes is rejected."""
    _, envelope = three_segments
    header, (a, b, c) = segments_of(envelope)
    for body in (
        b + a + c,
        a + c,
        a + a + b + c,
        a + b + b + c,
        a + b + c + c,
        a + b,
        a + b + c + b"\x00",
        a + b + c + a,
    ):
        rejected(header + body)


def test_wrong_associated_data_or_key_is_rejected(three_segments):
    """The wrong associated data or another key is rejected before any decryption."""
    _, envelope = three_segments
    with pytest.raises(CryptoError):
        decrypt(envelope, keys=KEYS, associated_data=b"bastion/model/m@2")
    with pytest.raises(CryptoError):
        decrypt(envelope, keys=StaticKeys.random(), associated_data=AD)


def test_wrong_key_version_is_rejected(three_segments):
    """A header naming another key version is rejected."""
    _, envelope = three_segments
    header = read_header_bytes(envelope)
    moved = WrappedKey(header.wrapped.key_id, 2, header.wrapped.ciphertext)
    forged = type(header)(moved, header.salt, header.commitment).to_bytes()
    rejected(forged + envelope[len(header.to_bytes()) :])


def test_no_plaintext_of_a_rejected_file_is_written(tmp_path, three_segments):
    """decrypt_file leaves no output at all when the last segment fails."""
    _, envelope = three_segments
    source = tmp_path / "data.bst"
    source.write_bytes(envelope[:-1])
    target = tmp_path / "data"
    with pytest.raises(CryptoError):
        decrypt_file(source, target, keys=KEYS, associated_data=AD)
    assert list(tmp_path.iterdir()) == [source]


def test_file_round_trip_and_progress(tmp_path):
    """Files round-trip, progress counts every byte, and partial files never linger."""
    data = bytes(range(256)) * 1000
    (tmp_path / "in").write_bytes(data)
    seen: list[int] = []
    encrypt_file(
        tmp_path / "in", tmp_path / "in.bst", keys=KEYS, associated_data=AD, progress=seen.append
    )
    assert sum(seen) == len(data)
    decrypt_file(tmp_path / "in.bst", tmp_path / "out", keys=KEYS, associated_data=AD)
    assert (tmp_path / "out").read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "in.bst", "out"]


def test_long_streams_release_only_authenticated_segments_and_pass_on_write_errors():
    """A forged segment deep in a long stream: the sink gets the segments before it, no more."""
    data = bytes(range(256)) * (SEGMENT * 20 // 256)
    envelope = bytearray(encrypt(data, keys=KEYS, associated_data=AD))
    header, _ = segments_of(bytes(envelope))
    envelope[len(header) + 15 * (SEGMENT + TAG) + 7] ^= 1  # inside segment 15
    sink = io.BytesIO()
    with pytest.raises(CryptoError):
        decrypt_stream(io.BytesIO(bytes(envelope)), sink, keys=KEYS, associated_data=AD)
    assert sink.getvalue() == data[: 15 * SEGMENT]  # the 15 that authenticated, no more

    class FullDisk(io.RawIOBase):
        def __init__(self) -> None:
            self.writes = 0

        def writable(self) -> bool:
            return True

        def write(self, chunk) -> int:
            self.writes += 1
            if self.writes > 9:
                raise OSError(28, "No space left on device")
            return len(chunk)

    with pytest.raises(OSError, match="No space"):
        encrypt_stream(io.BytesIO(data), FullDisk(), keys=KEYS, associated_data=AD)
