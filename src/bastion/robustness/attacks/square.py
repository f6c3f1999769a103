"""Square attack (Andriushchenko et al. 2020): a score-based black-box L∞ attack.

It needs only class scores, no gradients: each round it sets one random square window of
the perturbation to ±ε and keeps the change when the margin between the true class and the
best other class shrinks. Images are attacked as ``shape`` (height, width); other inputs as
one row, with windows of consecutive features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from bastion.robustness.attacks.result import AttackResult, attack_loss
from bastion.robustness.targets import Predictor, QueryCounter
from bastion.robustness.threat import Threat

# The fraction of the input a window covers is halved at these points of the query budget
# (the schedule of the reference implementation, scaled to the budget).
_HALVINGS = (0.001, 0.005, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8)


@dataclass(frozen=True)
class SquareAttack:
    """Square attack in L∞ with a budget of ``queries`` model calls per row."""

    threat: Threat
    queries: int = 1000
    p_init: float = 0.1
    shape: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.threat.norm != "linf":
            raise ValueError("the square attack is an L-infinity attack")
        if self.queries < 1 or not 0 < self.p_init <= 1:
            raise ValueError("queries must be at least 1 and p_init in (0, 1]")

    def run(
        self, predictor: Predictor, x: Tensor, y: Tensor, *, generator: torch.Generator
    ) -> AttackResult:
        """Attack each row of ``x`` (true labels ``y``) through ``predictor``."""
        counter = QueryCounter(predictor)
        height, width = self.shape or (1, x[0].numel())
        eps = self.threat.epsilon
        stripes = torch.randint(0, 2, (len(x), 1, width), generator=generator).float() * 2 - 1
        start = (eps * stripes).expand(-1, height, -1).reshape(x.shape)
        best = self.threat.project(x + start, x)
        margin = _margin(counter(best), y)
        for i in range(1, self.queries):
            active = (margin >= 0).nonzero().squeeze(1)
            if len(active) == 0:
                break
            tall, wide = self._window(i, height, width)
            candidate = best[active].reshape(-1, height, width).clone()
            delta = candidate - x[active].reshape(-1, height, width)
            rows = len(active)
            top = torch.randint(0, height - tall + 1, (rows, 1, 1), generator=generator)
            left = torch.randint(0, width - wide + 1, (rows, 1, 1), generator=generator)
            ys = torch.arange(height)[None, :, None]
            xs = torch.arange(width)[None, None, :]
            window = (ys >= top) & (ys < top + tall) & (xs >= left) & (xs < left + wide)
            signs = torch.randint(0, 2, (rows, 1, 1), generator=generator).float() * 2 - 1
            delta = torch.where(window, eps * signs, delta)
            candidate = self.threat.project(
                x[active] + delta.reshape(rows, -1).view_as(x[active]), x[active]
            )
            new_margin = _margin(counter(candidate), y[active])
            better = new_margin < margin[active]
            best[active[better]] = candidate[better]
            margin[active[better]] = new_margin[better]
        success = margin < 0
        return AttackResult(best, success, counter.queries)

    def _window(self, i: int, height: int, width: int) -> tuple[int, int]:
        """The window's height and width at round ``i``."""
        p = self.p_init / 2 ** sum(i > h * self.queries for h in _HALVINGS)
        if height == 1:
            return 1, max(1, min(width, round(p * width)))
        side = max(1, min(height, width, round(math.sqrt(p * height * width))))
        return side, side


def _margin(scores: Tensor, y: Tensor) -> Tensor:
    """True class score minus the best other; below zero the row is fooled."""
    return -attack_loss("margin", scores, y)
