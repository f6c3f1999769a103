"""What a model may reveal: the output policy the harden stage enforces, per caller role.

>>> policy = OutputPolicy(top_k=3, by_role=(("partner", OutputPolicy(outputs=("label",))),))
>>> policy.for_role("partner").outputs, policy.for_role("analyst").top_k
(('label',), 3)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_ROLE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")  # as principals' roles are named


@dataclass(frozen=True)
class OutputPolicy:
    """Limits on model outputs, set at registration.

    ``top_k`` keeps the k largest scores per row of floating-point outputs and zeroes
    the rest; ``round_digits`` rounds floating-point outputs; ``outputs`` lists the
    only outputs clients may receive (for example just the label). The default
    passes everything through.

    ``by_role`` gives callers of a role their own limits: a caller whose role is listed gets
    that policy *instead of* these defaults (it may be stricter or looser); every other
    caller gets the defaults.
    """

    top_k: int | None = None
    round_digits: int | None = None
    outputs: tuple[str, ...] | None = None
    by_role: tuple[tuple[str, OutputPolicy], ...] = ()

    def __post_init__(self) -> None:
        if self.top_k is not None and self.top_k < 1:
            raise ValueError("top_k must be at least 1")
        if self.round_digits is not None and not 0 <= self.round_digits <= 8:  # noqa: PLR2004
            raise ValueError("round_digits must be between 0 and 8")
        roles = [role for role, _ in self.by_role]
        if bad := [role for role in roles if not _ROLE.fullmatch(role)]:
            raise ValueError(f"{bad[0]!r} is not a role name (lower-case letters, digits, _ -)")
        if len(set(roles)) != len(roles):
            raise ValueError("a role is given more than one output policy")
        if any(policy.by_role for _, policy in self.by_role):
            raise ValueError("a role's output policy cannot name roles of its own")
        object.__setattr__(self, "by_role", tuple(sorted(self.by_role, key=lambda p: p[0])))

    def for_role(self, role: str) -> OutputPolicy:
        """The limits for a caller of ``role`` (``by_role`` of the result is not consulted)."""
        for name, policy in self.by_role:
            if name == role:
                return policy
        return self

    def to_json(self) -> dict[str, Any]:
        """A JSON-friendly form, as stored in the registry (``roles`` only when there are)."""
        value: dict[str, Any] = {
            "top_k": self.top_k,
            "round_digits": self.round_digits,
            "outputs": list(self.outputs) if self.outputs is not None else None,
        }
        if self.by_role:
            value["roles"] = {role: policy.to_json() for role, policy in self.by_role}
        return value

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> OutputPolicy:
        """Inverse of :meth:`to_json`."""
        outputs = value.get("outputs")
        roles = value.get("roles") or {}
        return cls(
            top_k=value.get("top_k"),
            round_digits=value.get("round_digits"),
            outputs=tuple(outputs) if outputs is not None else None,
            by_role=tuple((role, cls.from_json(policy)) for role, policy in roles.items()),
        )
