"""What every attack returns, and the losses the gradient attacks ascend."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch
import torch.nn.functional as F  # noqa: N812 - the usual name
from torch import Tensor

from bastion.robustness.threat import Threat

Loss = Literal["ce", "margin", "dlr"]
LOSSES: tuple[Loss, ...] = ("ce", "margin", "dlr")


@dataclass(frozen=True)
class AttackResult:
    """Adversarial inputs, one per input row, and which of them fool the model.

    ``success`` is true where the model's label differs from the true one (including rows it
    already got wrong); ``queries`` counts the rows a black-box attack sent to the model.
    """

    x_adv: Tensor
    success: Tensor
    queries: int = 0

    @property
    def success_rate(self) -> float:
        """The fraction of rows that fool the model."""
        return float(self.success.float().mean()) if self.success.numel() else 0.0


class Attack(Protocol):
    """What every attack offers: its threat model and a batched ``run``."""

    @property
    def threat(self) -> Threat:
        """The ε-ball and domain the attack stays in."""
        ...

    def run(self, target: Any, x: Tensor, y: Tensor, *, generator: torch.Generator) -> AttackResult:
        """Attack each row of ``x`` (true labels ``y``); ``target`` is a model or a predictor."""
        ...


def attack_loss(kind: Loss, logits: Tensor, y: Tensor) -> Tensor:
    """Per-row loss that grows as the model moves away from the true label.

    ``ce`` is cross-entropy; ``margin`` is Carlini & Wagner's logit margin (best other logit
    minus the true one), which keeps its gradient when softmax saturates (distillation);
    ``dlr`` is Croce & Hein's difference of logits ratio, invariant to logit scale.
    """
    if kind == "ce":
        return F.cross_entropy(logits, y, reduction="none")
    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), -torch.inf).amax(dim=1)
    if kind == "margin":
        return other - true
    if kind == "dlr":
        top = logits.sort(dim=1, descending=True).values
        return (other - true) / (top[:, 0] - top[:, 2] + 1e-12)
    raise ValueError(f"loss must be one of {', '.join(LOSSES)}")
