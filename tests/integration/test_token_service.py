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
# Many bad assertions are sent on purpose: lockout (tested elsewhere) must not stop them.
GATEWAY_CONFIG = f'\nlockout_failures = 1000\n[resources]\n"{OTHER_RESOURCE}" = "scoring"\n'
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


def own_token(gateway, claims_json: str, header_json: str | None = None) -> str:
    """A token signed with the workspace's real signing key: exactly these JSON texts."""
    key = gateway.workspace.signing_keys.current()
    header = header_json or json.dumps({"alg": "EdDSA", "typ": "at+jwt", "kid": key.kid})
    signing_input = (
        jwt.utils.base64url_encode(header.encode()) + b"."
        + jwt.utils.base64url_encode(claims_json.encode())
    )  # fmt: skip
    signature = jwt.utils.base64url_encode(key.sign(signing_input))
    token = (signing_input + b"." + signature).decode()
    gateway.tokens.append(token)  # the leak scan checks that it is written nowhere
    return token


def own_claims(gateway, **literals: str) -> str:
    """A good token's claims as JSON text, with the given claims replaced by JSON literals."""
    now = int(time.time())
    good = {"iss": gateway.workspace.settings.issuer, "aud": "bastion",
            "sub": gateway.analyst.principal.client_id,
            "client_id": gateway.analyst.principal.client_id,
            "iat": str(now), "exp": str(now + 60), "jti": json.dumps(uuid.uuid4().hex)}  # fmt: skip
    fields = {name: json.dumps(value) for name, value in good.items() if name not in
              ("iat", "exp", "jti")} | {n: good[n] for n in ("iat", "exp", "jti")}  # fmt: skip
    fields |= literals
    return "{" + ", ".join(f'"{n}": {v}' for n, v in fields.items() if v != "ABSENT") + "}"


def test_own_tokens_with_bad_times_are_401_never_500(gateway, digits):
    """Signed with the workspace's key, through the real gateway: every bad time claim is 401."""
    now, year = int(time.time()), 365 * 86_400
    cases = {
        "exp 10**400": {"exp": str(10**400)},
        "exp 1e400": {"exp": "1e400"},
        "exp NaN": {"exp": "NaN"},
        "exp Infinity": {"exp": "Infinity"},
        "exp float": {"exp": f"{now + 60}.5"},
        "exp true": {"exp": "true"},
        "exp string": {"exp": f'"{now + 60}"'},
        "exp negative": {"exp": "-1"},
        "exp 10 years ahead": {"exp": str(now + 10 * year)},
        "exp year 9999": {"exp": "253402300799"},
        "iat 10 years ago": {"iat": str(now - 10 * year)},
        "exp before iat": {"iat": str(now + 20), "exp": str(now + 10)},
        "iat in the future": {"iat": str(now + year), "exp": str(now + year + 60)},
        "iat 10**400": {"iat": str(10**400)},
        "iat false": {"iat": "false"},
        "iat missing": {"iat": "ABSENT"},
        "nbf far ahead": {"nbf": str(now + year)},
        "nbf -Infinity": {"nbf": "-Infinity"},
        "nbf 2**64": {"nbf": str(2**64)},
        "exp twice": {"exp": f'{now - 3600}, "exp": {now + 60}'},
    }
    body = infer_body(digits.images[:1])
    nested = own_token(gateway, own_claims(gateway), "[" * 2000 + "]" * 2000)
    with gateway.http() as http:
        good = http.post("/v2/models/digits/infer", json=body,
                         headers=auth(own_token(gateway, own_claims(gateway))))  # fmt: skip
        assert good.status_code == 200, good.text  # the crafting itself is right
        for name, literals in cases.items():
            token = own_token(gateway, own_claims(gateway, **literals))
            refused = http.post("/v2/models/digits/infer", json=body, headers=auth(token))
            assert refused.status_code == 401, name
            assert refused.json() == {"error": "Authentication failed."}, name
            described = http.get("/v2/models/digits", headers=auth(token))
            assert described.status_code == 401, name
        assert http.post("/v2/models/digits/infer", json=body,
                         headers=auth(nested)).status_code == 401  # fmt: skip
    reasons = " | ".join(e.event.reason for e in gateway.workspace.audit.tail(60)
                         if e.event.status == 401)  # fmt: skip
    for reason in ("lives too long", "malformed time claim exp", "exp not after iat",
                   "not yet valid", "malformed token"):  # fmt: skip
        assert reason in reasons


def test_client_assertions_with_bad_times_are_401_never_500(gateway):
    """private_key_jwt: string, huge, boolean, float or inverted times, nesting: all 401."""
    private_key = ed25519.Ed25519PrivateKey.generate()
    client_id = key_client(gateway, "signer-times", private_key)
    now, year = int(time.time()), 365 * 86_400
    cases = {
        "exp string": {"exp": str(now + 60)},
        "exp 10**400": {"exp": 10**400},
        "exp float": {"exp": now + 60.5},
        "exp NaN": {"exp": float("nan")},
        "exp Infinity": {"exp": float("inf")},
        "exp true": {"exp": True},
        "exp negative": {"exp": -1},
        "exp a year ahead": {"exp": now + year},
        "exp before iat": {"iat": now + 20, "exp": now + 10},
        "iat string": {"iat": str(now)},
        "iat 10**400": {"iat": 10**400},
        "iat a year ago": {"iat": now - year},
        "nbf a year ahead": {"nbf": now + year},
        "nbf list": {"nbf": [now]},
    }
    with gateway.http() as http:
        for name, changes in cases.items():
            refused = token_request(http, assertion(gateway, client_id, private_key, "EdDSA",
                                                    **changes))  # fmt: skip
            assert refused.status_code == 401, name
            assert refused.json()["error"] == "invalid_client", name
        payload = jwt.utils.base64url_encode(json.dumps({"sub": client_id}).encode()).decode()
        nested = jwt.utils.base64url_encode(("[" * 2000 + "]" * 2000).encode()).decode()
        assert token_request(http, f"{nested}.{payload}.AAAA").status_code == 401
        good = token_request(http, assertion(gateway, client_id, private_key, "EdDSA"))
        assert good.status_code == 200, good.text
        gateway.tokens.append(good.json()["access_token"])


# JSON string literals that parse to a str UTF-8 cannot encode (a lone or misordered
# surrogate); the last is a valid pair (an emoji), which must keep working.
SURROGATES = {
    "lone high": '"\\ud800"',
    "lone low": '"\\udc00"',
    "reversed pair": '"\\ude00\\ud83d"',
    "inside text": '"bcl_\\udfff_x"',
}
VALID_PAIR = '"\\ud83d\\ude00"'


def b64_json(text: str) -> str:
    return jwt.utils.base64url_encode(text.encode()).decode()


def test_unsigned_assertions_with_lone_surrogates_are_401_never_500(gateway):
    """T1: no credentials, any signature: a surrogate in sub, iss, a key or the header is 401."""
    header = '{"alg": "EdDSA", "typ": "JWT"}'
    signature = b64_json("x" * 64)
    with gateway.http() as http:
        for name, lit in SURROGATES.items():
            claims = (
                f'{{"sub": {lit}, "iss": {lit}, "aud": "x", "exp": 9999999999, "jti": "a"}}',
                f'{{"sub": "bcl_{"0" * 24}", "aud": "x", "jti": "a", "x": {{{lit}: [1]}}}}',
                f'{{"sub": "bcl_{"0" * 24}", "aud": "x", "jti": "a", "x": [[{{"y": {lit}}}]]}}',
            )
            headers = (header, f'{{"alg": "EdDSA", "kid": {lit}}}')
            for head, claim in [(header, c) for c in claims] + [(h, claims[1]) for h in headers]:
                forged = f"{b64_json(head)}.{b64_json(claim)}.{signature}"
                refused = token_request(http, forged)
                assert refused.status_code == 401, (name, claim, refused.text)
                assert refused.json()["error"] == "invalid_client", name
            with_id = token_request(http, forged, client_id="bcl_" + "0" * 24)
            assert with_id.status_code == 401, name


def test_signed_assertions_with_lone_surrogates_are_401_never_500(gateway):
    """T4: the client's own key signs a surrogate jti, key or nested value: 401; an emoji: 200."""
    private_key = ed25519.Ed25519PrivateKey.generate()
    client_id = key_client(gateway, "signer-unicode", private_key)
    with gateway.http() as http:
        for name, lit in SURROGATES.items():
            value = json.loads(lit)
            for changes in ({"jti": value}, {"extra": {"k": [value]}}, {value: "x"}):
                signed = assertion(gateway, client_id, private_key, "EdDSA", **changes)
                refused = token_request(http, signed)
                assert refused.status_code == 401, (name, changes, refused.text)
                assert refused.json()["error"] == "invalid_client", name
        emoji = assertion(gateway, client_id, private_key, "EdDSA", jti=json.loads(VALID_PAIR))
        good = token_request(http, emoji)
        assert good.status_code == 200, good.text
        gateway.tokens.append(good.json()["access_token"])
    reasons = " | ".join(e.event.reason for e in gateway.workspace.audit.tail(60))
    assert "not valid Unicode" in reasons


def test_own_tokens_with_lone_surrogates_are_401_and_never_500_anywhere(gateway, digits):
    """T2: own-key tokens with a surrogate claim or header: 401; introspect/revoke never 500."""
    key = gateway.workspace.signing_keys.current()
    body = infer_body(digits.images[:1])
    analyst = gateway.analyst
    client = (analyst.principal.client_id, analyst.secret.get_secret_value())
    with gateway.http() as http:
        for name, lit in SURROGATES.items():
            tokens = [own_token(gateway, own_claims(gateway, **{claim: lit}))
                      for claim in ("client_id", "sub", "jti")]  # fmt: skip
            tokens.append(own_token(gateway, own_claims(gateway, extra=f"{{{lit}: {{}}}}")))
            tokens.append(
                own_token(
                    gateway,
                    own_claims(gateway),
                    json.dumps({"alg": "EdDSA", "typ": "at+jwt", "kid": key.kid})[:-1]
                    + f', "x": [{lit}]}}',
                )
            )
            for token in tokens:
                refused = http.post("/v2/models/digits/infer", json=body, headers=auth(token))
                assert refused.status_code == 401, (name, refused.text)
                assert refused.json() == {"error": "Authentication failed."}, name
                looked = http.post("/oauth2/introspect", data={"token": token}, auth=client)
                assert looked.status_code == 200 and looked.json()["active"] is False, name
                revoked = http.post("/oauth2/revoke", data={"token": token}, auth=client)
                assert revoked.status_code < 500, (name, revoked.text)
        pair = own_token(gateway, own_claims(gateway, jti=VALID_PAIR))
        assert http.post("/v2/models/digits/infer", json=body,
                         headers=auth(pair)).status_code == 200  # fmt: skip
