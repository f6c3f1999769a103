"""DP-SGD: train a PyTorch model so that it is (ε, δ)-differentially private in its data.

Each step takes a Poisson sample of the training set (every example independently, with
probability q = batch / n, as the accountant assumes), computes every example's gradient
with ``torch.func`` (``vmap`` over ``grad``), clips each to norm C, adds Gaussian noise of
standard deviation σ·C to the sum and divides by the expected batch size. The noise
multiplier σ is the smallest (searched over the accountant's integer orders, so the ε
reached is at most the target and usually within 2 % of it) that keeps ε at the target
after all steps. Needs the ``robustness`` extra (PyTorch).

>>> import torch
>>> from bastion.robustness.networks import Architecture
>>> torch.manual_seed(0) and None
>>> x, y = torch.rand(256, 8), torch.randint(0, 2, (256,))
>>> model = Architecture(8, (16,), 2).build()
>>> plan = DpSgdPlan(epsilon=1.0, epochs=2, batch_size=32)
>>> spent = train_private(model, x, y, plan=plan, generator=torch.Generator().manual_seed(0))
>>> spent.epsilon <= 1.0, spent.steps
(True, 16)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from bastion.errors import InvalidInput
from bastion.privacy.dp.accountant import epsilon as rdp_epsilon
from bastion.privacy.dp.accountant import noise_for
from bastion.privacy.dp.limits import check_delta, check_epsilon, check_range
from bastion.registry.claims import PrivacyClaim

_EPSILON_MAX = 100.0  # a training target; above it DP-SGD protects next to nothing


@dataclass(frozen=True)
class DpSgdPlan:
    """The privacy target and the training schedule."""

    epsilon: float
    delta: float | None = None  # default: 1 / (10 n), well below 1 / n
    epochs: int = 30
    batch_size: int = 64  # expected: the Poisson sample's mean size
    learning_rate: float = 0.5
    max_grad_norm: float = 1.0

    def __post_init__(self) -> None:
        # NaN compares false to every bound, so each number is range-checked as finite.
        check_epsilon(self.epsilon, high=_EPSILON_MAX)
        if self.delta is not None and check_delta(self.delta) == 0:
            raise InvalidInput("delta must be a finite number in (0, 1).")
        check_range(self.learning_rate, name="learning rate", low=1e-9, high=1e3)
        check_range(self.max_grad_norm, name="clipping norm", low=1e-9, high=1e6)
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an integer")
        if self.epochs < 1 or self.batch_size < 1:
            raise InvalidInput("epochs and batch size are positive.")


def train_private(
    model: nn.Module, x: Tensor, y: Tensor, *, plan: DpSgdPlan, generator: torch.Generator
) -> PrivacyClaim:
    """Train ``model`` in place with DP-SGD and return what privacy it has.

    Raises:
        InvalidInput: the batch is larger than the data, or the target needs absurd noise.
    """
    n = len(x)
    if plan.batch_size >= n:
        raise InvalidInput("The batch size must be smaller than the training set.")
    rate = plan.batch_size / n
    delta = plan.delta if plan.delta is not None else 1 / (10 * n)
    steps = plan.epochs * round(1 / rate)
    try:
        sigma = noise_for(target_epsilon=plan.epsilon, sample_rate=rate, steps=steps, delta=delta)
    except ValueError as exc:
        raise InvalidInput(f"DP-SGD cannot reach epsilon {plan.epsilon:g}: {exc}.") from None
    optimizer = torch.optim.SGD(model.parameters(), lr=plan.learning_rate, momentum=0.9)
    clipped_sums = _ClippedSums(model)
    model.train()
    for _ in range(steps):
        chosen = torch.rand(n, generator=generator) < rate  # Poisson sampling
        params = {name: p.detach() for name, p in model.named_parameters()}
        sums = (
            clipped_sums(params, x[chosen], y[chosen], clip=plan.max_grad_norm)
            if chosen.any()
            else {}  # an empty sample still takes a noisy step, as the analysis assumes
        )
        for name, p in model.named_parameters():
            total = sums.get(name, torch.zeros_like(p))
            noise = torch.randn(p.shape, generator=generator) * sigma * plan.max_grad_norm
            p.grad = (total + noise) / (rate * n)
        optimizer.step()
    model.eval()
    return PrivacyClaim(
        epsilon=rdp_epsilon(sample_rate=rate, noise_multiplier=sigma, steps=steps, delta=delta),
        delta=delta,
        noise_multiplier=sigma,
        sample_rate=rate,
        steps=steps,
        max_grad_norm=plan.max_grad_norm,
    )


class _ClippedSums:
    """Per-example gradients of the cross-entropy, each clipped, summed over the batch."""

    def __init__(self, model: nn.Module) -> None:
        def loss(params: dict[str, Tensor], xi: Tensor, yi: Tensor) -> Tensor:
            logits = functional_call(model, params, (xi.unsqueeze(0),))
            return nn.functional.cross_entropy(logits, yi.unsqueeze(0))

        self._grad = vmap(grad(loss), in_dims=(None, 0, 0))

    def __call__(
        self, params: dict[str, Tensor], x: Tensor, y: Tensor, *, clip: float
    ) -> dict[str, Tensor]:
        """Per parameter, the sum of every example's gradient scaled to norm at most ``clip``."""
        grads: dict[str, Tensor] = self._grad(params, x, y)
        squares = torch.stack([g.flatten(1).pow(2).sum(1) for g in grads.values()])
        scale = torch.clamp(clip / (squares.sum(0).sqrt() + 1e-12), max=1.0)
        return {name: torch.einsum("b,b...->...", scale, g) for name, g in grads.items()}
