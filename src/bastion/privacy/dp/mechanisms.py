"""Exact discrete noise: the discrete Laplace and Gaussian samplers of Canonne et al.

The algorithms are those of Canonne, Kamath and Steinke, "The Discrete Gaussian for
Differential Privacy" (NeurIPS 2020).

Textbook Laplace noise drawn with floating point leaks the secret through the holes in
the floats it can produce (Mironov, CCS 2012). These samplers use only integer and
rational arithmetic and uniform integers from the operating system's CSPRNG, so the
output distribution is exactly the one the privacy proof assumes. Queries run on an
integer grid and are scaled back afterwards (post-processing keeps the guarantee).

>>> import random
>>> rng = random.Random(1)  # tests only: the default is the OS's CSPRNG
>>> sample = [discrete_laplace(Fraction(2), rng=rng) for _ in range(5)]
>>> all(isinstance(x, int) for x in sample)
True
"""

from __future__ import annotations

import math
import secrets
from fractions import Fraction
from typing import Protocol


class RandomSource(Protocol):
    """Uniform integers; ``secrets.SystemRandom()`` by default, a seeded one in tests."""

    def randrange(self, stop: int, /) -> int:
        """A uniform integer in ``[0, stop)``."""
        ...


SYSTEM_RANDOM = secrets.SystemRandom()


def discrete_laplace(scale: Fraction, *, rng: RandomSource = SYSTEM_RANDOM) -> int:
    """An integer z with probability proportional to exp(-|z| / scale).

    Raises:
        ValueError: ``scale`` is not positive.
    """
    if scale <= 0:
        raise ValueError("the scale must be positive")
    s, t = scale.denominator, scale.numerator  # exp(-|z| s / t)
    while True:
        u = rng.randrange(t)
        if not _bernoulli_exp(Fraction(u, t), rng):
            continue
        v = 0
        while _bernoulli_exp(Fraction(1), rng):
            v += 1
        magnitude = (u + t * v) // s
        negative = rng.randrange(2) == 1
        if negative and magnitude == 0:
            continue  # zero would be counted twice
        return -magnitude if negative else magnitude


def discrete_gaussian(sigma: Fraction, *, rng: RandomSource = SYSTEM_RANDOM) -> int:
    """An integer z with probability proportional to exp(-z² / (2 sigma²)).

    Raises:
        ValueError: ``sigma`` is not positive.
    """
    if sigma <= 0:
        raise ValueError("sigma must be positive")
    variance = sigma * sigma
    t = math.floor(sigma) + 1
    while True:
        y = discrete_laplace(Fraction(t), rng=rng)
        gamma = (abs(y) - variance / t) ** 2 / (2 * variance)
        if _bernoulli_exp(gamma, rng):
            return y


def laplace_scale(sensitivity: Fraction, epsilon: float) -> Fraction:
    """A rational scale at least ``sensitivity / epsilon`` (rounded up, never down).

    Raises:
        ValueError: ``epsilon`` is not a finite positive number, or ``sensitivity`` is
            not positive.
    """
    if not (math.isfinite(epsilon) and epsilon > 0):
        raise ValueError("epsilon must be a positive number")
    if sensitivity <= 0:
        raise ValueError("the sensitivity must be positive")
    exact = Fraction(sensitivity) / Fraction(epsilon)
    return Fraction(math.ceil(exact * 10**9) + 1, 10**9)


def _bernoulli(p: Fraction, rng: RandomSource) -> bool:
    return rng.randrange(p.denominator) < p.numerator


def _bernoulli_exp(gamma: Fraction, rng: RandomSource) -> bool:
    """True with probability exp(-gamma), for a rational gamma >= 0."""
    while gamma > 1:
        if not _bernoulli_exp(Fraction(1), rng):
            return False
        gamma -= 1
    k = 1
    while _bernoulli(gamma / k, rng):
        k += 1
    return k % 2 == 1
