"""The RDP accountant for the Poisson-subsampled Gaussian mechanism (DP-SGD).

Rényi differential privacy of one step at order α is computed as in Mironov, Talwar and
Zhang, "Rényi Differential Privacy of the Sampled Gaussian Mechanism" (2019) — the
analysis TensorFlow Privacy and Opacus use — composed over steps by addition, and
converted to (ε, δ) with the bound of Balle et al. (2020). A test checks the numbers
against Opacus's own accountant.

>>> round(epsilon(sample_rate=0.01, noise_multiplier=1.1, steps=1000, delta=1e-5), 2)
1.71
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import special

_INTEGER_ORDERS: tuple[float, ...] = tuple(float(order) for order in range(2, 64))
ORDERS: tuple[float, ...] = (*(1 + x / 10 for x in range(1, 100)), *map(float, range(12, 64)))


def rdp(
    *, sample_rate: float, noise_multiplier: float, steps: int, orders: Sequence[float] = ORDERS
) -> np.ndarray:
    """The RDP of ``steps`` steps at each order.

    Raises:
        ValueError: a rate not in [0, 1], a negative or non-finite noise multiplier, or a
            negative step count.
    """
    _check(sample_rate=sample_rate, noise_multiplier=noise_multiplier, steps=steps)
    return np.array([steps * _rdp_step(sample_rate, noise_multiplier, order) for order in orders])


def epsilon(
    *,
    sample_rate: float,
    noise_multiplier: float,
    steps: int,
    delta: float,
    orders: Sequence[float] = ORDERS,
) -> float:
    """The ε of (ε, δ)-DP after ``steps`` steps (the best order).

    Raises:
        ValueError: δ not in (0, 1), a rate not in [0, 1], a negative or non-finite
            noise multiplier, or a negative step count.
    """
    _check(sample_rate=sample_rate, noise_multiplier=noise_multiplier, steps=steps)
    if not (math.isfinite(delta) and 0 < delta < 1):
        raise ValueError("delta is in (0, 1)")
    alphas = np.array(orders)
    values = rdp(
        sample_rate=sample_rate, noise_multiplier=noise_multiplier, steps=steps, orders=orders
    )
    eps = values - (np.log(delta) + np.log(alphas)) / (alphas - 1) + np.log((alphas - 1) / alphas)
    return float(np.nanmin(eps)) if steps else 0.0


def noise_for(*, target_epsilon: float, sample_rate: float, steps: int, delta: float) -> float:
    """The smallest noise multiplier (within 0.1 %) that keeps ε at or below the target.

    The search uses the integer orders only, which are cheap to evaluate; ε over all the
    orders is never larger (it is a minimum over more of them), so the target still holds.

    Raises:
        ValueError: the target is not a finite positive number, or cannot be met with
            any reasonable noise (σ ≤ 1000).
    """
    if not (math.isfinite(target_epsilon) and target_epsilon > 0):
        raise ValueError("the target epsilon is a finite positive number")

    def spent(sigma: float) -> float:
        return epsilon(
            sample_rate=sample_rate,
            noise_multiplier=sigma,
            steps=steps,
            delta=delta,
            orders=_INTEGER_ORDERS,
        )

    low, high = 0.0, 10.0
    while spent(high) > target_epsilon:
        high *= 2
        if high > 1000:  # noqa: PLR2004
            raise ValueError("the privacy target needs more noise than training can take")
    while high - low > 1e-3 * high:
        middle = (low + high) / 2
        low, high = (middle, high) if spent(middle) > target_epsilon else (low, middle)
    return high


def _check(*, sample_rate: float, noise_multiplier: float, steps: int) -> None:
    """Refuse what would make the sums below meaningless (NaN passes every ``<``)."""
    if not (math.isfinite(sample_rate) and 0 <= sample_rate <= 1):
        raise ValueError("the sample rate is in [0, 1]")
    if not (math.isfinite(noise_multiplier) and noise_multiplier >= 0):
        raise ValueError("the noise multiplier is a finite number >= 0")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError("steps is an integer >= 0")


def _rdp_step(q: float, sigma: float, alpha: float) -> float:
    if q == 0:
        return 0.0
    if sigma == 0:
        return math.inf
    if q == 1.0:
        return alpha / (2 * sigma**2)
    log_a = (
        _log_a_int(q, sigma, int(alpha))
        if float(alpha).is_integer()
        else _log_a_frac(q, sigma, alpha)
    )
    return log_a / (alpha - 1)


def _log_add(a: float, b: float) -> float:
    low, high = min(a, b), max(a, b)
    if low == -math.inf:
        return high
    return math.log1p(math.exp(low - high)) + high


def _log_sub(a: float, b: float) -> float:
    if b == -math.inf:
        return a
    if a == b:
        return -math.inf
    return math.log(math.expm1(a - b)) + b


def _log_a_int(q: float, sigma: float, alpha: int) -> float:
    total = -math.inf
    for i in range(alpha + 1):
        coefficient = (
            math.log(special.binom(alpha, i)) + i * math.log(q) + (alpha - i) * math.log(1 - q)
        )
        total = _log_add(total, coefficient + (i * i - i) / (2 * sigma**2))
    return total


def _log_a_frac(q: float, sigma: float, alpha: float) -> float:
    a0, a1 = -math.inf, -math.inf
    z0 = sigma**2 * math.log(1 / q - 1) + 0.5
    i = 0
    while True:
        coefficient = special.binom(alpha, i)
        log_coefficient = math.log(abs(coefficient))
        j = alpha - i
        t0 = log_coefficient + i * math.log(q) + j * math.log(1 - q)
        t1 = log_coefficient + j * math.log(q) + i * math.log(1 - q)
        e0 = math.log(0.5) + _log_erfc((i - z0) / (math.sqrt(2) * sigma))
        e1 = math.log(0.5) + _log_erfc((z0 - j) / (math.sqrt(2) * sigma))
        s0 = t0 + (i * i - i) / (2 * sigma**2) + e0
        s1 = t1 + (j * j - j) / (2 * sigma**2) + e1
        if coefficient > 0:
            a0, a1 = _log_add(a0, s0), _log_add(a1, s1)
        else:
            a0, a1 = _log_sub(a0, s0), _log_sub(a1, s1)
        i += 1
        if max(s0, s1) < -30:  # noqa: PLR2004 - the remaining terms are negligible
            return _log_add(a0, a1)


def _log_erfc(x: float) -> float:
    return math.log(2) + float(special.log_ndtr(-x * 2**0.5))
