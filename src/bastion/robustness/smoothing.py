"""Randomized smoothing (Cohen, Rosenfeld & Kolter 2019): a certified L2 radius per input.

The smoothed classifier answers the class the base model picks most often under Gaussian
noise of scale σ. ``certify`` picks that class from ``n0`` noisy copies, counts it in ``n``
fresh ones, bounds its probability from below with a one-sided Clopper-Pearson interval
at level 1 - α, and certifies radius σ·Φ⁻¹(p̲) when p̲ > 1/2; otherwise it abstains (-1).
No L2 perturbation shorter than the radius can change the smoothed answer, with
probability at least 1 - α over the sampling.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

ABSTAIN = -1


@dataclass(frozen=True)
class Certificate:
    """Per input: the smoothed label (-1 to abstain) and the certified L2 radius."""

    labels: Tensor
    radii: Tensor

    def accuracy_at(self, radius: float, y: Tensor) -> float:
        """Certified accuracy: the fraction labelled correctly with at least this radius."""
        return float(((self.labels == y) & (self.radii >= radius)).float().mean())


@dataclass(frozen=True)
class SmoothedClassifier:
    """A base model smoothed with Gaussian noise of standard deviation ``sigma``."""

    model: nn.Module
    sigma: float
    classes: int

    def __post_init__(self) -> None:
        if self.sigma <= 0:
            raise ValueError("sigma must be positive")

    def certify(
        self,
        x: Tensor,
        *,
        n0: int = 100,
        n: int = 1000,
        alpha: float = 0.001,
        generator: torch.Generator,
    ) -> Certificate:
        """Certify each row of ``x``."""
        if not 0 < alpha < 1 or n0 < 1 or n < 1:
            raise ValueError("alpha must be in (0, 1) and the sample sizes at least 1")
        from scipy import stats  # noqa: PLC0415 - a second of import time, paid on use

        labels, radii = [], []
        for row in x:
            guess = int(self._counts(row, n0, generator).argmax())
            hits = int(self._counts(row, n, generator)[guess])
            lower = float(stats.beta.ppf(alpha, hits, n - hits + 1)) if hits else 0.0
            if lower > 0.5:  # noqa: PLR2004 - the majority threshold
                labels.append(guess)
                radii.append(self.sigma * float(stats.norm.ppf(lower)))
            else:
                labels.append(ABSTAIN)
                radii.append(0.0)
        return Certificate(torch.tensor(labels), torch.tensor(radii))

    def _counts(self, row: Tensor, samples: int, generator: torch.Generator) -> Tensor:
        noise = torch.randn((samples, *row.shape), generator=generator) * self.sigma
        with torch.no_grad():
            predicted = self.model(row[None] + noise).argmax(dim=1)
        return torch.bincount(predicted, minlength=self.classes)
