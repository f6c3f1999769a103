"""Per-request cost of authentication + authorization: Bastion warm and cold, and the peers.

Run: .venv/bin/python benchmarks/authz.py [--requests 20000]

- Bastion warm: the gateway's authenticate and authorize stages on a token they have seen
  (verified-token cache and decision cache hit), as for a client that reuses its token.
- Bastion cold: every request with a token the gateway has not seen, from a new address
  (signature check, revocation and principal checks, Cedar evaluation).
- Peers: PyJWT's EdDSA decode with the same checks, plus cedarpy's is_authorized with the
  policy text parsed on every call (what a naive integration does).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import cedarpy
import jwt

from bastion.monitor import GatewayMetrics, Monitor
from bastion.policy import BASELINE_POLICY
from bastion.registry import OutputPolicy
from bastion.samples import train_digits
from bastion.serving.call import Call, Target
from bastion.serving.pipeline import build_pipelines
from bastion.serving.runner import build_runner
from bastion.settings import Settings
from bastion.workspace import Workspace


async def no_body() -> bytes:
    return b""


def call(token: str, ip: str) -> Call:
    return Call(
        route="/v2/models/{name}/infer",
        target=Target("infer", "digits"),
        client_ip=ip,
        authorization=f"Bearer {token}",
        content_type="application/json",
        read_body=no_body,
    )


async def bastion(stages, tokens: list[str], ips: list[str]) -> float:
    """Microseconds per request through the authenticate and authorize stages."""
    authenticate, authorize = stages
    start = time.perf_counter()
    for token, ip in zip(tokens, ips, strict=True):
        request = call(token, ip)
        await authenticate(request)
        await authorize(request)
        if not request.decision or not request.decision.allowed:
            raise SystemExit("the benchmark request was refused")
    return (time.perf_counter() - start) / len(tokens) * 1e6


def peers(tokens: list[str], key, issuer: str, principal_id: str) -> float:
    policies = BASELINE_POLICY.read_text()
    entities = [
        {
            "uid": {"type": "Bastion::Principal", "id": principal_id},
            "attrs": {},
            "parents": [{"type": "Bastion::Role", "id": "analyst"}],
        },
        {"uid": {"type": "Bastion::Model", "id": "digits"}, "attrs": {}, "parents": []},
    ]
    start = time.perf_counter()
    for token in tokens:
        claims = jwt.decode(token, key, algorithms=["EdDSA"], audience="bastion", issuer=issuer)
        result = cedarpy.is_authorized(
            {
                "principal": {"type": "Bastion::Principal", "id": claims["client_id"]},
                "action": {"type": "Bastion::Action", "id": "infer"},
                "resource": {"type": "Bastion::Model", "id": "digits"},
                "context": {"ip": "127.0.0.1", "time": int(time.time())},
            },
            policies,
            entities,
        )
        if not result.allowed:
            raise SystemExit("the peer refused the request")
    return (time.perf_counter() - start) / len(tokens) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--cold", type=int, default=2_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        ws = Workspace.create(
            Settings(home=Path(folder) / "ws", passphrase="benchmark passphrase"), force=False
        )
        ana = ws.principals.add("ana", role="analyst", attributes={})
        model = Path(folder) / "digits.onnx"
        model.write_bytes(train_digits().onnx)
        ws.registry.register(model, name="digits", version=None, output_policy=OutputPolicy())
        issuer = ws.token_issuer()
        fresh = [
            issuer.issue(ana.principal, certificate_thumbprint=None).value.get_secret_value()
            for _ in range(args.cold)
        ]
        monitor = Monitor(detectors=[], sinks=[], record=lambda alert: None)
        pipelines = build_pipelines(
            ws,
            metrics=GatewayMetrics(audit_backlog=lambda: 0),
            monitor=monitor,
            runner=build_runner(ws),
        )
        stages = pipelines.infer.stages[:2]
        warm_token = fresh[0]
        asyncio.run(bastion(stages, [warm_token], ["127.0.0.1"]))  # seen once: now warm
        warm = asyncio.run(
            bastion(stages, [warm_token] * args.requests, ["127.0.0.1"] * args.requests)
        )
        cold_ips = [f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}" for i in range(args.cold)]
        cold = asyncio.run(bastion(stages, [*fresh[1:], fresh[0]], cold_ips))
        public = ws.signing_keys.current().public_key
        peer = peers(
            fresh[: min(args.cold, 2000)], public, ws.settings.issuer, ana.principal.client_id
        )
        ws.close()
    print("authentication + authorization per request:")
    print(f"  Bastion warm (token seen before)        {warm:8.1f} us")
    print(f"  Bastion cold (new token, new address)   {cold:8.1f} us")
    print(f"  PyJWT decode + cedarpy (policy parsed)  {peer:8.1f} us")
    print(f"warm is {peer / warm:.0f}x faster than the peers; cold is {peer / cold:.1f}x")


if __name__ == "__main__":
    main()
