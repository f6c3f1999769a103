"""Stage 1: turn the bearer token into a Principal, or fail with one opaque 401."""

from __future__ import annotations

from anyio import to_thread

from bastion.errors import AuthError, NotFound
from bastion.identity import Principal, PrincipalStore, TokenVerifier
from bastion.serving.call import Call


class Authenticate:
    """Verifies the access token and loads its enabled principal."""

    def __init__(self, *, verifier: TokenVerifier, principals: PrincipalStore) -> None:
        self._verifier = verifier
        self._principals = principals

    async def __call__(self, call: Call) -> None:
        """Set ``call.principal``.

        Raises:
            AuthError: no token, a bad token, or a disabled or deleted principal.
        """
        scheme, _, token = (call.authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError(detail="no bearer token")
        verified = self._verifier.verify(token.strip())
        call.principal = await to_thread.run_sync(self._enabled, verified.client_id)

    def _enabled(self, client_id: str) -> Principal:
        try:
            principal = self._principals.get(client_id)
        except NotFound:
            raise AuthError(detail="principal no longer exists") from None
        if principal.disabled:
            raise AuthError(detail="principal disabled")
        return principal
