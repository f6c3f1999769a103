"""Labels policies decide on: a model's risk tier, classification and stage; clearances.

Classifications are ordered, so policies compare levels (``classification_level``,
``clearance_level``: public 0, internal 1, confidential 2, restricted 3). A principal's
clearance is its ``clearance`` attribute (``bastion principal add --attr clearance=…``);
without one it is ``internal``; an unknown value counts as ``public`` (fail closed).

>>> ModelLabels(risk_tier="high", classification="confidential").classification_level
2
>>> clearance_level({"clearance": "restricted"}), clearance_level({})
(3, 1)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, get_args

RiskTier = Literal["unassessed", "low", "medium", "high"]
# staging on registration, production once promoted, archived when a newer one is promoted.
Stage = Literal["staging", "production", "archived"]
STAGES: tuple[Stage, ...] = get_args(Stage)
Classification = Literal["public", "internal", "confidential", "restricted"]
RISK_TIERS: tuple[RiskTier, ...] = get_args(RiskTier)
CLASSIFICATIONS: tuple[Classification, ...] = get_args(Classification)
DEFAULT_CLEARANCE: Classification = "internal"


@dataclass(frozen=True)
class ModelLabels:
    """What a model version is labelled with at registration."""

    risk_tier: RiskTier = "unassessed"
    classification: Classification = "internal"
    stage: Stage = "staging"  # kept by the registry, not by the signed manifest

    def __post_init__(self) -> None:
        if self.risk_tier not in RISK_TIERS:
            raise ValueError(f"risk tier must be one of {', '.join(RISK_TIERS)}")
        if self.classification not in CLASSIFICATIONS:
            raise ValueError(f"classification must be one of {', '.join(CLASSIFICATIONS)}")
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {', '.join(STAGES)}")

    @property
    def classification_level(self) -> int:
        """0 (public) to 3 (restricted)."""
        return CLASSIFICATIONS.index(self.classification)


# A version registered without labels.
UNLABELLED = ModelLabels()

# What policies see for a model that is not registered: the most restrictive labels, so
# that a principal who may not use such a model cannot tell it from one that does not exist.
UNREGISTERED = ModelLabels(risk_tier="unassessed", classification="restricted")


def clearance_level(attributes: Mapping[str, str]) -> int:
    """A principal's clearance as a level (see the module docstring)."""
    value = attributes.get("clearance", DEFAULT_CLEARANCE)
    return CLASSIFICATIONS.index(value) if value in CLASSIFICATIONS else 0
