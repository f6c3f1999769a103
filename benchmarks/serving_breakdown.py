"""Where the gateway's CPU goes per inference: a diagnostic beside benchmarks/serving.py.

Run: .venv/bin/python benchmarks/serving_breakdown.py [--calls 5000]

No HTTP and no TLS: 16 coroutines drive the pieces in process, on uvloop, and each line
prints calls per second and the gateway process's CPU time per call (all its threads; the
jailed workers are other processes):

- **worker round trip**: a pool of two bubblewrap-jailed workers running the digits model,
  nothing else — the cost of the sandbox boundary;
- **ASGI app, everything**: the gateway's app as ``bastion serve`` runs it (token, Cedar,
  rate limit, schema, jailed workers, output policy, audit log, metrics, monitors);
- the same **without the audit append** and/or **without the monitors**: what recording
  costs. These two variants switch off a safety feature and exist only to measure it.

The difference between the first ASGI line and ``serving.py``'s Bastion figure is HTTP
parsing and TLS.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import resource
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

import numpy as np
import uvloop

from bastion.audit import AuditLog
from bastion.monitor import Monitor
from bastion.registry import OutputPolicy
from bastion.samples import DIGITS_INPUT, train_digits
from bastion.sandbox import Jail, SandboxLimits, WorkerPool
from bastion.serving import build_app
from bastion.settings import Settings
from bastion.workspace import Workspace

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving import PASSPHRASE, request_body  # the same request as the serving benchmark

CONCURRENCY = 16


async def drive(one: Callable[[], Awaitable[None]], calls: int) -> tuple[float, float]:
    """Calls per second and process CPU microseconds per call, ``CONCURRENCY`` at a time."""
    for _ in range(300):  # warm up: workers started, caches filled
        await one()
    left = calls

    async def client() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await one()

    before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
    seconds, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return calls / seconds, 1e6 * cpu / calls


async def round_trip(model: bytes, calls: int) -> tuple[float, float]:
    ref = SimpleNamespace(name="digits", version="1", ref="digits@1")
    jail = Jail(limits=SandboxLimits())
    pool = WorkerPool(ref, jail=jail, artifact=lambda: model, size=2)  # type: ignore[arg-type]
    inputs = {DIGITS_INPUT: np.zeros((1, 64), dtype=np.float32)}
    try:
        return await drive(lambda: pool.run(inputs, ["label", "probabilities"]), calls)
    finally:
        pool.close()


async def asgi(workspace: Workspace, client: tuple[str, str], calls: int) -> tuple[float, float]:
    app = build_app(workspace)
    startup: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    answers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await startup.put({"type": "lifespan.startup"})
    lifespan = asyncio.ensure_future(
        app({"type": "lifespan", "asgi": {"version": "3.0"}}, startup.get, answers.put)
    )
    assert (await answers.get())["type"] == "lifespan.startup.complete"
    basic = base64.b64encode(":".join(client).encode()).decode()
    form = b"grant_type=client_credentials"
    _, token = await request(app, "/oauth2/token", form, f"Basic {basic}", "x-www-form-urlencoded")
    token = json.loads(token)["access_token"]
    body = request_body().encode()
    statuses: dict[int, int] = {}

    async def one() -> None:
        status, _ = await request(app, "/v2/models/digits/infer", body, f"Bearer {token}", "json")
        statuses[status] = statuses.get(status, 0) + 1

    try:
        result = await drive(one, calls)
    finally:
        await startup.put({"type": "lifespan.shutdown"})
        await lifespan
    if set(statuses) != {200}:
        raise SystemExit(f"unexpected statuses: {statuses}")
    return result


async def request(
    app: Any, path: str, body: bytes, authorization: str, kind: str
) -> tuple[int, bytes]:
    """One POST through the ASGI app; its status and body."""
    headers = [
        (b"content-type", f"application/{kind}".encode()),
        (b"authorization", authorization.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "https", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": headers, "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8443), "state": {},
    }  # fmt: skip
    status, chunks, sent = 0, [], False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()  # the client stays connected
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


async def skip_append(_self: AuditLog, _event: object) -> None:
    return None


def skip_observe(_self: Monitor, _seen: object) -> None:
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    args = parser.parse_args()
    model = train_digits().onnx
    rows = [("worker round trip (2 jailed workers)", uvloop.run(round_trip(model, args.calls)))]
    variants = {
        "ASGI app, everything": (),
        "ASGI app, no audit append": ("audit",),
        "ASGI app, no monitors": ("monitor",),
        "ASGI app, neither": ("audit", "monitor"),
    }
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "ws"
        settings = Settings(home=home, passphrase=PASSPHRASE)
        Workspace.create(settings, force=False).close()
        (home / "bastion.toml").write_text(
            "rate_per_second = 1000000\nrate_burst = 1000000\nsandbox_workers = 2\n"
            'log_level = "warning"\n'
        )
        workspace = Workspace(settings=Settings(home=home, passphrase=PASSPHRASE))
        (Path(tmp) / "digits.onnx").write_bytes(model)
        workspace.registry.register(
            Path(tmp) / "digits.onnx", name="digits", version="1", output_policy=OutputPolicy()
        )
        analyst = workspace.principals.add("bench", role="analyst", attributes={})
        client = (analyst.principal.client_id, analyst.secret.get_secret_value())
        for name, off in variants.items():
            with ExitStack() as stack:
                if "audit" in off:
                    stack.enter_context(mock.patch.object(AuditLog, "append_async", skip_append))
                if "monitor" in off:
                    stack.enter_context(mock.patch.object(Monitor, "observe", skip_observe))
                rows.append((name, uvloop.run(asgi(workspace, client, args.calls))))
        workspace.close()
    print(f"\n{CONCURRENCY} coroutines, {args.calls} calls each line, digits model, no HTTP/TLS")
    print(f"{'what':40} {'calls/s':>9} {'CPU us/call':>12}")
    for name, (rate, cpu) in rows:
        print(f"{name:40} {rate:9.0f} {cpu:12.1f}")


if __name__ == "__main__":
    main()
