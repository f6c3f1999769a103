"""A model on a real MLServer, served through Bastion over mutual TLS (the upstream runner)."""

import datetime as dt
import ssl

import httpx
import onnxruntime as ort
import pytest

from bastion.crypto.tls import CertificatePaths, create_local_pki, issue_client_certificate
from bastion.errors import BackendError
from bastion.registry import OutputPolicy, UpstreamEndpoint
from bastion.samples import DIGITS_INPUT
from bastion.serving import ServerProcess, free_port
from bastion.settings import Settings
from bastion.workspace import Workspace
from tests.integration.conftest import access_token
from tests.mlserver import ServerTls, mlserver

PASSPHRASE = "upstream test passphrase"


@pytest.fixture(scope="module")
def upstream_pki(tmp_path_factory):
    """The upstream's own PKI: MLServer's certificate and the gateway's client certificate."""
    folder = tmp_path_factory.mktemp("upstream-pki")
    paths = CertificatePaths.under(folder)
    now = dt.datetime.now(dt.UTC)
    create_local_pki(paths, hosts=("127.0.0.1",), now=now)
    certificate, key = issue_client_certificate(
        paths, client_id="bastion-gateway", name="bastion gateway", now=now
    )
    (folder / "gateway.pem").write_bytes(certificate)
    (folder / "gateway.key").write_bytes(key)
    (folder / "gateway.key").chmod(0o600)
    return ServerTls(
        certificate=paths.server_cert,
        key=paths.server_key,
        ca=paths.ca_cert,
        client_certificate=folder / "gateway.pem",
        client_key=folder / "gateway.key",
    )


@pytest.fixture(scope="module")
def upstream(tmp_path_factory, digits, upstream_pki):
    with mlserver(tmp_path_factory.mktemp("mlserver"), digits.onnx, tls=upstream_pki) as url:
        yield url


def endpoint(url, tls, **changes):
    fields = {
        "url": url,
        "model": "digits",
        "ca": tls.ca,
        "certificate": tls.client_certificate,
        "key": tls.client_key,
    }
    return UpstreamEndpoint(**(fields | changes))


def test_the_upstream_refuses_clients_without_a_certificate(upstream, upstream_pki):
    context = ssl.create_default_context(cafile=str(upstream_pki.ca))
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{upstream}/v2/models/digits/ready", verify=context)


def test_mlserver_behind_bastion_answers_through_the_whole_pipeline(
    tmp_path_factory, digits, upstream, upstream_pki
):
    home = tmp_path_factory.mktemp("gateway") / "ws"
    port = free_port()
    workspace = Workspace.create(Settings(home=home, port=port, passphrase=PASSPHRASE), force=False)
    registered = workspace.registry.register_upstream(
        endpoint(upstream, upstream_pki),
        name="digits-upstream",
        version="1",
        output_policy=OutputPolicy(outputs=("label",)),
    )
    assert [spec.name for spec in registered.signature.inputs] == [DIGITS_INPUT]
    analyst = workspace.principals.add("ana", role="analyst", attributes={})
    env = {"BASTION_PASSPHRASE": PASSPHRASE}
    images = digits.images[:16]
    with ServerProcess(home=home, port=port, log=home.parent / "server.log", env=env) as server:
        context = ssl.create_default_context(cafile=server.ca)
        with httpx.Client(base_url=server.url, verify=context, timeout=30) as http:
            token = access_token(http, analyst)
            headers = {"Authorization": f"Bearer {token}"}
            tensor = {"name": DIGITS_INPUT, "shape": [16, 64], "datatype": "FP32"}
            body = {"inputs": [tensor | {"data": images.ravel().tolist()}]}
            answer = http.post("/v2/models/digits-upstream/infer", json=body, headers=headers)
            bad = {"inputs": [tensor | {"shape": [1, 63], "data": [0.0] * 63}]}
            refused = http.post("/v2/models/digits-upstream/infer", json=bad, headers=headers)
            metadata = http.get("/v2/models/digits-upstream", headers=headers).json()
            model_ready = http.get("/v2/models/digits-upstream/ready", headers=headers)
            gateway_ready = http.get("/v2/health/ready")
    assert answer.status_code == 200, answer.text
    outputs = {o["name"]: o for o in answer.json()["outputs"]}
    assert list(outputs) == ["label"]  # the output policy applies to upstream models too
    expected, _ = ort.InferenceSession(digits.onnx).run(None, {DIGITS_INPUT: images})
    assert outputs["label"]["data"] == expected.tolist()
    assert refused.status_code == 400  # validated by Bastion before anything is forwarded
    assert metadata["platform"] == "upstream_v2"
    assert model_ready.status_code == 200 and model_ready.json()["ready"] is True
    assert gateway_ready.json() == {"ready": True}  # the upstream was asked at startup
    events = [(e.event.event, e.event.status) for e in workspace.audit.tail(20)]
    assert ("model_infer", 200) in events and ("input_validation_fail", 400) in events
    workspace.close()


def test_registration_needs_the_upstream_to_accept_our_certificate(
    make_workspace, upstream, upstream_pki, tmp_path
):
    stranger = CertificatePaths.under(tmp_path)
    now = dt.datetime.now(dt.UTC)
    create_local_pki(stranger, hosts=("127.0.0.1",), now=now)  # a CA the upstream does not trust
    certificate, key = issue_client_certificate(stranger, client_id="x", name="x", now=now)
    (tmp_path / "c.pem").write_bytes(certificate)
    (tmp_path / "c.key").write_bytes(key)
    untrusted = endpoint(
        upstream, upstream_pki, certificate=tmp_path / "c.pem", key=tmp_path / "c.key"
    )
    with pytest.raises(BackendError):
        make_workspace().registry.register_upstream(
            untrusted, name="x", version="1", output_policy=OutputPolicy()
        )


@pytest.mark.anyio
async def test_an_upstream_that_does_not_answer_is_not_ready(tmp_path):
    """The runner asks the upstream's V2 ready route; no answer means not ready."""
    from types import SimpleNamespace

    from bastion.serving.upstream import UpstreamRunner

    pki = CertificatePaths.under(tmp_path)
    now = dt.datetime.now(dt.UTC)
    create_local_pki(pki, hosts=("127.0.0.1",), now=now)
    certificate, key = issue_client_certificate(pki, client_id="gw", name="gw", now=now)
    (tmp_path / "c.pem").write_bytes(certificate)
    (tmp_path / "c.key").write_bytes(key)
    dead = UpstreamEndpoint(
        url=f"https://127.0.0.1:{free_port()}", model="m", ca=pki.ca_cert,
        certificate=tmp_path / "c.pem", key=tmp_path / "c.key",
    )  # fmt: skip
    registry = SimpleNamespace(load_upstream=lambda model: dead)
    model = SimpleNamespace(name="m", version="1")
    runner = UpstreamRunner(registry=registry)
    assert runner.is_model_ready(model)  # never asked: its first call will tell
    await runner.warm([model])
    assert not runner.is_model_ready(model) and not runner.is_ready()
    runner.close()
