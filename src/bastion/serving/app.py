"""The ASGI application: HTTP routes in front of the request pipelines."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from anyio import to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Route

import bastion
from bastion.audit import AuditLog
from bastion.crypto import public_jwk
from bastion.crypto.tls import certificate_thumbprint, client_id_of
from bastion.errors import BastionError, InvalidInput, NotFound, PayloadTooLarge
from bastion.identity import ClientCertificate
from bastion.identity.assertions import ASSERTION_ALGORITHMS
from bastion.identity.oauth import SCOPES
from bastion.monitor import CONTENT_TYPE, GatewayMetrics
from bastion.registry import (
    ONNX_FORMAT,
    PICKLE_FORMAT,
    SKOPS_FORMAT,
    UPSTREAM_FORMAT,
    ModelRegistry,
    ModelVersion,
)
from bastion.serving import binary
from bastion.serving.admin import admin_routes
from bastion.serving.call import Call, Target
from bastion.serving.errors import INTERNAL_ERROR, error_response, oauth_error_response
from bastion.serving.health import Backends
from bastion.serving.monitoring import build_monitor
from bastion.serving.openapi import openapi_document
from bastion.serving.pipeline import Pipelines, build_pipelines
from bastion.serving.protocol import response_body
from bastion.serving.runner import Runner, build_runner
from bastion.serving.stages.validate import allowed_outputs, check_content_type
from bastion.workspace import Workspace

logger = logging.getLogger("bastion.serving")
MAX_FORM_BYTES = 16 * 1024
_SECURITY_HEADERS = {
    "Strict-Transport-Security": "max-age=31536000",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
Endpoint = Callable[[Request], Awaitable[Response]]
_PLATFORMS = {
    ONNX_FORMAT: "onnxruntime_onnx",
    SKOPS_FORMAT: "sklearn_skops",
    PICKLE_FORMAT: "sklearn_pickle",
    UPSTREAM_FORMAT: "upstream_v2",
}


def build_app(workspace: Workspace) -> Starlette:
    """The gateway's ASGI app over an opened workspace."""
    settings = workspace.settings
    audit = workspace.audit  # one writer for requests, alerts and policy changes alike
    metrics = GatewayMetrics(audit_backlog=lambda: audit.backlog)
    monitor = build_monitor(workspace)
    runner = build_runner(workspace)
    pipelines = build_pipelines(
        workspace, audit=audit, metrics=metrics, monitor=monitor, runner=runner
    )
    server_metadata, oauth_metadata = _discovery(workspace)

    async def jwks(_: Request) -> Response:
        # Read per request: a rotated key appears here at once, retired ones until they lapse.
        keys = workspace.signing_keys.verification_keys()
        body = {"keys": [public_jwk(key, kid=kid) for kid, key in keys.items()]}
        return JSONResponse(body, headers=_SECURITY_HEADERS)

    async def infer(request: Request) -> Response:
        call = await pipelines.infer.run(
            _call(request, "infer", body_limit=settings.max_body_bytes)
        )
        if call.error is not None or call.model is None:
            return error_response(call.error or BastionError(), request_id=call.request_id)
        return _inference_response(call, call.model)

    async def model_metadata(request: Request) -> Response:
        call = await pipelines.describe.run(_call(request, "describe"))
        if call.error is not None or call.model is None:
            return error_response(call.error or BastionError(), request_id=call.request_id)
        model = call.model
        visible = allowed_outputs(model, call.role)  # what this caller's output policy shows
        return _json(
            call,
            {
                "name": model.name,
                "versions": [model.version],
                "platform": _PLATFORMS.get(model.format, model.format),
                "inputs": [spec.to_json() for spec in model.signature.inputs],
                "outputs": [
                    spec.to_json() for spec in model.signature.outputs if spec.name in visible
                ],
            },
        )

    async def prometheus(request: Request) -> Response:
        call = await pipelines.metrics.run(_call(request, "read_metrics"))
        if call.error is not None:
            return error_response(call.error, request_id=call.request_id)
        return Response(metrics.render(), media_type=CONTENT_TYPE, headers=_SECURITY_HEADERS)

    async def audit_checkpoint(request: Request) -> Response:
        call = await pipelines.audit.run(_call(request, "read_audit"))
        if call.error is not None:
            return error_response(call.error, request_id=call.request_id)
        checkpoint = await to_thread.run_sync(workspace.audit.checkpoint)
        return Response(
            checkpoint.note, media_type="text/plain; charset=utf-8", headers=_SECURITY_HEADERS
        )

    async def audit_proof(request: Request) -> Response:
        call = await pipelines.audit.run(_call(request, "read_audit"))
        try:
            if call.error is not None:
                raise call.error
            kind = request.path_params["kind"]
            if kind == "inclusion":
                index, size = _query_ints(request, "index", "size")
                proof = await to_thread.run_sync(workspace.audit.prove_inclusion, index, size)
            elif kind == "consistency":
                first, second = _query_ints(request, "first", "second")
                proof = await to_thread.run_sync(workspace.audit.prove_consistency, first, second)
            else:
                raise NotFound("Proofs are 'inclusion' or 'consistency'.")
        except BastionError as exc:
            return error_response(exc, request_id=call.request_id)
        return _json(call, {"proof": [base64.b64encode(node).decode() for node in proof]})

    def static(body: dict[str, Any]) -> Endpoint:
        async def endpoint(_: Request) -> Response:
            return JSONResponse(body, headers=_SECURITY_HEADERS)

        return endpoint

    versioned = "/v2/models/{name}/versions/{version}"
    routes = [
        *_oauth_routes(pipelines),
        Route("/.well-known/oauth-authorization-server", static(oauth_metadata)),
        Route("/.well-known/jwks.json", jwks),
        Route("/v2", static(server_metadata)),
        Route(
            "/openapi.json", static(openapi_document(settings.issuer, resources=settings.resources))
        ),
        Route("/v2/health/live", static({"live": True})),
        Route("/v2/health/ready", _readiness(runner, pipelines.backends)),
        Route("/metrics", prometheus),
        Route("/audit/checkpoint", audit_checkpoint),
        Route("/audit/proof/{kind}", audit_proof),
        Route("/v2/models/{name}", model_metadata),
        Route(versioned, model_metadata),
        Route("/v2/models/{name}/ready", _model_readiness(pipelines, runner)),
        Route(f"{versioned}/ready", _model_readiness(pipelines, runner)),
        Route("/v2/models/{name}/infer", infer, methods=["POST"]),
        Route(f"{versioned}/infer", infer, methods=["POST"]),
        *_dataset_routes(pipelines, body_limit=settings.max_body_bytes),
        *admin_routes(
            workspace,
            run=pipelines.admin.run,
            make_call=lambda request, action, limit: _call(
                request, action, body_limit=limit, media=_admin_media(request)
            ),
            headers=_SECURITY_HEADERS,
        ),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: _http_error, Exception: _unexpected_error},
        lifespan=_lifespan(runner, audit, workspace.registry),
    )
    app.state.monitor = monitor  # for `drain()` in tests and operators' introspection
    app.state.runner = runner
    return app


def _readiness(runner: Runner, backends: Backends) -> Endpoint:
    """``/v2/health/ready``: 503 while a model's workers fail to start or a backend is down.

    The database and Redis are probed off the event loop with a timeout; liveness
    (``/v2/health/live``) never waits on them.
    """

    async def ready(_: Request) -> Response:
        is_ready = runner.is_ready() and await backends.is_ready()
        status = 200 if is_ready else 503
        return JSONResponse({"ready": is_ready}, status_code=status, headers=_SECURITY_HEADERS)

    return ready


def _model_readiness(pipelines: Pipelines, runner: Runner) -> Endpoint:
    """``/v2/models/{name}[/versions/{version}]/ready``: 503 while its workers fail to start."""

    async def model_ready(request: Request) -> Response:
        call = await pipelines.describe.run(_call(request, "describe"))
        if call.error is not None or call.model is None:
            return error_response(call.error or BastionError(), request_id=call.request_id)
        ready = runner.is_model_ready(call.model)
        body = {"name": call.model.name, "versions": [call.model.version], "ready": ready}
        response = _json(call, body)
        response.status_code = 200 if ready else 503
        return response

    return model_ready


def _lifespan(
    runner: Runner, audit: AuditLog, registry: ModelRegistry
) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    """Start the default versions' workers at startup (not ready until then), stop them last.

    At shutdown the audit entries still waiting are committed and a checkpoint covering
    every entry this process wrote is signed.
    """

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        models = await to_thread.run_sync(registry.default_versions)
        warming = asyncio.create_task(runner.warm(models))
        yield
        warming.cancel()
        runner.close()
        await to_thread.run_sync(audit.close)

    return lifespan


def _dataset_routes(pipelines: Pipelines, *, body_limit: int) -> list[Route]:
    """Differentially private queries on registered datasets."""

    async def dp_query(request: Request) -> Response:
        call = await pipelines.dp_query.run(
            _call(request, "query_data", body_limit=body_limit, media="application/json")
        )
        if call.error is not None or call.reply is None:
            return error_response(call.error or BastionError(), request_id=call.request_id)
        answer = call.reply.answer
        return _json(
            call,
            {
                "dataset": call.target.dataset,
                "query": answer.query.describe(),
                "value": answer.value,
                "epsilon": answer.query.epsilon,
                "noise_scale": answer.noise_scale,
                "epsilon_left": call.reply.budget.epsilon_left,
            },
        )

    return [Route("/v1/datasets/{dataset}/query", dp_query, methods=["POST"])]


def _oauth_routes(pipelines: Pipelines) -> list[Route]:
    """The token, revocation and introspection endpoints (RFC 6749, 7009, 7662)."""

    async def token(request: Request) -> Response:
        call = await pipelines.token.run(_call(request, "token", body_limit=MAX_FORM_BYTES))
        if call.error is not None:
            return oauth_error_response(call.error, request_id=call.request_id)
        if call.issued is None:
            return oauth_error_response(BastionError(), request_id=call.request_id)
        return _json(
            call,
            {
                "access_token": call.issued.value.get_secret_value(),
                "token_type": call.issued.token_type,
                "expires_in": call.issued.expires_in,
                **({"scope": call.issued.scope} if call.issued.scope else {}),
            },
        )

    async def revoke(request: Request) -> Response:
        call = await pipelines.revoke.run(_call(request, "revoke", body_limit=MAX_FORM_BYTES))
        if call.error is not None:
            return oauth_error_response(call.error, request_id=call.request_id)
        return Response(status_code=200, headers=_SECURITY_HEADERS)

    async def introspect(request: Request) -> Response:
        call = await pipelines.introspect.run(
            _call(request, "introspect", body_limit=MAX_FORM_BYTES)
        )
        if call.error is not None or call.introspection is None:
            return oauth_error_response(call.error or BastionError(), request_id=call.request_id)
        return _json(call, call.introspection.to_json())

    return [
        Route("/oauth2/token", token, methods=["POST"]),
        Route("/oauth2/revoke", revoke, methods=["POST"]),
        Route("/oauth2/introspect", introspect, methods=["POST"]),
    ]


def _discovery(workspace: Workspace) -> tuple[dict[str, Any], dict[str, Any]]:
    """V2 server metadata and RFC 8414 authorization-server metadata."""
    settings = workspace.settings
    issuer = settings.issuer
    server_metadata = {
        "name": "bastion",
        "version": bastion.__version__,
        "extensions": ["binary_tensor_data"],
    }
    oauth_metadata = {
        "issuer": issuer,
        "token_endpoint": f"{issuer}/oauth2/token",
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "revocation_endpoint": f"{issuer}/oauth2/revoke",
        "introspection_endpoint": f"{issuer}/oauth2/introspect",
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
            *(["tls_client_auth"] if settings.mtls != "off" else []),
        ],
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
        "scopes_supported": list(SCOPES),
        "tls_client_certificate_bound_access_tokens": settings.mtls != "off",
        "response_types_supported": [],
    }
    return server_metadata, oauth_metadata


def _inference_response(call: Call, model: ModelVersion) -> Response:
    """JSON, or a JSON header followed by raw tensors when the client asked for binary outputs."""
    body = response_body(
        model=model.name,
        version=model.version,
        request_id=call.request.id if call.request else None,
        outputs=call.outputs,
    )
    wanted = binary.wants_binary(call.request, call.outputs)
    if not wanted:
        return _json(call, body)
    content, header_length = binary.encode_response(body, call.outputs, wanted)
    headers = {"X-Request-ID": call.request_id, binary.HEADER: str(header_length)}
    return Response(
        content, media_type="application/octet-stream", headers=_SECURITY_HEADERS | headers
    )


def _call(request: Request, action: str, *, body_limit: int = 0, media: str | None = None) -> Call:
    """The call of ``request``; its body, when read, must be ``media`` (if given) or untyped."""
    route = request.scope["route"].path
    params = request.path_params
    return Call(
        route=route,
        target=Target(
            action=action,
            model=params.get("name", ""),
            version=params.get("version"),
            dataset=params.get("dataset", ""),
        ),
        client_ip=request.client.host if request.client else "",
        authorization=request.headers.get("authorization"),
        content_type=request.headers.get("content-type", ""),
        read_body=lambda: _read_body(request, body_limit, media),
        binary_header=request.headers.get("inference-header-content-length"),
        certificate=_client_certificate(request),
        purpose=request.headers.get("bastion-purpose", ""),
    )


def _admin_media(request: Request) -> str | None:
    """The body type an admin route takes: Cedar text, JSON, or none (reads, deletes)."""
    if request.method not in ("POST", "PUT") or request.url.path.endswith("/disable"):
        return None
    return "text/plain" if request.url.path.startswith("/admin/policies/") else "application/json"


def _client_certificate(request: Request) -> ClientCertificate | None:
    # The ASGI TLS extension, filled in by serving/server.py from the verified peer.
    chain = request.scope.get("extensions", {}).get("tls", {}).get("client_cert_chain")
    if not chain:
        return None
    der = ssl.PEM_cert_to_DER_cert(chain[0])
    return ClientCertificate(thumbprint=certificate_thumbprint(der), client_id=client_id_of(der))


async def _read_body(request: Request, limit: int, media: str | None = None) -> bytes:
    if media is not None:  # read only after authentication, so a stranger gets 401 first
        check_content_type(request.headers.get("content-type", ""), media)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"The request body is over the {limit}-byte limit.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The request body is over the {limit}-byte limit.")
        chunks.append(chunk)
    return b"".join(chunks)


def _query_ints(request: Request, *names: str) -> list[int]:
    values = [request.query_params.get(name, "") for name in names]
    if not all(value.isdigit() for value in values):
        raise InvalidInput(f"Give {', '.join(names)} as whole numbers in the query string.")
    return [int(value) for value in values]


def _json(call: Call, body: dict[str, Any]) -> Response:
    return JSONResponse(body, headers=_SECURITY_HEADERS | {"X-Request-ID": call.request_id})


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    message = {404: "No such route.", 405: "Method not allowed on this route."}
    headers = dict(exc.headers or {}) if isinstance(exc, HTTPException) else {}
    if status == 405:  # noqa: PLR2004 - RFC 9110: Allow names every method of the resource
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return JSONResponse(
        {"error": message.get(status, "Bad request.")}, status_code=status, headers=headers
    )


def _allowed_methods(request: Request) -> list[str]:
    """The methods of every route on the request's path (a path may have one route each)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.matches(request.scope)[0] != Match.NONE:
            methods |= route.methods or set()
    return sorted(methods)


async def _unexpected_error(_: Request, exc: Exception) -> Response:
    logger.error("unhandled %s", type(exc).__name__)
    return JSONResponse({"error": INTERNAL_ERROR}, status_code=500)
