"""Prometheus metrics of the gateway, owned by the app (no global registry)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_REFUSALS = {
    401: "authentication",
    403: "policy",
    429: "rate_limit",
    400: "input",
    413: "input",
    415: "input",
}
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MAX_LABEL_VALUES = 200  # distinct values of one label; any further value is counted as OTHER
OTHER = "other"


class GatewayMetrics:
    """Request counts and latencies by route template, model, status and decision.

    Labels never carry principal ids or other high-cardinality values: ``model`` is a
    registered model's name or ``-`` (the caller resolves it; a name from the URL that names
    no model never becomes a label), and as a backstop each label takes at most
    :data:`MAX_LABEL_VALUES` distinct values, any further one counted as :data:`OTHER`, so no
    client can grow the exposition.
    """

    def __init__(self, *, audit_backlog: Callable[[], int]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests = Counter(
            "bastion_requests",
            "Requests handled, by route template, model, status and decision.",
            ["route", "model", "status", "decision"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "bastion_request_duration_seconds",
            "Time from receiving a request to answering it.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._refusals = Counter(
            "bastion_refusals",
            "Requests refused, by reason: authentication, policy, rate_limit or input.",
            ["reason"],
            registry=self.registry,
        )
        backlog = Gauge(
            "bastion_audit_queue_depth",
            "Audit entries waiting to be committed.",
            registry=self.registry,
        )
        backlog.set_function(audit_backlog)
        self._seen: dict[str, set[str]] = {"route": set(), "model": set()}

    def observe(
        self, *, route: str, model: str, status: int, decision: str, seconds: float
    ) -> None:
        """Count one answered request."""
        route, model = self._bounded("route", route), self._bounded("model", model)
        self._requests.labels(route, model, str(status), decision).inc()
        self._latency.labels(route).observe(seconds)
        reason = _REFUSALS.get(status)
        if reason is not None:
            self._refusals.labels(reason).inc()

    def _bounded(self, label: str, value: str) -> str:
        seen = self._seen[label]
        if value in seen:
            return value
        if len(seen) >= MAX_LABEL_VALUES:
            return OTHER
        seen.add(value)
        return value

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return bytes(generate_latest(self.registry))
