"""External issuers' tokens with hostile time claims: the real verifier and the real app, 401 only.

The issuer is the independent joserfc one of tests/oidc_issuer.py, run as its own process
over its own TLS; its test route signs whatever claims it is given.
"""

from __future__ import annotations

import datetime as dt
import json
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bastion.crypto.tls import CertificatePaths, create_local_pki
from bastion.errors import AuthError
from bastion.identity.external import MAX_EXTERNAL_TOKEN_SECONDS, ExternalIssuer
from bastion.serving import build_app, free_port
from bastion.settings import TrustedIssuer

ISSUER_SCRIPT = Path(__file__).parents[2] / "oidc_issuer.py"
YEAR = 365 * 86_400


class Issuer:
    """The running test issuer: mints tokens with the claims it is given."""

    def __init__(self, url: str, ca: Path) -> None:
        self.url, self.ca = url, ca

    def mint(self, **claims: object) -> str:
        context = ssl.create_default_context(cafile=self.ca)
        with httpx.Client(base_url=self.url, verify=context, timeout=10) as http:
            body = json.dumps({"sub": "svc-1", "claims": claims})  # NaN, Infinity as such
            response = http.post("/test/mint", content=body,
                                 headers={"Content-Type": "application/json"})  # fmt: skip
        response.raise_for_status()
        token: str = response.json()["token"]
        return token

    def config(self) -> dict[str, object]:
        return {"name": "corp", "issuer": self.url, "audience": "bastion",
                "ca_file": str(self.ca), "roles": {"ml-analyst": "analyst"}}  # fmt: skip


@pytest.fixture(scope="module")
def issuer(tmp_path_factory):
    """The external issuer process, over TLS from its own CA."""
    folder = tmp_path_factory.mktemp("issuer")
    paths = CertificatePaths(
        ca_cert=folder / "ca.pem",
        ca_key=folder / "ca.key",
        server_cert=folder / "server.pem",
        server_key=folder / "server.key",
    )
    create_local_pki(paths, hosts=("127.0.0.1",), now=dt.datetime.now(dt.UTC))
    port = free_port()
    command = [sys.executable, str(ISSUER_SCRIPT), "--port", str(port),
               "--cert", str(paths.server_cert), "--key", str(paths.server_key)]  # fmt: skip
    with (folder / "issuer.log").open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        found = Issuer(f"https://127.0.0.1:{port}", paths.ca_cert)
        deadline = time.monotonic() + 30
        while True:
            try:
                found.mint()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the test issuer did not start") from None
                time.sleep(0.1)
        yield found
        process.terminate()
        process.wait(10)


def hostile(now: int) -> dict[str, dict[str, object]]:
    """Claims a trusted issuer's key may sign (by mistake, or once stolen) that must be 401."""
    return {
        "exp 10**400": {"exp": 10**400},
        "exp NaN": {"exp": float("nan")},
        "exp Infinity": {"exp": float("inf")},
        "exp float": {"exp": now + 60.5},
        "exp digit string": {"exp": str(now + 60)},
        "exp true": {"exp": True},
        "exp negative": {"exp": -1},
        "exp 10 years ahead": {"exp": now + 10 * YEAR},
        "exp a day and more ahead": {"exp": now + MAX_EXTERNAL_TOKEN_SECONDS + 3600},
        "exp before iat": {"iat": now + 20, "exp": now + 10},
        "iat 10 years ago": {"iat": now - 10 * YEAR},
        "iat 10**400": {"iat": 10**400},
        "iat string": {"iat": str(now)},
        "iat false": {"iat": False},
        "iat a year ahead": {"iat": now + YEAR, "exp": now + YEAR + 60},
        "nbf a year ahead": {"nbf": now + YEAR},
        "nbf 2**64": {"nbf": 2**64},
        "nbf -Infinity": {"nbf": float("-inf")},
    }


def test_the_verifier_refuses_hostile_time_claims(issuer):
    """ExternalIssuer.verify: each case is an AuthError, and a good token still verifies."""
    verifier = ExternalIssuer(TrustedIssuer(**issuer.config()), leeway_seconds=30)
    assert verifier.verify(issuer.mint()).principal.role == "analyst"
    accepted = []
    for name, claims in hostile(int(time.time())).items():
        try:
            verifier.verify(issuer.mint(**claims))
        except AuthError:
            continue  # anything else propagates and fails the test
        accepted.append(name)
    assert accepted == []


@pytest.mark.anyio
async def test_the_app_answers_hostile_external_tokens_with_401(issuer, make_workspace):
    """Through the real app in process: 401 for each, never 500; a good token gets past auth."""
    ws = make_workspace(trusted_issuers=[issuer.config()])
    app = build_app(ws)
    transport = httpx.ASGITransport(app=app, client=("10.0.0.7", 5000))
    try:
        async with httpx.AsyncClient(transport=transport, base_url=ws.settings.issuer) as client:
            headers = {"Authorization": f"Bearer {issuer.mint()}"}
            good = await client.get("/v2/models/digits", headers=headers)
            assert good.status_code != 401, good.text  # authenticated; the model is not there
            for name, claims in hostile(int(time.time())).items():
                token = issuer.mint(**claims)
                answer = await client.get("/v2/models/digits",
                                          headers={"Authorization": f"Bearer {token}"})  # fmt: skip
                assert answer.status_code == 401, name
                assert answer.json() == {"error": "Authentication failed."}, name
    finally:
        app.state.runner.close()
