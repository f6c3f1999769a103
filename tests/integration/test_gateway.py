"""The whole request path against a real server process over real TLS."""

from __future__ import annotations

import json
import ssl
import time

import jwt
import numpy as np
import onnxruntime as ort
import pytest

from bastion.identity import TokenIssuer
from bastion.registry import InputPolicy, OutputPolicy
from bastion.samples import DIGITS_INPUT


def infer_body(images, **extra):
    tensor = {
        "name": DIGITS_INPUT,
        "shape": list(images.shape),
        "datatype": "FP32",
        "data": images.ravel().tolist(),
    }
    return {"inputs": [tensor]} | extra


def auth(token):
    return {"Authorization": f"Bearer {token}"}


def test_health_and_server_metadata_are_public(gateway):
    """Liveness, readiness and server metadata need no token."""
    with gateway.http() as http:
        assert http.get("/v2/health/live").json() == {"live": True}
        assert http.get("/v2/health/ready").json() == {"ready": True}
        assert http.get("/v2").json()["name"] == "bastion"


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_token_endpoint_issues_short_lived_tokens(gateway, method):
    """Both client authentication methods get an RFC 9068 token that must not be cached."""
    client = gateway.analyst
    form = {"grant_type": "client_credentials"}
    basic = None
    if method == "client_secret_basic":
        basic = (client.principal.client_id, client.secret.get_secret_value())
    else:
        form |= {
            "client_id": client.principal.client_id,
            "client_secret": client.secret.get_secret_value(),
        }
    with gateway.http() as http:
        response = http.post("/oauth2/token", data=form, auth=basic)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    gateway.tokens.append(body["access_token"])
    assert body["token_type"] == "Bearer"
    assert 0 < body["expires_in"] <= 900


@pytest.mark.parametrize(
    ("form", "basic", "status", "error"),
    [
        ({"grant_type": "client_credentials"}, ("bcl_nobody", "bsk_wrong"), 401, "invalid_client"),
        ({"grant_type": "client_credentials"}, None, 401, "invalid_client"),
        ({"grant_type": "password"}, "analyst", 400, "unsupported_grant_type"),
        ({}, "analyst", 400, "invalid_request"),
        (
            "grant_type=client_credentials&grant_type=client_credentials",
            "analyst",
            400,
            "invalid_request",
        ),
    ],
)
def test_token_endpoint_errors_follow_rfc6749(gateway, form, basic, status, error):
    """Bad token requests get RFC 6749 error codes, never a 5xx."""
    if basic == "analyst":
        basic = (gateway.analyst.principal.client_id, gateway.analyst.secret.get_secret_value())
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    with gateway.http() as http:
        if isinstance(form, str):
            response = http.post("/oauth2/token", content=form, auth=basic, headers=headers)
        else:
            response = http.post("/oauth2/token", data=form, auth=basic)
    assert response.status_code == status
    assert response.json()["error"] == error


def test_token_request_must_be_a_form(gateway):
    """A JSON token request is refused with what to send instead."""
    with gateway.http() as http:
        response = http.post("/oauth2/token", json={"grant_type": "client_credentials"})
    assert response.status_code == 400
    assert "x-www-form-urlencoded" in response.json()["error_description"]


def test_discovery_metadata_and_pyjwt_verifies_our_tokens(gateway):
    """PyJWT's PyJWKClient, a peer, verifies our tokens from our JWKS URL."""
    with gateway.http() as http:
        metadata = http.get("/.well-known/oauth-authorization-server").json()
    assert metadata["issuer"] == gateway.url
    assert metadata["token_endpoint"] == f"{gateway.url}/oauth2/token"
    import ssl

    context = ssl.create_default_context(cafile=str(gateway.server.ca))
    jwks = jwt.PyJWKClient(metadata["jwks_uri"], ssl_context=context)
    token = gateway.token(gateway.analyst)
    key = jwks.get_signing_key_from_jwt(token)
    claims = jwt.decode(
        token, key.key, algorithms=["EdDSA"], audience="bastion", issuer=gateway.url
    )
    assert jwt.get_unverified_header(token)["typ"] == "at+jwt"
    assert claims["client_id"] == claims["sub"] == gateway.analyst.principal.client_id
    assert claims["exp"] - claims["iat"] <= 900 and claims["jti"]


def test_analyst_gets_correct_predictions(gateway, digits):
    """An allowed call returns exactly what onnxruntime computes on the model."""
    images = digits.images[:32]
    with gateway.http() as http:
        response = http.post(
            "/v2/models/digits/infer",
            json=infer_body(images, id="req-1"),
            headers=auth(gateway.token(gateway.analyst)),
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model_name"], body["model_version"], body["id"]) == ("digits", "1", "req-1")
    outputs = {o["name"]: o for o in body["outputs"]}
    expected_label, expected_probs = ort.InferenceSession(digits.onnx).run(
        None, {DIGITS_INPUT: images}
    )
    assert outputs["label"]["data"] == expected_label.tolist()
    assert outputs["label"]["datatype"] == "INT64" and outputs["label"]["shape"] == [32]
    np.testing.assert_allclose(
        np.array(outputs["probabilities"]["data"]).reshape(32, 10), expected_probs, rtol=1e-6
    )
    assert (np.array(outputs["label"]["data"]) == digits.labels[:32]).mean() > 0.9


def test_model_metadata_and_readiness(gateway):
    """Model metadata lists the V2 signature; readiness works per version."""
    headers = auth(gateway.token(gateway.analyst))
    with gateway.http() as http:
        metadata = http.get("/v2/models/digits/versions/1", headers=headers).json()
        ready = http.get("/v2/models/digits/ready", headers=headers)
        missing = http.get("/v2/models/digits/versions/7/ready", headers=headers)
    assert metadata["inputs"] == [{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}]
    assert [o["name"] for o in metadata["outputs"]] == ["label", "probabilities"]
    assert ready.status_code == 200
    assert missing.status_code == 404


def test_output_policy_is_enforced(gateway, digits):
    """A guarded version returns only rounded top-2 probabilities and hides the label."""
    with gateway.http() as http:
        response = http.post(
            "/v2/models/digits/versions/guarded/infer",
            json=infer_body(digits.images[:4]),
            headers=auth(gateway.token(gateway.analyst)),
        )
        refused = http.post(
            "/v2/models/digits/versions/guarded/infer",
            json=infer_body(digits.images[:1], outputs=[{"name": "label"}]),
            headers=auth(gateway.token(gateway.analyst)),
        )
    outputs = response.json()["outputs"]
    assert [o["name"] for o in outputs] == ["probabilities"]
    rows = np.array(outputs[0]["data"]).reshape(4, 10)
    assert (np.count_nonzero(rows, axis=1) <= 2).all()
    assert np.allclose(rows, np.round(rows, 2))
    assert refused.status_code == 400 and "not available" in refused.json()["error"]


def test_the_sanitizer_runs_in_the_validate_stage(gateway, digits, digits_file):
    """A version registered with clip + quantize answers as its model does on sanitized input."""
    policy = InputPolicy(clip=(0.0, 1.0), levels=5)
    gateway.workspace.registry.register(
        digits_file,
        name="digits-sanitized",
        version=None,
        output_policy=OutputPolicy(),
        input_policy=policy,
    )
    rng = np.random.default_rng(0)
    images = (digits.images[:8] + rng.normal(0, 0.6, digits.images[:8].shape)).astype(np.float32)
    with gateway.http() as http:
        response = http.post(
            "/v2/models/digits-sanitized/infer",
            json=infer_body(images),
            headers=auth(gateway.token(gateway.analyst)),
        )
    assert response.status_code == 200, response.text
    served = {o["name"]: np.array(o["data"]) for o in response.json()["outputs"]}
    session = ort.InferenceSession(digits.onnx)
    labels, probabilities = session.run(None, {DIGITS_INPUT: policy.apply(images)})
    _, raw = session.run(None, {DIGITS_INPUT: images})
    np.testing.assert_array_equal(served["label"], labels)
    np.testing.assert_allclose(served["probabilities"], probabilities.ravel(), atol=1e-6)
    assert not np.allclose(served["probabilities"], raw.ravel(), atol=1e-3)


def test_guest_is_denied_and_learns_nothing_about_models(gateway, digits):
    """Deny by default: a guest gets 403 for real and unknown models alike."""
    headers = auth(gateway.token(gateway.guest))
    with gateway.http() as http:
        real = http.post(
            "/v2/models/digits/infer", json=infer_body(digits.images[:1]), headers=headers
        )
        unknown = http.post(
            "/v2/models/secret-model/infer", json=infer_body(digits.images[:1]), headers=headers
        )
        metadata = http.get("/v2/models/digits", headers=headers)
    assert real.status_code == unknown.status_code == metadata.status_code == 403
    assert real.json() == unknown.json() == {"error": "The request was denied by policy."}


def _forged(gateway):
    head, body, signature = gateway.token(gateway.analyst).split(".")
    from bastion.crypto import b64url, b64url_decode

    claims = json.loads(b64url_decode(body)) | {"client_id": gateway.operator.principal.client_id}
    return f"{head}.{b64url(json.dumps(claims).encode())}.{signature}"


def _expired(gateway):
    ws = gateway.workspace
    issuer = TokenIssuer(
        key=ws.signing_keys,
        issuer=gateway.url,
        audience="bastion",
        ttl_seconds=60,
        clock=lambda: time.time() - 600,
    )
    return issuer.issue(
        gateway.analyst.principal, certificate_thumbprint=None
    ).value.get_secret_value()


def _foreign(gateway, tmp_path):
    from bastion.crypto import SigningKey

    key = SigningKey.generate(tmp_path / "other.pem")
    issuer = TokenIssuer(
        key=key, issuer=gateway.url, audience="bastion", ttl_seconds=60, clock=time.time
    )
    return issuer.issue(
        gateway.analyst.principal, certificate_thumbprint=None
    ).value.get_secret_value()


@pytest.mark.parametrize(
    "make_header",
    [
        lambda g, t: {},
        lambda g, t: {"Authorization": "Bearer"},
        lambda g, t: {"Authorization": "Basic YTpi"},
        lambda g, t: {"Authorization": "Bearer not.a.token"},
        lambda g, t: auth(_forged(g)),
        lambda g, t: auth(_expired(g)),
        lambda g, t: auth(_foreign(g, t)),
        lambda g, t: auth(jwt.encode({"sub": "x"}, "k" * 32, algorithm="HS256")),
    ],
    ids=["none", "empty", "basic", "garbage", "forged", "expired", "foreign-key", "hs256"],
)
def test_bad_tokens_get_one_opaque_401(gateway, digits, tmp_path, make_header):
    """Every token problem is the same 401 with a Bearer challenge."""
    with gateway.http() as http:
        response = http.post(
            "/v2/models/digits/infer",
            json=infer_body(digits.images[:1]),
            headers=make_header(gateway, tmp_path),
        )
    assert response.status_code == 401
    assert response.json() == {"error": "Authentication failed."}
    assert response.headers["www-authenticate"].startswith("Bearer")


def pixels(shape, datatype="FP32", data=None, name=DIGITS_INPUT, **extra):
    """A request body with one tensor; data defaults to zeros of the shape's size."""
    count = int(np.prod(shape))
    tensor = {"name": name, "shape": shape, "datatype": datatype, "data": data or [0.0] * count}
    return {"inputs": [tensor]} | extra


BAD_BODIES = {
    "not json": (b"{", "not valid JSON"),
    "not an object": (b"[1, 2]", "Invalid inference request"),
    "no inputs": (b'{"inputs": []}', "inputs"),
    "wrong dtype": (pixels([1, 64], "FP64"), "expects FP32"),
    "wrong shape": (pixels([1, 63]), "shape"),
    "wrong rank": (pixels([64]), "shape"),
    "count mismatch": (pixels([2, 64], data=[0.0] * 64), "needs 128"),
    "strings": (pixels([1, 64], data=["a"] * 64), "hold numbers"),
    "ragged": (pixels([1, 64], data=[[0.0] * 32, [0.0] * 31]), "evenly nested"),
    "out of range": (pixels([1, 64], data=[1e39] * 64), "out of range"),
    "unknown input": (pixels([1], name="image"), "Unknown input"),
    "unknown output": (pixels([1, 64], outputs=[{"name": "logits"}]), "not available"),
    "other model named": (pixels([1, 64], model_name="fraud"), "not the URL's model"),
}


@pytest.mark.parametrize(("body", "message"), BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_malformed_requests_get_clear_400s(gateway, body, message):
    """Malformed bodies get a 400 JSON error that says what is wrong."""
    headers = auth(gateway.token(gateway.analyst)) | {"Content-Type": "application/json"}
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    with gateway.http() as http:
        response = http.post("/v2/models/digits/infer", content=content, headers=headers)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


def test_non_finite_values_are_refused(gateway):
    """NaN and infinity in a well-formed request are refused by name."""
    headers = auth(gateway.token(gateway.analyst)) | {"Content-Type": "application/json"}
    body = (
        b'{"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": [NaN'
        + b", 0" * 63
        + b"]}]}"
    )
    with gateway.http() as http:
        response = http.post("/v2/models/digits/infer", content=body, headers=headers)
    assert response.status_code == 400
    assert "NaN or infinite" in response.json()["error"]


def test_oversized_body_is_413(gateway):
    """A body over the limit is refused before it is parsed."""
    headers = auth(gateway.token(gateway.analyst)) | {"Content-Type": "application/json"}
    with gateway.http() as http:
        response = http.post(
            "/v2/models/digits/infer", content=b" " * (9 * 1024 * 1024), headers=headers
        )
    assert response.status_code == 413
    assert "limit" in response.json()["error"]


def test_unknown_model_routes_and_methods(gateway):
    """Unknown models are 404 for permitted principals; unknown routes and methods are JSON."""
    headers = auth(gateway.token(gateway.analyst))
    with gateway.http() as http:
        model = http.post("/v2/models/nope/infer", json={"inputs": []}, headers=headers)
        version = http.get("/v2/models/digits/versions/9", headers=headers)
        route = http.get("/v3/anything")
        method = http.delete("/v2/models/digits/infer")
    assert model.status_code == 404 and "nope" in model.json()["error"]
    assert version.status_code == 404
    assert route.status_code == 404 and route.json() == {"error": "No such route."}
    assert method.status_code == 405 and "error" in method.json()


def _binary_request(size: int, tail: bytes, length: str | None = None) -> tuple[bytes, str]:
    """A one-input binary request declaring ``size`` bytes, followed by ``tail``."""
    tensor = {"name": DIGITS_INPUT, "shape": [1, 64], "datatype": "FP32"}
    header = json.dumps({"inputs": [tensor | {"parameters": {"binary_data_size": size}}]}).encode()
    return header + tail, length if length is not None else str(len(header))


@pytest.mark.parametrize(
    ("request_parts", "message"),
    [
        (_binary_request(256, b"\0" * 256, length="abc"), "whole number"),
        (_binary_request(256, b"\0" * 256, length="99999"), "whole number"),
        (_binary_request(256, b"\0" * 256, length="0"), "not valid JSON"),
        (_binary_request(256, b"\0" * 272), "belong to no input"),
        (_binary_request(256, b"\0" * 100), "runs past the body"),
        (_binary_request(10, b"\0" * 10), "whole number of 4-byte values"),
        (_binary_request(252, b"\0" * 252), "has 63 values"),
        (_binary_request(256, b"\xff" * 256), "NaN or infinite"),
    ],
)
def test_malformed_binary_tensors_get_clear_400s(gateway, request_parts, message):
    """Binary requests whose sizes or values do not fit are refused with a message that says why."""
    content, length = request_parts
    headers = auth(gateway.token(gateway.analyst)) | {"Inference-Header-Content-Length": length}
    with gateway.http() as http:
        response = http.post("/v2/models/digits/infer", content=content, headers=headers)
    assert response.status_code == 400
    assert message in response.json()["error"]


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_tritonclient_gets_correct_predictions(gateway, digits, binary):
    """NVIDIA's tritonclient.http, unchanged, talks to Bastion: JSON and binary tensors."""
    import gevent.ssl
    import tritonclient.http as triton

    client = triton.InferenceServerClient(
        url=gateway.url.removeprefix("https://"),
        ssl=True,
        ssl_context_factory=lambda: gevent.ssl.create_default_context(
            cafile=str(gateway.server.ca)
        ),
    )
    headers = auth(gateway.token(gateway.analyst))
    try:
        assert client.is_server_live()
        metadata = client.get_model_metadata("digits", headers=headers)
        assert metadata["inputs"][0]["name"] == DIGITS_INPUT
        images = digits.images[:16]
        tensor = triton.InferInput(DIGITS_INPUT, list(images.shape), "FP32")
        tensor.set_data_from_numpy(images, binary_data=binary)
        outputs = [
            triton.InferRequestedOutput("label", binary_data=binary),
            triton.InferRequestedOutput("probabilities", binary_data=binary),
        ]
        result = client.infer("digits", [tensor], outputs=outputs, headers=headers)
    finally:
        client.close()
    expected_label, expected_probs = ort.InferenceSession(digits.onnx).run(
        None, {DIGITS_INPUT: images}
    )
    assert np.array_equal(result.as_numpy("label"), expected_label)
    np.testing.assert_allclose(result.as_numpy("probabilities"), expected_probs, rtol=1e-6)


@pytest.mark.anyio
@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
async def test_kserve_rest_client_gets_correct_predictions(gateway, digits, binary):
    """KServe's InferenceRESTClient (V2 protocol), unchanged, talks to Bastion."""
    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

    context = ssl.create_default_context(cafile=str(gateway.server.ca))
    config = RESTConfig(protocol="v2", verify=context, retries=0)
    client = InferenceRESTClient(config)
    headers = auth(gateway.token(gateway.analyst))
    images = digits.images[:8]
    tensor = InferInput(DIGITS_INPUT, list(images.shape), "FP32")
    tensor.set_data_from_numpy(images, binary_data=binary)
    request = InferRequest(model_name="digits", infer_inputs=[tensor], request_id="k1")
    try:
        assert await client.is_server_live(gateway.url)
        assert await client.is_model_ready(gateway.url, "digits", headers=headers)
        result = await client.infer(gateway.url, request, model_name="digits", headers=headers)
    finally:
        await client.close()
    expected_label, _ = ort.InferenceSession(digits.onnx).run(None, {DIGITS_INPUT: images})
    outputs = {output.name: output.as_numpy() for output in result.outputs}
    assert np.array_equal(outputs["label"], expected_label)
    assert result.id == "k1"


def test_metrics_need_the_operator_role(gateway, promtool):
    """/metrics is for operators, counts by route, model, status and decision, and lints clean."""
    with gateway.http() as http:
        http.post(
            "/v2/models/digits/infer",
            json=infer_body(np.zeros((1, 64), np.float32)),
            headers=auth(gateway.token(gateway.analyst)),
        )
        http.get("/v2/models/digits", headers=auth(gateway.token(gateway.guest)))
        denied = http.get("/metrics", headers=auth(gateway.token(gateway.analyst)))
        metrics = http.get("/metrics", headers=auth(gateway.token(gateway.operator)))
    assert denied.status_code == 403
    assert metrics.status_code == 200
    text = metrics.text
    assert 'route="/v2/models/{name}/infer"' in text
    assert 'bastion_requests_total{decision="allow",model="digits"' in text
    assert "bastion_request_duration_seconds_bucket" in text
    assert "bcl_" not in text  # no principal ids in labels
    assert not [secret for secret in gateway.secrets() if secret in text]
    assert 'bastion_refusals_total{reason="policy"}' in text
    assert "bastion_audit_queue_depth" in text
    import subprocess

    lint = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_disabling_a_principal_revokes_its_tokens(gateway, digits):
    """A token stops working within the auth cache time of its principal being disabled."""
    ws = gateway.workspace
    temp = ws.principals.add("temp", role="analyst", attributes={})
    token = gateway.token(temp)
    headers = auth(token)
    with gateway.http() as http:
        before = http.post(
            "/v2/models/digits/infer", json=infer_body(digits.images[:1]), headers=headers
        )
        ws.principals.disable("temp")
        # A gateway reuses a verified principal for auth_cache_seconds (2 s) at most.
        deadline = time.monotonic() + 5
        while True:
            after = http.post(
                "/v2/models/digits/infer", json=infer_body(digits.images[:1]), headers=headers
            )
            if after.status_code != 200 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        fresh = http.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=(temp.principal.client_id, temp.secret.get_secret_value()),
        )
    assert before.status_code == 200
    assert after.status_code == 401
    assert fresh.status_code == 401


def test_every_request_is_audited_and_the_chain_verifies(gateway, digits):
    """Allowed, denied and refused requests each leave a record; the chain verifies."""
    with gateway.http() as http:
        http.post(
            "/v2/models/digits/infer",
            json=infer_body(digits.images[:1]),
            headers=auth(gateway.token(gateway.guest)),
        )
        http.post("/v2/models/digits/infer", json=infer_body(digits.images[:1]))
    requests = [e for e in gateway.workspace.audit.tail(20) if e.event.event != "monitor_alert"]
    deny, unauthenticated = requests[-2].event, requests[-1].event
    assert (deny.decision, deny.status) == ("deny", 403)
    assert deny.principal == gateway.guest.principal.client_id
    assert (unauthenticated.principal, unauthenticated.status) == ("-", 401)
    assert unauthenticated.reason == "no bearer token"
    allowed = [
        r.event
        for r in gateway.workspace.audit.tail(500)
        if r.event.action == "infer" and r.event.status == 200
    ]
    assert allowed and all(e.policy_ids == ("analyst-use-models",) for e in allowed)
    assert all(len(e.input_sha256) == 64 for e in allowed)
    assert gateway.workspace.audit.verify().size >= 40


def test_auditors_get_signed_checkpoints_and_proofs_over_http(gateway):
    """/audit/* is for auditors: a signed checkpoint and proofs that verify against it."""
    import base64

    from bastion.audit.merkle import verify_consistency, verify_inclusion

    with gateway.http() as http:
        denied = http.get("/audit/checkpoint", headers=auth(gateway.token(gateway.analyst)))
        headers = auth(gateway.token(gateway.auditor))
        first = gateway.workspace.audit.read_checkpoint(
            http.get("/audit/checkpoint", headers=headers).text
        )
        http.get("/v2/health/live")
        second = gateway.workspace.audit.read_checkpoint(
            http.get("/audit/checkpoint", headers=headers).text
        )
        inclusion = http.get(
            "/audit/proof/inclusion", params={"index": 0, "size": second.size}, headers=headers
        )
        consistency = http.get(
            "/audit/proof/consistency",
            params={"first": first.size, "second": second.size},
            headers=headers,
        )
        bad = http.get("/audit/proof/inclusion", params={"index": "x"}, headers=headers)
    assert denied.status_code == 403
    assert second.size > first.size  # the checkpoint request itself was audited
    leaf = gateway.workspace.audit.leaf_hashes(1)[0]
    decode = lambda r: [base64.b64decode(n) for n in r.json()["proof"]]  # noqa: E731
    verify_inclusion(
        index=0, size=second.size, leaf=leaf, proof=decode(inclusion), root_hash=second.root
    )
    verify_consistency(
        first=first.size,
        second=second.size,
        first_root=first.root,
        second_root=second.root,
        proof=decode(consistency),
    )
    assert bad.status_code == 400 and "whole numbers" in bad.json()["error"]


def test_authlib_client_gets_tokens_revokes_and_introspects(gateway, digits):
    """Authlib's OAuth2 client, unchanged: client_credentials, then RFC 7662 and RFC 7009."""
    import ssl
    import warnings

    with warnings.catch_warnings():  # Authlib announces a move to an httpx fork on import
        warnings.simplefilter("ignore")
        from authlib.integrations.httpx_client import OAuth2Client

    ana = gateway.analyst
    context = ssl.create_default_context(cafile=str(gateway.server.ca))
    with OAuth2Client(
        ana.principal.client_id,
        ana.secret.get_secret_value(),
        verify=context,
        token_endpoint_auth_method="client_secret_basic",
    ) as client:
        token = client.fetch_token(f"{gateway.url}/oauth2/token", grant_type="client_credentials")
        gateway.tokens.append(token["access_token"])
        answer = client.post(
            f"{gateway.url}/v2/models/digits/infer", json=infer_body(digits.images[:2])
        )
        assert answer.status_code == 200
        described = client.introspect_token(
            f"{gateway.url}/oauth2/introspect", token=token["access_token"]
        ).json()
        assert described["active"] and described["client_id"] == ana.principal.client_id
        assert (
            client.revoke_token(
                f"{gateway.url}/oauth2/revoke", token=token["access_token"]
            ).status_code
            == 200
        )
        refused = client.post(
            f"{gateway.url}/v2/models/digits/infer", json=infer_body(digits.images[:2])
        )
        assert refused.status_code == 401
        after = client.introspect_token(
            f"{gateway.url}/oauth2/introspect", token=token["access_token"]
        ).json()
        assert after == {"active": False}
    refusal = [
        e.event for e in gateway.workspace.audit.tail(20) if e.event.event == "authn_login_fail"
    ][-1]
    assert refusal.reason == "revoked token"


def test_clients_cannot_revoke_or_inspect_each_others_tokens(gateway):
    """Another client's token is reported inactive and stays valid after its 'revocation'."""
    victim = gateway.token(gateway.analyst)
    guest = gateway.guest
    auth_guest = (guest.principal.client_id, guest.secret.get_secret_value())
    with gateway.http() as http:
        described = http.post("/oauth2/introspect", data={"token": victim}, auth=auth_guest)
        revoked = http.post("/oauth2/revoke", data={"token": victim}, auth=auth_guest)
        still = http.get("/v2/models/digits", headers=auth(victim))
        garbage = http.post("/oauth2/introspect", data={"token": "x.y.z"}, auth=auth_guest)
        anonymous = http.post("/oauth2/revoke", data={"token": victim})
        missing = http.post("/oauth2/revoke", data={}, auth=auth_guest)
    assert described.json() == {"active": False} and revoked.status_code == 200
    assert still.status_code == 200 and garbage.json() == {"active": False}
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "invalid_client"
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"


def test_signing_key_rotation_refuses_no_valid_token(gateway, digits):
    """A running gateway picks up a rotated signing key; earlier tokens keep working."""
    before = gateway.token(gateway.analyst)
    old_kid = jwt.get_unverified_header(before)["kid"]
    new_kid = gateway.workspace.signing_keys.rotate().kid
    after = gateway.token(gateway.analyst)
    with gateway.http() as http:
        published = {key["kid"] for key in http.get("/.well-known/jwks.json").json()["keys"]}
        for token in (before, after):
            response = http.post(
                "/v2/models/digits/infer", json=infer_body(digits.images[:1]), headers=auth(token)
            )
            assert response.status_code == 200
    assert jwt.get_unverified_header(after)["kid"] == new_kid != old_kid
    assert {old_kid, new_kid} <= published


def test_api_keys_work_within_their_scope(gateway, digits):
    """An API key infers on its model, is refused elsewhere, and stops when revoked."""
    keys = gateway.workspace.api_keys
    record, key = keys.create("ana", actions=("infer",), models=("digits",), days=1)
    headers = auth(key.get_secret_value())
    gateway.tokens.append(key.get_secret_value())
    with gateway.http() as http:
        allowed = http.post(
            "/v2/models/digits/infer", json=infer_body(digits.images[:1]), headers=headers
        )
        other_action = http.get("/v2/models/digits", headers=headers)
        keys.revoke(record.key_id)
        revoked = http.post(
            "/v2/models/digits/infer", json=infer_body(digits.images[:1]), headers=headers
        )
    assert allowed.status_code == 200
    assert other_action.status_code == 403
    assert revoked.status_code == 401
    events = [e.event for e in gateway.workspace.audit.tail(10) if e.event.auth_method == "api_key"]
    assert events and events[0].reason == "" and events[-1].reason == "revoked api key"


def test_no_secret_or_token_is_stored_or_logged(gateway):
    """Secrets and tokens used in this module appear in no database byte, record or log line."""
    ws = gateway.workspace
    files = [ws.paths.database, *ws.paths.database.parent.glob("bastion.db-*"), gateway.server.log]
    stored = b"".join(path.read_bytes() for path in files if path.exists())
    records = repr(ws.audit.tail(10_000)).encode()
    assert len(gateway.secrets()) > 20
    for secret in gateway.secrets():
        needle = secret.encode()
        assert needle not in stored
        assert needle not in records
        assert needle.split(b".")[-1] not in stored  # not even a token's signature


def test_python_client_caches_its_token_and_maps_errors(gateway, digits):
    """bastion.client.Client reuses one token, returns arrays and raises typed errors."""
    from bastion.client import Client
    from bastion.errors import AuthError, Forbidden, InvalidInput, NotFound

    analyst, guest = gateway.analyst, gateway.guest
    with Client(
        gateway.url, analyst.principal.client_id, analyst.secret, ca=gateway.server.ca
    ) as c:
        first = c.token()
        outputs = c.infer("digits", {DIGITS_INPUT: digits.images[:5]}, outputs=("label",))
        assert c.token() == first
        assert list(outputs) == ["label"] and outputs["label"].dtype == np.int64
        assert c.model_metadata("digits", version="1")["versions"] == ["1"]
        with pytest.raises(NotFound):
            c.infer("nope", {DIGITS_INPUT: digits.images[:1]})
        with pytest.raises(InvalidInput, match="FP32"):
            c.infer("digits", {DIGITS_INPUT: digits.images[:1].astype(np.float64)})
        gateway.tokens.append(first)
    ca = gateway.server.ca
    guest_client = Client(gateway.url, guest.principal.client_id, guest.secret, ca=ca)
    with guest_client, pytest.raises(Forbidden):
        guest_client.infer("digits", {DIGITS_INPUT: digits.images[:1]})
    wrong = Client(gateway.url, analyst.principal.client_id, "bsk_wrong", ca=ca)
    with wrong, pytest.raises(AuthError):
        wrong.token()
