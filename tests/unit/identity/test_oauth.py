import base64
import time

import pytest
from pydantic import SecretStr

from bastion.crypto import SigningKey
from bastion.errors import AuthError, InvalidInput
from bastion.identity import (
    PrincipalStore,
    RevocationList,
    TokenIssuer,
    TokenRequest,
    TokenService,
    TokenVerifier,
    UnsupportedGrantType,
)


def basic(client_id, secret):
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def make_service(principals, issuer, key, database):
    verifier = TokenVerifier(
        keys={key.kid: key.public_key},
        issuer=issuer.issuer,
        audience=issuer.audience,
        leeway_seconds=0,
        clock=time.time,
    )
    return TokenService(
        principals=principals,
        issuer=issuer,
        verifier=verifier,
        revocations=RevocationList(database=database, clock=time.time),
    )


def test_basic_credentials_are_form_decoded():
    """RFC 6749 §2.3.1: Basic credentials are form-urlencoded first."""
    request = TokenRequest.from_http(
        authorization=basic("a%3Ab", "s%2Bt"), form={"grant_type": "client_credentials"}
    )
    assert request.client_id == "a:b"
    assert request.credentials.client_secret.get_secret_value() == "s+t"
    assert request.auth_method == "client_secret_basic"


def test_post_credentials():
    """client_secret_post takes the credentials from the form."""
    request = TokenRequest.from_http(
        authorization=None,
        form={"grant_type": "client_credentials", "client_id": "c", "client_secret": "s"},
    )
    assert request.auth_method == "client_secret_post"


@pytest.mark.parametrize(
    ("authorization", "form", "error"),
    [
        (None, {}, InvalidInput),
        (None, {"grant_type": "client_credentials"}, AuthError),
        (None, {"grant_type": "client_credentials", "client_id": "c"}, AuthError),
        ("Basic !!!", {"grant_type": "client_credentials"}, AuthError),
        ("Basic " + base64.b64encode(b"no-colon").decode(), {"grant_type": "x"}, AuthError),
        (basic("c", "s"), {"grant_type": "client_credentials", "client_secret": "s"}, InvalidInput),
    ],
)
def test_malformed_requests(authorization, form, error):
    """Missing grant, missing or doubled client authentication are refused."""
    with pytest.raises(error):
        TokenRequest.from_http(authorization=authorization, form=form)


def test_grant_issues_a_token_and_refuses_other_grants(database, tmp_path):
    """Only client_credentials is granted, and only to the right secret."""
    principals = PrincipalStore(database=database, hash_key=b"k" * 32, clock=time.time)
    key = SigningKey.generate(tmp_path / "k.pem")
    issuer = TokenIssuer(key=key, issuer="https://x", audience="a", ttl_seconds=60, clock=time.time)
    service = make_service(principals, issuer, key, database)
    created = principals.add("ana", role="analyst", attributes={})
    form = {"grant_type": "client_credentials"}
    good = basic(created.principal.client_id, created.secret.get_secret_value())
    principal, token = service.grant(TokenRequest.from_http(authorization=good, form=form))
    assert principal.name == "ana" and token.expires_in == 60
    with pytest.raises(UnsupportedGrantType):
        service.grant(TokenRequest.from_http(authorization=good, form={"grant_type": "password"}))
    bad = basic(created.principal.client_id, "bsk_wrong")
    with pytest.raises(AuthError):
        service.grant(TokenRequest.from_http(authorization=bad, form=form))


def test_tls_client_auth_uses_the_certificate(database, tmp_path):
    """RFC 8705 tls_client_auth: the certificate names the client; the token is bound to it."""
    from bastion.identity import ClientCertificate

    principals = PrincipalStore(database=database, hash_key=b"k" * 32, clock=time.time)
    key = SigningKey.generate(tmp_path / "k.pem")
    issuer = TokenIssuer(key=key, issuer="https://x", audience="a", ttl_seconds=60, clock=time.time)
    service = make_service(principals, issuer, key, database)
    ana = principals.add("ana", role="analyst", attributes={}).principal
    certificate = ClientCertificate(thumbprint="t1", client_id=ana.client_id)
    form = {"grant_type": "client_credentials"}
    request = TokenRequest.from_http(authorization=None, form=form, certificate=certificate)
    assert request.auth_method == "tls_client_auth"
    principal, token = service.grant(request)
    assert principal == ana
    import json

    from bastion.crypto import b64url_decode

    claims = json.loads(b64url_decode(token.value.get_secret_value().split(".")[1]))
    assert claims["cnf"] == {"x5t#S256": "t1"}
    with pytest.raises(AuthError):
        TokenRequest.from_http(
            authorization=None, form=form | {"client_id": "bcl_other"}, certificate=certificate
        )
    nameless = ClientCertificate(thumbprint="t2", client_id=None)
    with pytest.raises(AuthError):
        TokenRequest.from_http(authorization=None, form=form, certificate=nameless)
    principals.disable("ana")
    with pytest.raises(AuthError):
        service.grant(request)


def test_revocation_and_introspection_of_own_tokens(database, tmp_path):
    """A client revokes and introspects its own tokens; other clients' are inactive to it."""
    from bastion.identity import ClientCredentials

    principals = PrincipalStore(database=database, hash_key=b"k" * 32, clock=time.time)
    key = SigningKey.generate(tmp_path / "k.pem")
    issuer = TokenIssuer(key=key, issuer="https://x", audience="a", ttl_seconds=60, clock=time.time)
    service = make_service(principals, issuer, key, database)
    ana = principals.add("ana", role="analyst", attributes={})
    bob = principals.add("bob", role="analyst", attributes={})
    as_ana = ClientCredentials(ana.principal.client_id, ana.secret, "client_secret_post")
    as_bob = ClientCredentials(bob.principal.client_id, bob.secret, "client_secret_post")
    token = issuer.issue(ana.principal, certificate_thumbprint=None).value.get_secret_value()
    assert service.introspect(as_ana, token).active
    assert not service.introspect(as_bob, token).active
    service.revoke(as_bob, token)  # not bob's: ignored
    assert service.introspect(as_ana, token).active
    service.revoke(as_ana, token)
    assert service.introspect(as_ana, token).to_json() == {"active": False}
    with pytest.raises(AuthError):
        service.revoke(
            ClientCredentials(
                ana.principal.client_id, SecretStr("bsk_wrong"), "client_secret_post"
            ),
            token,
        )
