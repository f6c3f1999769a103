"""Stage 3: per-principal rate limit."""

from __future__ import annotations

from bastion.errors import AuthError
from bastion.serving.call import Call
from bastion.serving.limits import RateLimiter


class Throttle:
    """Refuses principals that are over their rate."""

    def __init__(self, *, limiter: RateLimiter) -> None:
        self._limiter = limiter

    async def __call__(self, call: Call) -> None:
        """Take one request from the principal's budget.

        Raises:
            RateLimited: the principal is over its rate.
        """
        if call.principal is None:
            raise AuthError(detail="throttle reached without a principal")
        self._limiter.check(call.principal.client_id)
