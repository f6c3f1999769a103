"""Stage 2: ask the policy engine; deny unless a policy permits."""

from __future__ import annotations

from bastion.errors import AuthError, Forbidden
from bastion.policy import GATEWAY, AccessRequest, Action, Authorizer, Decision
from bastion.serving.cache import TtlCache
from bastion.serving.call import Call
from bastion.types import Clock

_CACHED = 10_000
_POLICY_ACTIONS: dict[str, Action] = {
    "infer": "infer",
    "describe": "describe",
    "read_metrics": "read_metrics",
    "read_audit": "read_audit",
}


class Authorize:
    """Decides the call's action on its resource with Cedar."""

    def __init__(self, *, authorizer: Authorizer, clock: Clock) -> None:
        self._authorizer = authorizer
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
        if call.api_key is not None and not call.api_key.allows(action, call.target.model):
            raise Forbidden(detail="outside the api key's scope")
        now = self._clock()
        principal, resource = call.principal, call.target.model or GATEWAY
        key = (
            self._authorizer.version,
            principal.client_id,
            principal.role,
            tuple(sorted(principal.attributes.items())),
            action,
            resource,
            call.client_ip,
            int(now),
        )
        decision = self._decisions.get(key, now=now)
        if decision is None:
            context: dict[str, str | int] = {"ip": call.client_ip, "time": int(now)}
            decision = self._authorizer.decide(AccessRequest(principal, action, resource, context))
            self._decisions.put(key, decision, expires=int(now) + 1)
        call.decision = decision
        if not decision.allowed:
            raise Forbidden(detail="; ".join(decision.errors) or "no policy permits")
