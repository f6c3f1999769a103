"""Principals, client secrets, access tokens and the OAuth 2.0 token service.

>>> from bastion.identity import TokenRequest
>>> TokenRequest.from_http(authorization=None,
...     form={"grant_type": "client_credentials", "client_id": "c", "client_secret": "s"}
... ).auth_method
'client_secret_post'
"""

from bastion.identity.apikeys import ApiKey, ApiKeyStore
from bastion.identity.lockout import LockedOut, Lockout, LockoutCounter
from bastion.identity.oauth import (
    ClientCertificate,
    ClientCredentials,
    Introspection,
    InvalidScope,
    InvalidTarget,
    TokenRequest,
    TokenService,
    UnsupportedGrantType,
)
from bastion.identity.principals import NewClient, Principal, PrincipalStore
from bastion.identity.revocation import RevocationList
from bastion.identity.signing import SigningKeyring
from bastion.identity.tokens import IssuedToken, TokenIssuer, TokenVerifier, VerifiedToken

__all__ = [
    "ApiKey",
    "ApiKeyStore",
    "ClientCertificate",
    "ClientCredentials",
    "Introspection",
    "InvalidScope",
    "InvalidTarget",
    "IssuedToken",
    "LockedOut",
    "Lockout",
    "LockoutCounter",
    "NewClient",
    "Principal",
    "PrincipalStore",
    "RevocationList",
    "SigningKeyring",
    "TokenIssuer",
    "TokenRequest",
    "TokenService",
    "TokenVerifier",
    "UnsupportedGrantType",
    "VerifiedToken",
]
