"""Stage 2: ask the policy engine; deny unless a policy permits.

Policies may decide on the model's labels (risk tier, data classification), so this stage
looks them up — before the model is loaded, and without telling a principal whether a model
it may not use exists: an unregistered name gets the most restrictive labels.
"""

from __future__ import annotations

from anyio import to_thread

from bastion.errors import AuthError, Forbidden, NotFound
from bastion.policy import (
    GATEWAY,
    UNREGISTERED,
    AccessRequest,
    Action,
    Authorizer,
    Decision,
    ModelLabels,
)
from bastion.registry import ModelRegistry
from bastion.serving.cache import TtlCache
from bastion.serving.call import Call, Target
from bastion.types import Clock

_CACHED = 10_000
# Labels of a version never change, but "the newest version" does when one is registered:
# a new version's labels apply within this many seconds.
_LABELS_SECONDS = 2.0
_POLICY_ACTIONS: dict[str, Action] = {
    "infer": "infer",
    "describe": "describe",
    "read_metrics": "read_metrics",
    "read_audit": "read_audit",
    "query_data": "query_data",
}


class Authorize:
    """Decides the call's action on its resource with Cedar."""

    def __init__(self, *, authorizer: Authorizer, registry: ModelRegistry, clock: Clock) -> None:
        self._authorizer = authorizer
        self._registry = registry
        self._clock = clock
        self._labels: TtlCache[tuple[str, str | None], ModelLabels] = TtlCache(size=_CACHED)
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
        now = self._clock()
        principal, resource = call.principal, call.target.resource or GATEWAY
        labels = await self._labels_of(call.target, now) if call.target.model else UNREGISTERED
        key = (
            self._authorizer.version,
            principal.client_id,
            principal.role,
            tuple(sorted(principal.attributes.items())),
            action,
            resource,
            labels,
            call.client_ip,
            int(now),
        )
        decision = self._decisions.get(key, now=now)
        if decision is None:
            context: dict[str, str | int] = {"ip": call.client_ip, "time": int(now)}
            request = AccessRequest(principal, action, resource, context, labels)
            decision = self._authorizer.decide(request)
            self._decisions.put(key, decision, expires=int(now) + 1)
        call.decision = decision
        if not decision.allowed:
            raise Forbidden(detail="; ".join(decision.errors) or "no policy permits")

    async def _labels_of(self, target: Target, now: float) -> ModelLabels:
        key = (target.model, target.version)
        labels = self._labels.get(key, now=now)
        if labels is None:
            labels = await to_thread.run_sync(self._lookup, target.model, target.version)
            self._labels.put(key, labels, expires=now + _LABELS_SECONDS)
        return labels

    def _lookup(self, name: str, version: str | None) -> ModelLabels:
        try:
            return self._registry.get(name, version).labels
        except NotFound:
            return UNREGISTERED
