"""The admin API: principals, their keys, API keys and policies, over HTTPS.

Every route is authenticated like any other, authorized by Cedar (actions
``manage_principals`` and ``manage_policies`` on the gateway; the baseline permits role
``admin``), rate-limited and audited — the audit entry says what was done, never a secret.
Secrets (a new client's secret, a new API key) appear once, in the response. A JSON body
with a string that is not valid Unicode (a lone surrogate such as U+D800, in a key or a
value, at any depth) is refused with 400 before anything is stored.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bastion.errors import BastionError, InvalidInput
from bastion.identity import ApiKey, Principal
from bastion.identity.assertions import client_public_jwk
from bastion.identity.scalars import all_encodable
from bastion.policy.files import PolicyFiles
from bastion.serving.call import AdminOperation, AdminResult, Call
from bastion.serving.errors import error_response
from bastion.workspace import Workspace

MAX_ADMIN_BODY = 256 * 1024
Params = Mapping[str, str]  # the route's path parameters
Operation = Callable[[Params, bytes], AdminResult]  # blocking; runs once Cedar allowed it


def admin_routes(
    workspace: Workspace,
    *,
    run: Callable[[Call], Any],
    make_call: Callable[[Request, str, int], Call],
    headers: dict[str, str],
) -> list[Route]:
    """The routes; ``run`` sends a call through the admin pipeline."""

    def route(path: str, action: str, operation: Operation, method: str) -> Route:
        async def endpoint(request: Request) -> Response:
            call = make_call(request, action, MAX_ADMIN_BODY)
            params = dict(request.path_params)
            call.operation = AdminOperation(run=functools.partial(operation, params))
            call = await run(call)
            if call.error is not None or call.admin is None:
                return error_response(call.error or BastionError(), request_id=call.request_id)
            return JSONResponse(
                call.admin.body,
                status_code=call.admin.status,
                headers=headers | {"X-Request-ID": call.request_id},
            )

        return Route(path, endpoint, methods=[method])

    people, policies = _Principals(workspace), _Policies(PolicyFiles(workspace.paths.policies))
    manage_principals, manage_policies = "manage_principals", "manage_policies"
    return [
        route("/admin/principals", manage_principals, people.list, "GET"),
        route("/admin/principals", manage_principals, people.add, "POST"),
        route("/admin/principals/{principal}/disable", manage_principals, people.disable, "POST"),
        route("/admin/principals/{principal}/public-key", manage_principals, people.set_key, "PUT"),
        route("/admin/api-keys", manage_principals, people.api_keys, "GET"),
        route("/admin/api-keys", manage_principals, people.create_api_key, "POST"),
        route("/admin/api-keys/{key_id}", manage_principals, people.revoke_api_key, "DELETE"),
        route("/admin/policies", manage_policies, policies.list, "GET"),
        route("/admin/policies/{file}", manage_policies, policies.write, "PUT"),
        route("/admin/policies/{file}", manage_policies, policies.delete, "DELETE"),
    ]


class _Principals:
    def __init__(self, workspace: Workspace) -> None:
        self._principals = workspace.principals
        self._api_keys = workspace.api_keys

    def list(self, _: Params, __: bytes) -> AdminResult:
        found = self._principals.list()
        return AdminResult(f"listed {len(found)} principals",
                           {"principals": [_principal(p) for p in found]})  # fmt: skip

    def add(self, _: Params, body: bytes) -> AdminResult:
        given = _json_object(body)
        name, role = _text(given, "name"), _text(given, "role")
        attributes = given.get("attributes", {})
        if not isinstance(attributes, dict) or not all(
            isinstance(v, str) for v in attributes.values()
        ):
            raise InvalidInput("attributes is an object of strings.")
        key = given.get("public_jwk")
        if key is not None and not isinstance(key, dict):
            raise InvalidInput("public_jwk is a JWK object.")
        jwk = client_public_jwk(key) if key is not None else None
        created = self._principals.add(name, role=role, attributes=attributes, public_jwk=jwk)
        answer = _principal(created.principal)
        if secret := created.secret.get_secret_value():
            answer["client_secret"] = secret  # shown this once
        return AdminResult(f"added principal {name} with role {role}", answer, status=201)

    def disable(self, params: Params, _: bytes) -> AdminResult:
        name = params["principal"]
        principal = self._principals.disable(name)
        return AdminResult(f"disabled principal {name}", _principal(principal))

    def set_key(self, params: Params, body: bytes) -> AdminResult:
        name, jwk = params["principal"], client_public_jwk(_json_object(body))
        principal = self._principals.set_public_jwk(name, jwk)
        return AdminResult(f"set the public key of {name} ({jwk['alg']})", _principal(principal))

    def api_keys(self, _: Params, __: bytes) -> AdminResult:
        keys = self._api_keys.list()
        return AdminResult(f"listed {len(keys)} api keys",
                           {"api_keys": [_api_key(k) for k in keys]})  # fmt: skip

    def create_api_key(self, _: Params, body: bytes) -> AdminResult:
        given = _json_object(body)
        principal = _text(given, "principal")
        actions, models = _texts(given, "actions"), _texts(given, "models")
        days = given.get("days", 30)
        if type(days) is not int:
            raise InvalidInput("days is a whole number.")
        key, secret = self._api_keys.create(principal, actions=actions, models=models, days=days)
        answer = _api_key(key) | {"key": secret.get_secret_value()}  # shown this once
        return AdminResult(f"created api key {key.key_id} for {principal}", answer, 201)

    def revoke_api_key(self, params: Params, _: bytes) -> AdminResult:
        key_id = params["key_id"]
        self._api_keys.revoke(key_id)
        return AdminResult(f"revoked api key {key_id}", {"revoked": key_id})


class _Policies:
    def __init__(self, files: PolicyFiles) -> None:
        self._files = files

    def list(self, _: Params, __: bytes) -> AdminResult:
        files = self._files.read()
        return AdminResult(f"read {len(files)} policy files", {"files": files})

    def write(self, params: Params, body: bytes) -> AdminResult:
        name = params["file"]
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput("Send the policy file as UTF-8 Cedar text.") from None
        ids = self._files.write(name, text)
        return AdminResult(f"wrote policy file {name}", {"file": name, "policy_ids": ids})

    def delete(self, params: Params, _: bytes) -> AdminResult:
        name = params["file"]
        ids = self._files.delete(name)
        return AdminResult(f"deleted policy file {name}", {"file": name, "policy_ids": ids})


def _principal(principal: Principal) -> dict[str, Any]:
    return {
        "name": principal.name,
        "client_id": principal.client_id,
        "role": principal.role,
        "attributes": dict(principal.attributes),
        "disabled": principal.disabled,
    }


def _api_key(key: ApiKey) -> dict[str, Any]:
    return {
        "key_id": key.key_id, "client_id": key.client_id, "actions": list(key.actions),
        "models": list(key.models), "expires_at": key.expires_at, "revoked": key.revoked,
        "last_used_at": key.last_used_at,
    }  # fmt: skip


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        given = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidInput("The body must be a JSON object.") from None
    if not isinstance(given, dict):
        raise InvalidInput("The body must be a JSON object.")
    # Before any field is used: a lone surrogate (U+D800) would crash a store or listing.
    if not all_encodable(given):
        raise InvalidInput("The body must be valid Unicode (no lone surrogates).")
    return given


def _text(given: dict[str, Any], name: str) -> str:
    value = given.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{name} is a required string.")
    return value


def _texts(given: dict[str, Any], name: str) -> tuple[str, ...]:
    value = given.get(name)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"{name} is a non-empty list of strings.")
    return tuple(value)
