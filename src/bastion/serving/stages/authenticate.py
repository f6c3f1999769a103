"""Stage 1: turn the bearer token (or API key) into a Principal, or fail with one opaque 401.

A token is Bastion's own (signed with the workspace's keys), or one from a trusted external
issuer (``trusted_issuers``), told apart by its ``iss`` claim.

What a verified token stands for is remembered for ``auth_cache_seconds`` at most, and
never longer than what it was built from was fresh: the principal read from the database
and the copy of the revocation list. So a principal disabled, or a token revoked, by
another process (the CLI, another gateway) is refused here within ``auth_cache_seconds``.
A change made through this process (the admin API of this gateway) applies at once: every
remembered entry carries the :attr:`PrincipalStore.generation` it was made at, and one
made before the latest change is not used.
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
    generation: int = -1  # PrincipalStore.generation it was made at (-1: never reused)


@dataclass(frozen=True)
class _Seen:
    """An enabled principal as read from the database, and until when it counts as fresh."""

    principal: Principal
    generation: int
    fresh_until: float


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
        self._principals_seen: TtlCache[str, _Seen] = TtlCache(size=_PRINCIPALS)

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
            # Never cached: the key, its principal and its revocation are read each time.
            call.principal, call.api_key = await to_thread.run_sync(
                self._api_keys.authenticate, token
            )
            return
        call.auth_method = "bearer"
        certificate = call.certificate.thumbprint if call.certificate else None
        now = self._clock()
        # Read before anything is loaded: a change committed after this makes what is
        # loaded now stale, one committed before it is seen by the load.
        generation = self._principals.generation
        session = self._sessions.get(token, now=now)
        if session is not None and session.generation != generation:
            self._sessions.discard(token)  # made before a change through this process
            session = None
        if session is None or session.certificate != certificate:
            session, fresh_until = await self._verify(token, certificate, now, generation)
            if self._cache_seconds > 0 and fresh_until > now:
                self._sessions.put(token, session, expires=fresh_until)
        call.principal, call.scopes, call.auth_method = (
            session.principal,
            session.scopes,
            session.auth_method,
        )

    async def _verify(
        self, token: str, certificate: str | None, now: float, generation: int
    ) -> tuple[Session, float]:
        """The session ``token`` stands for, and until when it may be reused."""
        fresh_until = now + self._cache_seconds
        external = self._external.issuer_of(unverified_issuer(token)) if self._external else None
        if external is not None:
            found = await to_thread.run_sync(self._check_external, external, token)
            method = f"bearer:{external.config.name}"
            if found.jti is not None:  # checked against the revocation list's copy
                fresh_until = min(fresh_until, self._revocations.fresh_until)
            session = Session(certificate, found.principal, None, method, generation)
            return session, min(fresh_until, float(found.expires_at))
        verified = self._verifier.verify(token, certificate_thumbprint=certificate)
        seen = self._known(verified, now, generation)
        if seen is None:
            principal = await to_thread.run_sync(self._load, verified)
            seen = _Seen(principal, generation, fresh_until)
            if self._cache_seconds > 0:
                self._principals_seen.put(verified.client_id, seen, expires=seen.fresh_until)
        method = "bearer+certificate" if verified.certificate_bound else "bearer"
        session = Session(certificate, seen.principal, verified.scopes, method, generation)
        # No older than the principal it holds, nor than the revocation list it was checked in.
        fresh_until = min(seen.fresh_until, self._revocations.fresh_until)
        return session, min(fresh_until, float(verified.expires_at))

    def _known(self, verified: VerifiedToken, now: float, generation: int) -> _Seen | None:
        """The principal from memory when both it and the revocation list are fresh.

        Raises:
            AuthError: the token is revoked.
        """
        revoked = self._revocations.cached(verified.jti)
        if revoked:
            raise AuthError(detail="revoked token")
        if revoked is None:
            return None
        seen = self._principals_seen.get(verified.client_id, now=now)
        return seen if seen is not None and seen.generation == generation else None

    def _load(self, verified: VerifiedToken) -> Principal:
        self._revocations.check(verified.jti)
        return self._principals.enabled(verified.client_id)

    def _check_external(self, issuer: ExternalIssuer, token: str) -> ExternalToken:
        found = issuer.verify(token)
        if found.jti is not None:
            self._revocations.check(found.jti)
        return found
