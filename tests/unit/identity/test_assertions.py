import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from bastion.errors import InvalidInput
from bastion.identity.assertions import client_public_jwk, public_jwk_from_file


def public_pem(private_key) -> str:
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.mark.parametrize(
    ("make", "algorithm"),
    [
        (ed25519.Ed25519PrivateKey.generate, "EdDSA"),
        (lambda: ec.generate_private_key(ec.SECP256R1()), "ES256"),
        (lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256"),
    ],
)
def test_each_kind_of_public_key_gets_its_one_algorithm(make, algorithm):
    jwk = public_jwk_from_file(public_pem(make()))
    assert jwk["alg"] == algorithm
    assert public_jwk_from_file(json.dumps(jwk)) == jwk  # a JWK file reads the same


def test_private_keys_weak_keys_and_other_curves_are_refused():
    private = ed25519.Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    with pytest.raises(InvalidInput, match="private key"):
        public_jwk_from_file(pem)
    with pytest.raises(InvalidInput, match="private key"):
        client_public_jwk({"kty": "OKP", "crv": "Ed25519", "x": "AA", "d": "AA"})
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - refused, as it should be
    with pytest.raises(InvalidInput, match="2048"):
        public_jwk_from_file(public_pem(weak))
    with pytest.raises(InvalidInput, match="curve"):
        public_jwk_from_file(public_pem(ec.generate_private_key(ec.SECP384R1())))
    with pytest.raises(InvalidInput):
        client_public_jwk({"kty": "oct", "k": "c2VjcmV0"})
    with pytest.raises(InvalidInput):
        public_jwk_from_file("not a key")


def test_a_jwk_may_ask_for_pss():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = public_jwk_from_file(public_pem(key))
    assert client_public_jwk(jwk | {"alg": "PS256"})["alg"] == "PS256"
    assert client_public_jwk(jwk | {"alg": "HS256"})["alg"] == "RS256"
