"""The gateway's monitor: detectors wired to the audit log and the alert sinks."""

from __future__ import annotations

import logging
from concurrent.futures import Future

import httpx

from bastion.audit import AuditEntry, AuditEvent
from bastion.identity.principals import CLIENT_ID_PREFIX
from bastion.monitor import (
    Alert,
    AlertSink,
    AuthFailureBurst,
    Detector,
    ExtractionWatch,
    InputDrift,
    LogSink,
    Monitor,
    NewNetwork,
    RateSpike,
    WebhookSink,
)
from bastion.workspace import Workspace

_WEBHOOK_TIMEOUT = 5.0
logger = logging.getLogger("bastion.monitor")


def build_monitor(workspace: Workspace) -> Monitor:
    """Every detector, the log sink, the webhook when configured; alerts are audited."""
    settings = workspace.settings
    sinks: list[AlertSink] = [LogSink()]
    if settings.alert_webhook_url is not None and settings.alert_webhook_secret is not None:
        sinks.append(
            WebhookSink(
                url=settings.alert_webhook_url,
                secret=settings.alert_webhook_secret,
                client=httpx.Client(timeout=_WEBHOOK_TIMEOUT),
                clock=workspace.clock,
            )
        )
    detectors: list[Detector] = [
        AuthFailureBurst(),
        RateSpike(),
        NewNetwork(),
        ExtractionWatch(),
        InputDrift(references=workspace.registry.load_reference),
    ]

    def record(alert: Alert) -> None:
        # Through the one writer, without waiting for the commit: a detector's thread (or
        # the event loop) never blocks on the database for an alert.
        workspace.audit.submit(alert_event(alert)).add_done_callback(_report_failure)

    return Monitor(detectors=detectors, sinks=sinks, record=record)


def _report_failure(done: Future[AuditEntry]) -> None:
    error = done.exception()
    if error is not None:
        logger.error("could not audit an alert: %s", getattr(error, "code", type(error).__name__))


def alert_event(alert: Alert) -> AuditEvent:
    """An alert as an audit entry (``monitor_alert``)."""
    principal = alert.subject if alert.subject.startswith(CLIENT_ID_PREFIX) else "-"
    return AuditEvent.internal(
        event="monitor_alert",
        time=alert.time,
        principal=principal,
        action="alert",
        resource=alert.kind,
        reason=f"{alert.kind} on {alert.subject}: {alert.detail}",
    )
