"""The gateway's OpenAPI 3.0 document, served at ``/openapi.json``.

It describes every route of :mod:`bastion.serving.app` — the OAuth 2.0 endpoints, the Open
Inference Protocol (V2) routes, the audit and metrics routes and differentially private
queries — with each status a route can answer and the JSON of every answer, so clients can
be generated from it and schemathesis can fuzz the gateway against it
(``tests/integration/test_openapi.py``).

It is OpenAPI 3.0, whose schemas read JSON numbers as JSON Schema draft 4 does: an
``integer`` has no fraction and no exponent, so ``1.0`` is not one. That is exactly how the
gateway parses (strictly, nothing coerced); under OpenAPI 3.1 (JSON Schema 2020-12) ``1.0``
would be an integer, and the document would promise what the gateway refuses.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import bastion
from bastion.identity.assertions import PRIVATE_JWK_MEMBERS
from bastion.identity.oauth import SCOPES

_NAME = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"}
_VERSION = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"}
_DATATYPES = ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"]
_DATATYPES += ["FP16", "FP32", "FP64"]
_ERRORS = {
    400: "The request is malformed; the message says what to fix.",
    401: "Authentication failed (always the same answer).",
    403: "Policy denied the action.",
    404: "No such model, version, dataset or route.",
    405: "Method not allowed on this route.",
    409: "Conflict.",
    413: "The body is over the size limit.",
    415: "The body's Content-Type is not one this route takes.",
    429: "Too many requests; see Retry-After.",
    503: "A backend (database, audit log, model worker) is unavailable.",
}
_GUARDED = (401, 403, 404, 405, 429, 503)  # what the authenticate-authorize-throttle guard answers


def openapi_document(issuer: str, *, resources: Iterable[str] = ()) -> dict[str, Any]:
    """The document, with ``issuer`` as the server URL; ``resources``: other RFC 8707 targets."""
    versioned = "/v2/models/{name}/versions/{version}"
    return {
        "openapi": "3.0.3",
        "info": {"title": "Bastion gateway", "version": bastion.__version__},
        "servers": [{"url": issuer}],
        "paths": {
            "/oauth2/token": _oauth(
                "Get an access token.", "Token", _token_form([issuer, *resources])
            ),
            "/oauth2/revoke": _oauth("Revoke a token (RFC 7009).", None, _TOKEN_OF_FORM),
            "/oauth2/introspect": _oauth(
                "Introspect a token (RFC 7662).", "Introspection", _TOKEN_OF_FORM
            ),
            "/.well-known/oauth-authorization-server": _public("Server metadata (RFC 8414)."),
            "/.well-known/jwks.json": _public("The token-signing public keys.", "Jwks"),
            "/v2": _public("V2 server metadata.", "ServerMetadata"),
            "/openapi.json": _public("This document."),
            "/v2/health/live": _public("Liveness.", "Live"),
            "/v2/health/ready": _public(
                "Readiness: 503 while model workers fail to start.", "Ready", 503
            ),
            "/metrics": _guarded(
                "Prometheus metrics (action read_metrics).", None, text="text/plain"
            ),
            "/audit/checkpoint": _guarded("The signed audit checkpoint.", None, text="text/plain"),
            "/audit/proof/{kind}": _guarded(
                "An inclusion or consistency proof of the audit log.",
                "Proof",
                params=[_path("kind", {"type": "string", "enum": ["inclusion", "consistency"]})]
                + [_query(n) for n in ("index", "size", "first", "second")],
                errors=(400,),
            ),
            "/v2/models/{name}": _model("Model metadata.", "ModelMetadata"),
            versioned: _model("Model metadata of one version.", "ModelMetadata", version=True),
            "/v2/models/{name}/ready": _model("Model readiness.", "ModelReady"),
            f"{versioned}/ready": _model("Readiness of one version.", "ModelReady", version=True),
            "/v2/models/{name}/infer": _infer(version=False),
            f"{versioned}/infer": _infer(version=True),
            "/v1/datasets/{dataset}/query": _dp_query(),
            **_ADMIN_PATHS,
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "client": {"type": "http", "scheme": "basic"},
            },
            "schemas": _SCHEMAS,
        },
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: str | None) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(schema) if schema else {"type": "object"}}}


def _answers(ok: str | None, errors: tuple[int, ...], *, text: str | None = None) -> dict[str, Any]:
    success = {"text/plain": {"schema": {"type": "string"}}} if text else _json(ok)
    answers: dict[str, Any] = {"200": {"description": "OK", "content": success}}
    for status in sorted(set(errors)):
        answers[str(status)] = {"description": _ERRORS[status], "content": _json("Error")}
    return answers


def _path(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _query(name: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": {"type": "integer", "minimum": 0}}


def _public(summary: str, ok: str | None = None, *errors: int) -> dict[str, Any]:
    return {"get": {"summary": summary, "security": [], "responses": _answers(ok, (405, *errors))}}


def _guarded(
    summary: str,
    ok: str | None,
    *,
    params: list[dict[str, Any]] | None = None,
    errors: tuple[int, ...] = (),
    text: str | None = None,
) -> dict[str, Any]:
    operation = {
        "summary": summary,
        "security": [{"bearer": []}],
        "parameters": params or [],
        "responses": _answers(ok, (*_GUARDED, *errors), text=text),
    }
    return {"get": operation}


def _model(summary: str, ok: str, *, version: bool = False) -> dict[str, Any]:
    params = [_path("name", _NAME)] + ([_path("version", _VERSION)] if version else [])
    return _guarded(summary, ok, params=params)


def _infer(*, version: bool) -> dict[str, Any]:
    params = [_path("name", _NAME)] + ([_path("version", _VERSION)] if version else [])
    # The binary tensor extension (an Inference-Header-Content-Length header, a JSON header
    # then raw tensors, as application/octet-stream) is described in words: whether such a
    # body is valid depends on a header, which a schema per media type cannot say.
    body = {"required": True, "content": _json("InferenceRequest")}
    answers = _answers("InferenceResponse", (*_GUARDED, 400, 413, 415))
    answers["200"]["content"]["application/octet-stream"] = {
        "schema": {"type": "string", "format": "binary"}
    }
    operation = {
        "summary": "Run the model (V2 inference, JSON or binary tensors).",
        "description": "JSON as below, or the V2 binary tensor extension: header "
        "Inference-Header-Content-Length, Content-Type application/octet-stream "
        "(docs/pipeline.md). A body without a Content-Type is read as either.",
        "security": [{"bearer": []}],
        "parameters": params,
        "requestBody": body,
        "responses": answers,
    }
    return {"post": operation}


def _dp_query() -> dict[str, Any]:
    operation = {
        "summary": "A differentially private query on a registered dataset.",
        "security": [{"bearer": []}],
        "parameters": [_path("dataset", _NAME)],
        "requestBody": {"required": True, "content": _json("DpQuery")},
        "responses": _answers("DpAnswer", (*_GUARDED, 400, 413, 415)),
    }
    return {"post": operation}


# The client authenticates with HTTP Basic (client_secret_basic), or in the form
# (client_id + client_secret, or client_assertion_type + client_assertion for private_key_jwt,
# RFC 7523), or with its certificate (tls_client_auth): one method, never two. So the
# Authorization header is optional here, and the form's client fields are described in words:
# combined with Basic they are refused (400), which a schema of the form alone cannot say.
_CLIENT_AUTH = (
    " The client authenticates with HTTP Basic, or with client_id and client_secret (or "
    "client_assertion_type and client_assertion) in the form, or with its TLS certificate: "
    "exactly one of them."
)
_SCOPE = f"(?:{'|'.join(SCOPES)})"  # RFC 6749 §3.3: space-separated names it knows
_OTHER_PARAMETERS = {"type": "string"}  # RFC 6749 §3.2: unknown parameters are ignored


def _token_form(resources: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["grant_type"],
        "properties": {
            "grant_type": {"type": "string", "enum": ["client_credentials"]},
            "scope": {"type": "string", "pattern": f"^{_SCOPE}( {_SCOPE})*$"},
            "resource": {"type": "string", "enum": resources},  # RFC 8707: the ones it serves
        },
        "additionalProperties": _OTHER_PARAMETERS,
    }


_TOKEN_OF_FORM = {
    "type": "object",
    "required": ["token"],
    "properties": {
        "token": {"type": "string", "minLength": 1},
        "token_type_hint": {"type": "string"},
    },
    "additionalProperties": _OTHER_PARAMETERS,
}


def _oauth(summary: str, ok: str | None, form: dict[str, Any]) -> dict[str, Any]:
    answers = _answers(ok, (400, 401, 405, 413, 429, 503))
    if ok is None:  # revocation answers 200 with an empty body
        del answers["200"]["content"]
    for status in ("400", "401", "429"):
        answers[status]["content"] = _json("OAuthError")
    operation = {
        "summary": summary,
        "description": _CLIENT_AUTH.strip(),
        "security": [{"client": []}, {}],
        "requestBody": {
            "required": True,
            "content": {"application/x-www-form-urlencoded": {"schema": form}},
        },
        "responses": answers,
    }
    return {"post": operation}


_TENSOR = {
    "type": "object",
    "required": ["name", "shape", "datatype"],
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "datatype": {"type": "string", "enum": _DATATYPES},
        "parameters": {"type": "object"},
        "data": {"type": "array"},
    },
}
_TENSOR_NAME = {"type": "string", "pattern": "^[A-Za-z0-9_.:/-]{1,128}$"}
# What the gateway parses strictly (serving/protocol.py): no extra member, no coercion.
_INPUT_TENSOR = {
    "type": "object",
    "required": ["name", "shape", "datatype"],
    "additionalProperties": False,
    "properties": {
        "name": _TENSOR_NAME,
        "shape": {
            "type": "array",
            "maxItems": 8,
            "items": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
        },
        "datatype": {"type": "string", "enum": _DATATYPES},
        "parameters": {"type": "object"},
        "data": {"type": "array"},
    },
}
_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}},
    },
    "OAuthError": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}},
    },
    "Token": {
        "type": "object",
        "required": ["access_token", "token_type", "expires_in"],
        "properties": {
            "access_token": {"type": "string"},
            "token_type": {"type": "string"},
            "expires_in": {"type": "integer"},
            "scope": {"type": "string"},
        },
    },
    "Introspection": {
        "type": "object",
        "required": ["active"],
        "properties": {"active": {"type": "boolean"}},
    },
    "Jwks": {"type": "object", "required": ["keys"], "properties": {"keys": {"type": "array"}}},
    "ServerMetadata": {
        "type": "object",
        "required": ["name", "version", "extensions"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "extensions": {"type": "array", "items": {"type": "string"}},
        },
    },
    "Live": {"type": "object", "required": ["live"], "properties": {"live": {"type": "boolean"}}},
    "Ready": {
        "type": "object",
        "required": ["ready"],
        "properties": {"ready": {"type": "boolean"}},
    },
    "ModelReady": {
        "type": "object",
        "required": ["name", "ready"],
        "properties": {"name": {"type": "string"}, "ready": {"type": "boolean"}},
    },
    "ModelMetadata": {
        "type": "object",
        "required": ["name", "versions", "platform", "inputs", "outputs"],
        "properties": {
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array", "items": {"type": "object"}},
            "outputs": {"type": "array", "items": {"type": "object"}},
        },
    },
    "InferenceRequest": {
        "type": "object",
        "required": ["inputs"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "maxLength": 128},
            "model_name": {"type": "string", "maxLength": 128},
            "model_version": {"type": "string", "maxLength": 64},
            "parameters": {"type": "object"},
            "inputs": {"type": "array", "minItems": 1, "maxItems": 64, "items": _INPUT_TENSOR},
            "outputs": {
                "type": "array",
                "maxItems": 64,
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {"name": _TENSOR_NAME, "parameters": {"type": "object"}},
                },
            },
        },
    },
    "InferenceResponse": {
        "type": "object",
        "required": ["model_name", "outputs"],
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "outputs": {"type": "array", "items": _TENSOR},
        },
    },
    "Proof": {
        "type": "object",
        "required": ["proof"],
        "properties": {"proof": {"type": "array", "items": {"type": "string"}}},
    },
    "DpQuery": {
        "type": "object",
        "required": ["query", "epsilon"],
        "additionalProperties": False,
        "properties": {
            "query": {"type": "string", "example": "mean(age, 0, 100)"},
            "epsilon": {"type": "number", "minimum": 0, "exclusiveMinimum": True},
        },
    },
    "DpAnswer": {
        "type": "object",
        "required": ["dataset", "query", "value", "epsilon", "epsilon_left"],
        "properties": {
            "dataset": {"type": "string"},
            "query": {"type": "string"},
            "value": {},
            "epsilon": {"type": "number"},
            "noise_scale": {"type": "number"},
            "epsilon_left": {"type": "number"},
        },
    },
}


def _admin(method: str, summary: str, *, params: tuple[str, ...] = (), body: str = "",
           created: bool = False) -> dict[str, Any]:  # fmt: skip
    """One admin operation: guarded, answers JSON (201 when it creates)."""
    answers = _answers(None, (*_GUARDED, 400, 409, 413, *((415,) if body else ())))
    if created:
        answers["201"] = answers.pop("200")
    operation: dict[str, Any] = {
        "summary": summary,
        "security": [{"bearer": []}],
        "parameters": [_path(name, _ADMIN_PARAMETERS[name]) for name in params],
        "responses": answers,
    }
    if body == "cedar":
        # Whether text is valid Cedar no schema can say; an empty body writes an empty file.
        text = {"text/plain": {"schema": {"type": "string"}}}
        operation["requestBody"] = {"required": False, "content": text}
    elif body:
        operation["requestBody"] = {"required": True, "content": _json(body)}
    return {method: operation}


# An Ed25519 public JWK. P-256 and RSA (2048 bits or more) keys are accepted too
# (docs/identity.md), but whether their numbers are a point on the curve or a usable modulus
# no schema can say, so the document names the kind every well-formed value of which works.
# Other JWK members (kid, use, alg...) are allowed and ignored; a private member is refused.
_PUBLIC_JWK = {
    "type": "object",
    "required": ["kty", "crv", "x"],
    "properties": {
        "kty": {"type": "string", "enum": ["OKP"]},
        "crv": {"type": "string", "enum": ["Ed25519"]},
        "x": {"type": "string", "pattern": "^[A-Za-z0-9_-]{43}$"},
    },
    "not": {"anyOf": [{"required": [member]} for member in sorted(PRIVATE_JWK_MEMBERS)]},
}
_STRINGS = {"type": "array", "minItems": 1, "items": {"type": "string"}}
# The admin API ignores members it does not know, so the document allows them.
_SCHEMAS |= {
    "NewPrincipal": {
        "type": "object",
        "required": ["name", "role"],
        "properties": {
            "name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"},
            "role": {"type": "string", "pattern": "^[a-z][a-z0-9_-]{0,63}$"},
            "attributes": {
                "type": "object",
                "patternProperties": {"^[a-z][a-z0-9_]{0,63}$": {"type": "string"}},
                "additionalProperties": False,
            },
            "public_jwk": {**_PUBLIC_JWK, "nullable": True},  # null: none, as if absent
        },
    },
    "PublicJwk": _PUBLIC_JWK,
    "NewApiKey": {
        "type": "object",
        "required": ["principal", "actions", "models"],
        "properties": {
            "principal": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"},
            "actions": _STRINGS,
            "models": _STRINGS,
            "days": {"type": "integer", "minimum": 1, "maximum": 365},
        },
    },
}
_ADMIN_PARAMETERS = {
    "principal": _NAME,
    "key_id": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
    "file": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,63}[.]cedar$"},
}
_ADMIN_PATHS: dict[str, Any] = {
    "/admin/principals": _admin("get", "List principals (manage_principals).")
    | _admin("post", "Add a principal: name, role, attributes, public_jwk.", body="NewPrincipal",
             created=True),
    "/admin/principals/{principal}/disable": _admin(
        "post", "Disable a principal.", params=("principal",)
    ),
    "/admin/principals/{principal}/public-key": _admin(
        "put", "Set a principal's private_key_jwt public key (a JWK).", params=("principal",),
        body="PublicJwk",
    ),
    "/admin/api-keys": _admin("get", "List API keys.")
    | _admin("post", "Create an API key: principal, actions, models, days.", body="NewApiKey",
             created=True),
    "/admin/api-keys/{key_id}": _admin("delete", "Revoke an API key.", params=("key_id",)),
    "/admin/policies": _admin("get", "Read the policy files (manage_policies)."),
    "/admin/policies/{file}": _admin(
        "put", "Write a policy file; refused unless the whole set validates.", params=("file",),
        body="cedar",
    )
    | _admin("delete", "Delete a policy file.", params=("file",)),
}  # fmt: skip
