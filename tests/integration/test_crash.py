"""A gateway killed with SIGKILL under load loses no audit entry of an answered request."""

from __future__ import annotations

import ssl
import threading
import time

import httpx

from bastion.registry import OutputPolicy
from bastion.samples import DIGITS_INPUT
from bastion.serving import ServerProcess, free_port
from bastion.settings import Settings
from bastion.workspace import Workspace

PASSPHRASE = "crash test passphrase"


def test_every_answered_request_survives_a_sigkill(tmp_path, digits_file):
    """Requests answered before the kill all have their entry; the log verifies."""
    port = free_port()
    settings = Settings(home=tmp_path / "ws", port=port, passphrase=PASSPHRASE)
    ws = Workspace.create(settings, force=False)
    ws.registry.register(digits_file, name="digits", version=None, output_policy=OutputPolicy())
    ana = ws.principals.add("ana", role="analyst", attributes={})
    ws.close()
    answered: list[str] = []
    stop = threading.Event()
    env = {
        "BASTION_PASSPHRASE": PASSPHRASE,
        "BASTION_RATE_PER_SECOND": "100000",
        "BASTION_RATE_BURST": "100000",
    }
    body = {
        "inputs": [{"name": DIGITS_INPUT, "shape": [1, 64], "datatype": "FP32", "data": [0.5] * 64}]
    }

    with ServerProcess(home=settings.home, port=port, log=tmp_path / "log", env=env) as server:
        context = ssl.create_default_context(cafile=str(server.ca))

        def load() -> None:
            with httpx.Client(base_url=server.url, verify=context, timeout=10) as http:
                token = http.post(
                    "/oauth2/token",
                    data={"grant_type": "client_credentials"},
                    auth=(ana.principal.client_id, ana.secret.get_secret_value()),
                )
                headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
                while not stop.is_set():
                    try:
                        response = http.post("/v2/models/digits/infer", json=body, headers=headers)
                    except httpx.TransportError:
                        return  # the server died under us: this request got no answer
                    if response.status_code == 200:
                        answered.append(response.headers["x-request-id"])

        workers = [threading.Thread(target=load) for _ in range(8)]
        for worker in workers:
            worker.start()
        deadline = time.monotonic() + 30
        while len(answered) < 300 and time.monotonic() < deadline:
            time.sleep(0.01)
        server.kill()
        stop.set()
        for worker in workers:
            worker.join()

    assert len(answered) >= 300
    reopened = Workspace(settings=settings)
    recorded = {entry.event.request_id for entry in reopened.audit.tail(1_000_000)}
    missing = [request_id for request_id in answered if request_id not in recorded]
    assert missing == []
    assert reopened.audit.verify().size >= len(answered)
    reopened.close()
