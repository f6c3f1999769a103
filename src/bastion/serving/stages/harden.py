"""Stage 6: apply the model's output policy for the caller's role (withhold, top-k, rounding)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from bastion.registry import OutputPolicy
from bastion.serving.call import Call


class Harden:
    """Limits what the outputs reveal, as the model's output policy says for the caller's role."""

    async def __call__(self, call: Call) -> None:
        """Rewrite ``call.outputs`` under the policy."""
        if call.model is None:
            call.outputs = {}
            return
        policy = call.model.output_policy.for_role(call.role)
        call.outputs = {
            name: harden(array, policy)
            for name, array in call.outputs.items()
            if policy.outputs is None or name in policy.outputs
        }


def harden(array: NDArray[Any], policy: OutputPolicy) -> NDArray[Any]:
    """One output array under ``policy``; integer outputs (labels) pass unchanged."""
    if array.dtype.kind != "f":
        return array
    if policy.top_k is not None and array.ndim >= 1 and array.shape[-1] > policy.top_k:
        # Keep the k largest scores of each row; the others become 0.
        largest = np.argsort(-array, axis=-1, kind="stable")[..., : policy.top_k]
        keep = np.zeros(array.shape, dtype=bool)
        np.put_along_axis(keep, largest, values=True, axis=-1)
        array = np.where(keep, array, 0).astype(array.dtype)
    if policy.round_digits is not None:
        array = np.round(array, policy.round_digits)
    return array
