import base64
import hashlib
import hmac
import json
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.crypto import SigningKey, b64url
from bastion.errors import AuthError
from bastion.identity import Principal, TokenIssuer, TokenVerifier, VerifiedToken
from bastion.identity.tokens import MAX_NUMERIC_DATE

NOW = 1_800_000_000
ISSUER = "https://127.0.0.1:8443"
ANA = Principal(client_id="bcl_ana", name="ana", role="analyst")


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    return SigningKey.generate(tmp_path_factory.mktemp("k") / "s.pem")


def make_issuer(key, **overrides):
    args = {
        "key": key,
        "issuer": ISSUER,
        "audience": "bastion",
        "ttl_seconds": 300,
        "clock": lambda: NOW,
    } | overrides
    return TokenIssuer(**args)


def make_verifier(key, **overrides):
    args = {
        "keys": {key.kid: key.public_key},
        "issuer": ISSUER,
        "audience": "bastion",
        "leeway_seconds": 30,
        "clock": lambda: NOW,
    } | overrides
    return TokenVerifier(**args)


def make_token(key, header=None, **claims):
    """A token signed with ``key`` carrying exactly the given header and claims."""
    head = {"alg": "EdDSA", "typ": "at+jwt", "kid": key.kid} if header is None else header
    body = {
        "iss": ISSUER,
        "aud": "bastion",
        "sub": "bcl_ana",
        "client_id": "bcl_ana",
        "iat": NOW,
        "exp": NOW + 300,
        "jti": "j1",
    } | claims
    signing_input = f"{b64url(json.dumps(head).encode())}.{b64url(json.dumps(body).encode())}"
    return f"{signing_input}.{b64url(key.sign(signing_input.encode()))}"


def test_issued_token_verifies_with_rfc9068_claims(key):
    """An issued token carries the RFC 9068 header and claims and verifies."""
    issued = make_issuer(key).issue(ANA, certificate_thumbprint=None)
    token = issued.value.get_secret_value()
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header == {"alg": "EdDSA", "typ": "at+jwt", "kid": key.kid}
    verified = make_verifier(key).verify(token, certificate_thumbprint=None)
    assert verified.client_id == verified.subject == "bcl_ana"
    assert verified.expires_at - verified.issued_at == issued.expires_in == 300


def test_issued_tokens_are_unique(key):
    """Every token has its own jti."""
    issuer = make_issuer(key)
    verifier = make_verifier(key)
    tokens = [issuer.issue(ANA, certificate_thumbprint=None).value for _ in range(20)]
    jtis = {verifier.verify(t.get_secret_value(), certificate_thumbprint=None).jti for t in tokens}
    assert len(jtis) == 20


@pytest.mark.parametrize(
    ("header", "claims", "reason"),
    [
        ({"alg": "none", "typ": "at+jwt"}, {}, "algorithm not allowed"),
        ({"alg": "HS256", "typ": "at+jwt"}, {}, "algorithm not allowed"),
        ({"alg": "EdDSA", "typ": "JWT"}, {}, "wrong token type"),
        ({"alg": "EdDSA", "typ": "at+jwt", "kid": "other"}, {}, "unknown key id"),
        ({"alg": "EdDSA", "typ": "at+jwt", "jku": "https://evil.test/jwks"}, {}, "untrusted"),
        ({"alg": "EdDSA", "typ": "at+jwt", "crit": ["exp"]}, {}, "untrusted"),
        (None, {"iss": "https://evil.test"}, "wrong issuer"),
        (None, {"aud": "someone-else"}, "wrong audience"),
        (None, {"aud": ["a", "b"]}, "wrong audience"),
        (None, {"exp": NOW - 31}, "expired"),
        (None, {"iat": NOW + 31}, "not yet valid"),
        (None, {"nbf": NOW + 31}, "not yet valid"),
        (None, {"exp": "tomorrow"}, "malformed time"),
        (None, {"exp": True}, "malformed time"),
        (None, {"sub": 7}, "malformed claims"),
        (None, {"aud": [{"a": 1}, "bastion"]}, "malformed audience"),
        (None, {"scope": ["infer"]}, "malformed scope"),
    ],
)
def test_each_bad_token_is_refused_with_its_reason(key, header, claims, reason):
    """Each RFC 8725 check refuses the token; the reason goes only into the detail."""
    if header is not None and "kid" not in header:
        header = header | {"kid": key.kid}
    with pytest.raises(AuthError) as caught:
        make_verifier(key).verify(make_token(key, header, **claims), certificate_thumbprint=None)
    assert reason in caught.value.detail
    assert str(caught.value) == "Authentication failed."


@pytest.mark.parametrize(
    "kid",
    [None, "", "../../keys/token-signing.pem", "/dev/null", "token-signing.retired/x"],
    ids=["absent", "empty", "traversal", "absolute", "retired-folder"],
)
def test_a_kid_is_only_ever_looked_up_among_the_trusted_keys(key, tmp_path, kid):
    """Absent, empty and path-like kids name no key: nothing is read from disk by kid."""
    from bastion.identity import SigningKeyring

    SigningKey.generate(tmp_path / "token-signing.pem")
    ring = SigningKeyring(current=tmp_path / "token-signing.pem", clock=lambda: NOW)
    verifier = TokenVerifier(keys=ring, issuer=ISSUER, audience="bastion", leeway_seconds=30,
                             clock=lambda: NOW)  # fmt: skip
    header = {"alg": "EdDSA", "typ": "at+jwt"} | ({} if kid is None else {"kid": kid})
    with pytest.raises(AuthError) as caught:
        verifier.verify(make_token(ring.current(), header), certificate_thumbprint=None)
    assert caught.value.detail == "unknown key id"


def test_missing_claim_is_refused(key):
    """A token without jti is refused."""
    token = make_token(key)
    head, body, _ = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=="))
    del claims["jti"]
    signing_input = f"{head}.{b64url(json.dumps(claims).encode())}"
    token = f"{signing_input}.{b64url(key.sign(signing_input.encode()))}"
    with pytest.raises(AuthError) as caught:
        make_verifier(key).verify(token, certificate_thumbprint=None)
    assert "missing" in caught.value.detail


def test_hmac_token_signed_with_the_public_key_is_refused(key):
    """The classic HS256-with-public-key confusion attack fails (RFC 8725 §2.1)."""
    head = b64url(json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": key.kid}).encode())
    body = b64url(
        json.dumps(
            {
                "iss": ISSUER,
                "aud": "bastion",
                "sub": "x",
                "client_id": "x",
                "iat": NOW,
                "exp": NOW + 60,
                "jti": "j",
            }
        ).encode()
    )
    from cryptography.hazmat.primitives import serialization

    public = key.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    mac = hmac.new(public, f"{head}.{body}".encode(), hashlib.sha256).digest()
    with pytest.raises(AuthError):
        make_verifier(key).verify(f"{head}.{body}.{b64url(mac)}", certificate_thumbprint=None)


@pytest.mark.parametrize(
    "token",
    ["", "a.b", "a.b.c.d", "!!!.???.***", "e30.e30.", "W10.e30.AA", "x" * 9000],
)
def test_malformed_tokens_are_refused(key, token):
    """Garbage never gets past the verifier, and never raises anything but AuthError."""
    with pytest.raises(AuthError):
        make_verifier(key).verify(token, certificate_thumbprint=None)


def test_tampered_signature_and_claims_are_refused(key):
    """Editing the claims or the signature of a valid token breaks it."""
    token = make_issuer(key).issue(ANA, certificate_thumbprint=None).value.get_secret_value()
    head, body, signature = token.split(".")
    edited = b64url(json.dumps({"client_id": "bcl_admin"}).encode())
    flipped = ("B" if signature[0] == "A" else "A") + signature[1:]
    for bad in (f"{head}.{edited}.{signature}", f"{head}.{body}.{flipped}"):
        with pytest.raises(AuthError):
            make_verifier(key).verify(bad, certificate_thumbprint=None)


def test_another_keys_token_is_refused(key, tmp_path):
    """A token signed by a different key with the same kid is refused."""
    other = SigningKey.generate(tmp_path / "other.pem")
    token = make_token(other, {"alg": "EdDSA", "typ": "at+jwt", "kid": key.kid})
    with pytest.raises(AuthError):
        make_verifier(key).verify(token, certificate_thumbprint=None)


def test_verified_tokens_come_only_from_the_verifier(key):
    """VerifiedToken cannot be built by hand nor pickled."""
    with pytest.raises(TypeError):
        VerifiedToken(client_id="x", subject="x", jti="j", issued_at=0, expires_at=1)
    verified = make_verifier(key).verify(make_token(key), certificate_thumbprint=None)
    with pytest.raises(TypeError):
        pickle.dumps(verified)


def test_verifier_without_keys_fails_closed():
    """A verifier with no keys cannot be built."""
    with pytest.raises(ValueError, match="at least one key"):
        TokenVerifier(keys={}, issuer=ISSUER, audience="a", leeway_seconds=0, clock=lambda: 0)


def test_token_value_is_masked(key):
    """The issued token's repr does not show the token."""
    issued = make_issuer(key).issue(ANA, certificate_thumbprint=None)
    assert issued.value.get_secret_value() not in repr(issued)


def test_certificate_bound_tokens_need_their_certificate(key):
    """RFC 8705: a token with cnf.x5t#S256 is accepted only with that certificate."""
    token = make_issuer(key).issue(ANA, certificate_thumbprint="thumb-a").value.get_secret_value()
    verifier = make_verifier(key)
    assert verifier.verify(token, certificate_thumbprint="thumb-a").client_id == "bcl_ana"
    for presented in (None, "thumb-b"):
        with pytest.raises(AuthError) as caught:
            verifier.verify(token, certificate_thumbprint=presented)
        assert "certificate-bound" in caught.value.detail


def test_unknown_confirmation_methods_are_refused(key):
    """A cnf claim Bastion does not understand fails closed."""
    token = make_token(key, cnf={"jkt": "x"})
    with pytest.raises(AuthError) as caught:
        make_verifier(key).verify(token, certificate_thumbprint="x")
    assert "confirmation" in caught.value.detail


def sign_raw(key, header: str, body: str) -> str:
    """A token whose header and claims are exactly the given JSON texts, signed with ``key``."""
    signing_input = f"{b64url(header.encode())}.{b64url(body.encode())}"
    return f"{signing_input}.{b64url(key.sign(signing_input.encode()))}"


def claims_text(name: str, literal: str) -> str:
    """The JSON text of a good token's claims with claim ``name`` set to ``literal``."""
    good = {"iss": ISSUER, "aud": "bastion", "sub": "bcl_ana", "client_id": "bcl_ana",
            "iat": NOW, "exp": NOW + 300, "jti": "j1"}  # fmt: skip
    good.pop(name, None)
    return json.dumps(good)[:-1] + f', "{name}": {literal}}}'


# Every kind of value a NumericDate must not be, as JSON text: the verifier sees exactly this.
NOT_NUMERIC_DATES = {
    "float": f"{NOW + 60}.0",
    "fraction": f"{NOW + 60}.5",
    "exponent": "1.8e9",
    "NaN": "NaN",
    "Infinity": "Infinity",
    "-Infinity": "-Infinity",
    "1e400": "1e400",
    "true": "true",
    "false": "false",
    "null": "null",
    "string": f'"{NOW + 60}"',
    "list": f"[{NOW + 60}]",
    "object": f'{{"t": {NOW + 60}}}',
    "negative": "-1",
    "10**400": str(10**400),
    "past year 9999": str(253_402_300_800),
    "2**64": str(2**64),
}


@pytest.mark.parametrize("name", ["exp", "iat", "nbf"])
@pytest.mark.parametrize("literal", NOT_NUMERIC_DATES.values(), ids=NOT_NUMERIC_DATES.keys())
def test_time_claims_are_integers_in_range_or_the_token_is_refused(key, name, literal):
    """exp, iat and nbf: floats, NaN, booleans, strings, huge or negative numbers: AuthError."""
    token = sign_raw(key, json.dumps({"alg": "EdDSA", "typ": "at+jwt", "kid": key.kid}),
                     claims_text(name, literal))  # fmt: skip
    with pytest.raises(AuthError) as caught:
        make_verifier(key).verify(token, certificate_thumbprint=None)
    assert "malformed" in caught.value.detail


YEAR = 365 * 86_400


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"exp": NOW + 10 * YEAR}, "lives too long"),
        ({"iat": NOW - 10 * YEAR, "exp": NOW + 60}, "lives too long"),
        ({"iat": NOW, "exp": NOW + 901}, "lives too long"),
        ({"iat": NOW + 20, "exp": NOW + 931}, "lives too long"),
        ({"iat": NOW - 100, "exp": NOW + 900 + 31}, "lives too long"),
        ({"iat": NOW + 20, "exp": NOW + 10}, "exp not after iat"),
        ({"iat": NOW, "exp": NOW}, "exp not after iat"),
        ({"iat": NOW + 10 * YEAR, "exp": NOW + 10 * YEAR + 60}, "not yet valid"),
        ({"nbf": NOW + 10 * YEAR}, "not yet valid"),
        ({"exp": 0, "iat": 0}, "expired"),
        ({"exp": 253_402_300_799}, "lives too long"),
    ],
    ids=[
        "exp-10-years",
        "iat-10-years-ago",
        "one-second-over",
        "iat-future-in-leeway",
        "exp-past-now-plus-max",
        "exp-before-iat",
        "exp-equals-iat",
        "iat-future",
        "nbf-future",
        "epoch",
        "year-9999",
    ],
)
def test_tokens_live_at_most_the_longest_token_lifetime(key, claims, reason):
    """The span exp - iat is 1..900 s, and exp at most now + 900 s + leeway (15 minutes)."""
    with pytest.raises(AuthError) as caught:
        make_verifier(key).verify(make_token(key, **claims), certificate_thumbprint=None)
    assert reason in caught.value.detail


def test_the_longest_lifetime_itself_is_accepted(key):
    """A token issued for the 15-minute maximum, with iat inside the leeway, still verifies."""
    verifier = make_verifier(key)
    for claims in ({"iat": NOW, "exp": NOW + 900}, {"iat": NOW + 30, "exp": NOW + 930}):
        verified = verifier.verify(make_token(key, **claims), certificate_thumbprint=None)
        assert verified.expires_at == claims["exp"]


def test_a_token_without_iat_is_refused(key):
    """A token without iat is refused: its lifetime could not be checked."""
    body = claims_text("iat", "0").replace(', "iat": 0', "")
    token = sign_raw(key, json.dumps({"alg": "EdDSA", "typ": "at+jwt", "kid": key.kid}), body)
    with pytest.raises(AuthError) as caught:
        make_verifier(key).verify(token, certificate_thumbprint=None)
    assert "missing" in caught.value.detail


@pytest.mark.parametrize(
    ("header", "body"),
    [
        ('{"alg": "EdDSA", "typ": "at+jwt", "kid": "K", "kid": "K"}', None),
        (None, claims_text("exp", str(NOW - 3600))[:-1] + f', "exp": {NOW + 60}}}'),
        ("[" * 2000 + "]" * 2000, None),  # within the 8 KiB a token may have
        (None, '{"a": ' + "[" * 2000 + "]" * 2000 + "}"),
    ],
    ids=["header-member-twice", "exp-twice", "nested-header", "nested-claims"],
)
def test_ambiguous_or_deeply_nested_json_is_a_malformed_token(key, header, body):
    """A member named twice, or JSON nested past the recursion limit: AuthError, no crash."""
    header = (header or '{"alg": "EdDSA", "typ": "at+jwt", "kid": "K"}').replace("K", key.kid)
    token = sign_raw(key, header, body or claims_text("jti", '"j1"'))
    with pytest.raises(AuthError) as caught:
        make_verifier(key).verify(token, certificate_thumbprint=None)
    assert caught.value.detail == "malformed token"


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.sampled_from([10**400, -(10**400), 2**63, 2**64, MAX_NUMERIC_DATE + 1])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
CLAIMS = ("iss", "aud", "sub", "client_id", "iat", "exp", "nbf", "jti", "scope", "cnf")


@settings(max_examples=400, deadline=None)
@given(changes=st.dictionaries(st.sampled_from(CLAIMS), JSON_VALUES, min_size=1, max_size=4),
       header=st.dictionaries(st.sampled_from(["typ", "kid", "alg", "cty", "zip"]), JSON_VALUES,
                              max_size=2))  # fmt: skip
def test_any_json_in_any_claim_is_verified_or_refused_never_a_crash(key, changes, header):
    """Signed tokens with arbitrary JSON in claims and header: a VerifiedToken or AuthError."""
    head = {"alg": "EdDSA", "typ": "at+jwt", "kid": key.kid} | header
    body = json.loads(claims_text("jti", '"j1"')) | changes
    token = sign_raw(key, json.dumps(head), json.dumps(body))  # NaN, Infinity as literals
    try:
        verified = make_verifier(key).verify(token, certificate_thumbprint=None)
    except AuthError:
        return
    assert 0 <= verified.issued_at < verified.expires_at <= NOW + 900 + 30
    assert verified.expires_at - verified.issued_at <= 900
