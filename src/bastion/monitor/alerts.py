"""Alerts and where they go: the log, and a webhook signed with HMAC-SHA256."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import asdict, dataclass
from typing import Protocol

import httpx
from pydantic import SecretStr

from bastion.types import Clock

logger = logging.getLogger("bastion.alerts")


@dataclass(frozen=True)
class Alert:
    """Something a detector noticed. ``subject`` is a client id, address or model."""

    kind: str  # authn_failure_burst, rate_spike, new_network, model_extraction, input_drift
    subject: str
    detail: str
    time: float


class AlertSink(Protocol):
    """Anything that takes alerts."""

    def send(self, alert: Alert) -> None:
        """Deliver ``alert``; never raise for a delivery problem."""
        ...


class LogSink:
    """Writes alerts to the ``bastion.alerts`` logger."""

    def send(self, alert: Alert) -> None:
        """Log the alert at WARNING."""
        logger.warning("alert %s on %s: %s", alert.kind, alert.subject, alert.detail)


class WebhookSink:
    """POSTs each alert as JSON with ``X-Bastion-Signature: t=<time>,v1=<hex HMAC>``.

    The HMAC-SHA256 covers ``<time>.<body>`` under the shared secret, so the receiver can
    check origin and freshness.
    """

    def __init__(self, *, url: str, secret: SecretStr, client: httpx.Client, clock: Clock) -> None:
        self._url = url
        self._secret = secret
        self._client = client
        self._clock = clock

    def send(self, alert: Alert) -> None:
        """Deliver the alert; failures are logged, never raised."""
        body = json.dumps(asdict(alert), sort_keys=True).encode()
        stamp = str(int(self._clock()))
        mac = hmac.new(
            self._secret.get_secret_value().encode(), stamp.encode() + b"." + body, hashlib.sha256
        ).hexdigest()
        try:
            response = self._client.post(
                self._url,
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "X-Bastion-Signature": f"t={stamp},v1={mac}",
                },
            )
            response.raise_for_status()
        except httpx.HTTPError as exc:
            logger.error("alert webhook failed: %s", type(exc).__name__)
