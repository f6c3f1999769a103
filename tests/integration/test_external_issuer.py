"""Tokens from an external OpenID Connect issuer: a second, independent token server process."""

from __future__ import annotations

import datetime as dt
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jwt
import pytest

from bastion.crypto.tls import CertificatePaths, create_local_pki
from bastion.serving import free_port

from .test_gateway import auth, infer_body

ISSUER_SCRIPT = Path(__file__).parent.parent / "oidc_issuer.py"
GATEWAY_CONFIG = ""  # set by the issuer fixture, before the gateway starts
DOWN = f"https://127.0.0.1:{free_port()}"  # a trusted issuer that does not answer


class Issuer:
    def __init__(self, url: str, ca: Path) -> None:
        self.url, self.ca = url, ca

    def http(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, verify=ssl.create_default_context(cafile=self.ca), timeout=10
        )

    def mint(self, sub: str = "svc-1", *, header: dict | None = None, **claims) -> str:
        with self.http() as http:
            response = http.post("/test/mint", json={"sub": sub, "claims": claims,
                                                     "header": header or {}})  # fmt: skip
        response.raise_for_status()
        return response.json()["token"]

    def jwks_fetches(self) -> int:
        with self.http() as http:
            return http.get("/test/stats").json()["jwks"]


@pytest.fixture(scope="module", autouse=True)
def issuer(request, tmp_path_factory):
    """The external issuer, over its own TLS; the gateway is configured to trust it."""
    folder = tmp_path_factory.mktemp("issuer")
    paths = CertificatePaths(
        ca_cert=folder / "ca.pem", ca_key=folder / "ca.key",
        server_cert=folder / "server.pem", server_key=folder / "server.key",
    )  # fmt: skip
    create_local_pki(paths, hosts=("127.0.0.1",), now=dt.datetime.now(dt.UTC))
    port = free_port()
    command = [sys.executable, str(ISSUER_SCRIPT), "--port", str(port),
               "--cert", str(paths.server_cert), "--key", str(paths.server_key)]  # fmt: skip
    log = (folder / "issuer.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    found = Issuer(f"https://127.0.0.1:{port}", paths.ca_cert)
    deadline = time.monotonic() + 30
    while True:
        try:
            with found.http() as http:
                http.get("/.well-known/openid-configuration").raise_for_status()
            break
        except httpx.HTTPError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the test issuer did not start") from None
            time.sleep(0.1)
    request.module.GATEWAY_CONFIG = f"""
[[trusted_issuers]]
name = "corp"
issuer = "{found.url}"
audience = "bastion"
ca_file = "{paths.ca_cert}"
roles = {{ "ml-analyst" = "analyst" }}
attribute_claims = {{ team = "department" }}
jwks_refresh_seconds = 1

[[trusted_issuers]]
name = "down"
issuer = "{DOWN}"
audience = "bastion"
"""
    yield found
    process.terminate()
    process.wait(10)
    log.close()


def test_a_client_credentials_token_of_the_trusted_issuer_calls_a_model(gateway, issuer, digits):
    """The issuer's own token endpoint, its RS256 token, Bastion's gateway: allowed and audited."""
    with issuer.http() as http:
        answer = http.post(
            "/token", data={"grant_type": "client_credentials"},
            auth=("corp-app", "corp-app-secret"),
        )  # fmt: skip
    answer.raise_for_status()
    token = answer.json()["access_token"]
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    with gateway.http() as http:
        served = http.post(
            "/v2/models/digits/infer", json=infer_body(digits.images[:1]), headers=auth(token)
        )
    assert served.status_code == 200, served.text
    record = gateway.workspace.audit.tail(5)[-1].event
    assert (record.principal, record.auth_method) == ("ext:corp:corp-app", "bearer:corp")


def test_bad_external_tokens_are_refused_with_their_reason(gateway, issuer, digits):
    """Untrusted issuer, wrong audience or type, expired, tampered, untrusted header: 401."""
    now = int(time.time())
    good = issuer.mint()
    header, payload, signature = good.split(".")
    tampered = f"{header}.{payload[:-4]}AAAA.{signature}"
    cases = {
        "untrusted issuer": issuer.mint(iss="https://evil.example"),
        "wrong audience": issuer.mint(aud="someone-else"),
        "wrong type": issuer.mint(header={"typ": "JWT"}),
        "expired": issuer.mint(exp=now - 3600, iat=now - 4000),
        "not yet valid": issuer.mint(nbf=now + 3600),
        "jku": issuer.mint(header={"jku": "https://evil.example/jwks"}),
        "tampered": tampered,
    }
    body = infer_body(digits.images[:1])
    with gateway.http() as http:
        for name, token in cases.items():
            refused = http.post("/v2/models/digits/infer", json=body, headers=auth(token))
            assert refused.status_code == 401, name
            assert refused.json() == {"error": "Authentication failed."}
        served = http.post("/v2/models/digits/infer", json=body, headers=auth(good))
        assert served.status_code == 200
    reasons = {e.event.reason for e in gateway.workspace.audit.tail(20) if e.event.status == 401}
    assert {"wrong token type", "untrusted key header"} <= reasons
    assert any("InvalidAudience" in r for r in reasons)
    assert any("ExpiredSignature" in r for r in reasons)


def test_claims_map_to_a_role_and_attributes(gateway, issuer, digits):
    """Without a mapped role the principal has none, and Cedar denies (403)."""
    body = infer_body(digits.images[:1])
    with gateway.http() as http:
        unmapped = issuer.mint("svc-2", roles=["visitor"])
        assert http.post("/v2/models/digits/infer", json=body,
                         headers=auth(unmapped)).status_code == 403  # fmt: skip
        mapped = issuer.mint("svc-3", roles="ml-analyst")
        assert http.post("/v2/models/digits/infer", json=body,
                         headers=auth(mapped)).status_code == 200  # fmt: skip


def test_the_gateway_follows_the_issuers_key_rotation_and_bounds_refreshes(gateway, issuer, digits):
    """A new kid is fetched once; tokens naming unknown kids cannot flood the issuer."""
    body = infer_body(digits.images[:1])
    with gateway.http() as http:
        time.sleep(1.1)  # past jwks_refresh_seconds since the last fetch
        before = issuer.jwks_fetches()
        with issuer.http() as raw:
            raw.post("/test/rotate").raise_for_status()
        rotated = issuer.mint("svc-4")
        assert http.post("/v2/models/digits/infer", json=body,
                         headers=auth(rotated)).status_code == 200  # fmt: skip
        assert issuer.jwks_fetches() == before + 1
        for number in range(20):
            forged = issuer.mint("svc-5", header={"kid": f"unknown-{number}"})
            assert http.post("/v2/models/digits/infer", json=body,
                             headers=auth(forged)).status_code == 401  # fmt: skip
        assert issuer.jwks_fetches() <= before + 3


def test_a_trusted_issuer_that_does_not_answer_means_401_not_an_error(gateway, issuer, digits):
    """No keys, no entry: the same opaque 401, the reason in the audit entry."""
    token = issuer.mint(iss=DOWN)
    with gateway.http() as http:
        for _ in range(2):
            refused = http.post("/v2/models/digits/infer", json=infer_body(digits.images[:1]),
                                headers=auth(token))  # fmt: skip
            assert refused.status_code == 401
            assert refused.json() == {"error": "Authentication failed."}
    reasons = [e.event.reason for e in gateway.workspace.audit.tail(2)]
    assert reasons[0].startswith("issuer keys unavailable")
    assert reasons[1] == "unknown key id"  # not fetched again within jwks_refresh_seconds
