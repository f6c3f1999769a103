"""Stage 3: rate limits and daily quotas, per principal and per model."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bastion.errors import AuthError
from bastion.serving.call import Call
from bastion.serving.limits import QuotaCounter, RateLimiter


@dataclass(frozen=True)
class ModelLimiter:
    """The limits of one model, shared by every principal that calls it."""

    rate: RateLimiter | None
    daily_quota: int | None


class Throttle:
    """Refuses a request when its principal or its model is over a rate or a daily quota.

    The model is the parsed name of the route, never the raw URL. Rates are checked before
    quotas, so a request refused for its rate does not count against a quota.
    """

    def __init__(
        self,
        *,
        principals: RateLimiter,
        quotas: QuotaCounter,
        principal_quota: int | None = None,
        models: Mapping[str, ModelLimiter] | None = None,
    ) -> None:
        self._principals = principals
        self._quotas = quotas
        self._principal_quota = principal_quota
        self._models = dict(models or {})

    async def __call__(self, call: Call) -> None:
        """Take one request from the principal's and the model's budgets.

        Raises:
            RateLimited: over a rate or a quota; ``detail`` names which.
            BackendUnavailable: the shared limits (Redis) do not answer: refused, not let through.
        """
        if call.principal is None:
            raise AuthError(detail="throttle reached without a principal")
        principal = call.principal.client_id
        model = self._models.get(call.target.model)
        await self._principals.check(principal)
        if model is not None and model.rate is not None:
            await model.rate.check(call.target.model)
        if self._principal_quota is not None:
            await self._quotas.take(f"principal:{principal}", self._principal_quota)
        if model is not None and model.daily_quota is not None:
            await self._quotas.take(f"model:{call.target.model}", model.daily_quota)
