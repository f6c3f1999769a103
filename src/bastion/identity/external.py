"""Access tokens from external OpenID Connect / OAuth 2.0 issuers (Keycloak, Entra ID, Okta…).

Each trusted issuer is configured (``trusted_issuers`` in Settings) with the audience its
tokens must name, the algorithms allowed, and how its claims map to a Bastion role and
attributes. Its keys come from discovery (``/.well-known/openid-configuration``, else
``/.well-known/oauth-authorization-server``; the document must name the same issuer)
and its ``jwks_uri``, over verified HTTPS. Keys are cached for ``jwks_cache_seconds``;
a token with an unknown ``kid`` makes the cache refresh at most once every
``jwks_refresh_seconds``, so garbage tokens cannot turn the gateway into a flood of fetches.

The checks are those of Bastion's own tokens (RFC 8725): the algorithm from the allow-list
and the key's own, ``typ`` from the allowed types, no ``jku``/``x5u``/``jwk``/``x5c``/
``crit`` headers, ``iss``, ``aud``, ``exp``/``nbf``/``iat`` with the leeway, and a
revoked ``jti`` is refused. Every failure is the same opaque :class:`AuthError`.

Time claims must be integers in range (:func:`~bastion.identity.tokens.check_times`;
PyJWT alone would take ``"exp": "99999999999"`` or ``1e300``), and an issuer's token may
live at most :data:`MAX_EXTERNAL_TOKEN_SECONDS` (a day, the longest that Entra ID or Okta
can be configured to issue): a token minted for years is refused, fail-closed.
"""

from __future__ import annotations

import hashlib
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from threading import Lock
from typing import Any

import httpx
import jwt

from bastion.errors import AuthError
from bastion.identity.assertions import PRIVATE_JWK_MEMBERS
from bastion.identity.principals import Principal
from bastion.identity.scalars import all_encodable
from bastion.identity.tokens import UNTRUSTED_HEADERS, check_times
from bastion.settings import TrustedIssuer
from bastion.types import Clock

EXTERNAL_PREFIX = "ext:"
_FETCH_TIMEOUT = 5.0
_MAX_DOCUMENT_BYTES = 256 * 1024
_DISCOVERY = ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server")
NO_ROLE = "none"  # the role of an external principal whose claims map to no role
MAX_EXTERNAL_TOKEN_SECONDS = 86_400  # exp - iat, and how far ahead exp may be
_MAX_ID = 64  # characters of a client id (the audit record's principal column)


@dataclass(frozen=True)
class ExternalToken:
    """The verified claims of an external access token, as a Bastion principal."""

    principal: Principal
    jti: str | None
    expires_at: int


class ExternalIssuer:
    """Verifies one trusted issuer's tokens with its published keys."""

    def __init__(
        self, config: TrustedIssuer, *, leeway_seconds: int, clock: Clock = time.time
    ) -> None:
        self.config = config
        self._leeway = leeway_seconds
        self._clock = clock
        self._keys: dict[str, tuple[Any, str | None]] = {}  # kid → (key, declared alg)
        self._fetched_at = float("-inf")  # monotonic
        self._jwks_uri: str | None = None
        self._lock = Lock()

    def verify(self, token: str) -> ExternalToken:
        """The principal ``token`` stands for (blocking: may fetch the issuer's keys).

        Raises:
            AuthError: for every problem; ``detail`` names it for the audit log.
        """
        config = self.config
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.PyJWTError, RecursionError):
            raise AuthError(detail="malformed token") from None
        if not all_encodable(header):  # a lone surrogate kid would crash the key look-up
            raise AuthError(detail="malformed token (not valid Unicode)")
        algorithm = header.get("alg")
        if algorithm not in config.algorithms:
            raise AuthError(detail="algorithm not allowed")
        if str(header.get("typ", "")).lower() not in {t.lower() for t in config.token_types}:
            raise AuthError(detail="wrong token type")
        if UNTRUSTED_HEADERS & header.keys():
            raise AuthError(detail="untrusted key header")
        key, declared = self._key(str(header.get("kid", "")))
        if declared is not None and declared != algorithm:  # RFC 8725 §3.1: one key, one alg
            raise AuthError(detail="algorithm does not match the key")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=config.audience,
                issuer=config.issuer,
                leeway=self._leeway,
                options={"require": ["iss", "aud", "sub", "exp", "iat"]},
            )
        except (jwt.PyJWTError, RecursionError) as exc:
            raise AuthError(detail=f"external token: {type(exc).__name__}") from None
        if not all_encodable(claims):  # a lone surrogate sub or jti would crash a look-up
            raise AuthError(detail="external token: not valid Unicode")
        times = check_times(
            claims,
            now=self._clock(),
            leeway=self._leeway,
            max_lifetime=MAX_EXTERNAL_TOKEN_SECONDS,
            require_iat=True,
        )
        jti = _text(claims.get("jti"))
        principal = self._principal(claims)
        return ExternalToken(principal=principal, jti=jti, expires_at=times.expires_at)

    def _principal(self, claims: Mapping[str, Any]) -> Principal:
        config = self.config
        subject = _text(claims.get("sub"))
        if not subject:
            raise AuthError(detail="external token without a subject")
        given = claims.get(config.role_claim, [])
        names = [given] if isinstance(given, str) else given if isinstance(given, list) else []
        role = next((config.roles[n] for n in names if isinstance(n, str) and n in config.roles),
                    NO_ROLE)  # fmt: skip
        attributes = {
            key: value
            for key, claim in config.attribute_claims.items()
            if (value := _text(claims.get(claim))) is not None
        }
        prefix = f"{EXTERNAL_PREFIX}{config.name}:"
        client_id = prefix + subject
        if len(client_id) > _MAX_ID:  # audit records hold 64 characters
            client_id = (
                prefix + hashlib.sha256(subject.encode()).hexdigest()[: _MAX_ID - len(prefix)]
            )
        return Principal(
            client_id=client_id,
            name=subject[:128],
            role=role,
            attributes=attributes,
        )

    def _key(self, kid: str) -> tuple[Any, str | None]:
        """The key named ``kid`` and the algorithm its JWK declares, if any."""
        if self._due(kid):
            with self._lock:
                if self._due(kid):  # another thread may have fetched meanwhile
                    self._refresh()
        found = self._keys.get(kid)
        if found is None:
            raise AuthError(detail="unknown key id")
        return found

    def _due(self, kid: str) -> bool:
        age = time.monotonic() - self._fetched_at
        expired = age >= self.config.jwks_cache_seconds
        return expired or (kid not in self._keys and age >= self.config.jwks_refresh_seconds)

    def _refresh(self) -> None:
        try:
            with httpx.Client(verify=self._tls(), timeout=_FETCH_TIMEOUT) as http:
                if self._jwks_uri is None:
                    self._jwks_uri = self._discover(http)
                document = _get_json(http, self._jwks_uri)
        except (httpx.HTTPError, ValueError, OSError) as exc:
            self._fetched_at = time.monotonic()  # do not hammer an issuer that is down
            raise AuthError(detail=f"issuer keys unavailable: {type(exc).__name__}") from None
        keys: dict[str, tuple[Any, str | None]] = {}
        for entry in document.get("keys", []) if isinstance(document, dict) else []:
            if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
                continue
            if PRIVATE_JWK_MEMBERS & entry.keys() or not isinstance(entry.get("kid"), str):
                continue
            try:
                key = jwt.PyJWK(entry).key
            except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
                continue  # a key we cannot use is skipped, not fatal
            keys[entry["kid"]] = (key, _text(entry.get("alg")))
        self._keys, self._fetched_at = keys, time.monotonic()

    def _discover(self, http: httpx.Client) -> str:
        issuer = self.config.issuer
        for path in _DISCOVERY:
            try:
                metadata = _get_json(http, issuer + path)
            except httpx.HTTPStatusError:
                continue
            if not isinstance(metadata, dict) or str(metadata.get("issuer")).rstrip("/") != issuer:
                raise ValueError("discovery names another issuer")
            jwks_uri = metadata.get("jwks_uri")
            if not isinstance(jwks_uri, str) or not jwks_uri.startswith("https://"):
                raise ValueError("discovery names no https jwks_uri")
            return jwks_uri
        raise ValueError("no discovery document")

    def _tls(self) -> ssl.SSLContext:
        ca = self.config.ca_file
        return ssl.create_default_context(cafile=str(ca) if ca else None)


def _get_json(http: httpx.Client, url: str) -> Any:
    response = http.get(url, follow_redirects=False)
    response.raise_for_status()
    if len(response.content) > _MAX_DOCUMENT_BYTES:
        raise ValueError("document too large")
    return response.json()


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


class ExternalIssuers:
    """The trusted issuers, by ``iss``."""

    def __init__(self, configs: tuple[TrustedIssuer, ...], *, leeway_seconds: int) -> None:
        self._issuers = {
            config.issuer: ExternalIssuer(config, leeway_seconds=leeway_seconds)
            for config in configs
        }

    def __bool__(self) -> bool:
        return bool(self._issuers)

    def issuer_of(self, iss: str | None) -> ExternalIssuer | None:
        """The trusted issuer named ``iss``, if it is one."""
        return self._issuers.get((iss or "").rstrip("/"))
