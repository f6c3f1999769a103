"""Monitoring: Prometheus metrics, abuse and extraction detectors, drift, alert sinks.

>>> from bastion.monitor import GatewayMetrics
>>> m = GatewayMetrics(audit_backlog=lambda: 0)
>>> m.observe(route="/v2/health/live", model="", status=200, decision="none", seconds=0.001)
>>> b"bastion_requests_total" in m.render()
True
"""

from bastion.monitor.alerts import Alert, AlertSink, LogSink, WebhookSink
from bastion.monitor.detectors import (
    AuthFailureBurst,
    ExtractionWatch,
    InputDrift,
    NewNetwork,
    Observation,
    RateSpike,
)
from bastion.monitor.drift import DriftDetector, DriftReport
from bastion.monitor.metrics import CONTENT_TYPE, GatewayMetrics
from bastion.monitor.monitor import Detector, Monitor
from bastion.monitor.prada import Prada

__all__ = [
    "CONTENT_TYPE",
    "Alert",
    "AlertSink",
    "AuthFailureBurst",
    "Detector",
    "DriftDetector",
    "DriftReport",
    "ExtractionWatch",
    "GatewayMetrics",
    "InputDrift",
    "LogSink",
    "Monitor",
    "NewNetwork",
    "Observation",
    "Prada",
    "RateSpike",
    "WebhookSink",
]
