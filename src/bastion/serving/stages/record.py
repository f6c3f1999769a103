"""Stage 7: write the audit record and the metrics of every call, whatever its outcome."""

from __future__ import annotations

import logging
import time

from anyio import to_thread

from bastion.audit import AuditEvent, AuditLog
from bastion.errors import BackendError, BastionError
from bastion.monitor import GatewayMetrics
from bastion.serving.call import Call
from bastion.types import Clock

logger = logging.getLogger("bastion.audit")


class Record:
    """Appends an audit record; if that fails, the call fails too (fail closed)."""

    def __init__(self, *, audit: AuditLog, metrics: GatewayMetrics, clock: Clock) -> None:
        self._audit = audit
        self._metrics = metrics
        self._clock = clock

    async def __call__(self, call: Call) -> None:
        """Record ``call``; on an audit failure, replace its outcome with a 503."""
        seconds = time.perf_counter() - call.started
        event = audit_event(call, now=self._clock(), seconds=seconds)
        try:
            await to_thread.run_sync(self._audit.append, event)
        except BastionError as exc:
            logger.error("audit append failed (%s); refusing request %s", exc.code, call.request_id)
            call.error = BackendError("The request could not be audited, so it was refused.")
            call.outputs = {}
        decision = (
            "none" if call.decision is None else ("allow" if call.decision.allowed else "deny")
        )
        self._metrics.observe(
            route=call.route,
            model=call.target.model,
            status=call.status,
            decision=decision,
            seconds=seconds,
        )


def audit_event(call: Call, *, now: float, seconds: float) -> AuditEvent:
    """The audit event of ``call``: identities, decision and digests, never payloads."""
    decision = call.decision
    resource = call.model.ref if call.model is not None else call.target.model
    error = call.error
    return AuditEvent(
        time=round(now, 6),
        request_id=call.request_id,
        principal=call.principal.client_id if call.principal is not None else "-",
        action=call.target.action,
        resource=resource,
        decision="none" if decision is None else ("allow" if decision.allowed else "deny"),
        policy_ids=decision.policy_ids if decision is not None else (),
        status=call.status,
        latency_ms=round(seconds * 1000, 3),
        input_sha256=call.input_sha256,
        reason="" if error is None else (error.detail or error.code)[:200],
    )
