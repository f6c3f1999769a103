"""The OAuth 2.0 endpoints' logic, free of any web framework.

The client credentials grant (RFC 6749 §4.4) with scopes and resource indicators
(RFC 8707), revocation (RFC 7009) and introspection (RFC 7662). Clients authenticate with
a secret (``client_secret_basic``, ``client_secret_post``), a signed assertion
(``private_key_jwt``, RFC 7523) or a client certificate (``tls_client_auth``, RFC 8705).
``serving/`` turns HTTP requests into :class:`ClientCredentials` and
:class:`TokenRequest`; this module authenticates clients and acts.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import unquote

from pydantic import SecretStr

from bastion.errors import AuthError, InvalidInput
from bastion.identity.assertions import ASSERTION_TYPE, ClientAssertions, assertion_subject
from bastion.identity.principals import Principal, PrincipalStore
from bastion.identity.revocation import RevocationList
from bastion.identity.tokens import IssuedToken, TokenIssuer, TokenVerifier, VerifiedToken

GRANT_TYPE = "client_credentials"
AuthMethod = Literal[
    "client_secret_basic", "client_secret_post", "private_key_jwt", "tls_client_auth"
]
# What a token may be used for: the gateway's Cedar actions. A token asked for without a
# scope gets the default ones (Cedar still decides); the admin scopes only when asked for.
DEFAULT_SCOPES = ("infer", "describe", "query_data", "read_metrics", "read_audit")
SCOPES = (*DEFAULT_SCOPES, "manage_principals", "manage_policies")


@dataclass(frozen=True)
class ClientCertificate:
    """A client certificate the TLS layer verified against the workspace CA."""

    thumbprint: str  # RFC 8705 x5t#S256
    client_id: str | None  # the principal it names, if any


class UnsupportedGrantType(InvalidInput):
    """The token request asked for a grant Bastion does not offer."""

    code = "unsupported_grant_type"
    public_message = "Only the client_credentials grant is supported."


class InvalidScope(InvalidInput):
    """The token request asked for a scope Bastion does not know (RFC 6749 §5.2)."""

    code = "invalid_scope"
    public_message = f"Ask for scopes among: {' '.join(SCOPES)}."


class InvalidTarget(InvalidInput):
    """The token request named a resource this server issues no tokens for (RFC 8707)."""

    code = "invalid_target"
    public_message = "The resource is not one this server issues tokens for."


@dataclass(frozen=True)
class ClientCredentials:
    """How a client authenticates at the token, revocation and introspection endpoints."""

    client_id: str
    client_secret: SecretStr | None
    auth_method: AuthMethod
    certificate: ClientCertificate | None = None
    assertion: SecretStr | None = None  # private_key_jwt

    @classmethod
    def from_http(
        cls,
        *,
        authorization: str | None,
        form: dict[str, str],
        certificate: ClientCertificate | None = None,
    ) -> ClientCredentials:
        """Parse the Authorization header, form body and client certificate.

        Raises:
            InvalidInput: two authentication methods are used at once.
            AuthError: no usable client authentication.
        """
        if "client_assertion" in form or "client_assertion_type" in form:
            if authorization is not None or "client_secret" in form:
                raise InvalidInput("Use one client authentication method, not two.")
            return cls._from_assertion(form, certificate)
        if authorization is not None and authorization[:6].lower() == "basic ":
            if "client_secret" in form:
                raise InvalidInput("Use one client authentication method, not two.")
            client_id, secret = _decode_basic(authorization[6:])
            return cls(client_id, SecretStr(secret), "client_secret_basic", certificate)
        if "client_id" in form and "client_secret" in form:
            secret_post = SecretStr(form["client_secret"])
            return cls(form["client_id"], secret_post, "client_secret_post", certificate)
        if certificate is not None and certificate.client_id is not None:
            # RFC 8705 §2.1: the certificate authenticates the client it names.
            if form.get("client_id", certificate.client_id) != certificate.client_id:
                raise AuthError(detail="certificate names another client")
            return cls(certificate.client_id, None, "tls_client_auth", certificate)
        raise AuthError(detail="no client authentication")

    @classmethod
    def _from_assertion(
        cls, form: dict[str, str], certificate: ClientCertificate | None
    ) -> ClientCredentials:
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise InvalidInput(f"client_assertion_type must be {ASSERTION_TYPE}.")
        assertion = form.get("client_assertion", "")
        subject = assertion_subject(assertion)
        if form.get("client_id", subject) != subject:
            raise AuthError(detail="client_id and assertion subject differ")
        return cls(subject, None, "private_key_jwt", certificate, SecretStr(assertion))


@dataclass(frozen=True)
class TokenRequest:
    """A parsed, not yet authenticated token request."""

    grant_type: str
    credentials: ClientCredentials
    scope: str | None = None  # space-separated, RFC 6749 §3.3
    resource: str | None = None  # RFC 8707 resource indicator

    @classmethod
    def from_http(
        cls,
        *,
        authorization: str | None,
        form: dict[str, str],
        certificate: ClientCertificate | None = None,
    ) -> TokenRequest:
        """Parse a token request.

        Raises:
            InvalidInput: the request is malformed or uses two authentication methods.
            AuthError: no usable client authentication.
        """
        grant_type = form.get("grant_type")
        if not grant_type:
            raise InvalidInput("The grant_type parameter is required.")
        credentials = ClientCredentials.from_http(
            authorization=authorization, form=form, certificate=certificate
        )
        return cls(grant_type, credentials, form.get("scope"), form.get("resource"))

    @property
    def client_id(self) -> str:
        """The client that asks."""
        return self.credentials.client_id

    @property
    def auth_method(self) -> AuthMethod:
        """How it authenticates."""
        return self.credentials.auth_method


@dataclass(frozen=True)
class Introspection:
    """The RFC 7662 answer about a token."""

    active: bool
    claims: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        """The response body."""
        return (
            {"active": True, "token_type": "Bearer", **self.claims}
            if self.active
            else {"active": False}
        )


class TokenService:
    """Authenticates clients; issues, revokes and describes their access tokens."""

    def __init__(
        self,
        *,
        principals: PrincipalStore,
        issuer: TokenIssuer,
        verifier: TokenVerifier,
        revocations: RevocationList,
        assertions: ClientAssertions | None = None,
        resources: Mapping[str, str] | None = None,
    ) -> None:
        """Serve the token endpoints.

        ``resources`` maps each RFC 8707 resource URI a client may name to the audience
        its tokens get; without ``resource`` a token is for the issuer's own audience.
        """
        self._principals = principals
        self._issuer = issuer
        self._verifier = verifier
        self._revocations = revocations
        self._assertions = assertions
        self._resources = dict(resources or {})

    def authenticate(self, credentials: ClientCredentials) -> Principal:
        """The enabled principal these credentials prove.

        Raises:
            AuthError: unknown, disabled or wrong credentials (one opaque error).
        """
        if credentials.assertion is not None:
            if self._assertions is None:
                raise AuthError(detail="private_key_jwt is not configured")
            self._assertions.verify(
                credentials.assertion.get_secret_value(),
                client_id=credentials.client_id,
                public_jwk=self._principals.public_jwk,
            )
            return self._principals.enabled(credentials.client_id)
        if credentials.client_secret is None:  # tls_client_auth: TLS verified the client
            return self._principals.enabled(credentials.client_id)
        return self._principals.authenticate(credentials.client_id, credentials.client_secret)

    def grant(self, request: TokenRequest) -> tuple[Principal, IssuedToken]:
        """Authenticate the client and issue a token.

        Raises:
            UnsupportedGrantType: the grant is not client_credentials.
            AuthError: the client is unknown, disabled or presented a wrong secret.
        """
        if request.grant_type != GRANT_TYPE:
            raise UnsupportedGrantType()
        scopes = _scopes(request.scope)
        audience = self._audience(request.resource)
        principal = self.authenticate(request.credentials)
        certificate = request.credentials.certificate
        thumbprint = certificate.thumbprint if certificate else None
        token = self._issuer.issue(
            principal, certificate_thumbprint=thumbprint, audience=audience, scopes=scopes
        )
        return principal, token

    def _audience(self, resource: str | None) -> str:
        if resource is None:
            return self._issuer.audience
        audience = self._resources.get(resource)
        if audience is None:
            raise InvalidTarget(detail="unknown resource")
        return audience

    def revoke(self, credentials: ClientCredentials, token: str) -> Principal:
        """Revoke one of the client's own tokens (RFC 7009).

        Tokens that are invalid, expired or another client's are ignored, as the RFC
        asks: the answer never tells a client anything about tokens it does not own.

        Raises:
            AuthError: the client's own authentication failed.
        """
        principal = self.authenticate(credentials)
        verified = self._own_token(principal, token)
        if verified is not None:
            self._revocations.revoke(verified.jti, expires_at=verified.expires_at)
        return principal

    def introspect(self, credentials: ClientCredentials, token: str) -> Introspection:
        """Describe one of the client's own tokens (RFC 7662); others are inactive.

        Raises:
            AuthError: the client's own authentication failed.
        """
        principal = self.authenticate(credentials)
        verified = self._own_token(principal, token)
        if verified is None or self._revocations.is_revoked(verified.jti):
            return Introspection(active=False)
        return Introspection(active=True, claims={
            "client_id": verified.client_id, "sub": verified.subject, "jti": verified.jti,
            "iat": verified.issued_at, "exp": verified.expires_at,
            "iss": self._issuer.issuer, "aud": verified.audience,
            **({"scope": " ".join(sorted(verified.scopes))} if verified.scopes else {}),
        })  # fmt: skip

    def _own_token(self, principal: Principal, token: str) -> VerifiedToken | None:
        try:
            verified = self._verifier.verify(token, certificate_thumbprint=None,
                                             ignore_binding=True)  # fmt: skip
        except AuthError:
            return None
        return verified if verified.client_id == principal.client_id else None


def _scopes(requested: str | None) -> frozenset[str]:
    """The scopes a token request asks for (the default ones when it names none).

    Raises:
        InvalidScope: it names a scope Bastion does not know.
    """
    if requested is None:
        return frozenset(DEFAULT_SCOPES)
    asked = frozenset(requested.split(" ")) - {""}
    if not asked or not asked <= frozenset(SCOPES):
        raise InvalidScope(detail="unknown scope")
    return asked


def _decode_basic(encoded: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise AuthError(detail="malformed basic credentials") from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise AuthError(detail="malformed basic credentials")
    # RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
    return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))
