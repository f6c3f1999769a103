"""Cedar policies: role- and attribute-based access control, denied by default.

>>> from bastion.identity import Principal
>>> from bastion.policy import AccessRequest, CedarAuthorizer, BASELINE_POLICY
>>> authorizer = CedarAuthorizer(policies=BASELINE_POLICY.read_text())
>>> analyst = Principal(client_id="bcl_1", name="ana", role="analyst")
>>> authorizer.decide(AccessRequest(analyst, "infer", "digits", {"ip": "127.0.0.1", "time": 0}))
Decision(allowed=True, policy_ids=('analyst-use-models',), errors=())
"""

from bastion.policy.authorizer import (
    BASELINE_POLICY,
    GATEWAY,
    AccessRequest,
    Action,
    Authorizer,
    CedarAuthorizer,
    Decision,
)
from bastion.policy.guard import Guard
from bastion.policy.labels import (
    CLASSIFICATIONS,
    RISK_TIERS,
    STAGES,
    UNLABELLED,
    UNREGISTERED,
    Classification,
    ModelLabels,
    RiskTier,
    Stage,
)
from bastion.policy.reloading import ReloadingAuthorizer

__all__ = [
    "BASELINE_POLICY",
    "CLASSIFICATIONS",
    "GATEWAY",
    "RISK_TIERS",
    "STAGES",
    "UNLABELLED",
    "UNREGISTERED",
    "AccessRequest",
    "Action",
    "Authorizer",
    "CedarAuthorizer",
    "Classification",
    "Decision",
    "Guard",
    "ModelLabels",
    "ReloadingAuthorizer",
    "RiskTier",
    "Stage",
]
