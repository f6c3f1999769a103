"""The OAuth 2.0 client credentials grant (RFC 6749 §4.4), free of any web framework.

``serving/`` turns the HTTP request into a :class:`TokenRequest`; this module
authenticates the client and issues the token.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote

from pydantic import SecretStr

from bastion.errors import AuthError, InvalidInput
from bastion.identity.principals import Principal, PrincipalStore
from bastion.identity.tokens import IssuedToken, TokenIssuer

GRANT_TYPE = "client_credentials"
AuthMethod = Literal["client_secret_basic", "client_secret_post", "tls_client_auth"]


@dataclass(frozen=True)
class ClientCertificate:
    """A client certificate the TLS layer verified against the workspace CA."""

    thumbprint: str  # RFC 8705 x5t#S256
    client_id: str | None  # the principal it names, if any


class UnsupportedGrantType(InvalidInput):
    """The token request asked for a grant Bastion does not offer."""

    code = "unsupported_grant_type"
    public_message = "Only the client_credentials grant is supported."


@dataclass(frozen=True)
class TokenRequest:
    """A parsed, not yet authenticated token request."""

    grant_type: str
    client_id: str
    client_secret: SecretStr | None
    auth_method: AuthMethod
    certificate: ClientCertificate | None = None

    @classmethod
    def from_http(
        cls,
        *,
        authorization: str | None,
        form: dict[str, str],
        certificate: ClientCertificate | None = None,
    ) -> TokenRequest:
        """Parse the Authorization header, form body and client certificate of a request.

        Raises:
            InvalidInput: the request is malformed or uses two authentication methods.
            AuthError: no usable client authentication.
        """
        grant_type = form.get("grant_type")
        if not grant_type:
            raise InvalidInput("The grant_type parameter is required.")
        if authorization is not None and authorization[:6].lower() == "basic ":
            if "client_secret" in form:
                raise InvalidInput("Use one client authentication method, not two.")
            client_id, basic_secret = _decode_basic(authorization[6:])
            return cls(
                grant_type, client_id, SecretStr(basic_secret), "client_secret_basic", certificate
            )
        if "client_id" in form and "client_secret" in form:
            secret = SecretStr(form["client_secret"])
            return cls(grant_type, form["client_id"], secret, "client_secret_post", certificate)
        if certificate is not None and certificate.client_id is not None:
            # RFC 8705 §2.1: the certificate authenticates the client it names.
            if form.get("client_id", certificate.client_id) != certificate.client_id:
                raise AuthError(detail="certificate names another client")
            return cls(grant_type, certificate.client_id, None, "tls_client_auth", certificate)
        raise AuthError(detail="no client authentication")


class TokenService:
    """Authenticates clients and issues access tokens."""

    def __init__(self, *, principals: PrincipalStore, issuer: TokenIssuer) -> None:
        self._principals = principals
        self._issuer = issuer

    def grant(self, request: TokenRequest) -> tuple[Principal, IssuedToken]:
        """Authenticate the client and issue a token.

        Raises:
            UnsupportedGrantType: the grant is not client_credentials.
            AuthError: the client is unknown, disabled or presented a wrong secret.
        """
        if request.grant_type != GRANT_TYPE:
            raise UnsupportedGrantType()
        if request.client_secret is None:  # tls_client_auth: the TLS layer checked the client
            principal = self._principals.enabled(request.client_id)
        else:
            principal = self._principals.authenticate(request.client_id, request.client_secret)
        certificate = request.certificate.thumbprint if request.certificate else None
        return principal, self._issuer.issue(principal, certificate_thumbprint=certificate)


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
