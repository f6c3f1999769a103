import pickle

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bastion.crypto import RootKey, SigningKey, b64url_decode, jwk_thumbprint, public_jwk
from bastion.errors import ConfigError


def test_rfc8037_thumbprint_known_answer():
    """The RFC 8037 appendix A.3 Ed25519 key has the thumbprint the RFC gives."""
    key = Ed25519PublicKey.from_public_bytes(
        b64url_decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
    )
    assert jwk_thumbprint(key) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def test_key_files_are_private_and_never_overwritten(tmp_path):
    """Key files are created 0600 and an existing key is never replaced."""
    path = tmp_path / "root.key"
    RootKey.generate(path)
    assert path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(FileExistsError):
        RootKey.generate(path)


def test_group_readable_key_is_refused(tmp_path):
    """A key file others can read is refused with the chmod to fix it."""
    path = tmp_path / "root.key"
    RootKey.generate(path)
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        RootKey.load(path)


def test_wrong_size_root_key_is_refused(tmp_path):
    """A root key file of the wrong length is refused."""
    path = tmp_path / "root.key"
    path.write_bytes(b"short")
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="32-byte"):
        RootKey.load(path)


def test_signing_key_round_trips_and_publishes_its_jwk(tmp_path):
    """A loaded signing key has the same kid, and its JWK carries that kid."""
    created = SigningKey.generate(tmp_path / "s.pem")
    loaded = SigningKey.load(tmp_path / "s.pem")
    assert loaded.kid == created.kid
    jwk = public_jwk(loaded.public_key, kid=loaded.kid)
    assert jwk["kty"] == "OKP" and jwk["crv"] == "Ed25519" and jwk["kid"] == created.kid
    assert "d" not in jwk


def test_key_material_stays_out_of_reprs_and_pickles(tmp_path):
    """Keys do not show their material and refuse to be pickled."""
    root = RootKey.generate(tmp_path / "root.key")
    signing = SigningKey.generate(tmp_path / "s.pem")
    assert root.reveal().hex() not in repr(root)
    for key in (root, signing):
        with pytest.raises(TypeError):
            pickle.dumps(key)


def test_derived_keys_differ_by_purpose():
    """HKDF gives a different key for each purpose."""
    root = RootKey(key_id="local:root", _material=bytes(32))
    assert root.derive(b"a") != root.derive(b"b")
    assert len(root.derive(b"a")) == 32


def test_base64url_decoding_is_strict():
    """Only the canonical unpadded spelling decodes; other spellings are errors."""
    from bastion.crypto import b64url

    assert b64url_decode(b64url(b"\xff\xfe")) == b"\xff\xfe"
    for bad in ["__9", "//8", "__8=", "", "a", "__8 "]:
        with pytest.raises(ValueError, match="base64url"):
            b64url_decode(bad)
