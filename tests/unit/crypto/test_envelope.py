import json
from pathlib import Path

import pytest

from bastion.crypto import RootKey, open_sealed, seal
from bastion.errors import CryptoError

VECTOR = json.loads((Path(__file__).parents[2] / "vectors" / "envelope_v0.json").read_text())
KEY = RootKey(key_id="local:root", _material=bytes(range(32)))
AD = b"bastion/model/m@1"


def test_known_answer_decrypts():
    """A stored envelope still decrypts: the format is stable."""
    key = RootKey(key_id=VECTOR["key_id"], _material=bytes.fromhex(VECTOR["key_hex"]))
    plaintext = open_sealed(
        bytes.fromhex(VECTOR["envelope_hex"]),
        key=key,
        associated_data=VECTOR["associated_data"].encode(),
    )
    assert plaintext == VECTOR["plaintext"].encode()


@pytest.mark.parametrize("size", [0, 1, 65_536, 1_000_003])
def test_round_trip(size):
    """Any payload comes back unchanged and does not appear in the ciphertext."""
    payload = bytes([7]) * size
    box = seal(payload, key=KEY, associated_data=AD)
    assert open_sealed(box, key=KEY, associated_data=AD) == payload
    assert size < 16 or payload[:16] not in box


def test_each_seal_uses_a_fresh_data_key():
    """Sealing the same data twice gives unrelated ciphertexts."""
    assert seal(b"x", key=KEY, associated_data=AD) != seal(b"x", key=KEY, associated_data=AD)


def test_every_flipped_byte_is_detected():
    """Changing any byte, in the header or the payload, fails decryption."""
    box = seal(b"secret weights", key=KEY, associated_data=AD)
    for index in range(len(box)):
        tampered = bytearray(box)
        tampered[index] ^= 0x01
        with pytest.raises(CryptoError):
            open_sealed(bytes(tampered), key=KEY, associated_data=AD)


@pytest.mark.parametrize(
    "mangle",
    [lambda b: b[:-1], lambda b: b[:10], lambda b: b + b"\x00", lambda b: b"", lambda b: b[:4]],
)
def test_truncation_and_trailing_data_are_errors(mangle):
    """Truncated or extended envelopes are refused."""
    box = seal(b"secret weights", key=KEY, associated_data=AD)
    with pytest.raises(CryptoError):
        open_sealed(mangle(box), key=KEY, associated_data=AD)


def test_wrong_key_and_wrong_associated_data_fail_the_same_way():
    """A wrong key or purpose gives the same opaque error."""
    box = seal(b"secret", key=KEY, associated_data=AD)
    other = RootKey(key_id="local:root", _material=bytes(32))
    with pytest.raises(CryptoError) as wrong_key:
        open_sealed(box, key=other, associated_data=AD)
    with pytest.raises(CryptoError) as wrong_ad:
        open_sealed(box, key=KEY, associated_data=b"bastion/model/m@2")
    assert str(wrong_key.value) == str(wrong_ad.value) == "Decryption failed."
