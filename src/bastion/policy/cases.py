"""Policy test cases: requests with the decision they must get, kept in a TOML file.

```toml
[[case]]
name = "analysts may infer"
principal = { role = "analyst", attributes = { team = "fraud" } }
action = "infer"
resource = "digits"    # or a table: { name = "fraud", risk_tier = "high",
                       #   classification = "restricted", stage = "production" }
context = { ip = "10.0.0.7", time = 1800000000 }
expect = "allow"
policies = ["analyst-use-models"]   # optional: the deciding policy ids
```
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from bastion.errors import InvalidInput
from bastion.identity import Principal
from bastion.policy.authorizer import AccessRequest, Action, Authorizer, Decision
from bastion.policy.labels import UNLABELLED, ModelLabels


@dataclass(frozen=True)
class PolicyCase:
    """One request and the outcome it must have."""

    name: str
    request: AccessRequest
    expect_allow: bool
    policies: tuple[str, ...] | None


@dataclass(frozen=True)
class CaseResult:
    """A case and what the policies decided."""

    case: PolicyCase
    decision: Decision

    @property
    def passed(self) -> bool:
        """Whether the decision (and, when given, the deciding policies) matched."""
        if self.decision.allowed != self.case.expect_allow:
            return False
        wanted = self.case.policies
        return wanted is None or sorted(wanted) == sorted(self.decision.policy_ids)


def load_cases(path: Path) -> list[PolicyCase]:
    """Read the ``[[case]]`` tables of a TOML file.

    Raises:
        InvalidInput: the file is not valid TOML or a case is malformed (the message
            names the case).
    """
    try:
        document = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{path} is not valid TOML: {exc}") from None
    cases = document.get("case")
    if not isinstance(cases, list) or not cases:
        raise InvalidInput(f"{path} has no [[case]] tables.")
    return [_case(raw, index) for index, raw in enumerate(cases, start=1)]


def run_cases(authorizer: Authorizer, cases: list[PolicyCase]) -> list[CaseResult]:
    """Decide every case."""
    return [CaseResult(case, authorizer.decide(case.request)) for case in cases]


def _case(raw: dict[str, Any], index: int) -> PolicyCase:
    name = str(raw.get("name", f"case {index}"))
    try:
        who = raw["principal"]
        action = raw["action"]
        expect = raw["expect"]
        if action not in get_args(Action) or expect not in ("allow", "deny"):
            raise ValueError
        principal = Principal(
            client_id=str(who.get("client_id", f"bcl_case{index}")),
            name=str(who.get("name", f"case{index}")),
            role=str(who["role"]),
            attributes={str(k): str(v) for k, v in who.get("attributes", {}).items()},
        )
        context = raw.get("context", {"ip": "127.0.0.1", "time": 0})
        resource, labels = _resource(raw["resource"])
        request = AccessRequest(principal, action, resource, dict(context), labels)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise InvalidInput(
            f"Case {name!r} needs principal.role, action (one of {', '.join(get_args(Action))}), "
            "resource (a name, or a table with name, risk_tier and classification) and expect "
            "(allow or deny)."
        ) from None
    policies = raw.get("policies")
    return PolicyCase(
        name, request, expect == "allow", tuple(policies) if policies is not None else None
    )


def _resource(raw: Any) -> tuple[str, ModelLabels]:
    """A resource given by name, or as a table with the model's labels."""
    if isinstance(raw, str):
        return raw, UNLABELLED
    return str(raw["name"]), ModelLabels(
        risk_tier=raw.get("risk_tier", UNLABELLED.risk_tier),
        classification=raw.get("classification", UNLABELLED.classification),
        stage=raw.get("stage", UNLABELLED.stage),
    )
