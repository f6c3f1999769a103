"""What an audit entry says, and the canonical bytes that are stored and hashed."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields

from bastion.errors import IntegrityError


@dataclass(frozen=True)
class AuditEvent:
    """What happened, in OWASP logging vocabulary. Digests and sizes, never payloads."""

    event: str  # authn_token_created, authn_login_fail, authz_fail, model_infer, …
    time: float
    request_id: str
    principal: str  # client id, or "-" when authentication failed
    auth_method: str
    source: str  # client address
    route: str  # route template, never the raw path
    action: str
    resource: str
    decision: str
    policy_ids: tuple[str, ...]
    status: int
    latency_ms: float
    input_sha256: str = ""
    input_bytes: int = 0
    output_sha256: str = ""
    output_bytes: int = 0
    reason: str = ""

    def to_entry(self) -> bytes:
        """The canonical JSON bytes that are stored and hashed as the leaf."""
        values = {name: getattr(self, name) for name in _EVENT_FIELDS}
        values["policy_ids"] = list(self.policy_ids)
        return canonical(values).encode()

    @classmethod
    def internal(
        cls,
        *,
        event: str,
        time: float,
        action: str,
        resource: str,
        reason: str,
        principal: str = "-",
        policy_ids: tuple[str, ...] = (),
    ) -> AuditEvent:
        """An event that no request caused (an alert, a policy change)."""
        return cls(
            event=event,
            time=time,
            request_id="",
            principal=principal,
            auth_method="",
            source="",
            route="",
            action=action,
            resource=resource,
            decision="none",
            policy_ids=policy_ids,
            status=0,
            latency_ms=0.0,
            reason=reason[:200],
        )

    @classmethod
    def from_entry(cls, entry: bytes | str) -> AuditEvent:
        """Inverse of :meth:`to_entry`.

        Raises:
            IntegrityError: the bytes are not an entry of this format.
        """
        try:
            values = json.loads(entry)
            return cls(**values | {"policy_ids": tuple(values["policy_ids"])})
        except (ValueError, TypeError, KeyError):
            raise IntegrityError("An audit entry is not in the entry format.") from None


@dataclass(frozen=True)
class AuditEntry:
    """An event at its place in the log, with its leaf hash (derived from the event's bytes)."""

    seq: int
    event: AuditEvent
    leaf_hash: bytes


_EVENT_FIELDS = tuple(f.name for f in fields(AuditEvent))
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def canonical(value: object) -> str:
    """``value`` as canonical JSON: keys sorted, no spaces, ASCII escapes."""
    return _CANONICAL.encode(value)
