"""The token endpoint's client authentication by signed assertion, scopes and resources."""

from __future__ import annotations

import hashlib
import hmac
import json
import ssl
import time
import uuid
import warnings

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from joserfc.jwk import ECKey, OKPKey, RSAKey

from bastion.identity.assertions import ASSERTION_TYPE, public_jwk_from_file

from .test_gateway import auth, infer_body

OTHER_RESOURCE = "https://scoring.example"
GATEWAY_CONFIG = f'\n[resources]\n"{OTHER_RESOURCE}" = "scoring"\n'
KEYS = {
    "EdDSA": ed25519.Ed25519PrivateKey.generate,
    "ES256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "RS256": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
}


def pem(private_key) -> bytes:
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_pem(private_key) -> str:
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def key_client(gateway, name: str, private_key) -> str:
    """Register a private_key_jwt client; return its client id."""
    jwk = public_jwk_from_file(public_pem(private_key))
    new = gateway.workspace.principals.add(name, role="analyst", attributes={}, public_jwk=jwk)
    assert new.secret.get_secret_value() == ""  # a key client gets no secret
    return new.principal.client_id


def assertion(gateway, client_id: str, private_key, algorithm: str, **changes) -> str:
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": f"{gateway.url}/oauth2/token",
        "iat": now,
        "exp": now + 60,
        "jti": uuid.uuid4().hex,
    } | changes
    return jwt.encode(claims, pem(private_key), algorithm=algorithm)


def token_request(http, client_assertion: str, **form):
    data = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": client_assertion,
    } | form
    return http.post("/oauth2/token", data=data)


# joserfc (under Authlib) warns that RFC 9864 deprecates "EdDSA" for "Ed25519"; PyJWT,
# which checks assertions here, knows only "EdDSA" so far.
@pytest.mark.filterwarnings("ignore:EdDSA is deprecated")
@pytest.mark.parametrize("algorithm", sorted(KEYS))
def test_authlib_private_key_jwt_client_gets_a_working_token(gateway, digits, algorithm):
    """Authlib's client with private_key_jwt (RFC 7523), for each kind of key Bastion accepts."""
    with warnings.catch_warnings():  # Authlib announces a move to an httpx fork on import
        warnings.simplefilter("ignore")
        from authlib.integrations.httpx_client import OAuth2Client
        from authlib.oauth2.rfc7523 import PrivateKeyJWT

    private_key = KEYS[algorithm]()
    kind = {"EdDSA": OKPKey, "ES256": ECKey, "RS256": RSAKey}[algorithm]
    client_id = key_client(gateway, f"signer-{algorithm.lower()}", private_key)
    endpoint = f"{gateway.url}/oauth2/token"
    context = ssl.create_default_context(cafile=str(gateway.server.ca))
    with OAuth2Client(
        client_id, kind.import_key(pem(private_key)), verify=context,
        token_endpoint_auth_method="private_key_jwt",
    ) as client:  # fmt: skip
        client.register_client_auth_method(PrivateKeyJWT(endpoint, alg=algorithm))
        token = client.fetch_token(endpoint, grant_type="client_credentials")
        gateway.tokens.append(token["access_token"])
        answer = client.post(
            f"{gateway.url}/v2/models/digits/infer", json=infer_body(digits.images[:1])
        )
    assert answer.status_code == 200, answer.text
    assert set(token["scope"].split()) >= {"infer", "describe"}


def test_bad_assertions_are_refused_and_audited_with_their_reason(gateway):
    """Replay, a foreign key, HS256 with the public key, wrong audience, long life: all 401."""
    private_key = ed25519.Ed25519PrivateKey.generate()
    client_id = key_client(gateway, "signer-attacked", private_key)
    stranger = ed25519.Ed25519PrivateKey.generate()
    good = assertion(gateway, client_id, private_key, "EdDSA")
    cases = {
        "foreign key": assertion(gateway, client_id, stranger, "EdDSA"),
        "wrong audience": assertion(gateway, client_id, private_key, "EdDSA", aud="https://x"),
        "lives too long": assertion(
            gateway, client_id, private_key, "EdDSA", exp=int(time.time()) + 7200
        ),
        "expired": assertion(gateway, client_id, private_key, "EdDSA", exp=int(time.time()) - 600),
        "other subject": assertion(gateway, client_id, private_key, "EdDSA", iss="bcl_other"),
        "garbage": "not.a.jwt",
    }
    with gateway.http() as http:
        first = token_request(http, good)
        assert first.status_code == 200, first.text
        gateway.tokens.append(first.json()["access_token"])
        replayed = token_request(http, good)
        assert replayed.status_code == 401
        assert replayed.json()["error"] == "invalid_client"
        for name, bad in cases.items():
            refused = token_request(http, bad)
            assert refused.status_code == 401, name
        both = token_request(http, good, client_secret="also a secret")
        assert both.status_code == 400
    events = [entry.event for entry in gateway.workspace.audit.tail(50)]
    reasons = [e.reason for e in events if e.status == 401 and "assertion" in e.reason]
    assert any("replayed" in reason for reason in reasons)
    assert any("too long" in reason for reason in reasons)


def test_hs256_signed_with_the_registered_public_key_is_refused(gateway):
    """The algorithm is the registered key's, so the HMAC-with-public-key confusion fails."""
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    client_id = key_client(gateway, "signer-confused", private_key)
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": f"{gateway.url}/oauth2/token",
              "exp": now + 60, "jti": uuid.uuid4().hex}  # fmt: skip
    header = jwt.utils.base64url_encode(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = jwt.utils.base64url_encode(json.dumps(claims).encode())
    signing_input = header + b"." + payload
    mac = hmac.new(public_pem(private_key).encode(), signing_input, hashlib.sha256).digest()
    forged = (signing_input + b"." + jwt.utils.base64url_encode(mac)).decode()
    with gateway.http() as http:
        assert token_request(http, forged).status_code == 401


def test_scopes_narrow_a_token(gateway, digits):
    """A token asked for with scope=describe reads metadata but cannot infer (403)."""
    ana = gateway.analyst
    with gateway.http() as http:
        credentials = (ana.principal.client_id, ana.secret.get_secret_value())
        narrow = http.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials", "scope": "describe"},
            auth=credentials,
        )
        assert narrow.status_code == 200 and narrow.json()["scope"] == "describe"
        token = narrow.json()["access_token"]
        gateway.tokens.append(token)
        assert http.get("/v2/models/digits", headers=auth(token)).status_code == 200
        refused = http.post(
            "/v2/models/digits/infer", json=infer_body(digits.images[:1]), headers=auth(token)
        )
        assert refused.status_code == 403
        unknown = http.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials", "scope": "infer admin"},
            auth=credentials,
        )
        assert unknown.status_code == 400 and unknown.json()["error"] == "invalid_scope"
        described = http.post("/oauth2/introspect", data={"token": token}, auth=credentials).json()
        assert described["scope"] == "describe"


def test_resource_indicators_set_the_audience(gateway, digits):
    """RFC 8707: a token for another resource server is refused here; unknown ones get 400."""
    ana = gateway.analyst
    credentials = (ana.principal.client_id, ana.secret.get_secret_value())
    form = {"grant_type": "client_credentials"}
    with gateway.http() as http:
        own = http.post("/oauth2/token", data=form | {"resource": gateway.url}, auth=credentials)
        other = http.post(
            "/oauth2/token", data=form | {"resource": OTHER_RESOURCE}, auth=credentials
        )
        unknown = http.post(
            "/oauth2/token", data=form | {"resource": "https://elsewhere"}, auth=credentials
        )
        assert own.status_code == 200 and other.status_code == 200
        gateway.tokens += [own.json()["access_token"], other.json()["access_token"]]
        assert unknown.status_code == 400 and unknown.json()["error"] == "invalid_target"
        claims = jwt.decode(other.json()["access_token"], options={"verify_signature": False})
        assert claims["aud"] == "scoring"
        body = infer_body(digits.images[:1])
        for token, status in ((own, 200), (other, 401)):
            answer = http.post(
                "/v2/models/digits/infer", json=body, headers=auth(token.json()["access_token"])
            )
            assert answer.status_code == status
        # The client still introspects and revokes its token for the other resource.
        described = http.post(
            "/oauth2/introspect", data={"token": other.json()["access_token"]}, auth=credentials
        ).json()
        assert described["active"] and described["aud"] == "scoring"


def test_metadata_lists_the_new_methods(gateway):
    with gateway.http() as http:
        metadata = http.get("/.well-known/oauth-authorization-server").json()
    assert "private_key_jwt" in metadata["token_endpoint_auth_methods_supported"]
    assert "EdDSA" in metadata["token_endpoint_auth_signing_alg_values_supported"]
    assert "infer" in metadata["scopes_supported"]
