"""A real MLServer, in its own virtual environment, serving an ONNX model (tests, benchmarks).

The environment is made once under ``.venv-mlserver`` at the repository root (pip, from
PyPI). MLServer runs a small custom runtime (onnxruntime, the same engine as Bastion's
workers) with ``parallel_workers: 0``; with ``tls`` it serves HTTPS and requires a client
certificate signed by the given CA (uvicorn's TLS settings, which MLServer passes through).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import onnx

from bastion.registry import ModelSignature
from bastion.serving import free_port

ROOT = Path(__file__).parents[1]
VENV = ROOT / ".venv-mlserver"

RUNTIME = """
import numpy as np, onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceResponse
from mlserver.utils import get_model_uri

class OnnxRuntime(MLModel):
    async def load(self):
        uri = await get_model_uri(self._settings)
        self._session = ort.InferenceSession(uri, providers=["CPUExecutionProvider"])
        return True

    async def predict(self, payload):
        inputs = {t.name: NumpyCodec.decode_input(t) for t in payload.inputs}
        names = [o.name for o in self._session.get_outputs()]
        results = self._session.run(names, inputs)
        return InferenceResponse(model_name=self.name, outputs=[
            NumpyCodec.encode_output(name, value) for name, value in zip(names, results)])
"""

# Starts MLServer like `mlserver start FOLDER`, with uvicorn's TLS settings when given.
LAUNCHER = """
import asyncio, json, ssl, sys
from mlserver import MLServer
from mlserver.cli.serve import load_settings

async def main(folder, tls):
    settings, models = await load_settings(folder)
    if tls:
        settings._custom_rest_server_settings = tls | {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    await MLServer(settings).start(models)

asyncio.run(main(sys.argv[1], json.loads(sys.argv[2])))
"""


@dataclass(frozen=True)
class ServerTls:
    """MLServer's certificate and key, the CA of both sides, and a client pair to probe it."""

    certificate: Path
    key: Path
    ca: Path  # signed MLServer's certificate, and the client certificates it accepts
    client_certificate: Path
    client_key: Path


def python() -> Path:
    """MLServer's virtual environment, made on first use (once, whatever runs in parallel)."""
    interpreter = VENV / "bin" / "python"
    ready = VENV.with_name(".venv-mlserver.ready")
    with Path(f"{VENV}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # test workers and benchmarks wait for one maker
        if not ready.exists():
            shutil.rmtree(VENV, ignore_errors=True)  # a half-made one from an interrupted run
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
            install = [str(interpreter), "-m", "pip", "install", "-q", "mlserver", "onnxruntime"]
            subprocess.run(install, check=True)
            ready.touch()
    return interpreter


@contextmanager
def mlserver(folder: Path, model: bytes, *, tls: ServerTls | None = None) -> Iterator[str]:
    """MLServer serving ``model`` as ``digits``; yields its base URL once the model is ready."""
    port = free_port()
    models = folder / "mlserver"
    (models / "digits").mkdir(parents=True)
    (models / "digits" / "model.onnx").write_bytes(model)
    (models / "onnx_runtime.py").write_text(RUNTIME)
    (models / "launch.py").write_text(LAUNCHER)
    settings = {
        "parallel_workers": 0,
        "http_port": port,
        "grpc_port": free_port(),
        "metrics_port": free_port(),
        "metrics_endpoint": None,
    }
    (models / "settings.json").write_text(json.dumps(settings))
    signature = ModelSignature.from_onnx(onnx.load_model_from_string(model))
    model_settings = {
        "name": "digits",
        "implementation": "onnx_runtime.OnnxRuntime",
        "parameters": {"uri": "./model.onnx"},
        "inputs": [spec.to_json() for spec in signature.inputs],  # the V2 metadata it serves
        "outputs": [spec.to_json() for spec in signature.outputs],
    }
    (models / "digits" / "model-settings.json").write_text(json.dumps(model_settings))
    uvicorn_tls = (
        {
            "ssl_certfile": str(tls.certificate),
            "ssl_keyfile": str(tls.key),
            "ssl_ca_certs": str(tls.ca),
        }
        if tls
        else {}
    )
    interpreter = python()
    env = os.environ | {"PYTHONPATH": str(models)}
    command = [str(interpreter), str(models / "launch.py"), str(models), json.dumps(uvicorn_tls)]
    scheme = "https" if tls else "http"
    url = f"{scheme}://127.0.0.1:{port}"
    with (folder / "mlserver.log").open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        _wait(process, url, tls, folder / "mlserver.log")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def _wait(process: subprocess.Popen[bytes], url: str, tls: ServerTls | None, log: Path) -> None:
    verify: ssl.SSLContext | bool = False
    if tls:
        verify = ssl.create_default_context(cafile=str(tls.ca))
        verify.load_cert_chain(str(tls.client_certificate), str(tls.client_key))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{url}/v2/models/digits/ready", verify=verify).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.3)
    raise RuntimeError(f"MLServer did not start: {log.read_text()[-2000:]}")
