"""HopSkipJump (Chen, Jordan & Wainwright 2020): a decision-based black-box L2 attack.

It sees only the predicted label. From a misclassified starting point it walks along the
decision boundary toward the input: bisect to the boundary, estimate the boundary's normal
from the labels of random probes around it, step along it with a geometric step search, and
bisect again. A row succeeds when it reaches the ε-ball; rows that do not keep their input.
All rows walk together, so each step is one batched call to the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from bastion.robustness.attacks.result import AttackResult
from bastion.robustness.targets import Predictor, QueryCounter, predict_labels
from bastion.robustness.threat import Threat, per_row, row_norms

_MAX_HALVINGS = 20  # a step shorter than 2^-20 of the distance gives up on this direction


@dataclass(frozen=True)
class HopSkipJump:
    """HopSkipJump, untargeted, L2, with at most ``iterations`` boundary steps per row."""

    threat: Threat
    iterations: int = 20
    initial_probes: int = 100
    max_probes: int = 1000
    init_trials: int = 100

    def __post_init__(self) -> None:
        if self.threat.norm != "l2":
            raise ValueError("this HopSkipJump is an L2 attack")
        if min(self.iterations, self.initial_probes, self.max_probes, self.init_trials) < 1:
            raise ValueError("iterations, probes and trials must be at least 1")

    def run(
        self, predictor: Predictor, x: Tensor, y: Tensor, *, generator: torch.Generator
    ) -> AttackResult:
        """Attack each row of ``x`` (true labels ``y``) through ``predictor``'s labels."""
        counter = QueryCounter(predictor)
        walk = _Walk(self, counter, x, y, generator)
        boundary, started = walk.start()
        eps = self.threat.epsilon
        for t in range(1, self.iterations + 1):
            distance = row_norms(boundary - x)
            active = started & (distance > eps)
            if not active.any():
                break
            rows = active.nonzero().squeeze(1)
            boundary[rows] = walk.step(rows, boundary[rows], distance[rows], t)
        success = started & (row_norms(boundary - x) <= eps)
        return AttackResult(torch.where(per_row(success, x), boundary, x), success, counter.queries)


class _Walk:
    """The rows' walk along the boundary."""

    def __init__(
        self,
        attack: HopSkipJump,
        predictor: Predictor,
        x: Tensor,
        y: Tensor,
        generator: torch.Generator,
    ) -> None:
        self._attack, self._predictor, self._x, self._y = attack, predictor, x, y
        self._generator = generator
        self._dims = x[0].numel()
        # The bisection tolerance the paper sets for L2: d^(-3/2).
        self._theta = self._dims**-1.5

    def start(self) -> tuple[Tensor, Tensor]:
        """Per row, a first point on the boundary, and whether one was found."""
        x, domain = self._x, self._attack.threat.domain
        start, found = x.clone(), self._is_adversarial(x, self._y)
        for _ in range(self._attack.init_trials):
            todo = (~found).nonzero().squeeze(1)
            if len(todo) == 0:
                break
            noise = domain.low + domain.width * torch.rand(x[todo].shape, generator=self._generator)
            hit = self._is_adversarial(noise, self._y[todo])
            start[todo[hit]], found[todo[hit]] = noise[hit], True
        rows = found.nonzero().squeeze(1)
        start[rows] = self._bisect(rows, start[rows])
        return start, found

    def step(self, rows: Tensor, boundary: Tensor, distance: Tensor, t: int) -> Tensor:
        """One HopSkipJump iteration for ``rows``: the new boundary points."""
        attack, domain = self._attack, self._attack.threat.domain
        probes = min(int(attack.initial_probes * math.sqrt(t)), attack.max_probes)
        if t > 1:
            radius = math.sqrt(self._dims) * self._theta * distance
        else:
            radius = torch.full_like(distance, 0.1 * domain.width)
        direction = self._normal(rows, boundary, probes, radius)
        step = distance / math.sqrt(t)
        moved, landed = boundary.clone(), torch.zeros(len(rows), dtype=torch.bool)
        for _ in range(_MAX_HALVINGS):
            todo = (~landed).nonzero().squeeze(1)
            if len(todo) == 0:
                break
            candidate = domain.clip(
                boundary[todo] + per_row(step[todo], boundary) * direction[todo]
            )
            hit = self._is_adversarial(candidate, self._y[rows[todo]])
            moved[todo[hit]], landed[todo[hit]] = candidate[hit], True
            step[todo[~hit]] /= 2
        done = landed.nonzero().squeeze(1)
        moved[done] = self._bisect(rows[done], moved[done])
        return moved

    def _is_adversarial(self, batch: Tensor, labels: Tensor) -> Tensor:
        return predict_labels(self._predictor, batch) != labels

    def _bisect(self, rows: Tensor, adversarial: Tensor) -> Tensor:
        """Per row, the point just past the boundary on the segment from x to ``adversarial``."""
        x = self._x[rows]
        low, high = torch.zeros(len(rows)), torch.ones(len(rows))
        while len(rows) and float((high - low).max()) > self._theta:
            middle = (low + high) / 2
            hit = self._is_adversarial(x + per_row(middle, x) * (adversarial - x), self._y[rows])
            high, low = torch.where(hit, middle, high), torch.where(hit, low, middle)
        return x + per_row(high, x) * (adversarial - x)

    def _normal(self, rows: Tensor, boundary: Tensor, probes: int, radius: Tensor) -> Tensor:
        """Per row, a Monte Carlo estimate of the boundary's normal, toward the adversarial side."""
        domain = self._attack.threat.domain
        count = len(rows)
        u = torch.randn((count, probes, self._dims), generator=self._generator)
        u = u / u.norm(dim=2, keepdim=True)
        center = boundary.reshape(count, 1, -1)
        probed = domain.clip(center + radius.view(-1, 1, 1) * u)
        u = (probed - center) / radius.view(-1, 1, 1)
        labels = self._y[rows].repeat_interleave(probes)
        votes = self._is_adversarial(probed.reshape(count * probes, *boundary.shape[1:]), labels)
        votes = votes.float().view(count, probes) * 2 - 1
        mean = votes.mean(dim=1, keepdim=True)
        weights = torch.where(mean.abs() < 1, votes - mean, votes)
        gradient: Tensor = (weights[:, :, None] * u).mean(dim=1)
        gradient = gradient / gradient.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return gradient.view_as(boundary)
