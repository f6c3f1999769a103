"""White-box attacks that follow the gradient: FGSM, PGD with restarts, and APGD.

All work on a batch at once and keep, per row, the first iterate that fooled the model: an
attack never reports a worse result than one it already saw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812 - the usual name
from torch import Tensor, nn

from bastion.robustness.attacks.result import AttackResult, Loss, attack_loss
from bastion.robustness.threat import Threat

# APGD's constants, from Croce & Hein (2020): momentum, and the fraction of steps that must
# raise the loss between checkpoints for the step size to stay.
_MOMENTUM = 0.75
_RHO = 0.75


def _loss_and_grad(model: nn.Module, x: Tensor, y: Tensor, loss: Loss) -> tuple[Tensor, Tensor]:
    """Per-row logits and the gradient of the summed loss with respect to ``x``."""
    x = x.detach().requires_grad_(True)
    logits: Tensor = model(x)
    # Cross-entropy summed in one kernel: the common case, and the hot loop of every attack.
    if loss == "ce":
        total = F.cross_entropy(logits, y, reduction="sum")
    else:
        total = attack_loss(loss, logits, y).sum()
    (grad,) = torch.autograd.grad(total, x)
    return logits.detach(), grad


def _fooled(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    with torch.no_grad():
        fooled: Tensor = model(x).argmax(dim=1) != y
    return fooled


@dataclass(frozen=True)
class FGSM:
    """Fast gradient sign method (Goodfellow et al. 2015): one step of length ε."""

    threat: Threat
    loss: Loss = "ce"

    def run(
        self, model: nn.Module, x: Tensor, y: Tensor, *, generator: torch.Generator | None = None
    ) -> AttackResult:
        """Attack each row of ``x`` (true labels ``y``) with one gradient step (no randomness)."""
        _, grad = _loss_and_grad(model, x, y, self.loss)
        x_adv = self.threat.project(x + self.threat.epsilon * self.threat.ascent(grad), x)
        return AttackResult(x_adv, _fooled(model, x_adv, y))


@dataclass(frozen=True)
class PGD:
    """Projected gradient descent (Madry et al. 2018) in L∞ or L2, with random restarts.

    ``step_size`` defaults to 2.5 ε / steps, so a run can cross the ball. A row stops at
    the first iterate that fools the model (it is kept, and the batch shrinks, so the work
    goes to the rows still standing); each restart attacks only the rows still standing.
    :meth:`perturb` instead runs every row to the last step, as adversarial training wants.
    """

    threat: Threat
    steps: int = 10
    step_size: float | None = None
    random_start: bool = True
    restarts: int = 1
    loss: Loss = "ce"

    def __post_init__(self) -> None:
        if self.steps < 1 or self.restarts < 1:
            raise ValueError("steps and restarts must be at least 1")

    @property
    def alpha(self) -> float:
        """The length of one step."""
        return (
            self.step_size if self.step_size is not None else 2.5 * self.threat.epsilon / self.steps
        )

    def run(
        self, model: nn.Module, x: Tensor, y: Tensor, *, generator: torch.Generator
    ) -> AttackResult:
        """Attack each row of ``x`` (true labels ``y``)."""
        x_adv, success = x.clone(), torch.zeros(len(x), dtype=torch.bool)
        for _ in range(self.restarts):
            todo = (~success).nonzero().squeeze(1)
            if len(todo) == 0:
                break
            self._once(model, x, y, todo, generator, x_adv=x_adv, success=success)
        return AttackResult(x_adv, success)

    def perturb(
        self, model: nn.Module, x: Tensor, y: Tensor, *, generator: torch.Generator
    ) -> Tensor:
        """The last iterate of one run for every row (the usual inner step of training)."""
        current = self.threat.random_start(x, generator) if self.random_start else x
        for _ in range(self.steps):
            _, grad = _loss_and_grad(model, current, y, self.loss)
            current = self.threat.project(current + self.alpha * self.threat.ascent(grad), x)
        return current

    def _once(
        self,
        model: nn.Module,
        x: Tensor,
        y: Tensor,
        rows: Tensor,
        generator: torch.Generator,
        *,
        x_adv: Tensor,
        success: Tensor,
    ) -> None:
        """One run on ``rows``: write each row's first fooling iterate, or its last one."""
        threat, inputs, labels = self.threat, x[rows], y[rows]
        current = threat.random_start(inputs, generator) if self.random_start else inputs
        for step in range(self.steps + 1):
            if step < self.steps:
                logits, grad = _loss_and_grad(model, current, labels, self.loss)
            else:
                with torch.no_grad():
                    logits = model(current)
            hit = logits.argmax(dim=1) != labels
            if hit.any():
                fooled = hit.nonzero().squeeze(1)
                x_adv[rows[fooled]], success[rows[fooled]] = current[fooled], True
                keep = (~hit).nonzero().squeeze(1)
                if len(keep) == 0:
                    return
                rows, current, inputs, labels, grad = (
                    t.index_select(0, keep) for t in (rows, current, inputs, labels, grad)
                )
            if step < self.steps:
                current = threat.project(current + self.alpha * threat.ascent(grad), inputs)
        x_adv[rows] = current


@dataclass(frozen=True)
class APGD:
    """Auto-PGD (Croce & Hein 2020): PGD with momentum and a step size that halves itself.

    The step starts at 2ε and halves at checkpoints when too few steps raised the loss, or
    when neither the step nor the best loss changed; the run then resumes from the best point.
    The default DLR loss is invariant to the scale of the logits.
    """

    threat: Threat
    steps: int = 50
    loss: Loss = "dlr"
    random_start: bool = True

    def run(
        self, model: nn.Module, x: Tensor, y: Tensor, *, generator: torch.Generator
    ) -> AttackResult:
        """Attack each row of ``x`` (true labels ``y``)."""
        threat, rows = self.threat, len(x)
        checkpoints = _checkpoints(self.steps)
        eta = torch.full((rows, 1), 2 * threat.epsilon)
        start = threat.random_start(x, generator) if self.random_start else x.clone()
        logits, grad = _loss_and_grad(model, start, y, self.loss)
        loss = attack_loss(self.loss, logits, y)
        best, best_loss, fooled = start, loss, logits.argmax(dim=1) != y
        adversarial = start.clone()
        previous, current = start, threat.project(start + eta * threat.ascent(grad), x)
        previous_loss, raised = loss, torch.zeros(rows)
        last_eta, last_best, last_checkpoint = eta.clone(), best_loss.clone(), 0
        for k in range(1, self.steps):
            logits, grad = _loss_and_grad(model, current, y, self.loss)
            loss = attack_loss(self.loss, logits, y)
            first = (logits.argmax(dim=1) != y) & ~fooled
            adversarial = torch.where(first[:, None], current, adversarial)
            fooled |= first
            raised += (loss > previous_loss).float()
            better = loss > best_loss
            best = torch.where(better[:, None], current, best)
            best_loss = torch.where(better, loss, best_loss)
            z = threat.project(current + eta * threat.ascent(grad), x)
            step = _MOMENTUM * (z - current) + (1 - _MOMENTUM) * (current - previous)
            previous, current = current, threat.project(current + step, x)
            previous_loss = loss
            if k in checkpoints:
                stalled = (eta.squeeze(1) == last_eta.squeeze(1)) & (best_loss == last_best)
                halve = (raised < _RHO * (k - last_checkpoint)) | stalled
                eta = torch.where(halve[:, None], eta / 2, eta)
                current = torch.where(halve[:, None], best, current)
                previous = torch.where(halve[:, None], best, previous)
                raised.zero_()
                last_eta, last_best, last_checkpoint = eta.clone(), best_loss.clone(), k
        last = _fooled(model, current, y) & ~fooled
        adversarial = torch.where(last[:, None] | ~fooled[:, None], current, adversarial)
        return AttackResult(adversarial, fooled | last)


def _checkpoints(steps: int) -> set[int]:
    """The iterations at which APGD reconsiders its step size."""
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    return {math.ceil(q * steps) for q in p[1:] if q <= 1}
