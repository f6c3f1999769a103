"""Re-identification: turning tokens and FPE ciphertexts back into personal data.

It is the one privacy operation that undoes protection, so it is a Cedar action
(``reidentify`` on a ``Dataset``; denied unless a policy permits it) and every attempt,
allowed or not, is an audit entry that names the principal, dataset, field, method and
how many values, never the values themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Literal

from bastion.audit import AuditEvent, AuditLog
from bastion.errors import Forbidden
from bastion.identity import Principal
from bastion.policy import AccessRequest, Authorizer
from bastion.privacy.operators import FormatPreserving
from bastion.privacy.vault import TokenVault, check_token
from bastion.types import Clock

Method = Literal["token", "fpe"]


class Reidentifier:
    """Reveals masked values for principals the policies allow, and audits every attempt."""

    def __init__(
        self,
        *,
        authorizer: Authorizer,
        audit: AuditLog,
        clock: Clock,
        vault: Callable[[], TokenVault],
        fpe_key: Callable[[], bytes],
    ) -> None:
        self._authorizer = authorizer
        self._audit = audit
        self._clock = clock
        self._vault = vault
        self._fpe_key = fpe_key

    def reveal(
        self,
        values: Sequence[str],
        *,
        principal: Principal,
        dataset: str,
        field: str,
        method: Method,
        context: Mapping[str, str | int],
        alphabet: str = "digits",
    ) -> list[str]:
        """The originals of ``values`` (vault tokens, or FPE output of ``field``).

        ``alphabet`` is the FPE alphabet the masking policy used (``fpe`` only).

        Raises:
            Forbidden: the policies do not let ``principal`` re-identify ``dataset``.
            InvalidInput: a value is not a token (``token``) or not FPE output (``fpe``).
            NotFound: a token is not in the vault for ``field``.
        """
        decision = self._authorizer.decide(
            AccessRequest(principal, "reidentify", dataset, {**context, "time": int(self._clock())})
        )
        allowed = decision.allowed and not principal.disabled
        self._audit.append(
            AuditEvent(
                event="privacy_reidentify" if allowed else "authz_fail",
                time=self._clock(),
                request_id="",
                principal=principal.client_id,
                auth_method="local",
                source=str(context.get("ip", "")),
                route="",
                action="reidentify",
                resource=f"{dataset}/{field}",
                decision="allow" if allowed else "deny",
                policy_ids=decision.policy_ids,
                status=0,
                latency_ms=0.0,
                reason=f"{len(values)} value(s) by {method}",
            )
        )
        if not allowed:
            raise Forbidden()
        if method == "token":
            return self._vault().detokenize([check_token(v) for v in values], field=field)
        fpe = FormatPreserving(self._fpe_key(), alphabet=alphabet)
        return [fpe.reveal(value, field=field) for value in values]
