"""Carlini & Wagner's L2 attack (2017): the smallest perturbation that crosses a logit margin.

It optimizes in tanh space, so every candidate lies inside the domain without clipping, and
searches the trade-off constant by bisection per row. Because it works on logits, not on
softmax, it is the attack that breaks defensive distillation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from bastion.robustness.attacks.result import AttackResult, attack_loss
from bastion.robustness.threat import Threat

_EDGE = 1 - 1e-6  # atanh(±1) is infinite; inputs on the domain's edge map just inside it


@dataclass(frozen=True)
class CarliniWagnerL2:
    """C&W L2 with a budget: a row succeeds when its smallest adversarial is within ε.

    Use ``Threat("l2", math.inf)`` for the unbounded, minimal-perturbation form.
    """

    threat: Threat
    steps: int = 100
    search_steps: int = 6
    initial_const: float = 1.0
    learning_rate: float = 0.05
    confidence: float = 0.0

    def __post_init__(self) -> None:
        if self.threat.norm != "l2":
            raise ValueError("Carlini & Wagner's attack is an L2 attack")

    def run(
        self, model: nn.Module, x: Tensor, y: Tensor, *, generator: torch.Generator | None = None
    ) -> AttackResult:
        """Attack each row of ``x`` (true labels ``y``); the search is deterministic."""
        domain, rows = self.threat.domain, len(x)
        w0 = torch.atanh(((x - domain.low) / domain.width * 2 - 1).clamp(-_EDGE, _EDGE))
        const = torch.full((rows,), self.initial_const)
        lower, upper = torch.zeros(rows), torch.full((rows,), math.inf)
        best, best_l2 = x.clone(), torch.full((rows,), math.inf)
        with torch.no_grad():
            wrong = model(x).argmax(dim=1) != y
        best_l2[wrong] = 0.0
        for _ in range(self.search_steps):
            found = self._descend(model, x, y, w0=w0, const=const, best=best, best_l2=best_l2)
            upper = torch.where(found, torch.minimum(upper, const), upper)
            lower = torch.where(found, lower, torch.maximum(lower, const))
            const = torch.where(upper.isinf(), const * 10, (lower + upper) / 2)
        success = best_l2 <= self.threat.epsilon**2
        return AttackResult(torch.where(success[:, None], best, x), success)

    def _descend(
        self,
        model: nn.Module,
        x: Tensor,
        y: Tensor,
        *,
        w0: Tensor,
        const: Tensor,
        best: Tensor,
        best_l2: Tensor,
    ) -> Tensor:
        """Minimize ‖δ‖² + c·margin at one constant; update ``best``; return rows that crossed."""
        domain = self.threat.domain
        w = w0.clone().requires_grad_(True)
        optimizer = torch.optim.Adam([w], lr=self.learning_rate)
        found = torch.zeros(len(x), dtype=torch.bool)
        for _ in range(self.steps):
            x_adv = domain.low + domain.width * (torch.tanh(w) + 1) / 2
            logits = model(x_adv)
            l2 = (x_adv - x).flatten(1).pow(2).sum(dim=1)
            margin = -attack_loss("margin", logits, y)  # true logit minus the best other
            objective = l2 + const * (margin + self.confidence).clamp_min(0)
            optimizer.zero_grad()
            objective.sum().backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            with torch.no_grad():
                crossed = (logits.argmax(dim=1) != y) & (margin < -self.confidence + 1e-9)
                closer = crossed & (l2 < best_l2)
                best[closer] = x_adv.detach()[closer]
                best_l2[closer] = l2.detach()[closer]
                found |= crossed
        return found
