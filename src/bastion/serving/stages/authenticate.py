"""Stage 1: turn the bearer token (or API key) into a Principal, or fail with one opaque 401.

A token is Bastion's own (signed with the workspace's keys), or one from a trusted external
issuer (``trusted_issuers``), told apart by its ``iss`` claim.
"""

from __future__ import annotations

from dataclasses import dataclass

from anyio import to_thread

from bastion.errors import AuthError
from bastion.identity import (
    ApiKeyStore,
    Principal,
    PrincipalStore,
    RevocationList,
    TokenVerifier,
    VerifiedToken,
)
from bastion.identity.apikeys import PREFIX as API_KEY_PREFIX
from bastion.identity.external import ExternalIssuer, ExternalIssuers, ExternalToken
from bastion.identity.tokens import unverified_issuer
from bastion.serving.cache import TtlCache
from bastion.serving.call import Call
from bastion.types import Clock

_PRINCIPALS = 100_000


@dataclass(frozen=True)
class Session:
    """What a verified token stands for, kept for a few seconds at most."""

    certificate: str | None  # thumbprint of the connection's client certificate
    principal: Principal
    scopes: frozenset[str] | None
    auth_method: str


Sessions = TtlCache[str, Session]  # token → session


class Authenticate:
    """Verifies the access token and loads its enabled principal."""

    def __init__(
        self,
        *,
        verifier: TokenVerifier,
        principals: PrincipalStore,
        revocations: RevocationList,
        api_keys: ApiKeyStore,
        sessions: Sessions,
        cache_seconds: float,
        clock: Clock,
        external: ExternalIssuers | None = None,
    ) -> None:
        self._verifier = verifier
        self._principals = principals
        self._revocations = revocations
        self._api_keys = api_keys
        self._sessions = sessions
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._external = external
        # client id → enabled principal, for new tokens of a principal seen in the last
        # cache_seconds (a new token then costs a signature check and no query)
        self._principals_seen: TtlCache[str, Principal] = TtlCache(size=_PRINCIPALS)

    async def __call__(self, call: Call) -> None:
        """Set ``call.principal``.

        Raises:
            AuthError: no token, a bad or revoked token, or a disabled or deleted principal.
        """
        scheme, _, token = (call.authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError(detail="no bearer token")
        token = token.strip()
        if token.startswith(API_KEY_PREFIX):
            call.auth_method = "api_key"  # recorded even when the key is refused
            call.principal, call.api_key = await to_thread.run_sync(
                self._api_keys.authenticate, token
            )
            return
        call.auth_method = "bearer"
        certificate = call.certificate.thumbprint if call.certificate else None
        now = self._clock()
        session = self._sessions.get(token, now=now)
        if session is None or session.certificate != certificate:
            session, expires_at = await self._verify(token, certificate, now)
            if self._cache_seconds > 0:
                expires = min(float(expires_at), now + self._cache_seconds)
                self._sessions.put(token, session, expires=expires)
        call.principal, call.scopes, call.auth_method = (
            session.principal,
            session.scopes,
            session.auth_method,
        )

    async def _verify(
        self, token: str, certificate: str | None, now: float
    ) -> tuple[Session, float]:
        external = self._external.issuer_of(unverified_issuer(token)) if self._external else None
        if external is not None:
            found = await to_thread.run_sync(self._check_external, external, token)
            method = f"bearer:{external.config.name}"
            return Session(certificate, found.principal, None, method), found.expires_at
        verified = self._verifier.verify(token, certificate_thumbprint=certificate)
        principal = self._known(verified, now)
        if principal is None:
            principal = await to_thread.run_sync(self._load, verified)
            if self._cache_seconds > 0:
                expires = now + self._cache_seconds
                self._principals_seen.put(verified.client_id, principal, expires=expires)
        method = "bearer+certificate" if verified.certificate_bound else "bearer"
        return Session(certificate, principal, verified.scopes, method), verified.expires_at

    def _known(self, verified: VerifiedToken, now: float) -> Principal | None:
        """The principal from memory when both it and the revocation list are fresh.

        Raises:
            AuthError: the token is revoked.
        """
        revoked = self._revocations.cached(verified.jti)
        if revoked:
            raise AuthError(detail="revoked token")
        principal = self._principals_seen.get(verified.client_id, now=now)
        return principal if revoked is not None else None

    def _load(self, verified: VerifiedToken) -> Principal:
        self._revocations.check(verified.jti)
        return self._principals.enabled(verified.client_id)

    def _check_external(self, issuer: ExternalIssuer, token: str) -> ExternalToken:
        found = issuer.verify(token)
        if found.jti is not None:
            self._revocations.check(found.jti)
        return found
