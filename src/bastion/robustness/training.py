"""Training with a defense: PGD adversarial training, fast FGSM-RS, TRADES, distillation, noise.

- ``pgd``: Madry et al. (2018); every batch is replaced by its PGD adversarial examples.
- ``fgsm-rs``: Wong, Rice & Kolter (2020); one FGSM step from a random start, 1.25 ε long.
  After each epoch PGD accuracy on a fixed training batch is checked; when it collapses (by
  more than 0.2, the sign of catastrophic overfitting), the best epoch is restored and
  training stops.
- ``trades``: Zhang et al. (2019); cross-entropy plus β·KL between the predictions on the
  input and on the point of the ε-ball that maximizes that KL.
- ``distillation``: Papernot et al. (2016); a teacher trained at temperature T labels the
  data softly for a student trained at T, deployed at T = 1. It *hides* gradients rather
  than adding robustness: ``bastion robustness eval`` shows C&W breaking it.
- ``noise``: Gaussian data augmentation, the base classifier for randomized smoothing.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F  # noqa: N812 - the usual name
from torch import Tensor, nn

from bastion.robustness.attacks import PGD
from bastion.robustness.data import Dataset
from bastion.robustness.networks import Architecture
from bastion.robustness.threat import Threat

Defense = Literal["none", "pgd", "fgsm-rs", "trades", "distillation", "noise"]
DEFENSES: tuple[Defense, ...] = ("none", "pgd", "fgsm-rs", "trades", "distillation", "noise")

_COLLAPSE = 0.2  # a drop in PGD accuracy this large between epochs is catastrophic overfitting
_CHECK_ROWS = 256

BatchLoss = Callable[[nn.Module, Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class TrainingPlan:
    """How to train: the defense, its budget (an L∞ ε), and the optimizer's settings."""

    defense: Defense = "none"
    epsilon: float = 0.1
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 1e-3
    hidden: tuple[int, ...] = (256, 256)
    attack_steps: int = 10
    trades_beta: float = 6.0
    temperature: float = 100.0
    noise_sigma: float = 0.25
    seed: int = 0

    def __post_init__(self) -> None:
        if self.defense not in DEFENSES:
            raise ValueError(f"defense must be one of {', '.join(DEFENSES)}")
        if self.epochs < 1 or self.batch_size < 1 or self.attack_steps < 1:
            raise ValueError("epochs, batch_size and attack_steps must be at least 1")
        if self.epsilon < 0 or self.temperature <= 0 or self.noise_sigma <= 0:
            raise ValueError("epsilon must be non-negative; temperature and noise_sigma positive")


@dataclass(frozen=True)
class Trained:
    """A trained network, how it was trained, and the seconds each epoch took."""

    model: nn.Sequential
    architecture: Architecture
    plan: TrainingPlan
    epoch_seconds: tuple[float, ...]
    stopped_early: bool = False


def train(
    dataset: Dataset, plan: TrainingPlan, *, on_epoch: Callable[[], None] | None = None
) -> Trained:
    """Train an MLP on ``dataset`` under ``plan``; ``on_epoch`` is called after each epoch."""
    torch.manual_seed(plan.seed)
    architecture = Architecture(dataset.features, plan.hidden, dataset.classes)
    generator = torch.Generator().manual_seed(plan.seed)
    threat = Threat("linf", plan.epsilon, dataset.domain)
    if plan.defense == "distillation":
        soft = _Loop(plan, dataset, generator, on_epoch)
        teacher = soft.run(architecture.build(), _tempered(plan.temperature))
        student_loss = _distilled(teacher.model, plan.temperature)
        student = _Loop(plan, dataset, generator, None).run(architecture.build(), student_loss)
        seconds = teacher.epoch_seconds + student.epoch_seconds
        return Trained(student.model, architecture, plan, seconds)
    losses: dict[Defense, BatchLoss] = {
        "none": _clean,
        "pgd": _madry(threat, plan.attack_steps, generator),
        "fgsm-rs": _fgsm_rs(threat, generator),
        "trades": _trades(threat, plan.attack_steps, plan.trades_beta, generator),
        "noise": _noisy(plan.noise_sigma, generator),
    }
    watch = threat if plan.defense == "fgsm-rs" else None
    result = _Loop(plan, dataset, generator, on_epoch, watch=watch).run(
        architecture.build(), losses[plan.defense]
    )
    return Trained(result.model, architecture, plan, result.epoch_seconds, result.stopped_early)


@dataclass(frozen=True)
class _Run:
    model: nn.Sequential
    epoch_seconds: tuple[float, ...]
    stopped_early: bool


class _Loop:
    """Adam over shuffled minibatches, optionally watching for catastrophic overfitting."""

    def __init__(
        self,
        plan: TrainingPlan,
        dataset: Dataset,
        generator: torch.Generator,
        on_epoch: Callable[[], None] | None,
        *,
        watch: Threat | None = None,
    ) -> None:
        self._plan, self._data, self._generator = plan, dataset, generator
        self._on_epoch, self._watch = on_epoch, watch

    def run(self, model: nn.Sequential, loss: BatchLoss) -> _Run:
        plan, x, y = self._plan, self._data.x_train, self._data.y_train
        optimizer = torch.optim.Adam(model.parameters(), lr=plan.learning_rate)
        seconds: list[float] = []
        best_state, best_robust, stopped = None, -1.0, False
        for _ in range(plan.epochs):
            started = time.perf_counter()
            model.train()
            order = torch.randperm(len(x), generator=self._generator)
            for batch in torch.split(order, plan.batch_size):
                value = loss(model, x[batch], y[batch])
                optimizer.zero_grad()
                value.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
            seconds.append(time.perf_counter() - started)
            if self._on_epoch is not None:
                self._on_epoch()
            if self._watch is not None:
                robust = self._robust_accuracy(model.eval())
                if robust < best_robust - _COLLAPSE:
                    stopped = True
                    break
                if robust >= best_robust:
                    best_robust, best_state = robust, copy.deepcopy(model.state_dict())
        if stopped and best_state is not None:
            model.load_state_dict(best_state)
        return _Run(model.eval(), tuple(seconds), stopped)

    def _robust_accuracy(self, model: nn.Module) -> float:
        if self._watch is None:
            return 0.0
        x, y = self._data.x_train[:_CHECK_ROWS], self._data.y_train[:_CHECK_ROWS]
        result = PGD(self._watch, steps=10).run(
            model, x, y, generator=torch.Generator().manual_seed(0)
        )
        return 1.0 - result.success_rate


def _clean(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    return F.cross_entropy(model(x), y)


def _madry(threat: Threat, steps: int, generator: torch.Generator) -> BatchLoss:
    attack = PGD(threat, steps=steps)

    def loss(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        x_adv = attack.perturb(model, x, y, generator=generator)
        return F.cross_entropy(model(x_adv), y)

    return loss


def _fgsm_rs(threat: Threat, generator: torch.Generator) -> BatchLoss:
    def loss(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        start = threat.random_start(x, generator).requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(start), y), start)
        x_adv = threat.project(start.detach() + 1.25 * threat.epsilon * grad.sign(), x)
        return F.cross_entropy(model(x_adv), y)

    return loss


def _trades(threat: Threat, steps: int, beta: float, generator: torch.Generator) -> BatchLoss:
    alpha = 2.5 * threat.epsilon / steps

    def loss(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        clean = model(x)
        target = clean.detach().log_softmax(dim=1)
        x_adv = threat.project(x + 0.001 * torch.randn(x.shape, generator=generator), x)
        for _ in range(steps):
            x_adv = x_adv.detach().requires_grad_(True)
            divergence = F.kl_div(
                model(x_adv).log_softmax(dim=1), target, reduction="sum", log_target=True
            )
            (grad,) = torch.autograd.grad(divergence, x_adv)
            x_adv = threat.project(x_adv.detach() + alpha * grad.sign(), x)
        robust = F.kl_div(
            model(x_adv.detach()).log_softmax(dim=1),
            clean.log_softmax(dim=1),
            reduction="batchmean",
            log_target=True,
        )
        return F.cross_entropy(clean, y) + beta * robust

    return loss


def _noisy(sigma: float, generator: torch.Generator) -> BatchLoss:
    def loss(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(model(x + sigma * torch.randn(x.shape, generator=generator)), y)

    return loss


def _tempered(temperature: float) -> BatchLoss:
    def loss(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(model(x) / temperature, y)

    return loss


def _distilled(teacher: nn.Module, temperature: float) -> BatchLoss:
    def loss(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        with torch.no_grad():
            soft = (teacher(x) / temperature).softmax(dim=1)
        return F.cross_entropy(model(x) / temperature, soft)

    return loss
