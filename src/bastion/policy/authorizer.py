"""Cedar authorization: deny by default, decisions name the policies that made them."""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal, Protocol

import cedarpy

from bastion.errors import ConfigError
from bastion.identity import Principal
from bastion.policy.labels import UNLABELLED, ModelLabels, clearance_level

Action = Literal[
    "infer",
    "describe",
    "register",
    "promote",
    "read_metrics",
    "read_audit",
    "reidentify",
    "query_data",
    "manage_principals",
    "manage_policies",
]
BASELINE_POLICY = files("bastion.policy").joinpath("baseline.cedar")
SCHEMA = files("bastion.policy").joinpath("schema.cedarschema")
GATEWAY = "gateway"
_ENTITY_SETS = 4096


@dataclass(frozen=True)
class AccessRequest:
    """Who wants to do what to which resource, in which context."""

    principal: Principal
    action: Action
    resource: str  # a model or dataset name, or ``gateway`` for gateway-wide actions
    # "ip", "time" (Unix s), and optionally "certificate" and "purpose"
    context: Mapping[str, str | int] = field(default_factory=dict)
    labels: ModelLabels = UNLABELLED  # the model's; ignored for gateway actions


@dataclass(frozen=True)
class Decision:
    """The outcome, with the ids of the policies that determined it."""

    allowed: bool
    policy_ids: tuple[str, ...]
    errors: tuple[str, ...] = ()


class Authorizer(Protocol):
    """Anything that decides access requests."""

    version: int  # changes whenever the policies do (decision caches key on it)

    def decide(self, request: AccessRequest) -> Decision:
        """Decide ``request``; deny unless a policy permits and none forbids."""
        ...


class CedarAuthorizer:
    """Evaluates Cedar policies validated against Bastion's schema."""

    def __init__(self, *, policies: str) -> None:
        self._schema = _SCHEMA
        validation = cedarpy.validate_policies(policies, self._schema)
        if not validation.validation_passed:
            problems = "; ".join(str(e) for e in validation.errors)
            raise ConfigError(f"The Cedar policies do not match Bastion's schema: {problems}")
        parsed = json.loads(cedarpy.policies_to_json_str(policies))["staticPolicies"]
        if not parsed:
            raise ConfigError("There are no Cedar policies; everything would be denied.")
        self._ids = {
            key: policy.get("annotations", {}).get("id", key) for key, policy in parsed.items()
        }
        self.policy_ids = tuple(self._ids.values())
        self._policies = cedarpy.PolicySet.from_str(policies)
        self.version = 0

    @classmethod
    def from_folder(cls, folder: Path) -> CedarAuthorizer:
        """Load every ``*.cedar`` file in ``folder``.

        Raises:
            ConfigError: no policy files, or a policy that does not validate.
        """
        paths = sorted(folder.glob("*.cedar"))
        if not paths:
            raise ConfigError(f"No *.cedar policy files in {folder}; run `bastion init`.")
        return cls(policies="\n".join(path.read_text() for path in paths))

    def decide(self, request: AccessRequest) -> Decision:
        """Evaluate ``request`` against the policies."""
        principal = request.principal
        kind = _RESOURCE_KINDS.get(request.action, "Model")
        resource = _uid(kind, request.resource)
        who = (principal.client_id, principal.name, principal.role,
               tuple(sorted(principal.attributes.items())))  # fmt: skip
        labels = request.labels if kind == "Model" else UNLABELLED
        entities = _entities(who, kind, request.resource, labels)
        result = cedarpy.is_authorized(
            {
                "principal": _uid("Principal", principal.client_id),
                "action": _uid("Action", request.action),
                "resource": resource,
                "context": cedar_context(request.context),
            },
            self._policies,
            entities,
            self._schema,
        )
        return Decision(
            allowed=bool(result.allowed),
            policy_ids=tuple(self._ids.get(r, r) for r in result.diagnostics.reasons),
            errors=tuple(str(e) for e in result.diagnostics.errors),
        )


_SCHEMA = cedarpy.Schema.from_str(SCHEMA.read_text())
_RESOURCE_KINDS = {
    "read_metrics": "Gateway",
    "read_audit": "Gateway",
    "manage_principals": "Gateway",
    "manage_policies": "Gateway",
    "reidentify": "Dataset",
    "query_data": "Dataset",
}


@functools.lru_cache(maxsize=_ENTITY_SETS)
def _entities(
    who: tuple[str, str, str, tuple[tuple[str, str], ...]],
    kind: str,
    resource: str,
    labels: ModelLabels,
) -> cedarpy.Entities:
    """The parsed entities of one principal and one resource (parsing is half of Cedar's cost).

    ``who`` is the principal's client id, name, role and sorted attributes.
    """
    client_id, name, role, attributes = who
    entities = [
        {
            "uid": _uid("Principal", client_id),
            "attrs": {
                "name": name,
                "role": role,
                "clearance_level": clearance_level(dict(attributes)),
            },
            "parents": [_uid("Role", role)],
            "tags": dict(attributes),
        },
        {"uid": _uid("Role", role), "attrs": {}, "parents": []},
        {
            "uid": _uid(kind, resource),
            "attrs": _resource_attributes(kind, resource, labels),
            "parents": [],
        },
    ]
    return cedarpy.Entities.from_json_str(json.dumps(entities), _SCHEMA)


def _resource_attributes(kind: str, resource: str, labels: ModelLabels) -> dict[str, Any]:
    if kind == "Gateway":
        return {}
    if kind == "Dataset":
        return {"name": resource}
    return {
        "name": resource,
        "risk_tier": labels.risk_tier,
        "classification": labels.classification,
        "classification_level": labels.classification_level,
        "stage": labels.stage,
    }


def cedar_context(given: Mapping[str, str | int]) -> str:
    """The Cedar context of a request from its client address and time, as JSON.

    An address Cedar cannot parse makes the evaluation fail, which denies (fail closed).
    """
    moment = dt.datetime.fromtimestamp(int(given.get("time", 0)), dt.UTC)
    context = {
        "ip": {"__extn": {"fn": "ip", "arg": str(given.get("ip", ""))}},
        "time": int(moment.timestamp()),
        "hour": moment.hour,
        "weekday": moment.weekday(),
        "certificate": str(given.get("certificate", "")),
        "purpose": str(given.get("purpose", "")),
    }
    return json.dumps(context)  # as text, cedarpy passes it on as it is


def _uid(kind: str, entity_id: str) -> dict[str, str]:
    return {"type": f"Bastion::{kind}", "id": entity_id}
