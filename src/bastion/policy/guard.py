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
# What an attempt is audited as when the work was cut short (KeyboardInterrupt, SystemExit).
_INTERRUPTED = (500, "interrupted")


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

        Every attempt is audited with its outcome, failures included: a BastionError with
        its status and code, any other exception as ``internal_error`` (500), and an
        interruption (Ctrl-C, SystemExit) as ``interrupted`` (500). The entry never says
        200 unless ``work`` returned.

        Raises:
            Forbidden: the policies deny it (or the principal is disabled).
            BastionError: whatever ``work`` raised; it is audited with its code. Any other
                exception is raised as a plain BastionError (500) with only its type in
                ``detail`` and the audit reason: its message might quote the values the
                work was handling.
        """
        started = self._clock()
        context = {**context, "time": int(started)}
        request = AccessRequest(principal, action, resource, context, labels)
        decision = self._authorizer.decide(request)
        allowed = decision.allowed and not principal.disabled
        status, code = _INTERRUPTED  # until work() returns or raises, it has not succeeded
        try:
            if not allowed:
                raise Forbidden(detail="no policy permits")
            result = work()
            status, code = 200, ""
            return result
        except BastionError as exc:
            status, code = exc.http_status, exc.code
            raise
        except Exception as exc:
            # Fail closed (STYLE E5, E7): an unexpected failure is audited as one and raised
            # as a Bastion error, without its cause (it may quote re-identified values).
            failure = BastionError(detail=f"{action} failed: {type(exc).__name__}")
            # The type only (a class name, never data) tells the operator where to look.
            status, code = failure.http_status, f"{failure.code} ({type(exc).__name__})"
            raise failure from None
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
                    status=status,
                    latency_ms=(self._clock() - started) * 1000,
                    reason=f"{reason}: {code}" if code else reason,
                )
            )
