"""The threat model: which inputs are valid (the domain) and how far an attacker may move one.

Every attack and defense projects through :class:`Threat`, so the ε-ball and the domain are
enforced in one place: after :meth:`Threat.project` a perturbation is never longer than ε
(L∞ or L2) and every value lies inside the domain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

Norm = Literal["linf", "l2"]
NORMS: tuple[Norm, ...] = ("linf", "l2")

# L2 norms below this are treated as zero when normalizing a direction.
_TINY = 1e-12


@dataclass(frozen=True)
class Domain:
    """The box every valid input lies in, for example pixels in [0, 1]."""

    low: float = 0.0
    high: float = 1.0

    def __post_init__(self) -> None:
        if not self.low < self.high:
            raise ValueError("the domain needs low < high")

    @property
    def width(self) -> float:
        """``high - low``."""
        return self.high - self.low

    def clip(self, x: Tensor) -> Tensor:
        """``x`` with every value clamped into the domain."""
        return x.clamp(self.low, self.high)


@dataclass(frozen=True)
class Threat:
    """An ε-ball in the L∞ or L2 norm around each input, intersected with the domain."""

    norm: Norm
    epsilon: float
    domain: Domain = Domain()

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}")
        if not self.epsilon >= 0:
            raise ValueError("epsilon must be non-negative")

    def project(self, x_adv: Tensor, x: Tensor) -> Tensor:
        """The point of the threat set for ``x`` that ``x_adv`` maps to.

        The ball comes first, then the domain: clamping into a box that holds ``x`` only
        shortens each coordinate of the perturbation, so the result stays in the ball.
        """
        delta = x_adv - x
        if self.norm == "linf":
            delta = delta.clamp(-self.epsilon, self.epsilon)
        else:
            norms = row_norms(delta)
            scale = (self.epsilon / norms.clamp_min(_TINY)).clamp(max=1.0)
            delta = delta * per_row(scale, delta)
        return self.domain.clip(x + delta)

    def ascent(self, grad: Tensor) -> Tensor:
        """The steepest-ascent direction of unit length in this norm."""
        if self.norm == "linf":
            return grad.sign()
        return grad / per_row(row_norms(grad).clamp_min(_TINY), grad)

    def random_start(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """A point drawn uniformly from the ε-ball around each row, then projected."""
        if self.norm == "linf":
            noise = torch.rand(x.shape, generator=generator, dtype=x.dtype) * 2 - 1
            return self.project(x + self.epsilon * noise, x)
        direction = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        direction = direction / per_row(row_norms(direction).clamp_min(_TINY), direction)
        dims = x[0].numel()
        radius = torch.rand(x.shape[0], generator=generator, dtype=x.dtype) ** (1 / dims)
        return self.project(x + self.epsilon * direction * per_row(radius, x), x)

    def distance(self, x_adv: Tensor, x: Tensor) -> Tensor:
        """The length of each perturbation in this norm."""
        delta = (x_adv - x).flatten(1)
        lengths: Tensor = delta.abs().amax(dim=1) if self.norm == "linf" else delta.norm(dim=1)
        return lengths

    def contains(self, x_adv: Tensor, x: Tensor, *, tolerance: float = 1e-5) -> Tensor:
        """Per row, whether ``x_adv`` is inside this threat set (up to float rounding)."""
        inside = (x_adv >= self.domain.low - tolerance) & (x_adv <= self.domain.high + tolerance)
        near = self.distance(x_adv, x) <= self.epsilon * (1 + tolerance) + tolerance
        contained: Tensor = inside.flatten(1).all(dim=1) & near
        return contained


def row_norms(t: Tensor) -> Tensor:
    """The L2 norm of each row (first axis) of ``t``."""
    norms: Tensor = t.flatten(1).norm(dim=1)
    return norms


def per_row(values: Tensor, like: Tensor) -> Tensor:
    """One value per row, shaped to broadcast against ``like``."""
    return values.view(-1, *([1] * (like.dim() - 1)))
