"""Stage 2: ask the policy engine; deny unless a policy permits.

Policies may decide on the model's labels (risk tier, data classification), so this stage
looks them up — before the model is loaded, and without telling a principal whether a model
it may not use exists: an unregistered name gets the most restrictive labels.
"""

from __future__ import annotations

import re

from bastion.errors import AuthError, Forbidden, InvalidInput, NotFound
from bastion.policy import (
    GATEWAY,
    UNREGISTERED,
    AccessRequest,
    Action,
    Authorizer,
    Decision,
    ModelLabels,
)
from bastion.serving.cache import ModelCache, TtlCache
from bastion.serving.call import Call, Target
from bastion.types import Clock

_CACHED = 10_000
_POLICY_ACTIONS: dict[str, Action] = {
    "infer": "infer",
    "describe": "describe",
    "read_metrics": "read_metrics",
    "read_audit": "read_audit",
    "query_data": "query_data",
    "manage_principals": "manage_principals",
    "manage_policies": "manage_policies",
}
_PURPOSE = re.compile(r"[A-Za-z0-9._-]{0,64}")


class Authorize:
    """Decides the call's action on its resource with Cedar."""

    def __init__(self, *, authorizer: Authorizer, models: ModelCache, clock: Clock) -> None:
        self._authorizer = authorizer
        self._models = models
        self._clock = clock
        # The same request in the same second gets the same decision: policies are fixed
        # while the gateway runs and the context's time has a one-second resolution.
        self._decisions: TtlCache[tuple[object, ...], Decision] = TtlCache(size=_CACHED)

    async def __call__(self, call: Call) -> None:
        """Set ``call.decision``.

        Raises:
            Forbidden: the decision is deny.
        """
        if call.principal is None:
            raise AuthError(detail="authorize reached without a principal")  # fail closed
        action = _POLICY_ACTIONS.get(call.target.action)
        if action is None:
            raise Forbidden(detail=f"no policy action for {call.target.action}")
        if call.api_key is not None and not call.api_key.allows(action, call.target.resource):
            raise Forbidden(detail="outside the api key's scope")
        if call.scopes is not None and action not in call.scopes:
            raise Forbidden(detail="outside the token's scope")
        if not _PURPOSE.fullmatch(call.purpose):
            raise InvalidInput("Bastion-Purpose is up to 64 letters, digits, '.', '_' or '-'.")
        now = self._clock()
        principal, resource = call.principal, call.target.resource or GATEWAY
        certificate = (call.certificate.client_id or "") if call.certificate else ""
        labels = await self._labels_of(call.target) if call.target.model else UNREGISTERED
        key = (
            self._authorizer.version,
            principal.client_id,
            principal.role,
            tuple(sorted(principal.attributes.items())),
            action,
            resource,
            labels,
            call.client_ip,
            certificate,
            call.purpose,
            int(now),
        )
        decision = self._decisions.get(key, now=now)
        if decision is None:
            context: dict[str, str | int] = {
                "ip": call.client_ip,
                "time": int(now),
                "certificate": certificate,
                "purpose": call.purpose,
            }
            request = AccessRequest(principal, action, resource, context, labels)
            decision = self._authorizer.decide(request)
            self._decisions.put(key, decision, expires=int(now) + 1)
        call.decision = decision
        if not decision.allowed:
            raise Forbidden(detail="; ".join(decision.errors) or "no policy permits")

    async def _labels_of(self, target: Target) -> ModelLabels:
        try:
            return (await self._models.get(target.model, target.version)).labels
        except NotFound:
            return UNREGISTERED
