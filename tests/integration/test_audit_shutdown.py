"""A gateway stopped cleanly leaves every audit entry it wrote under a signed checkpoint."""

from __future__ import annotations

import signal

from bastion.samples import DIGITS_INPUT

# Neither trigger can fire while the gateway runs: only its shutdown can sign.
GATEWAY_CONFIG = "\naudit_checkpoint_seconds = 3600\naudit_checkpoint_entries = 1000000\n"


def test_a_gateway_stopped_with_sigterm_leaves_every_entry_signed(gateway):
    """Seconds after start, a few requests, SIGTERM: verify finds no unsigned entry."""
    body = {
        "inputs": [{"name": DIGITS_INPUT, "shape": [1, 64], "datatype": "FP32", "data": [0.5] * 64}]
    }
    headers = {"Authorization": f"Bearer {gateway.token(gateway.analyst)}"}
    with gateway.http() as http:
        for _ in range(5):
            assert http.post("/v2/models/digits/infer", json=body, headers=headers).is_success
        assert http.get("/v2/models/no-such-model", headers=headers).status_code == 404
    audit = gateway.workspace.audit
    assert audit.verify().uncovered >= 7  # written, not yet signed: the triggers are far off
    process = gateway.server._process
    gateway.server.stop()  # SIGTERM; SIGKILL only after 10 s
    # uvicorn re-raises the SIGTERM once shut down: -15 is a clean exit, -9 the fallback kill.
    assert process is not None and process.returncode == -signal.SIGTERM
    assert "Application shutdown complete" in gateway.server.log.read_text()
    report = audit.verify()
    assert report.size >= 7
    assert report.uncovered == 0
    assert audit.latest_checkpoint().size == report.size
