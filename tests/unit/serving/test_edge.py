"""The edge's pieces on their own: loggable paths, protocol errors, limits, metric labels."""

from __future__ import annotations

import json

import pytest

from bastion.monitor import GatewayMetrics
from bastion.monitor.metrics import MAX_LABEL_VALUES, OTHER
from bastion.serving.edge import REDACTED, SECURITY_HEADERS, loggable_path, protocol_error
from bastion.serving.server import ConnectionLimits


@pytest.mark.parametrize(
    ("raw", "logged"),
    [
        (b"/v2/models/digits/infer", "/v2/models/digits/infer"),
        (b"/oauth2/token?client_secret=bsk_x", "/oauth2/token"),
        (b"/v2/models/digits?access_token=eyJhbGc.e30.sig&x=1", "/v2/models/digits"),
        (b"/v2/models/eyJhbGciOiJFZERTQSJ9", f"/v2/models/{REDACTED}"),
        (b"/v2/models/bak_0123_secret/ready", f"/v2/models/{REDACTED}/ready"),
        (b"/v2/models/" + b"a" * 65, f"/v2/models/{REDACTED}"),
        (b"/v2/models/" + b"a" * 64, "/v2/models/" + "a" * 64),
        (b'/v2/models/a"b', "/v2/models/a%22b"),
        (b"/?", "/"),
    ],
)
def test_loggable_paths_hold_no_query_and_no_credential(raw, logged):
    """The access log's path: query dropped, token- or key-like segments redacted."""
    assert loggable_path(raw) == logged


def test_protocol_errors_are_json_with_the_security_headers():
    """The protocol's own answers are whole HTTP responses like the app's."""
    head, _, body = protocol_error(400, "The request is not valid HTTP/1.1.").partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert lines[0] == "HTTP/1.1 400 Bad Request"
    assert json.loads(body) == {"error": "The request is not valid HTTP/1.1."}
    assert int(headers["content-length"]) == len(body)
    assert headers["connection"] == "close"
    for name, value in SECURITY_HEADERS.items():
        assert headers[name.lower()] == value


def test_connection_limits_count_each_address_and_the_total():
    """Past the per-address or total limit a connection is refused; a release frees a place."""
    limits = ConnectionLimits(header_seconds=1, body_seconds=1, total=5, per_address=2)
    assert limits.admit("10.0.0.1", 1) and limits.admit("10.0.0.1", 2)
    assert not limits.admit("10.0.0.1", 3)  # third from one address
    assert limits.admit("10.0.0.2", 3)
    assert not limits.admit("10.0.0.3", 6)  # over the total
    limits.release("10.0.0.1")
    assert limits.admit("10.0.0.1", 3)
    for _ in range(2):
        limits.release("10.0.0.1")
    limits.release("10.0.0.2")
    assert not limits.open_by_address  # nothing left behind for addresses seen once


def test_metric_labels_have_a_ceiling():
    """Even values a caller failed to bound collapse into 'other' past the ceiling."""
    metrics = GatewayMetrics(audit_backlog=lambda: 0)
    for i in range(MAX_LABEL_VALUES * 3):
        metrics.observe(route=f"/r{i}", model=f"m{i}", status=404, decision="none", seconds=0.0)
    text = metrics.render().decode()
    models = {
        line.split('model="')[1].split('"')[0] for line in text.splitlines() if 'model="' in line
    }
    assert len(models) == MAX_LABEL_VALUES + 1 and OTHER in models
