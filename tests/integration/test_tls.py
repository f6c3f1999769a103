"""TLS versions, mutual TLS and certificate-bound tokens against real server processes."""

from __future__ import annotations

import datetime as dt
import json
import socket
import ssl
import warnings

import httpx
import pytest

from bastion.crypto import CertificatePaths, b64url_decode, create_local_pki
from bastion.crypto.tls import issue_client_certificate
from bastion.registry import OutputPolicy
from bastion.samples import DIGITS_INPUT
from bastion.serving import ServerProcess, free_port
from bastion.settings import Settings
from bastion.workspace import Workspace

PASSPHRASE = "tls test passphrase"


def handshake(port: int, ca, *, low, high, cert=None) -> str:
    """Connect with TLS versions low..high; return the negotiated version."""
    context = ssl.create_default_context(cafile=str(ca))
    with warnings.catch_warnings():  # the old versions are deprecated: that is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version, context.maximum_version = low, high
    if low < ssl.TLSVersion.TLSv1_2:
        context.set_ciphers("ALL:@SECLEVEL=0")  # let the client offer what the server must refuse
    if cert is not None:
        context.load_cert_chain(*cert)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        return str(tls.version())


def test_default_gateway_speaks_only_tls13(gateway):
    """TLS 1.0, 1.1 and 1.2 are refused by default; 1.3 is accepted."""
    port, ca = gateway.server.port, gateway.server.ca
    for high in (ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1_2):
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            handshake(port, ca, low=ssl.TLSVersion.TLSv1, high=high)
    assert handshake(port, ca, low=ssl.TLSVersion.TLSv1_3, high=ssl.TLSVersion.TLSv1_3) == (
        "TLSv1.3"
    )


@pytest.fixture(scope="module")
def mtls(tmp_path_factory, digits_file):
    """A gateway with TLS 1.2 allowed and optional mutual TLS, and client certificates."""
    folder = tmp_path_factory.mktemp("mtls")
    port = free_port()
    settings = Settings(home=folder / "ws", port=port, passphrase=PASSPHRASE)
    ws = Workspace.create(settings, force=False)
    ws.registry.register(digits_file, name="digits", version=None, output_policy=OutputPolicy())
    now = dt.datetime.now(dt.UTC)
    certs = {}
    for name, role in (("ana", "analyst"), ("gus", "analyst")):
        principal = ws.principals.add(name, role=role, attributes={}).principal
        cert, key = issue_client_certificate(
            ws.paths.tls, client_id=principal.client_id, name=name, now=now
        )
        (folder / f"{name}.pem").write_bytes(cert)
        (folder / f"{name}.key").write_bytes(key)
        certs[name] = (folder / f"{name}.pem", folder / f"{name}.key")
    rogue = CertificatePaths.under(folder / "rogue")
    rogue.ca_cert.parent.mkdir()
    create_local_pki(rogue, hosts=("localhost",), now=now)
    ana_id = ws.principals.list()[0].client_id
    cert, key = issue_client_certificate(rogue, client_id=ana_id, name="ana", now=now)
    (folder / "rogue.pem").write_bytes(cert)
    (folder / "rogue.key").write_bytes(key)
    certs["rogue"] = (folder / "rogue.pem", folder / "rogue.key")
    env = {
        "BASTION_PASSPHRASE": PASSPHRASE,
        "BASTION_ALLOW_TLS12": "true",
        "BASTION_MTLS": "optional",
    }
    with ServerProcess(home=ws.paths.home, port=port, log=folder / "log", env=env) as server:
        yield server, certs, ana_id
    ws.close()


def client(server, cert=None) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(server.ca))
    if cert is not None:
        context.load_cert_chain(*cert)
    return httpx.Client(base_url=server.url, verify=context, timeout=30)


def body():
    return {
        "inputs": [{"name": DIGITS_INPUT, "shape": [1, 64], "datatype": "FP32", "data": [0.0] * 64}]
    }


def test_tls12_is_opt_in_and_old_versions_stay_refused(mtls):
    """With allow_tls12, TLS 1.2 works with an ECDHE AEAD suite; 1.0 and 1.1 still fail."""
    server, _, _ = mtls
    assert (
        handshake(server.port, server.ca, low=ssl.TLSVersion.TLSv1_2, high=ssl.TLSVersion.TLSv1_2)
        == "TLSv1.2"
    )
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        handshake(server.port, server.ca, low=ssl.TLSVersion.TLSv1, high=ssl.TLSVersion.TLSv1_1)


def test_certificate_authenticates_and_binds_the_token(mtls):
    """tls_client_auth gets a token bound to the certificate; it works only with it."""
    server, certs, ana_id = mtls
    with client(server, certs["ana"]) as http:
        response = http.post(
            "/oauth2/token", data={"grant_type": "client_credentials", "client_id": ana_id}
        )
        assert response.status_code == 200, response.text
        token = response.json()["access_token"]
        claims = json.loads(b64url_decode(token.split(".")[1]))
        assert set(claims["cnf"]) == {"x5t#S256"}
        headers = {"Authorization": f"Bearer {token}"}
        assert http.post("/v2/models/digits/infer", json=body(), headers=headers).status_code == 200
        metadata = http.get("/.well-known/oauth-authorization-server").json()
        assert "tls_client_auth" in metadata["token_endpoint_auth_methods_supported"]
    with client(server) as http:
        stolen = http.post("/v2/models/digits/infer", json=body(), headers=headers)
        assert stolen.status_code == 401
        assert (
            http.post(
                "/oauth2/token", data={"grant_type": "client_credentials", "client_id": ana_id}
            ).status_code
            == 401
        )
    with client(server, certs["gus"]) as http:
        assert http.post("/v2/models/digits/infer", json=body(), headers=headers).status_code == 401
        other = http.post(
            "/oauth2/token", data={"grant_type": "client_credentials", "client_id": ana_id}
        )
        assert other.status_code == 401


def test_certificates_from_another_ca_are_refused(mtls):
    """A certificate naming the right principal but signed by another CA is refused."""
    server, certs, _ = mtls
    rogue = client(server, certs["rogue"])
    with rogue, pytest.raises((httpx.TransportError, ssl.SSLError)):
        rogue.get("/v2/health/live")
