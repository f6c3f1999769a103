"""The abuse detectors and the monitor that routes their alerts."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import threading
from typing import ClassVar

import httpx
import numpy as np
from pydantic import SecretStr

from bastion.monitor import (
    AuthFailureBurst,
    InputDrift,
    Monitor,
    NewNetwork,
    Observation,
    RateSpike,
    WebhookSink,
)


def seen(t, principal="bcl_a", source="10.0.0.1", status=200, **extra):
    return Observation(
        time=t, principal=principal, source=source, status=status, model="m@1", **extra
    )


def test_auth_failure_bursts_alert_once_per_address():
    """Ten 401s from one address within a minute alert once; slower failures do not."""
    detector = AuthFailureBurst(limit=10, window=60)
    fast = [a for t in range(12) for a in detector.observe(seen(t, "-", "10.9.9.9", 401))]
    assert [a.kind for a in fast] == ["authn_failure_burst"] and fast[0].subject == "10.9.9.9"
    slow = [a for t in range(0, 1200, 61) for a in detector.observe(seen(t, "-", "10.1.1.1", 401))]
    assert slow == []


def test_rate_spikes_against_a_principals_own_history():
    """Steady traffic is quiet; a sudden burst far above the moving average alerts."""
    detector = RateSpike(bucket=10, z=4, minimum=20, warmup=6)
    steady = [a for t in np.arange(0, 300, 2.0) for a in detector.observe(seen(float(t)))]
    assert steady == []
    burst = [a for t in np.arange(300, 310, 0.05) for a in detector.observe(seen(float(t)))]
    burst += detector.observe(seen(311.0))  # the next bucket closes the burst
    assert [a.kind for a in burst] == ["rate_spike"]


def test_new_networks_alert_only_after_a_history():
    """A first request from a new /24 alerts once the principal has a history."""
    detector = NewNetwork(history=20)
    early = [a for t in range(5) for a in detector.observe(seen(t, source=f"10.{t}.0.1"))]
    routine = [a for t in range(30) for a in detector.observe(seen(t, source="10.0.0.7"))]
    moved = detector.observe(seen(40, source="192.0.2.10"))
    assert early == [] and routine == []
    assert [a.kind for a in moved] == ["new_network"] and "192.0.2.0/24" in moved[0].detail


def test_input_drift_uses_the_stored_reference():
    """Windows of inputs are compared with the model's reference; no reference, no check."""
    rng = np.random.default_rng(1)
    reference = rng.normal(size=(400, 4))
    detector = InputDrift(references=lambda ref: reference if ref == "m@1" else None, window=200)
    calm = [
        a for _ in range(4) for a in detector.observe(seen(0, queries=rng.normal(size=(100, 4))))
    ]
    shifted = [
        a
        for _ in range(2)
        for a in detector.observe(seen(0, queries=rng.normal(loc=1.0, size=(100, 4))))
    ]
    other = detector.observe(
        Observation(
            time=0,
            principal="bcl_a",
            source="",
            status=200,
            model="x@1",
            queries=rng.normal(size=(300, 4)),
        )
    )
    assert calm == [] and [a.kind for a in shifted] == ["input_drift"] and other == []


class Receiver(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_alerts_are_recorded_and_delivered_to_a_signed_webhook():
    """Each alert is recorded and POSTed to a real HTTP receiver with a valid HMAC."""
    server = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    recorded = []
    try:
        with httpx.Client(timeout=5) as client:
            sink = WebhookSink(
                url=f"http://127.0.0.1:{server.server_port}/hook",
                secret=SecretStr("s3cret"),
                client=client,
                clock=lambda: 1000,
            )
            monitor = Monitor(
                detectors=[AuthFailureBurst(limit=3)], sinks=[sink], record=recorded.append
            )
            for t in range(3):
                monitor.observe(seen(t, "-", "10.6.6.6", 401))
            monitor.drain()
    finally:
        server.shutdown()
        server.server_close()
    assert [a.kind for a in recorded] == ["authn_failure_burst"]
    headers, body = Receiver.received[-1]
    stamp, mac = (part.split("=", 1)[1] for part in headers["X-Bastion-Signature"].split(","))
    expected = hmac.new(b"s3cret", stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(mac, expected) and json.loads(body)["subject"] == "10.6.6.6"


def test_a_failing_detector_does_not_stop_the_monitor():
    """A detector that raises is logged; later observations are still processed."""

    class Broken:
        def observe(self, _):
            raise RuntimeError("bug")

    recorded = []
    monitor = Monitor(detectors=[Broken()], sinks=[], record=recorded.append)
    monitor.observe(seen(0))
    monitor.observe(seen(1))
    monitor.drain()
    assert recorded == []
