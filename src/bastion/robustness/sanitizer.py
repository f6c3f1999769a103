"""Evaluate a model behind the gateway's input sanitizer, honestly.

The sanitizer (:class:`bastion.registry.InputPolicy`: clip, quantize, median filter) runs in
the gateway's validate stage. Its rounding has a zero gradient almost everywhere, so plain
gradient attacks see a flat loss and report robustness that is not there. With
``straight_through=True`` (the default) :class:`Sanitized` passes gradients through the
sanitizer as if it were the identity (BPDA, Athalye et al. 2018), which is the attack a
real adversary would use; ``straight_through=False`` shows what a naive evaluation reports.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from bastion.registry import InputPolicy


class Sanitized(nn.Module):
    """``model`` with ``policy`` applied to its input, exactly as the gateway applies it."""

    def __init__(
        self, model: nn.Module, policy: InputPolicy, *, straight_through: bool = True
    ) -> None:
        super().__init__()
        self.model, self.policy, self.straight_through = model, policy, straight_through

    def forward(self, x: Tensor) -> Tensor:
        """Logits of the model on the sanitized input."""
        clean = torch.from_numpy(self.policy.apply(x.detach().numpy()))
        # BPDA: the forward pass sees the sanitized input, the backward pass the identity.
        # Without it, the true derivative of rounding (zero) stalls gradient attacks.
        seen = x + (clean - x).detach() if self.straight_through else clean + 0 * x
        logits: Tensor = self.model(seen)
        return logits
