"""Stage 7: write the audit entry and the metrics of every call, whatever its outcome."""

from __future__ import annotations

import hashlib
import logging
import time

from bastion.audit import AuditEvent, AuditLog
from bastion.errors import (
    AuthError,
    BackendError,
    BastionError,
    Forbidden,
    InvalidInput,
    NotFound,
    RateLimited,
)
from bastion.identity import LockedOut
from bastion.monitor import GatewayMetrics, Monitor, Observation
from bastion.serving.call import Call, Tensors
from bastion.serving.edge import redacted
from bastion.types import Clock

logger = logging.getLogger("bastion.audit")

# OWASP Logging Vocabulary names where one fits; Bastion's own for model actions.
_SUCCESS = {
    "token": "authn_token_created",
    "revoke": "authn_token_revoked",
    "introspect": "authn_token_introspected",
    "infer": "model_infer",
    "describe": "model_describe",
    "read_metrics": "metrics_read",
    "read_audit": "audit_read",
    "query_data": "dp_query",
    "manage_principals": "admin_principals",
    "manage_policies": "admin_policies",
}
_FAILURE: tuple[tuple[type[BastionError], str], ...] = (
    (AuthError, "authn_login_fail"),
    (LockedOut, "authn_login_lock"),
    (Forbidden, "authz_fail"),
    (RateLimited, "excess_rate_limit_exceeded"),
    (InvalidInput, "input_validation_fail"),
    (NotFound, "resource_not_found"),
)


class Record:
    """Appends an audit entry; if that fails, the call fails too (fail closed)."""

    def __init__(
        self, *, audit: AuditLog, metrics: GatewayMetrics, monitor: Monitor, clock: Clock
    ) -> None:
        self._audit = audit
        self._metrics = metrics
        self._monitor = monitor
        self._clock = clock

    async def __call__(self, call: Call) -> None:
        """Record ``call``; on an audit failure, replace its outcome with a 503."""
        seconds = time.perf_counter() - call.started
        now = self._clock()
        try:  # before the audit entry: a failure here must be audited as what it answers
            seen = observation(call, now=now)
        except Exception as exc:  # any failure is the call's, never a 200
            logger.exception("observing request %s failed", call.request_id)
            call.error = BastionError(detail=type(exc).__name__)
            call.outputs = {}
            seen = observation(call, now=now)
        event = audit_event(call, now=now, seconds=seconds)
        try:
            await self._audit.append_async(event)  # answered only once durable
        except BastionError as exc:
            logger.error("audit append failed (%s); refusing request %s", exc.code, call.request_id)
            call.error = BackendError("The request could not be audited, so it was refused.")
            call.outputs = {}
            seen = observation(call, now=now)  # the monitors see the 503 too
        self._metrics.observe(
            route=call.route,
            model=call.model.name if call.model is not None else "-",  # never the URL's name
            status=call.status,
            decision=event.decision,
            seconds=seconds,
        )
        try:  # the entry says what was answered; a monitor's failure must not change that
            self._monitor.observe(seen)
        except Exception:
            logger.exception("monitoring request %s failed", call.request_id)


def audit_event(call: Call, *, now: float, seconds: float) -> AuditEvent:
    """The audit event of ``call``: identities, decision, digests and sizes, never payloads."""
    decision = call.decision
    output_sha256, output_bytes = _digest(call.outputs)
    return AuditEvent(
        event=event_name(call),
        time=round(now, 6),
        request_id=call.request_id,
        principal=call.principal.client_id if call.principal is not None else "-",
        auth_method=call.auth_method,
        source=call.client_ip,
        route=call.route,
        action=call.target.action,
        # An unresolved name is the URL's: a token pasted there must not reach the log.
        resource=call.model.ref if call.model is not None else redacted(call.target.resource),
        decision="none" if decision is None else ("allow" if decision.allowed else "deny"),
        policy_ids=decision.policy_ids if decision is not None else (),
        status=call.status,
        latency_ms=round(seconds * 1000, 3),
        input_sha256=call.input_sha256,
        input_bytes=call.input_bytes,
        output_sha256=output_sha256,
        output_bytes=output_bytes,
        reason=_reason(call),
    )


def _reason(call: Call) -> str:
    if call.error is not None:
        return (call.error.detail or call.error.code)[:200]
    if call.reply is not None:  # what was asked and what it cost; never the answer
        query = call.reply.answer.query
        return f"{query.describe()} at epsilon {query.epsilon:g}"[:200]
    if call.admin is not None:
        return call.admin.summary[:200]
    return ""


def observation(call: Call, *, now: float) -> Observation:
    """What the monitors see of ``call``.

    Who, from where and the outcome; for answered inferences also the query rows and
    predicted classes, which the detectors keep in memory only.
    """
    queries = None
    predicted: tuple[int, ...] = ()
    if call.error is None and call.target.action == "infer":
        floats = [array for array in call.inputs.values() if array.dtype.kind == "f"]
        # Rows only when there is at least one row of at least one value: reshape(0, -1)
        # raises, and the detectors have nothing to learn from an empty one anyway.
        if floats and floats[0].ndim >= 1 and floats[0].size > 0:
            queries = floats[0].reshape(floats[0].shape[0], -1)
        predicted = _predicted(call.outputs)
    return Observation(
        time=now,
        principal=call.principal.client_id if call.principal is not None else "-",
        source=call.client_ip,
        status=call.status,
        model=call.model.ref if call.model is not None else "",
        queries=queries,
        predicted=predicted,
    )


def _predicted(outputs: Tensors) -> tuple[int, ...]:
    for array in outputs.values():
        if array.dtype.kind in "iu" and array.ndim == 1:
            return tuple(int(label) for label in array)
    for array in outputs.values():
        if array.dtype.kind == "f" and array.ndim == 2 and array.size:  # noqa: PLR2004 - rows of scores
            return tuple(int(label) for label in array.argmax(axis=1))
    return ()


def event_name(call: Call) -> str:
    """The OWASP-style event name of the call's outcome."""
    if call.error is None:
        return _SUCCESS.get(call.target.action, call.target.action)
    return next((name for kind, name in _FAILURE if isinstance(call.error, kind)), "sys_error")


def _digest(outputs: Tensors) -> tuple[str, int]:
    if not outputs:
        return "", 0
    digest = hashlib.sha256()
    for name in sorted(outputs):
        array = outputs[name]
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest(), sum(array.nbytes for array in outputs.values())
