"""Re-identification: turning tokens and FPE ciphertexts back into personal data.

It is the one privacy operation that undoes protection, so it is a Cedar action
(``reidentify`` on a ``Dataset``; denied unless a policy permits it) and every attempt,
allowed or not, is an audit entry that names the principal, dataset, field, method and
how many values, never the values themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Literal

from bastion.identity import Principal
from bastion.policy import Guard
from bastion.privacy.operators import FormatPreserving
from bastion.privacy.vault import TokenVault, check_token

Method = Literal["token", "fpe"]


class Reidentifier:
    """Reveals masked values for principals the policies allow, and audits every attempt."""

    def __init__(
        self,
        *,
        guard: Guard,
        vault: Callable[[], TokenVault],
        fpe_key: Callable[[], bytes],
    ) -> None:
        self._guard = guard
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

        def work() -> list[str]:
            if method == "token":
                return self._vault().detokenize([check_token(v) for v in values], field=field)
            fpe = FormatPreserving(self._fpe_key(), alphabet=alphabet)
            return [fpe.reveal(value, field=field) for value in values]

        return self._guard.run(
            work,
            principal=principal,
            action="reidentify",
            resource=dataset,
            audited_as=f"{dataset}/{field}",
            reason=f"{len(values)} value(s) by {method}",
            context=context,
        )
