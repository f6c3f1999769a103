import pickle

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bastion.crypto import SigningKey, b64url_decode, jwk_thumbprint, public_jwk
from bastion.errors import ConfigError


def test_rfc8037_thumbprint_known_answer():
    """The RFC 8037 appendix A.3 Ed25519 key has the thumbprint the RFC gives."""
    key = Ed25519PublicKey.from_public_bytes(
        b64url_decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
    )
    assert jwk_thumbprint(key) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def test_signing_key_round_trips_and_publishes_its_jwk(tmp_path):
    """A loaded signing key has the same kid, and its JWK carries that kid."""
    created = SigningKey.generate(tmp_path / "s.pem")
    loaded = SigningKey.load(tmp_path / "s.pem")
    assert loaded.kid == created.kid
    jwk = public_jwk(loaded.public_key, kid=loaded.kid)
    assert jwk["kty"] == "OKP" and jwk["crv"] == "Ed25519" and jwk["kid"] == created.kid
    assert "d" not in jwk


def test_signing_key_files_are_private_and_refuse_pickling(tmp_path):
    """The key file is 0600, never overwritten, refused when others can read it."""
    path = tmp_path / "s.pem"
    signing = SigningKey.generate(path)
    assert path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(FileExistsError):
        SigningKey.generate(path)
    with pytest.raises(TypeError):
        pickle.dumps(signing)
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        SigningKey.load(path)


def test_base64url_decoding_is_strict():
    """Only the canonical unpadded spelling decodes; other spellings are errors."""
    from bastion.crypto import b64url

    assert b64url_decode(b64url(b"\xff\xfe")) == b"\xff\xfe"
    for bad in ["__9", "//8", "__8=", "", "a", "__8 "]:
        with pytest.raises(ValueError, match="base64url"):
            b64url_decode(bad)
