"""A real gateway whose models run in bubblewrap: a hostile model cannot take it down."""

import ssl
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from bastion.registry import OutputPolicy
from bastion.samples import DIGITS_INPUT
from bastion.serving import ServerProcess, free_port
from bastion.settings import Settings
from bastion.workspace import Workspace
from tests.hostile_models import spinner
from tests.integration.conftest import access_token

PASSPHRASE = "sandbox test passphrase"


@pytest.fixture(scope="module")
def server(tmp_path_factory, digits_file):
    home = tmp_path_factory.mktemp("sandbox") / "ws"
    port = free_port()
    settings = Settings(home=home, port=port, passphrase=PASSPHRASE)
    workspace = Workspace.create(settings, force=False)
    (home / "bastion.toml").write_text(
        "sandbox_timeout_seconds = 1.0\nsandbox_workers = 1\n[sandbox_pool_sizes]\ndigits = 2\n"
    )
    spin = home.parent / "spinner.onnx"
    spin.write_bytes(spinner())
    workspace.registry.register(spin, name="spinner", version="1", output_policy=OutputPolicy())
    workspace.registry.register(
        digits_file, name="digits", version="1", output_policy=OutputPolicy()
    )
    analyst = workspace.principals.add("ana", role="analyst", attributes={})
    env = {"BASTION_PASSPHRASE": PASSPHRASE}
    log = home.parent / "server.log"
    with ServerProcess(home=home, port=port, log=log, env=env) as process:
        context = ssl.create_default_context(cafile=process.ca)
        with httpx.Client(base_url=process.url, verify=context, timeout=30) as http:
            token = access_token(http, analyst)
            http.headers["Authorization"] = f"Bearer {token}"
            yield http, log, process
    workspace.close()


def spin(http, count):
    body = {"inputs": [{"name": "n", "shape": [1], "datatype": "INT64", "data": [count]}]}
    return http.post("/v2/models/spinner/infer", json=body)


def digits(http):
    body = {
        "inputs": [{"name": DIGITS_INPUT, "shape": [1, 64], "datatype": "FP32", "data": [0.0] * 64}]
    }
    return http.post("/v2/models/digits/infer", json=body)


def test_the_default_versions_are_warm_when_the_gateway_is_ready(server):
    """Ready means started: spinner's one worker and digits' two are already running."""
    _, _, process = server
    tasks = Path(f"/proc/{process.pid}/task").iterdir()
    children = [pid for task in tasks for pid in (task / "children").read_text().split()]
    assert len(children) == 3


def test_a_spinning_model_is_stopped_while_other_models_keep_serving(server):
    http, log, _ = server
    assert spin(http, 3).json()["outputs"][0]["data"] == [3]
    with ThreadPoolExecutor(4) as pool:
        hostile = [pool.submit(spin, http, 10**15) for _ in range(2)]
        honest = [pool.submit(digits, http) for _ in range(40)]
        assert [f.result().status_code for f in honest] == [200] * 40
        refused = [f.result() for f in hostile]
    assert [r.status_code for r in refused] == [503, 503]
    assert refused[0].json()["error"] == "The model's worker failed; it is being restarted."
    assert spin(http, 4).json()["outputs"][0]["data"] == [4]  # a fresh worker serves
    assert http.get("/v2/health/ready").json() == {"ready": True}
    assert "model worker of spinner@1 stopped: timed out" in log.read_text()


def _children(pid):
    tasks = Path(f"/proc/{pid}/task").iterdir()
    return [int(child) for task in tasks for child in (task / "children").read_text().split()]


def test_no_jailed_process_holds_the_passphrase_or_runs_as_root(server):
    """The jails start without the gateway's environment; its workers are not host root."""
    _, _, process = server
    jails = _children(process.pid)
    workers = [worker for jail in jails for worker in _children(jail)]
    assert len(jails) == len(workers) == 3
    for pid in jails + workers:
        assert PASSPHRASE.encode() not in Path(f"/proc/{pid}/environ").read_bytes()
    for pid in workers:
        status = Path(f"/proc/{pid}/status").read_text()
        uids = next(line for line in status.splitlines() if line.startswith("Uid:"))
        assert "0" not in uids.split()[1:]
