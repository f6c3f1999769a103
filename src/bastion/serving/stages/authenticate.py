"""Stage 1: turn the bearer token (or API key) into a Principal, or fail with one opaque 401."""

from __future__ import annotations

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
from bastion.serving.cache import TtlCache
from bastion.serving.call import Call
from bastion.types import Clock

# token → (certificate thumbprint, verified claims, principal), for a few seconds at most
Sessions = TtlCache[str, tuple[str | None, VerifiedToken, Principal]]
_PRINCIPALS = 100_000


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
    ) -> None:
        self._verifier = verifier
        self._principals = principals
        self._revocations = revocations
        self._api_keys = api_keys
        self._sessions = sessions
        self._cache_seconds = cache_seconds
        self._clock = clock
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
        cached = self._sessions.get(token, now=now)
        if cached is not None and cached[0] == certificate:
            _, verified, call.principal = cached  # warm: no signature check, no thread hop
        else:
            verified = self._verifier.verify(token, certificate_thumbprint=certificate)
            call.principal = self._known(verified, now)
            if call.principal is None:
                call.principal = await to_thread.run_sync(self._load, verified)
                if self._cache_seconds > 0:
                    expires = now + self._cache_seconds
                    self._principals_seen.put(verified.client_id, call.principal, expires=expires)
            if self._cache_seconds > 0:
                expires = min(float(verified.expires_at), now + self._cache_seconds)
                self._sessions.put(token, (certificate, verified, call.principal), expires=expires)
        call.auth_method = "bearer+certificate" if verified.certificate_bound else "bearer"
        call.scopes = verified.scopes

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
