"""Detectors inside a real gateway: extraction, benign clients and drift, seen in the audit log."""

from __future__ import annotations

import ssl
import time
from contextlib import contextmanager

import httpx
import numpy as np
import pytest

from bastion.registry import OutputPolicy
from bastion.serving import ServerProcess, free_port
from bastion.settings import Settings
from bastion.workspace import Workspace
from tests.unit.monitor.test_prada import jacobian_attack

PASSPHRASE = "monitoring test passphrase"


@pytest.fixture(scope="module")
def served(tmp_path_factory, digits, digits_file):
    folder = tmp_path_factory.mktemp("monitoring")
    port = free_port()
    settings = Settings(home=folder / "ws", port=port, passphrase=PASSPHRASE)
    ws = Workspace.create(settings, force=False)
    ws.registry.register(
        digits_file,
        name="digits",
        version=None,
        output_policy=OutputPolicy(),
        reference=digits.images[:300],
    )
    clients = {
        name: ws.principals.add(name, role="analyst", attributes={})
        for name in ("mallory", "ben", "bea", "bob", "rex")
    }
    env = {
        "BASTION_PASSPHRASE": PASSPHRASE,
        "BASTION_RATE_PER_SECOND": "1000",
        "BASTION_RATE_BURST": "1000",
    }
    with ServerProcess(home=ws.paths.home, port=port, log=folder / "log", env=env) as server:
        yield server, ws, clients
    ws.close()


@contextmanager
def session(server, client):
    context = ssl.create_default_context(cafile=str(server.ca))
    with httpx.Client(base_url=server.url, timeout=30, verify=context) as http:
        token = http.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=(client.principal.client_id, client.secret.get_secret_value()),
        )
        http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        yield http


def predict(http, rows):
    rows = np.asarray(rows, dtype=np.float32)
    body = {
        "inputs": [
            {
                "name": "pixels",
                "shape": list(rows.shape),
                "datatype": "FP32",
                "data": rows.ravel().tolist(),
            }
        ],
        "outputs": [{"name": "label"}],
    }
    response = http.post("/v2/models/digits/infer", json=body)
    response.raise_for_status()
    return np.array(response.json()["outputs"][0]["data"])


def alerts(ws, kind, wait=10.0):
    deadline = time.monotonic() + wait
    while True:
        found = [
            e.event
            for e in ws.audit.search(event="monitor_alert", limit=1000)
            if e.event.resource == kind
        ]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_an_extraction_attack_is_flagged_and_benign_clients_are_not(served, digits):
    """PRADA in the gateway flags the Jacobian attack; three benign replays raise nothing."""
    server, ws, clients = served
    for name, offset in (("ben", 0), ("bea", 150), ("bob", 300)):
        with session(server, clients[name]) as http:
            order = np.random.default_rng(offset).permutation(len(digits.images))
            for start in range(0, 300, 30):
                predict(http, digits.images[order[start : start + 30]])
    rng = np.random.default_rng(7)
    seeds = digits.images[rng.choice(len(digits.images), 10, replace=False)]
    with session(server, clients["mallory"]) as http:
        sent = 0
        for batch, _ in jacobian_attack(lambda rows: predict(http, rows), seeds, rng=rng):
            sent += len(batch)
            if sent > 300:
                break
    found = alerts(ws, "model_extraction")
    assert [a.principal for a in found] == [clients["mallory"].principal.client_id]
    assert "Shapiro-Wilk" in found[0].reason


def test_drifted_inputs_are_flagged_against_the_stored_reference(served, digits):
    """Held-out digits match the reference stored at registration; inverted ones drift."""
    server, ws, clients = served
    with session(server, clients["ben"]) as http:
        predict(http, 1.0 - digits.images[:200])
        predict(http, 1.0 - digits.images[200:400])
    found = alerts(ws, "input_drift")
    assert found and "features drifted" in found[0].reason


def test_the_monitor_view_shows_traffic_and_alerts(served, digits):
    """`bastion monitor --once` summarises recent events, principals and alerts."""
    import os
    import subprocess
    import sys

    server, ws, clients = served
    with session(server, clients["bob"]) as http:
        predict(http, digits.images[:3])
        http.get("/v2/models/nope")
    result = subprocess.run(
        [sys.executable, "-m", "bastion", "--home", str(ws.paths.home), "monitor", "--once"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=os.environ | {"BASTION_PASSPHRASE": PASSPHRASE, "COLUMNS": "160"},
    )
    assert "Bastion monitor" in result.stdout and "model_infer" in result.stdout
    assert "resource_not_found" in result.stdout
    assert clients["bob"].principal.client_id in result.stdout


def test_redteam_attacks_through_the_api_and_the_gateway_sees_it(served, tmp_path):
    """`bastion redteam` reports; every query is audited as rex's and PRADA flags the attack."""
    import json
    import os
    import re
    import subprocess
    import sys

    server, ws, clients = served
    rex = clients["rex"]
    started = time.time()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bastion",
            "redteam",
            server.url,
            "digits",
            "--client-id",
            rex.principal.client_id,
            "--ca",
            str(server.ca),
            "--samples",
            "8",
            "--queries",
            "60",
            "--iterations",
            "4",
            "--linf",
            "0.1",
            "--l2",
            "1.5",
            "-o",
            str(tmp_path / "report"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=os.environ | {"BASTION_CLIENT_SECRET": rex.secret.get_secret_value(), "COLUMNS": "160"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "report" / "robustness.json").read_text())
    assert {p["attack"] for p in report["points"]} == {"square", "hopskipjump"}
    assert not report["white_box"] and all(p["queries"] > 0 for p in report["points"])
    assert (tmp_path / "report" / "robustness.html").is_file()
    calls = int(re.search(r"(\d+) inference calls", result.stdout).group(1))
    audited = ws.audit.search(principal=rex.principal.client_id, since=started, limit=100_000)
    assert sum(e.event.event == "model_infer" for e in audited) == calls
    flagged = [a.principal for a in alerts(ws, "model_extraction")]
    assert rex.principal.client_id in flagged
    assert rex.secret.get_secret_value() not in result.stdout + result.stderr
