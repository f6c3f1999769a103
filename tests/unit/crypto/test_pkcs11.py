"""The PKCS#11 KMS backend against a real SoftHSM2 token."""

from __future__ import annotations

import time

import pkcs11
import pytest
from pkcs11 import Attribute, KeyType
from pydantic import SecretStr

from bastion.crypto import BlobStore, Keyring
from bastion.crypto.kms import Pkcs11Kms
from bastion.errors import ConfigError, CryptoError


@pytest.fixture
def hsm(softhsm, request):
    kms = Pkcs11Kms(**softhsm, key_prefix=f"test-{request.node.name[-40:]}")
    yield kms
    kms.close()


@pytest.fixture
def hsm_keyring(hsm, database):
    ring = Keyring(key_id="root", backend=hsm, database=database, clock=time.time)
    ring.create()
    return ring


def test_wrap_and_unwrap_inside_the_token(hsm):
    """Data keys wrap and unwrap in the HSM, bound to their context."""
    hsm.generate(1)
    wrapped = hsm.wrap(1, b"d" * 32, context=b"ctx")
    assert hsm.unwrap(1, wrapped, context=b"ctx") == b"d" * 32
    for bad in (
        (1, wrapped, b"other"),
        (1, wrapped[:-1] + b"\0", b"ctx"),
        (2, wrapped, b"ctx"),
        (1, b"short", b"ctx"),
    ):
        with pytest.raises(CryptoError):
            hsm.unwrap(bad[0], bad[1], context=bad[2])


def test_keys_never_leave_the_token(hsm, softhsm):
    """Generated keys are sensitive and not extractable: their value cannot be read."""
    hsm.generate(1)
    token = pkcs11.lib(str(softhsm["library"])).get_token(token_label=softhsm["token_label"])
    with token.open() as session:  # the process is logged in already, through the backend
        key = session.get_key(key_type=KeyType.AES, label=hsm._label(1))
        assert key[Attribute.EXTRACTABLE] is False
        assert key[Attribute.SENSITIVE] is True
        with pytest.raises(pkcs11.exceptions.PKCS11Error):
            key[Attribute.VALUE]


def test_the_keyring_rotates_and_rewraps_with_the_hsm(hsm_keyring, database):
    """A keyring on the HSM stores, rotates, rewraps and retires like the local one."""
    blobs = BlobStore(database=database, keyring=hsm_keyring, clock=time.time)
    blobs.put_many("test", {f"o{i}": bytes([i]) * 100 for i in range(20)})
    hsm_keyring.rotate()
    assert blobs.rewrap() == 20
    blobs.retire(1)
    assert all(blobs.get("test", f"o{i}") == bytes([i]) * 100 for i in range(20))


def test_a_key_label_is_never_reused(hsm):
    """Generating a version that exists in the token is refused."""
    hsm.generate(1)
    with pytest.raises(ConfigError, match="already holds"):
        hsm.generate(1)


def test_wrong_pin_and_unknown_token(softhsm):
    """A wrong PIN or token label is a configuration error that names the problem."""
    with pytest.raises(ConfigError, match="PIN"):
        Pkcs11Kms(**(softhsm | {"pin": SecretStr("0000")}), key_prefix="x")
    with pytest.raises(ConfigError, match="No PKCS#11 token"):
        Pkcs11Kms(**(softhsm | {"token_label": "nope"}), key_prefix="x")


def test_a_workspace_can_keep_its_keys_in_the_hsm(tmp_path, softhsm, digits_file):
    """With kms = "pkcs11", init, model storage and reopening all go through the token."""
    from bastion.registry import OutputPolicy
    from bastion.settings import Settings
    from bastion.workspace import Workspace

    settings = Settings(
        home=tmp_path / "ws",
        kms="pkcs11",
        pkcs11_library=softhsm["library"],
        pkcs11_token=softhsm["token_label"],
        pkcs11_pin=softhsm["pin"],
    )
    created = Workspace.create(settings, force=False)
    assert not created.paths.keystore.exists()
    created.registry.register(digits_file, name="d", version=None, output_policy=OutputPolicy())
    created.close()
    reopened = Workspace(settings=settings)
    assert reopened.registry.load_artifact(reopened.registry.get("d")) == digits_file.read_bytes()
    reopened.close()
    with pytest.raises(ConfigError, match="BASTION_PKCS11_PIN"):
        Workspace(settings=settings.model_copy(update={"pkcs11_pin": None}))
