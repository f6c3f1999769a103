"""The versioned keyring, the local KMS and the encrypted blob store."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from bastion.crypto import Keyring, WrappedKey
from bastion.crypto.kms import LocalKms
from bastion.errors import ConfigError, Conflict, CryptoError, NotFound
from bastion.storage import tables

PASSPHRASE = SecretStr("correct horse battery staple")


def test_data_keys_unwrap_and_are_counted(keyring):
    """New data keys unwrap, and usage is counted ahead of use."""
    data_key, wrapped = keyring.new_data_key()
    assert keyring.unwrap(wrapped) == data_key
    assert (wrapped.key_id, wrapped.version) == ("root", 1)
    assert keyring.status()[0].wraps >= 1


def test_rotation_keeps_old_versions_decrypting(keyring):
    """After rotate, new keys use version 2 and version-1 keys still unwrap."""
    old_key, old = keyring.new_data_key()
    assert keyring.rotate().version == 2
    _, new = keyring.new_data_key()
    assert new.version == 2
    assert keyring.unwrap(old) == old_key
    moved = keyring.rewrap(old)
    assert moved.version == 2 and keyring.unwrap(moved) == old_key
    assert [(v.version, v.primary) for v in keyring.status()] == [(1, False), (2, True)]


def test_worn_versions_rotate_before_their_limit(database, tmp_path):
    """A version that has wrapped its share of data keys is replaced automatically."""
    kms = LocalKms.create(tmp_path / "k.json", passphrase=PASSPHRASE)
    ring = Keyring(key_id="root", backend=kms, database=database, clock=time.time, max_wraps=2048)
    ring.create()
    versions = {ring.new_data_key()[1].version for _ in range(2048 + 1)}
    assert versions == {1, 2}
    assert all(v.wraps <= 2048 for v in ring.status())


def test_retire_needs_rewrapped_objects(blobs, keyring):
    """Retiring is refused while objects need the version, and blocks it afterwards."""
    blobs.put("test", "a", b"alpha")
    keyring.rotate()
    with pytest.raises(Conflict, match="rewrap"):
        blobs.retire(1)
    with pytest.raises(Conflict, match="primary"):
        blobs.retire(2)
    assert blobs.rewrap() == 1
    blobs.retire(1)
    assert blobs.get("test", "a") == b"alpha"
    assert [v.retired for v in keyring.status()] == [True, False]
    with pytest.raises(NotFound):
        blobs.retire(1)


def test_retired_versions_no_longer_unwrap(blobs, keyring):
    """A data key wrapped by a retired version is refused."""
    _, wrapped = keyring.new_data_key()
    keyring.rotate()
    keyring.retire(1, in_use=0)
    with pytest.raises(CryptoError):
        keyring.unwrap(wrapped)


@pytest.mark.parametrize(
    "change",
    [
        lambda w: WrappedKey("other", w.version, w.ciphertext),
        lambda w: WrappedKey(w.key_id, 9, w.ciphertext),
        # one flipped bit (replacing the last byte by 0 was a no-op 1 time in 256)
        lambda w: WrappedKey(
            w.key_id, w.version, w.ciphertext[:-1] + bytes([w.ciphertext[-1] ^ 1])
        ),
        lambda w: WrappedKey(w.key_id, w.version, b""),
    ],
)
def test_tampered_wrapped_keys_are_refused(keyring, change):
    """Another ring, an unknown version or edited bytes do not unwrap."""
    _, wrapped = keyring.new_data_key()
    with pytest.raises(CryptoError):
        keyring.unwrap(change(wrapped))


def test_keystore_needs_the_right_passphrase(tmp_path):
    """The keystore is private, and opens only with its passphrase."""
    path = tmp_path / "kms.json"
    kms = LocalKms.create(path, passphrase=PASSPHRASE)
    kms.generate(1)
    assert path.stat().st_mode & 0o777 == 0o600
    assert PASSPHRASE.get_secret_value() not in path.read_text()
    with pytest.raises(ConfigError, match="Wrong passphrase"):
        LocalKms.open(path, passphrase=SecretStr("not the passphrase"))
    with pytest.raises(ConfigError, match="BASTION_PASSPHRASE"):
        LocalKms.open(path, passphrase=None)
    reopened = LocalKms.open(path, passphrase=PASSPHRASE)
    wrapped = kms.wrap(1, b"k" * 32, context=b"c")
    assert reopened.unwrap(1, wrapped, context=b"c") == b"k" * 32
    with pytest.raises(CryptoError):
        reopened.unwrap(1, wrapped, context=b"other")


def test_short_passphrases_are_refused(tmp_path):
    """A passphrase under 12 characters is refused."""
    with pytest.raises(ConfigError, match="12 characters"):
        LocalKms.create(tmp_path / "k.json", passphrase=SecretStr("short"))


def test_blobs_are_bound_to_their_names(blobs, database):
    """An object copied under another name does not decrypt; names are never reused."""
    blobs.put_many("test", {"a": b"alpha", "b": b"beta"})
    with database.transaction() as db:
        data = dict(db.execute(sa.select(tables.blobs.c.name, tables.blobs.c.data)).all())
        assert b"alpha" not in data["a"]
        db.execute(tables.blobs.update().where(tables.blobs.c.name == "b").values(data=data["a"]))
    with pytest.raises(CryptoError):
        blobs.get("test", "b")
    with pytest.raises(Conflict):
        blobs.put("test", "a", b"again")
    with pytest.raises(NotFound):
        blobs.get("test", "zzz")


def test_missing_ring_is_a_config_error(database, tmp_path):
    """Using a ring that was never created says to run init."""
    kms = LocalKms.create(tmp_path / "k.json", passphrase=PASSPHRASE)
    with pytest.raises(ConfigError, match="bastion init"):
        Keyring(key_id="nope", backend=kms, database=database, clock=time.time).status()
