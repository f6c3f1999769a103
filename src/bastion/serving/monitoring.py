"""The gateway's monitor: detectors wired to the audit log and the alert sinks."""

from __future__ import annotations

import httpx

from bastion.audit import AuditEvent
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
        workspace.audit.append(alert_event(alert))

    return Monitor(detectors=detectors, sinks=sinks, record=record)


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
