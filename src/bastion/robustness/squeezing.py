"""Feature squeezing (Xu, Evans & Qi 2018): flag inputs whose prediction moves when squeezed.

Squeezers reduce the colour depth and smooth with a median filter; the score of an input is
the largest L1 distance between the model's probabilities on it and on a squeezed copy. The
threshold is set on clean data for a chosen false-positive rate. The defaults (2-bit depth,
no median filter) suit small images such as the 8x8 digits, where even a 2x2 median filter
changes clean predictions so much that the threshold hides every attack. ``squeezed_logits`` runs
the squeezers with straight-through gradients (BPDA), which is what an adaptive attack uses.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 - the usual name
from torch import Tensor, nn

from bastion.errors import NotFittedError
from bastion.robustness.attacks import attack_loss
from bastion.robustness.threat import Domain, Threat


class SqueezingDetector:
    """A detector of adversarial inputs by feature squeezing (fit on clean data first)."""

    def __init__(
        self,
        model: nn.Module,
        *,
        domain: Domain,
        shape: tuple[int, int],
        bits: int = 2,
        median: int = 0,
        false_positive_rate: float = 0.05,
    ) -> None:
        if not 1 <= bits <= 16 or median < 0 or not 0 < false_positive_rate < 1:  # noqa: PLR2004
            raise ValueError(
                "bits in 1..16, median ≥ 0 (0 is off) and false_positive_rate in (0, 1)"
            )
        self.model, self.domain, self.shape = model, domain, shape
        self.bits, self.median, self.false_positive_rate = bits, median, false_positive_rate
        self.threshold_: float | None = None

    def fit(self, x_clean: Tensor) -> SqueezingDetector:
        """Set the threshold so that ``false_positive_rate`` of clean inputs are flagged."""
        self.threshold_ = float(torch.quantile(self.score(x_clean), 1 - self.false_positive_rate))
        return self

    def score(self, x: Tensor) -> Tensor:
        """Per row, the largest L1 change in probabilities that a squeezer causes."""
        with torch.no_grad():
            probabilities = self.model(x).softmax(dim=1)
            changes = [
                (squeezed.softmax(dim=1) - probabilities).abs().sum(dim=1)
                for squeezed in self.squeezed_logits(x)
            ]
        return torch.stack(changes).amax(dim=0)

    def predict(self, x: Tensor) -> Tensor:
        """Per row, whether it is flagged as adversarial.

        Raises:
            NotFittedError: ``fit`` was not called.
        """
        if self.threshold_ is None:
            raise NotFittedError("call fit() on clean data before predict()")
        return self.score(x) > self.threshold_

    def squeezed_logits(self, x: Tensor) -> list[Tensor]:
        """The model's logits on each squeezed copy, differentiable straight through."""
        squeezers = [self._quantize] + ([self._smooth] if self.median > 1 else [])
        return [self.model(_straight_through(x, squeeze(x))) for squeeze in squeezers]

    def _quantize(self, x: Tensor) -> Tensor:
        levels = 2**self.bits - 1
        unit = (x - self.domain.low) / self.domain.width
        quantized: Tensor = (
            self.domain.low + torch.round(unit * levels) / levels * self.domain.width
        )
        return quantized

    def _smooth(self, x: Tensor) -> Tensor:
        height, width = self.shape
        k = self.median
        images = x.reshape(-1, 1, height, width)
        # Pad right and bottom (as scipy's median_filter centres even windows) and take the
        # lower median of each k x k window.
        padded = F.pad(
            images, (0, k - 1, 0, k - 1) if height > 1 else (0, k - 1, 0, 0), mode="replicate"
        )
        windows = padded.unfold(3, k, 1)
        windows = windows.unfold(2, k, 1) if height > 1 else windows.unsqueeze(-1)
        smoothed: Tensor = windows.flatten(-2).median(dim=-1).values.reshape(x.shape)
        return smoothed


def _straight_through(x: Tensor, squeezed: Tensor) -> Tensor:
    """``squeezed`` in the forward pass, the identity in the backward pass (BPDA)."""
    return x + (squeezed - x).detach()


def adaptive_attack(
    detector: SqueezingDetector,
    threat: Threat,
    x: Tensor,
    y: Tensor,
    *,
    steps: int,
    generator: torch.Generator,
) -> Tensor:
    """PGD against the model *and* its squeezing detector, through the squeezers by BPDA.

    It raises the logit margin of the wrong classes on the input and on every squeezed copy
    while pulling the probabilities of the copies together, so that the detector's score
    stays low on the adversarial input.
    """
    model = detector.model
    alpha = 2.5 * threat.epsilon / steps
    x_adv = threat.random_start(x, generator)
    for _ in range(steps):
        x_adv = x_adv.detach().requires_grad_(True)
        logits = model(x_adv)
        copies = detector.squeezed_logits(x_adv)
        probabilities = logits.softmax(dim=1)
        objective = attack_loss("margin", logits, y).sum()
        for squeezed in copies:
            objective = objective + attack_loss("margin", squeezed, y).sum()
            objective = objective - (squeezed.softmax(dim=1) - probabilities).abs().sum()
        (grad,) = torch.autograd.grad(objective, x_adv)
        x_adv = threat.project(x_adv.detach() + alpha * threat.ascent(grad), x)
    return x_adv.detach()
