"""Requests per second and latency of V2 inference on the digits model, under wrk.

Run: .venv/bin/python benchmarks/serving.py [--seconds 15] [--connections 16]

These servers answer the same V2 JSON request for the same ONNX model, one after the
other, each loaded by ``wrk`` (Debian package) with 16 connections:

- **MLServer** (no security), in its own virtual environment (``tests/mlserver.py`` makes
  it on first run under ``.venv-mlserver``), ``parallel_workers: 0``, with a small custom
  runtime that runs the model with onnxruntime — the same engine as the others;
- **bare**: a Starlette + onnxruntime V2 endpoint in one uvicorn process, nothing else;
  it runs twice, over plain HTTP (the issue's peer) and over TLS (what TLS alone costs);
- **bare, TLS + jailed workers**: the bare endpoint over TLS with its model in Bastion's pool
  of two bubblewrap-jailed workers and nothing else: the floor of any sandboxed server that
  makes one worker round trip per request;
- **Bastion** with everything on: TLS 1.3, an access token checked on every request, Cedar,
  rate limit, schema validation, the model in a bubblewrap-jailed worker pool, output
  policy, audit log (every request recorded) and metrics.

It prints each server's requests/s and latency percentiles, then the two ratios the
serving issue names (Bastion / MLServer, Bastion / bare over plain HTTP) and Bastion's
share of the sandboxed floor.
``benchmarks/serving_breakdown.py`` shows where Bastion's own time goes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from bastion.crypto.tls import CertificatePaths, create_local_pki
from bastion.registry import OutputPolicy
from bastion.samples import DIGITS_INPUT, train_digits
from bastion.serving import ServerProcess, free_port
from bastion.settings import Settings
from bastion.workspace import Workspace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's tests/
from tests.mlserver import mlserver  # the MLServer peer, shared with the tests

PASSPHRASE = "serving benchmark passphrase"

# Run as: bare.py MODEL PORT [CERT KEY [jailed]]. "jailed" runs the model in Bastion's own
# pool of two bubblewrap-jailed workers instead of in process: the floor of any sandboxed
# design, with nothing else (no token, policy, audit, ...).
BARE_APP = """
import sys, types
import numpy as np, onnxruntime as ort, uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

if sys.argv[5:] == ["jailed"]:  # the workers start on the first requests (wrk's warm-up)
    from bastion.sandbox import Jail, SandboxLimits, WorkerPool
    model = open(sys.argv[1], "rb").read()
    ref = types.SimpleNamespace(name="digits", version="1", ref="digits@1")
    pool = WorkerPool(ref, jail=Jail(limits=SandboxLimits()), artifact=lambda: model, size=2)

    async def run(name, x):
        outputs = await pool.run({name: x}, ["label", "probabilities"])
        return outputs["label"], outputs["probabilities"]
else:
    session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])

    async def run(name, x):
        return session.run(None, {name: x})

async def infer(request):
    body = await request.json()
    tensor = body["inputs"][0]
    x = np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
    label, probabilities = await run(tensor["name"], x)
    return JSONResponse({"model_name": "digits", "outputs": [
        {"name": "label", "datatype": "INT64", "shape": list(label.shape),
         "data": label.ravel().tolist()},
        {"name": "probabilities", "datatype": "FP32", "shape": list(probabilities.shape),
         "data": probabilities.ravel().tolist()}]})

async def ready(request):
    return JSONResponse({"ready": True})

app = Starlette(routes=[
    Route("/v2/models/digits/infer", infer, methods=["POST"]),
    Route("/v2/health/ready", ready),
])
tls = {"ssl_certfile": sys.argv[3], "ssl_keyfile": sys.argv[4]} if len(sys.argv) > 3 else {}
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", **tls)
"""


def request_body() -> str:
    image = train_digits().images[0].reshape(1, 64)
    tensor = {"name": DIGITS_INPUT, "shape": [1, 64], "datatype": "FP32"}
    return json.dumps({"inputs": [tensor | {"data": image.ravel().tolist()}]})


def measure(url: str, body: str, *, seconds: int, connections: int, token: str | None) -> dict:
    """wrk for 3 s to warm up (workers started, caches filled), then the measured run."""
    wrk(url, body, seconds=3, connections=connections, token=token)
    return wrk(url, body, seconds=seconds, connections=connections, token=token)


def wrk(url: str, body: str, *, seconds: int, connections: int, token: str | None) -> dict:
    """Run wrk once; requests/s, latency percentiles (ms) and non-2xx count."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    script.write_text(
        f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n'
        + "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in headers.items())
    )
    threads = min(2, connections)
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    out = subprocess.run(
        [*command, "-s", str(script), url], capture_output=True, text=True, check=True
    ).stdout
    script.unlink()
    latency = {
        p: _ms(v) for p, v in re.findall(r"^\s+(50|90|99)%\s+(\S+)", out, flags=re.MULTILINE)
    }
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": latency["50"],
        "p99": latency["99"],
        "errors": int(errors.group(1)) if errors else 0,
    }


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()
    return float(number) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def wait_for(url: str, *, verify: ssl.SSLContext | bool = False, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, verify=verify, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


@contextmanager
def process(command: list[str], log: Path, **kwargs) -> Iterator[None]:
    with log.open("wb") as out:
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, **kwargs)
    try:
        yield
    finally:
        child.terminate()
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()


@contextmanager
def bare(folder: Path, model: Path, *, tls: bool = False, jailed: bool = False) -> Iterator[str]:
    port = free_port()
    script = folder / "bare.py"
    script.write_text(BARE_APP)
    command = [sys.executable, str(script), str(model), str(port)]
    scheme = "http"
    if tls or jailed:  # a certificate from a throwaway local CA, as a Bastion workspace has
        paths = CertificatePaths.under(folder / "pki")
        if not paths.server_cert.exists():
            (folder / "pki").mkdir()
            create_local_pki(paths, hosts=("127.0.0.1",), now=dt.datetime.now(dt.UTC))
        command += [str(paths.server_cert), str(paths.server_key), *(["jailed"] if jailed else [])]
        scheme = "https"
    with process(command, folder / "bare.log"):
        wait_for(f"{scheme}://127.0.0.1:{port}/v2/health/ready")
        yield f"{scheme}://127.0.0.1:{port}/v2/models/digits/infer"


@contextmanager
def bastion(folder: Path, model: Path, workers: int) -> Iterator[tuple[str, str]]:
    home, port = folder / "ws", free_port()
    workspace = Workspace.create(Settings(home=home, port=port, passphrase=PASSPHRASE), force=False)
    (home / "bastion.toml").write_text(
        f"rate_per_second = 1000000\nrate_burst = 1000000\nsandbox_workers = {workers}\n"
        'log_level = "warning"\n'
    )
    workspace.registry.register(model, name="digits", version="1", output_policy=OutputPolicy())
    analyst = workspace.principals.add("bench", role="analyst", attributes={})
    env = {"BASTION_PASSPHRASE": PASSPHRASE}
    with ServerProcess(home=home, port=port, log=folder / "bastion.log", env=env) as server:
        context = ssl.create_default_context(cafile=server.ca)
        credentials = (analyst.principal.client_id, analyst.secret.get_secret_value())
        token = httpx.post(
            f"{server.url}/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=credentials,
            verify=context,
        ).json()["access_token"]
        yield f"{server.url}/v2/models/digits/infer", token
    workspace.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="Bastion's sandboxed workers")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install wrk")
    body = request_body()
    load = {"seconds": args.seconds, "connections": args.connections}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = folder / "digits.onnx"
        model.write_bytes(train_digits().onnx)
        with mlserver(folder, model.read_bytes()) as base:
            url = f"{base}/v2/models/digits/infer"
            results["MLServer (no security)"] = measure(url, body, token=None, **load)
        with bare(folder, model) as url:
            results["bare Starlette + onnxruntime"] = measure(url, body, token=None, **load)
        with bare(folder, model, tls=True) as url:
            results["bare, over TLS"] = measure(url, body, token=None, **load)
        with bare(folder, model, jailed=True) as url:
            results["bare, TLS + jailed workers"] = measure(url, body, token=None, **load)
        with bastion(folder, model, args.workers) as (url, token):
            results["Bastion, full pipeline"] = measure(url, body, token=token, **load)
    print(f"\nwrk, {args.connections} connections, {args.seconds} s each, digits model (V2 JSON)")
    print(f"{'server':32} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
    for name, r in results.items():
        print(f"{name:32} {r['rps']:9.0f} {r['p50']:8.2f} {r['p99']:8.2f} {r['errors']:8d}")
    ours = results["Bastion, full pipeline"]
    peer, bare_endpoint = (
        results["MLServer (no security)"],
        results["bare Starlette + onnxruntime"],
    )
    print(f"\nBastion / MLServer: {ours['rps'] / peer['rps']:.2f}x (target ≥ 3)")
    print(f"Bastion / bare:     {ours['rps'] / bare_endpoint['rps']:.2f}x (target ≥ 0.5)")
    print(f"Bastion p99:        {ours['p99']:.2f} ms (target ≤ 5)")
    floor = results["bare, TLS + jailed workers"]["rps"]
    print(f"Bastion / floor:    {ours['rps'] / floor:.2f}x", end=" ")
    print(f"(floor: {floor / peer['rps']:.2f}x MLServer, {floor / bare_endpoint['rps']:.2f}x bare)")


if __name__ == "__main__":
    main()
