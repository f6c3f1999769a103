"""Actions run outside the gateway still go through Cedar and the audit log.

The gateway's pipeline authorizes and records every request; the CLI and library calls
that promote a model, re-identify data or query it with differential privacy use
:class:`Guard` for the same two steps: one policy decision, then one audit entry per attempt
with its outcome.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

from bastion.audit import AuditEvent, AuditLog
from bastion.errors import BastionError, Forbidden
from bastion.identity import Principal
from bastion.policy.authorizer import AccessRequest, Action, Authorizer
from bastion.policy.labels import UNLABELLED, ModelLabels
from bastion.types import Clock

T = TypeVar("T")
# The OWASP-style event names of allowed actions.
_EVENTS = {
    "reidentify": "privacy_reidentify",
    "query_data": "privacy_query_data",
    "promote": "model_promote",
    "register": "model_register",
}


class Guard:
    """Decides an action with Cedar and audits it, allowed or not."""

    def __init__(self, *, authorizer: Authorizer, audit: AuditLog, clock: Clock) -> None:
        self._authorizer = authorizer
        self._audit = audit
        self._clock = clock

    def run(
        self,
        work: Callable[[], T],
        *,
        principal: Principal,
        action: Action,
        resource: str,
        audited_as: str,
        reason: str,
        context: Mapping[str, str | int],
        labels: ModelLabels = UNLABELLED,
    ) -> T:
        """``work()`` if the policies let ``principal`` do ``action`` on ``resource``.

        ``audited_as`` names the resource in the audit entry (``dataset/field``,
        ``model@version``); ``reason`` says what was asked, never with the values; the
        entry's event is ``<action>`` when allowed (``authz_fail`` when not); ``labels``
        are the model's, for model actions.

        Raises:
            Forbidden: the policies deny it (or the principal is disabled).
            BastionError: whatever ``work`` raised; it is audited with its code.
        """
        started = self._clock()
        context = {**context, "time": int(started)}
        request = AccessRequest(principal, action, resource, context, labels)
        decision = self._authorizer.decide(request)
        allowed = decision.allowed and not principal.disabled
        error: BastionError | None = None
        try:
            if not allowed:
                raise Forbidden(detail="no policy permits")
            return work()
        except BastionError as exc:
            error = exc
            raise
        finally:
            self._audit.append(
                AuditEvent(
                    event=_EVENTS.get(action, action) if allowed else "authz_fail",
                    time=started,
                    request_id="",
                    principal=principal.client_id,
                    auth_method="local",
                    source=str(context.get("ip", "")),
                    route="",
                    action=action,
                    resource=audited_as,
                    decision="allow" if allowed else "deny",
                    policy_ids=decision.policy_ids,
                    status=200 if error is None else error.http_status,
                    latency_ms=(self._clock() - started) * 1000,
                    reason=reason if error is None else f"{reason}: {error.code}",
                )
            )
